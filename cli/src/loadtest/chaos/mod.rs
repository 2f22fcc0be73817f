//! `bfctl loadtest --chaos`: faults injected into the pipeline while the
//! load runs, each followed until the pipeline is whole again.
//!
//! * [`plan`]: which faults, when (the built-in plan, a file, or a seed);
//! * [`local`]: injecting them into the local pipeline (signals to its
//!   processes, the Docker Engine for its containers);
//! * [`cluster`]: injecting them into a cluster (deleting pods, KubeVirt's
//!   restart of the Valkey VM) through the API server;
//! * here: the thread that injects each fault at its time and measures how
//!   long until the pipeline was **whole again**: every part running and
//!   ready (the injector's rule), then the gateway accepting sales and the
//!   pipeline counting them (both counters moved since it was whole). The
//!   next fault waits for that, so faults never overlap. After the load,
//!   [`error_windows`] finds in the per-second statuses the window of
//!   answers other than 202 each fault caused.

pub mod cluster;
pub mod local;
pub mod plan;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use plan::{Action, ChaosPlan, Fault, Place, Target};

use super::load::gateway_sales_accepted;
use super::probe::PipelineProbe;

/// Injects faults into one kind of place and says when it is whole.
pub trait FaultInjector: Send {
    /// Injects `fault` and says what was done ("SIGKILL to consumer-0
    /// (pid 4242)"). A pause returns once the target runs again.
    fn inject(&mut self, fault: &Fault) -> anyhow::Result<String>;
    /// The parts not running or not ready yet (empty: whole).
    fn not_whole(&mut self) -> anyhow::Result<Vec<String>>;
    /// Why this pipeline cannot take `action` on `target` (`None`: it can),
    /// asked before anything starts.
    fn refuses(&self, _target: Target, _action: Action) -> Option<String> {
        None
    }
}

/// The plan and what carries it out.
pub struct Chaos {
    pub plan: ChaosPlan,
    pub injector: Box<dyn FaultInjector>,
    /// How long a fault may take to recover before it is reported as not
    /// recovered (and the next fault goes ahead).
    pub recovery_timeout: Duration,
}

/// What one fault did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultReport {
    pub fault: Fault,
    /// What was done, or why it could not be.
    pub done: String,
    /// Seconds after the load started (later than `fault.at` when the
    /// fault before took longer to recover).
    pub injected_at: Option<f64>,
    /// Seconds from the injection until the pipeline was whole again and
    /// sales were accepted and counted again.
    pub recovered_after: Option<f64>,
    /// Why it is not known to have recovered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_recovered: Option<String>,
    /// The answers other than 202 from the injection until the next fault
    /// (or the end of the load).
    pub errors: Option<ErrorWindow>,
}

/// A window of answers other than 202, in whole seconds of the load.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorWindow {
    pub from_second: usize,
    pub to_second: usize,
    /// Requests answered 5xx (or another error) or not at all.
    pub requests: u64,
    /// Per status (0: no answer).
    pub statuses: std::collections::BTreeMap<u16, u64>,
}

/// The chaos thread, running beside the load.
pub struct ChaosRun {
    load_over: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<FaultReport>>,
}

