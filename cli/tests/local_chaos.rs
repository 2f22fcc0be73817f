//! `bfctl loadtest --chaos` on the local pipeline, through the binary, with
//! real processes (tansu, valkey-server, the three services) on 127.0.0.1:
//! a seeded plan that covers every local fault kind (SIGKILL, SIGSTOP/
//! SIGCONT, restart; consumer, producer, gateway, broker, Valkey), and the
//! broker killed again and again under load (503s reported, nothing lost). Each run's
//! verdict is exact: every accepted sale counted once, nothing pending,
//! nothing lost or duplicated.

mod support;
use support::local::{Teardown, bfctl, json, local_status, process, text};
use testkit::free_port;

/// Starts a pipeline with one producer and one consumer in `dir`.
fn up(dir: &str) {
    let port = free_port().to_string();
    let up = bfctl(&[
        "up",
        "--local",
        "--local-dir",
        dir,
        "--gateway-port",
        &port,
        "--producers",
        "1",
        "--consumers",
        "1",
    ]);
    assert!(up.status.success(), "{}", text(&up));
}

/// The verdict of a chaos report: every accepted sale counted exactly once
/// (beyond them only sales whose request was not confirmed), nothing
/// pending, lost or duplicated; every fault recovered. Returns the faults.
fn exact_after_faults(report: &serde_json::Value) -> Vec<serde_json::Value> {
    let check = &report["pipeline"];
    let accepted = report["salesAccepted"].as_i64().unwrap();
    assert!(accepted > 100, "{report:#}");
    assert_eq!(check["lost"], 0, "{report:#}");
    assert_eq!(check["duplicated"], 0, "{report:#}");
    assert_eq!(check["pending"], 0, "{report:#}");
    assert_eq!(
        check["salesCounted"].as_i64().unwrap(),
        accepted + check["unconfirmedWritten"].as_i64().unwrap(),
        "{report:#}"
    );
    let faults = report["faults"].as_array().cloned().unwrap_or_default();
    for fault in &faults {
        assert!(
            fault["recoveredAfter"].as_f64().is_some(),
            "not recovered: {fault:#}\n{report:#}"
        );
    }
    faults
}

