//! Running the bfctl binary against a local pipeline: the helpers the
//! local-pipeline tests share.

use std::path::Path;
use std::process::{Command, Output};

/// Runs the bfctl binary with `args`.
pub fn bfctl(args: &[&str]) -> Output {
    bfctl_with_env(args, &[])
}

/// Runs the bfctl binary with `args` and extra environment variables.
pub fn bfctl_with_env(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bfctl"))
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .expect("bfctl runs")
}

pub fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(output)))
}

/// A successful `loadtest --output json` that accepted more than `minimum`
/// sales and counted each exactly once; returns the report and the count.
pub fn counted_exactly(output: &Output, minimum: i64) -> (serde_json::Value, i64) {
    assert!(output.status.success(), "{}", text(output));
    let report = json(output);
    let accepted = report["salesAccepted"].as_i64().unwrap();
    assert!(accepted > minimum, "{report}");
    assert_eq!(
        report["pipeline"]["salesCounted"].as_i64(),
        Some(accepted),
        "{report}"
    );
    assert_eq!(report["pipeline"]["lost"], 0, "{report}");
    assert_eq!(report["pipeline"]["duplicated"], 0, "{report}");
    (report, accepted)
}

/// Stops the pipeline even when an assertion fails.
pub struct Teardown<'a>(pub &'a Path);

impl Drop for Teardown<'_> {
    fn drop(&mut self) {
        let dir = self.0.to_str().unwrap();
        let _ = bfctl(&["teardown", "--local", "--local-dir", dir]);
    }
}