impl ChaosRun {
    /// Starts injecting `chaos.plan`, timing from `started` (the start of
    /// the load). `probe` reads the pipeline's count; `target` is the
    /// gateway (its /metrics counter of accepted sales).
    pub fn start(
        chaos: Chaos,
        mut probe: Box<dyn PipelineProbe>,
        target: String,
        started: Instant,
    ) -> ChaosRun {
        let load_over = Arc::new(AtomicBool::new(false));
        let over = load_over.clone();
        let thread = std::thread::spawn(move || {
            let Chaos {
                plan,
                mut injector,
                recovery_timeout,
            } = chaos;
            let mut reports = Vec::new();
            for fault in plan.faults {
                let due = started + Duration::from_secs_f64(fault.at);
                while Instant::now() < due && !over.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if over.load(Ordering::Relaxed) {
                    reports.push(FaultReport {
                        done:
                            "not injected: the load had ended (the fault before recovered too late)"
                                .into(),
                        fault,
                        injected_at: None,
                        recovered_after: None,
                        not_recovered: None,
                        errors: None,
                    });
                    continue;
                }
                let injected = Instant::now();
                let injected_at = (injected - started).as_secs_f64();
                let (done, recovery) = match injector.inject(&fault) {
                    Ok(done) => (
                        done,
                        await_whole(
                            &mut *injector,
                            &mut *probe,
                            &target,
                            injected,
                            recovery_timeout,
                            &over,
                        ),
                    ),
                    Err(error) => (
                        format!("FAILED: {error:#}"),
                        Err("the fault could not be injected".to_string()),
                    ),
                };
                reports.push(FaultReport {
                    fault,
                    done,
                    injected_at: Some(injected_at),
                    recovered_after: recovery.as_ref().ok().copied(),
                    not_recovered: recovery.err(),
                    errors: None,
                });
            }
            reports
        });
        ChaosRun { load_over, thread }
    }

