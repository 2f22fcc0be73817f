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

/// `bfctl status --local --output json` of the pipeline in `dir`.
pub fn local_status(dir: &str) -> serde_json::Value {
    json(&bfctl(&[
        "status",
        "--local",
        "--local-dir",
        dir,
        "--output",
        "json",
    ]))
}

/// One process of a `status --local` report, by name.
pub fn process(status: &serde_json::Value, name: &str) -> serde_json::Value {
    status["processes"]
        .as_array()
        .and_then(|processes| processes.iter().find(|p| p["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no process {name} in {status}"))
}

/// A 6 s load test on the pipeline in `dir` with `pid` SIGKILLed 2 s into
/// it; its output.
pub fn load_while_killing(dir: &str, pid: i32) -> Output {
    let load = std::thread::spawn({
        let dir = dir.to_string();
        move || {
            bfctl(&[
                "loadtest",
                "--local-dir",
                &dir,
                "--users",
                "5",
                "--duration",
                "6",
                "--drain-timeout",
                "90",
                "--output",
                "json",
            ])
        }
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    // SAFETY: kill(2) on a process of the pipeline the test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    load.join().expect("the load test thread")
}
