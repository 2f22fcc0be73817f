//! `bfctl loadtest --engine locust`: the team's Locust file, run headless,
//! its CSV statistics read back into the same report as the built-in
//! engine's. Locust does not say what it sent, so the drain check compares
//! the number of sales only, not units and amounts; and since its counts
//! miss the requests in flight when it stops its users, the sales accepted
//! are taken from the gateway's own counter when it answers (see
//! `loadtest::run_with`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};

use super::{LoadtestOptions, Measured, Percentiles};

/// How the README's commands install it.
pub const INSTALL: &str = "python3 -m pip install locust==2.32.0";

/// Runs `locust --headless` for the test's users and duration and reads its
/// CSV files.
pub(crate) fn run(
    options: &LoadtestOptions,
    locustfile: &Path,
    spawn_rate: f64,
) -> anyhow::Result<Measured> {
    anyhow::ensure!(
        options.rate.is_none(),
        "--rate is the built-in engine's open loop; Locust's users are closed loop"
    );
    anyhow::ensure!(
        locustfile.is_file(),
        "the locustfile {} does not exist",
        locustfile.display()
    );
    anyhow::ensure!(
        spawn_rate > 0.0 && spawn_rate.is_finite(),
        "--spawn-rate must be above 0"
    );
    if !crate::build::disk::tools::on_path("locust") {
        bail!("`locust` is not on PATH; install it with: {INSTALL}");
    }
    let csv = tempfile::tempdir().context("a directory for Locust's CSV files")?;
    let prefix = csv.path().join("run");
    let started = Instant::now();
    let output = std::process::Command::new("locust")
        .arg("-f")
        .arg(locustfile)
        .args(["--headless", "--only-summary", "--exit-code-on-error", "0"])
        // Let each user finish the request it is in when time is up, so
        // none is abandoned half-way (sent, but never seen answered).
        .args(["--stop-timeout", "10"])
        .args(["-u", &options.users.to_string()])
        .args(["-r", &spawn_rate.to_string()])
        .args(["-t", &format!("{}s", options.duration.as_secs().max(1))])
        .args(["--host", options.target.trim_end_matches('/')])
        .arg("--csv")
        .arg(&prefix)
        .output()
        .context("running locust")?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "locust failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let stats = read_csv(&csv.path().join("run_stats.csv"))?;
    let aggregated = stats
        .iter()
        .find(|row| row.get("Name").map(String::as_str) == Some("Aggregated"))
        .context("Locust's stats CSV has no Aggregated row")?;
    let number = |row: &BTreeMap<String, String>, column: &str| -> anyhow::Result<f64> {
        let text = row
            .get(column)
            .with_context(|| format!("Locust's CSV has no column {column:?}"))?;
        if text == "N/A" {
            return Ok(0.0);
        }
        text.parse::<f64>()
            .with_context(|| format!("Locust's {column:?} is {text:?}, not a number"))
    };
    let requests = number(aggregated, "Request Count")? as usize;
    let failures = number(aggregated, "Failure Count")? as usize;
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    if requests > failures {
        statuses.insert(202, requests - failures);
    }
    for row in read_csv(&csv.path().join("run_failures.csv")).unwrap_or_default() {
        let occurrences = number(&row, "Occurrences").unwrap_or(0.0) as usize;
        let code = row.get("Error").map_or(0, |error| status_in(error));
        *statuses.entry(code).or_default() += occurrences;
    }
    let timeline = read_csv(&csv.path().join("run_stats_history.csv"))
        .unwrap_or_default()
        .iter()
        .filter(|row| row.get("Name").map(String::as_str) == Some("Aggregated"))
        .map(|row| {
            let rate = number(row, "Requests/s").unwrap_or(0.0);
            let failing = number(row, "Failures/s").unwrap_or(0.0);
            let accepted = (rate - failing).max(0.0).round() as u64;
            localrun::http_load::Second {
                completed: rate.round() as u64,
                accepted,
                // Locust's history has percentiles, not means: the median.
                mean_latency_ms: number(row, "50%").unwrap_or(0.0),
                max_latency_ms: number(row, "100%").unwrap_or(0.0),
                p50_latency_ms: number(row, "50%").unwrap_or(0.0),
                p99_latency_ms: number(row, "99%").unwrap_or(0.0),
                // Its history counts failures per second without their
                // status: only the 202s are known by status.
                statuses: [(202, accepted)].into(),
            }
        })
        .collect();
    Ok(Measured {
        mode: format!(
            "locust {}, {} users spawned at {spawn_rate}/s",
            locustfile.display(),
            options.users
        ),
        seconds: seconds.max(options.duration.as_secs_f64()),
        statuses,
        latency_ms: Percentiles {
            p50: number(aggregated, "50%")?,
            p90: number(aggregated, "90%")?,
            p99: number(aggregated, "99%")?,
            max: number(aggregated, "Max Response Time")?,
        },
        accepted_sales: (requests - failures) as i64,
        accepted_totals: None,
        timeline,
    })
}

/// The HTTP status in a Locust error text (`HTTPError('503 Server Error…`),
/// 0 when there is none (a connection error).
fn status_in(error: &str) -> u16 {
    error
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|part| part.parse::<u16>().ok())
        .find(|code| (400..600).contains(code))
        .unwrap_or(0)
}

/// A CSV file with a header row, as maps from column to value (the `csv`
/// crate: Locust quotes fields that hold commas and quotes).
fn read_csv(path: &Path) -> anyhow::Result<Vec<BTreeMap<String, String>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_csv(&text).with_context(|| format!("reading {}", path.display()))
}

fn parse_csv(text: &str) -> anyhow::Result<Vec<BTreeMap<String, String>>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().context("an empty CSV file")?.clone();
    reader
        .records()
        .map(|record| {
            let record = record?;
            Ok(header
                .iter()
                .map(str::to_string)
                .zip(record.iter().map(str::to_string))
                .collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_keep_quoted_commas_and_quotes() {
        let rows = parse_csv(
            "Method,Name,Error,Occurrences\nPOST,/venta,\"HTTPError('503, \"\"down\"\"')\",4\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["Error"], r#"HTTPError('503, "down"')"#);
        assert_eq!(rows[0]["Occurrences"], "4");
    }

    #[test]
    fn statuses_are_found_in_error_texts() {
        assert_eq!(
            status_in("HTTPError('503 Server Error: Service Unavailable for url: /venta')"),
            503
        );
        assert_eq!(
            status_in("ConnectionRefusedError(111, 'Connection refused')"),
            0
        );
    }
}
