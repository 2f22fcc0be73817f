//! `bfctl up --local` → `status --local` → `loadtest` → `teardown --local`,
//! through the real binary with real processes (tansu, valkey-server and the
//! three services) on 127.0.0.1, and the bad inputs around them: a second
//! `up`, a taken port, invalid load parameters, an unreachable target, a
//! consumer SIGKILLed under load (restarted by the supervisor, nothing lost)
//! and one that keeps being killed (crash-looping).

use std::path::Path;

mod support;
use support::local::{
    Teardown, bfctl, counted_exactly, json, load_while_killing, local_status, process, text,
};
use testkit::free_port;

#[test]
fn up_status_loadtest_teardown_and_bad_input() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("local");
    let dir_arg = dir.to_str().unwrap();
    let port = free_port().to_string();
    let _teardown = Teardown(&dir);

    // A taken gateway port: a clear error, and nothing left running.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port().to_string();
    let output = bfctl(&[
        "up",
        "--local",
        "--local-dir",
        dir_arg,
        "--gateway-port",
        &taken_port,
    ]);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("already in use"),
        "{}",
        text(&output)
    );
    assert!(!dir.join("state.json").exists());
    drop(taken);

    let up = bfctl(&[
        "up",
        "--local",
        "--local-dir",
        dir_arg,
        "--gateway-port",
        &port,
        "--producers",
        "1",
        "--consumers",
        "1",
        "--output",
        "json",
    ]);
    assert!(up.status.success(), "{}", text(&up));
    // The progress of the dependency graph, as on a cluster: every step
    // became ready, the consumer group last, after it owned every partition.
    let progress = String::from_utf8_lossy(&up.stderr);
    for step in [
        "broker",
        "valkey",
        "producers",
        "gateway",
        "consumers",
        "consumer-group",
    ] {
        assert!(
            progress.contains(&format!("{step}: ready")),
            "{step}: {progress}"
        );
    }
    assert!(
        progress.contains("partitions owned: consumer-0: 6"),
        "{progress}"
    );
    // No image can be pulled here: the fallback to PATH is said, with why.
    assert!(
        progress.contains("cannot be had") || progress.contains("no Docker Engine answers"),
        "{progress}"
    );
    let state = json(&up);
    assert_eq!(state["phase"], "ready");
    assert_eq!(state["gatewayUrl"], format!("http://127.0.0.1:{port}"));
    assert_ne!(state["valkeyPassword"], "", "the password is not printed");

    // A second up while one runs.
    let again = bfctl(&[
        "up",
        "--local",
        "--local-dir",
        dir_arg,
        "--gateway-port",
        &port,
    ]);
    assert!(!again.status.success());
    assert!(text(&again).contains("already running"), "{}", text(&again));

    let status = bfctl(&[
        "status",
        "--local",
        "--local-dir",
        dir_arg,
        "--output",
        "json",
    ]);
    assert!(status.status.success(), "{}", text(&status));
    let status = json(&status);
    let processes = status["processes"].as_array().unwrap();
    assert_eq!(processes.len(), 5, "{status}");
    for process in processes {
        assert_eq!(process["source"], "process", "{process}");
        assert_eq!(process["running"], true, "{process}");
        assert_ne!(process["healthy"], false, "{process}");
    }

    // Bad load parameters and an unreachable target.
    for (args, expected) in [
        (vec!["--users", "0"], "--users"),
        (vec!["--duration", "0"], "--duration"),
        (vec!["--target", "not a url"], "not a URL"),
        (vec!["--target", "http://127.0.0.1:9"], "not reachable"),
    ] {
        let mut all = vec!["loadtest", "--local-dir", dir_arg];
        all.extend(args);
        let output = bfctl(&all);
        assert!(!output.status.success(), "{}", text(&output));
        assert!(text(&output).contains(expected), "{}", text(&output));
    }

    // The exact-count check: every accepted sale counted once. By now the
    // pipeline has run well over 10 s, so this also shows that no process
    // died with the supervisor's thread that started it.
    let load = bfctl(&[
        "loadtest",
        "--local-dir",
        dir_arg,
        "--users",
        "20",
        "--duration",
        "3",
        "--output",
        "json",
    ]);
    let (report, accepted) = counted_exactly(&load, 100);
    assert_eq!(report["pipeline"]["aggregatesMatch"], true);
    let latency = &report["pipeline"]["saleToValkeyMs"];
    assert_eq!(latency["sales"].as_i64(), Some(accepted), "{report}");
    assert!(latency["p99"].as_f64().is_some(), "{report}");
    let max_lag = report["pipeline"]["maxLagSales"].as_i64();
    assert!(
        max_lag.is_some_and(|lag| (0..=accepted).contains(&lag)),
        "{report}"
    );

    // The same check with Locust (headless, its CSV statistics read back).
    let locustfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("../locust/locustfile.py");
    let locust = bfctl(&[
        "loadtest",
        "--local-dir",
        dir_arg,
        "--engine",
        "locust",
        "--locustfile",
        locustfile.to_str().unwrap(),
        "--users",
        "10",
        "--spawn-rate",
        "10",
        "--duration",
        "3",
        "--output",
        "json",
    ]);
    let (report, _) = counted_exactly(&locust, 20);
    assert!(
        report["mode"].as_str().unwrap().starts_with("locust"),
        "{report}"
    );

    // Open loop at a fixed rate: about rate × duration requests, a chart.
    let chart = temp.path().join("open.svg");
    let open = bfctl(&[
        "loadtest",
        "--local-dir",
        dir_arg,
        "--rate",
        "200",
        "--users",
        "50",
        "--duration",
        "2",
        "--chart",
        chart.to_str().unwrap(),
        "--output",
        "json",
    ]);
    let (report, _) = counted_exactly(&open, 300);
    let requests = report["requests"].as_i64().unwrap();
    assert!((350..=400).contains(&requests), "{report}");
    assert!(
        report["mode"].as_str().unwrap().starts_with("open loop"),
        "{report}"
    );
    assert!(
        std::fs::read_to_string(&chart)
            .unwrap()
            .contains("<polyline")
    );
    let bad_rate = bfctl(&["loadtest", "--local-dir", dir_arg, "--rate=0"]);
    assert!(
        text(&bad_rate).contains("--rate must be between"),
        "{}",
        text(&bad_rate)
    );

    // A consumer SIGKILLed in the middle of a load test is restarted by the
    // supervisor, and every accepted sale is counted exactly once.
    let status_json = || local_status(dir_arg);
    let consumer = |status: &serde_json::Value| process(status, "consumer-0");
    let killed = consumer(&status_json())["pid"].as_i64().unwrap() as i32;
    let (_, accepted_under_kill) = counted_exactly(&load_while_killing(dir_arg, killed), 50);
    eprintln!(
        "{accepted_under_kill} sales accepted and counted once with consumer-0 SIGKILLed and restarted"
    );
    let healed = consumer(&status_json());
    assert_eq!(healed["running"], true, "{healed}");
    assert_eq!(healed["restarts"], 1, "{healed}");
    assert_ne!(healed["pid"].as_i64().unwrap() as i32, killed, "{healed}");
    assert_eq!(
        healed["lastExit"], "killed by signal 9 (SIGKILL)",
        "{healed}"
    );
    let shown = text(&bfctl(&["status", "--local", "--local-dir", dir_arg]));
    assert!(
        shown.contains(
            "consumer-0 restarted 1 time by the supervisor; last exit: killed by signal 9 (SIGKILL)"
        ),
        "{shown}"
    );

    // Valkey SIGKILLed under load: the load test goes on and ends with its
    // report; the supervisor starts Valkey again (same port, its AOF), and
    // every accepted sale is counted once.
    let valkey_pid = process(&status_json(), "valkey")["pid"].as_i64().unwrap() as i32;
    let load = load_while_killing(dir_arg, valkey_pid);
    let (_, accepted_without_valkey) = counted_exactly(&load, 50);
    eprintln!(
        "{accepted_without_valkey} sales accepted and counted once with Valkey SIGKILLed and restarted"
    );

    // Killed again each time it comes back: crash-looping, and still restarted.
    for _ in 0..3 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let before = consumer(&status_json());
        let pid = before["pid"].as_i64().unwrap() as i32;
        // SAFETY: kill(2) on the consumer this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        loop {
            let now = consumer(&status_json());
            if now["running"] == true && now["pid"].as_i64().unwrap() as i32 != pid {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "not restarted: {now}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    let looping = consumer(&status_json());
    assert_eq!(looping["crashLooping"], true, "{looping}");
    // Four kills by this test (Valkey's restart may have cost it one more).
    assert!(looping["restarts"].as_i64().unwrap() >= 4, "{looping}");
    let shown = text(&bfctl(&["status", "--local", "--local-dir", dir_arg]));
    assert!(shown.contains("CRASHLOOPING"), "{shown}");

    // The replica comparison: a fresh pipeline per count, a table, a chart.
    let reports = temp.path().join("reports");
    let compared = bfctl(&[
        "loadtest",
        "--local-dir",
        dir_arg,
        "--consumer-replicas",
        "1,2",
        "--users",
        "10",
        "--duration",
        "2",
        "--report-dir",
        reports.to_str().unwrap(),
    ]);
    assert!(compared.status.success(), "{}", text(&compared));
    let table = std::fs::read_to_string(reports.join("replicas.md")).unwrap();
    assert_eq!(table.lines().count(), 4, "{table}");
    assert!(
        table
            .lines()
            .next()
            .unwrap()
            .ends_with("| max lag (sales) |")
    );
    assert!(
        table.lines().nth(2).unwrap().starts_with("| 1 |"),
        "{table}"
    );
    assert!(
        table.lines().nth(3).unwrap().starts_with("| 2 |"),
        "{table}"
    );
    for row in table.lines().skip(2) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[4], cells[5], "accepted = counted: {row}");
        assert_eq!(
            (cells[6], cells[7]),
            ("0", "0"),
            "nothing lost or duplicated: {row}"
        );
    }
    let chart = std::fs::read_to_string(reports.join("replicas.svg")).unwrap();
    assert!(chart.contains("2 consumers"), "{chart}");
    let status = json(&bfctl(&[
        "status",
        "--local",
        "--local-dir",
        dir_arg,
        "--output",
        "json",
    ]));
    let consumers = status["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"].as_str().unwrap().starts_with("consumer"))
        .count();
    assert_eq!(
        consumers, 2,
        "the last run's pipeline is left running: {status}"
    );

    // Teardown stops everything; --purge deletes the directory.
    let pids: Vec<i32> = processes
        .iter()
        .map(|p| p["pid"].as_i64().unwrap() as i32)
        .collect();
    let down = bfctl(&[
        "teardown",
        "--local",
        "--purge",
        "--local-dir",
        dir_arg,
        "--output",
        "json",
    ]);
    assert!(down.status.success(), "{}", text(&down));
    let down = json(&down);
    assert_eq!(down["left"].as_array().unwrap().len(), 0, "{down}");
    assert_eq!(down["purged"], true);
    assert!(!dir.exists());
    for pid in pids {
        // SAFETY: signal 0 only checks existence.
        assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "pid {pid} still runs");
    }
    let status = bfctl(&["status", "--local", "--local-dir", dir_arg]);
    assert!(
        text(&status).contains("no local pipeline"),
        "{}",
        text(&status)
    );
}