#[test]
fn a_seeded_chaos_plan_covers_every_local_fault_and_loses_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("local");
    let dir_arg = dir.to_str().unwrap();
    let _teardown = Teardown(&dir);
    up(dir_arg);

    let chart = temp.path().join("chaos.svg");
    let run = bfctl(&[
        "loadtest",
        "--local-dir",
        dir_arg,
        // Seed 1: the consumer is killed first, Valkey restarted last (a
        // killed consumer's partitions wait for its 10 s group session to
        // expire: the longest recovery, given the most room); the broker
        // (tansu) is killed or paused, never restarted.
        "--chaos-seed",
        "1",
        "--users",
        "5",
        "--duration",
        "80",
        "--drain-timeout",
        "120",
        "--chart",
        chart.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert!(run.status.success(), "{}", text(&run));
    let report = json(&run);
    let faults = exact_after_faults(&report);
    assert_eq!(faults.len(), 5, "{report:#}");
    for target in ["consumer", "producer", "gateway", "broker", "valkey"] {
        assert!(
            faults.iter().any(|f| f["fault"]["target"] == target),
            "{target}: {report:#}"
        );
    }
    for action in ["kill", "pause", "restart"] {
        assert!(
            faults.iter().any(|f| f["fault"]["action"] == action),
            "{action}: {report:#}"
        );
    }
    // Each fault was really done to a process the supervisor started.
    for fault in &faults {
        let done = fault["done"].as_str().unwrap();
        assert!(done.contains("(pid "), "{fault:#}");
        let expected = match fault["fault"]["action"].as_str().unwrap() {
            "kill" => "SIGKILL",
            "pause" => "SIGSTOP",
            _ => "SIGTERM",
        };
        assert!(done.starts_with(expected), "{fault:#}");
    }
    // The same seed gives the same plan (the command prints it first).
    let plan_lines = |output: &std::process::Output| -> Vec<String> {
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter(|line| line.contains("chaos: at"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(plan_lines(&run).len(), 5, "{}", text(&run));
    // The supervisor restarted what was killed or restarted.
    let status = local_status(dir_arg);
    for fault in &faults {
        if fault["fault"]["action"] == "pause" {
            continue;
        }
        // consumer-0, producer-0, gateway-PORT, broker, valkey.
        let target = fault["fault"]["target"].as_str().unwrap();
        let process = status["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"].as_str().unwrap().starts_with(target))
            .unwrap_or_else(|| panic!("no {target} in {status}"));
        assert!(process["restarts"].as_u64() >= Some(1), "{process:#}");
        assert_eq!(process["running"], true, "{process:#}");
    }
    // The chart marks every fault.
    let svg = std::fs::read_to_string(&chart).unwrap();
    for fault in &faults {
        let described = match fault["fault"]["action"].as_str().unwrap() {
            "pause" => format!("pause {}", fault["fault"]["target"].as_str().unwrap()),
            action => format!("{action} {}", fault["fault"]["target"].as_str().unwrap()),
        };
        assert!(svg.contains(&described), "{described}: {svg}");
    }

    // The text report lists each fault with its recovery.
    let again = bfctl(&[
        "loadtest",
        "--local-dir",
        dir_arg,
        "--chaos-plan",
        temp.path().join("missing.yaml").to_str().unwrap(),
        "--duration",
        "5",
    ]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("missing.yaml"), "{}", text(&again));
    // A broker run from the tansu binary is not restarted (tansu 0.6.0
    // fails every produce after a graceful stop): refused before any load.
    let plan = temp.path().join("restart-broker.yaml");
    std::fs::write(
        &plan,
        "faults:\n  - at: 2\n    target: broker\n    action: restart\n",
    )
    .unwrap();
    let refused = bfctl(&[
        "loadtest",
        "--local-dir",
        dir_arg,
        "--chaos-plan",
        plan.to_str().unwrap(),
        "--duration",
        "5",
    ]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains(
            "fault 1 (restart broker): a broker run from the tansu binary is not restarted"
        ),
        "{}",
        text(&refused)
    );
    assert!(!text(&refused).contains("loadtest: "), "{}", text(&refused));
}

#[test]
fn a_broker_killed_again_and_again_gives_503s_and_loses_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("local");
    let dir_arg = dir.to_str().unwrap();
    let _teardown = Teardown(&dir);
    up(dir_arg);

    // Killed five times, each once it was serving again: the supervisor's
    // backoff doubles (0.5, 1, 2, 4, 8 s), so the broker stays down longer
    // each time, until the producer's health check (metadata every 2 s)
    // reports NOT_SERVING and the gateway answers 503 with Retry-After.
    let plan = temp.path().join("broker.yaml");
    let faults: String = [2, 5, 8, 11, 14]
        .iter()
        .map(|at| format!("  - at: {at}\n    target: broker\n    action: kill\n"))
        .collect();
    std::fs::write(&plan, format!("faults:\n{faults}")).unwrap();
    let run = bfctl(&[
        "loadtest",
        "--local-dir",
        dir_arg,
        "--chaos-plan",
        plan.to_str().unwrap(),
        "--users",
        "5",
        "--duration",
        "50",
        "--drain-timeout",
        "120",
    ]);
    let output = text(&run);
    assert!(run.status.success(), "{output}");
    for line in [
        "lost            0",
        "duplicated      0",
        "pending         0",
        "not 202 at",
    ] {
        assert!(output.contains(line), "{line}: {output}");
    }
    let kills: Vec<&str> = output
        .lines()
        .filter(|line| line.contains("kill broker") && !line.starts_with("chaos:"))
        .collect();
    assert_eq!(kills.len(), 5, "{output}");
    for kill in &kills {
        assert!(kill.contains("whole again after"), "{kill}\n{output}");
    }
    // The last kill, with the longest backoff, caused a window of 503s.
    assert!(kills[4].contains("503 x "), "{}\n{output}", kills[4]);
    let status = local_status(dir_arg);
    let broker = process(&status, "broker");
    assert_eq!(broker["restarts"], 5, "{status:#}");
    assert_eq!(
        broker["lastExit"], "killed by signal 9 (SIGKILL)",
        "{status:#}"
    );
}
