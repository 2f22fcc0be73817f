//! One self-contained bfctl (issue 13): the binary copied alone into an
//! empty directory, run with an environment that holds no cargo and no
//! source tree (PATH has only the broker and Valkey, as a user's machine
//! would), brings the local pipeline up, loads it, counts every sale
//! exactly, reports its status and tears it down. The services run as
//! `bfctl service NAME`, from the binary itself.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::local::{counted_exactly, text};

/// A program found on this machine's PATH.
fn on_path(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo/bin")))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{program} is not installed (.ci/install-deps installs it)"))
}

/// Runs the copied bfctl in `work` with only `tools` on PATH and nothing of
/// cargo's in the environment.
fn run(bfctl: &Path, work: &Path, tools: &Path, home: &Path, args: &[&str]) -> Output {
    let output = Command::new(bfctl)
        .args(args)
        .env_clear()
        .env("PATH", tools)
        .env("HOME", home)
        .current_dir(work)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the copied bfctl runs");
    eprintln!("$ bfctl {}\n{}", args.join(" "), text(&output));
    output
}

#[test]
fn the_binary_alone_runs_the_local_pipeline_without_cargo_or_sources() {
    let temp = tempfile::tempdir().unwrap();
    let (bin, tools, home, work) = (
        temp.path().join("bin"),
        temp.path().join("tools"),
        temp.path().join("home"),
        temp.path().join("work"),
    );
    for dir in [&bin, &tools, &home, &work] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let bfctl = bin.join("bfctl");
    std::fs::copy(env!("CARGO_BIN_EXE_bfctl"), &bfctl).unwrap();
    for program in ["tansu", "valkey-server"] {
        std::os::unix::fs::symlink(on_path(program), tools.join(program)).unwrap();
    }
    assert!(!tools.join("cargo").exists() && !bin.join("cargo").exists());

    let dir = work.join("local");
    let dir_arg = dir.to_str().unwrap();
    let port = testkit::free_port().to_string();
    struct Down<'a>(&'a Path, &'a Path, &'a Path, &'a Path, &'a str);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = run(
                self.0,
                self.1,
                self.2,
                self.3,
                &["teardown", "--local", "--local-dir", self.4],
            );
        }
    }
    let _down = Down(&bfctl, &work, &tools, &home, dir_arg);

    let up = run(
        &bfctl,
        &work,
        &tools,
        &home,
        &[
            "up",
            "--local",
            "--docker",
            "never",
            "--local-dir",
            dir_arg,
            "--gateway-port",
            &port,
        ],
    );
    assert!(up.status.success(), "{}", text(&up));
    let load = run(
        &bfctl,
        &work,
        &tools,
        &home,
        &[
            "loadtest",
            "--local-dir",
            dir_arg,
            "--users",
            "20",
            "--duration",
            "3",
            "--output",
            "json",
        ],
    );
    let (_, accepted) = counted_exactly(&load, 100);
    eprintln!("{accepted} sales accepted and counted exactly");
    let status = run(
        &bfctl,
        &work,
        &tools,
        &home,
        &["status", "--local", "--local-dir", dir_arg],
    );
    assert!(status.status.success(), "{}", text(&status));
    // The services ran from the copied binary itself.
    let listed = String::from_utf8_lossy(&status.stdout);
    assert!(
        listed.contains("gateway") && listed.contains("consumer"),
        "{listed}"
    );
    let state = std::fs::read_to_string(dir.join("state.json")).unwrap();
    assert!(
        !state.contains("target/"),
        "no binary from a build tree: {state}"
    );
    // The services' logs are files: no colour escape codes in them.
    let mut logs = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                !text.contains('\x1b'),
                "{} has ANSI escapes",
                path.display()
            );
            logs += 1;
        }
    }
    assert!(logs >= 3, "the services' logs are in {}", dir.display());
    let down = run(
        &bfctl,
        &work,
        &tools,
        &home,
        &["teardown", "--local", "--local-dir", dir_arg, "--purge"],
    );
    assert!(down.status.success(), "{}", text(&down));
    assert!(!dir.exists());
}