    /// Called when the load has ended: faults not injected yet are skipped,
    /// a recovery being followed is followed until it ends (bounded).
    pub fn finish(self) -> Vec<FaultReport> {
        self.load_over.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// Seconds from `injected` until the pipeline is whole and moving again,
/// or why that was not seen.
fn await_whole(
    injector: &mut dyn FaultInjector,
    probe: &mut dyn PipelineProbe,
    gateway: &str,
    injected: Instant,
    timeout: Duration,
    load_over: &AtomicBool,
) -> Result<f64, String> {
    // The counters when the parts were last seen whole; None while not.
    let mut whole_since: Option<(Option<i64>, Option<i64>)> = None;
    let mut last_missing = String::new();
    while injected.elapsed() < timeout {
        match injector.not_whole() {
            Ok(missing) if missing.is_empty() => {
                let accepted = gateway_sales_accepted(gateway);
                let counted = probe.counted().ok().map(|c| c.sales);
                match whole_since {
                    None => whole_since = Some((accepted, counted)),
                    Some((accepted_then, counted_then)) => {
                        let moved = |now: Option<i64>, then: Option<i64>| {
                            now.is_some() && then.is_some() && now != then
                        };
                        if moved(accepted, accepted_then) && moved(counted, counted_then) {
                            return Ok(injected.elapsed().as_secs_f64());
                        }
                        // Counters that could not be read when it became
                        // whole are taken from the first reading that can.
                        whole_since = Some((accepted_then.or(accepted), counted_then.or(counted)));
                    }
                }
                if load_over.load(Ordering::Relaxed) {
                    return Err(format!(
                        "whole again after {:.1} s, but the load had ended before sales confirmed it",
                        injected.elapsed().as_secs_f64()
                    ));
                }
            }
            Ok(missing) => {
                whole_since = None;
                last_missing = missing.join(", ");
            }
            Err(error) => {
                whole_since = None;
                last_missing = format!("{error:#}");
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "not whole within {} s: {}",
        timeout.as_secs(),
        if last_missing.is_empty() {
            "sales were not accepted and counted again".to_string()
        } else {
            last_missing
        }
    ))
}

/// Fills each fault's window of answers other than 202: the seconds from
/// its injection until the next fault's (or the end), first to last second
/// with such answers.
pub fn error_windows(faults: &mut [FaultReport], timeline: &[localrun::http_load::Second]) {
    let starts: Vec<Option<f64>> = faults.iter().map(|f| f.injected_at).collect();
    for (index, fault) in faults.iter_mut().enumerate() {
        let Some(start) = starts[index] else {
            continue;
        };
        let end = starts[index + 1..]
            .iter()
            .flatten()
            .next()
            .map_or(timeline.len(), |next| (*next as usize).min(timeline.len()));
        let mut window: Option<ErrorWindow> = None;
        for (second, sample) in timeline.iter().enumerate().take(end).skip(start as usize) {
            if sample.failed() == 0 {
                continue;
            }
            let window = window.get_or_insert(ErrorWindow {
                from_second: second,
                to_second: second,
                requests: 0,
                statuses: Default::default(),
            });
            window.to_second = second;
            window.requests += sample.failed();
            for (status, count) in sample.statuses.iter().filter(|(s, _)| **s != 202) {
                *window.statuses.entry(*status).or_default() += count;
            }
        }
        fault.errors = window;
    }
}

/// The faults as a table for people.
pub fn faults_text(faults: &[FaultReport]) -> String {
    let mut out = String::from("faults\n");
    for report in faults {
        let at = report
            .injected_at
            .map_or("     -".to_string(), |at| format!("{at:5.1}s"));
        let recovered = match (report.recovered_after, &report.not_recovered) {
            (Some(seconds), _) => format!("whole again after {seconds:.1} s"),
            (None, Some(why)) => format!("NOT RECOVERED: {why}"),
            (None, None) => "-".to_string(),
        };
        let errors = match &report.errors {
            None => "no errors".to_string(),
            Some(window) => {
                let statuses: Vec<String> = window
                    .statuses
                    .iter()
                    .map(|(status, count)| match status {
                        0 => format!("no answer x {count}"),
                        _ => format!("{status} x {count}"),
                    })
                    .collect();
                format!(
                    "{} in seconds {}-{}",
                    statuses.join(", "),
                    window.from_second,
                    window.to_second
                )
            }
        };
        out.push_str(&format!(
            "  {at}  {:<24} {recovered}; {errors}\n      {}\n",
            report.fault.describe(),
            report.done
        ));
    }
    out
}

/// Whether every fault was injected and recovered from.
pub fn all_recovered(faults: &[FaultReport]) -> bool {
    faults.iter().all(|f| f.recovered_after.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(statuses: &[(u16, u64)]) -> localrun::http_load::Second {
        let statuses: std::collections::BTreeMap<u16, u64> = statuses.iter().copied().collect();
        localrun::http_load::Second {
            completed: statuses.values().sum(),
            accepted: statuses.get(&202).copied().unwrap_or(0),
            mean_latency_ms: 1.0,
            max_latency_ms: 1.0,
            p50_latency_ms: 1.0,
            p99_latency_ms: 1.0,
            statuses,
        }
    }

    fn report(at: Option<f64>) -> FaultReport {
        FaultReport {
            fault: Fault {
                at: at.unwrap_or(0.0),
                target: Target::Broker,
                action: Action::Kill,
                pause_seconds: None,
            },
            done: String::new(),
            injected_at: at,
            recovered_after: Some(1.0),
            not_recovered: None,
            errors: None,
        }
    }

    #[test]
    fn each_fault_gets_the_errors_until_the_next() {
        let timeline = [
            second(&[(202, 10)]),
            second(&[(202, 5), (503, 5)]),
            second(&[(503, 10)]),
            second(&[(202, 10)]),
            second(&[(202, 8), (0, 2)]),
            second(&[(202, 10)]),
        ];
        let mut faults = [report(Some(1.2)), report(None), report(Some(4.5))];
        error_windows(&mut faults, &timeline);
        assert_eq!(
            faults[0].errors,
            Some(ErrorWindow {
                from_second: 1,
                to_second: 2,
                requests: 15,
                statuses: [(503, 15)].into(),
            })
        );
        assert_eq!(faults[1].errors, None);
        assert_eq!(faults[2].errors.as_ref().map(|w| w.requests), Some(2));
        let text = faults_text(&faults);
        assert!(text.contains("503 x 15 in seconds 1-2"), "{text}");
        assert!(text.contains("no answer x 2 in seconds 4-4"), "{text}");
    }
}
