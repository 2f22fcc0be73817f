//! Progress for long work: a spinner per step with its state and elapsed
//! time on a terminal, plain timestamped lines otherwise (CI logs, pipes).
//! Everything goes to stderr so that stdout stays for `--output json`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use kube_apply::ApplyOutcome;
use kube_apply::{Event, Observer};

/// Shows engine events to a person.
pub struct Progress {
    started: Instant,
    /// Per-object lines too (`-v`), not only per step.
    detailed: bool,
    bars: Option<Bars>,
}

struct Bars {
    multi: MultiProgress,
    by_step: Mutex<BTreeMap<String, ProgressBar>>,
}

impl Progress {
    /// Spinners when stderr is a terminal, lines otherwise.
    pub fn new(detailed: bool) -> Progress {
        let bars = std::io::stderr().is_terminal().then(|| Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            by_step: Mutex::new(BTreeMap::new()),
        });
        Progress {
            started: Instant::now(),
            detailed,
            bars,
        }
    }

    fn line(&self, text: &str) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let line = format!("[{elapsed:6.1}s] {text}");
        match &self.bars {
            Some(bars) => {
                let _ = bars.multi.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    fn bar(&self, step: &str) -> Option<ProgressBar> {
        let bars = self.bars.as_ref()?;
        let mut by_step = bars.by_step.lock().unwrap_or_else(|e| e.into_inner());
        Some(
            by_step
                .entry(step.to_string())
                .or_insert_with(|| {
                    let bar = bars.multi.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{spinner} {prefix:<24} [{elapsed:>4}] {wide_msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.set_prefix(step.to_string());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                })
                .clone(),
        )
    }
}

impl Observer for Progress {
    fn event(&self, event: Event) {
        match event {
            Event::StepStarted { step } => match self.bar(&step) {
                Some(bar) => bar.set_message("applying"),
                None => self.line(&format!("{step}: applying")),
            },
            Event::Applied {
                step,
                object,
                outcome,
            } => {
                let text = format!("{object} {}", outcome.word());
                if let Some(bar) = self.bar(&step) {
                    bar.set_message(text.clone());
                }
                // Objects that are not this install's are always said.
                let worth_a_line = outcome == ApplyOutcome::NotOwned
                    || (self.bars.is_none() && outcome != ApplyOutcome::Unchanged);
                if self.detailed || worth_a_line {
                    self.line(&format!("{step}: {text}"));
                }
            }
            Event::Waiting {
                step,
                object,
                message,
            } => {
                let text = format!("waiting for {object}: {message}");
                match self.bar(&step) {
                    Some(bar) => bar.set_message(text),
                    None => self.line(&format!("{step}: {text}")),
                }
            }
            Event::Note { step, message } => match self.bar(&step) {
                Some(bar) => bar.set_message(message),
                None => self.line(&format!("{step}: {message}")),
            },
            Event::StepReady {
                step,
                elapsed,
                changed,
            } => {
                let text = if changed == 0 {
                    format!("ready, unchanged ({:.1}s)", elapsed.as_secs_f64())
                } else {
                    format!("ready, {changed} changed ({:.1}s)", elapsed.as_secs_f64())
                };
                match self.bar(&step) {
                    Some(bar) => bar.finish_with_message(format!("✓ {text}")),
                    None => self.line(&format!("{step}: {text}")),
                }
            }
            Event::StepFailed { step, error } => match self.bar(&step) {
                Some(bar) => bar.abandon_with_message(format!("✗ {error}")),
                None => self.line(&format!("{step}: FAILED: {error}")),
            },
            Event::StepSkipped { step, reason } => {
                self.line(&format!("{step}: not started ({reason})"))
            }
            Event::StepInterrupted { step } => match self.bar(&step) {
                Some(bar) => bar.abandon_with_message("✗ interrupted (Ctrl-C)"),
                None => self.line(&format!("{step}: interrupted (Ctrl-C)")),
            },
            Event::Deleted { object } => self.line(&format!("deleted {object}")),
        }
    }
}

/// A long-running cloud operation (a GKE cluster made or deleted): a bar
/// fed by the operation's percent and current stage on a terminal, a line
/// per change otherwise.
pub struct OperationProgress {
    started: Instant,
    title: String,
    bar: Option<ProgressBar>,
}

impl OperationProgress {
    pub fn new(title: &str) -> OperationProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{elapsed:>4}] {bar:30} {pos:>3}% {wide_msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix(title.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        OperationProgress {
            started: Instant::now(),
            title: title.to_string(),
            bar,
        }
    }

    /// The operation's latest state.
    pub fn update(&self, status: &str, percent: Option<u64>, stage: Option<&str>) {
        let what = match stage {
            Some(stage) => format!("{status}: {stage}"),
            None => status.to_string(),
        };
        match &self.bar {
            Some(bar) => {
                if let Some(percent) = percent {
                    bar.set_position(percent.min(100));
                }
                bar.set_message(what);
            }
            None => eprintln!(
                "[{:6.1}s] {}: {what}{}",
                self.started.elapsed().as_secs_f64(),
                self.title,
                percent.map(|p| format!(" ({p}%)")).unwrap_or_default()
            ),
        }
    }

    pub fn finish(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.finish_with_message(message.to_string()),
            None => eprintln!(
                "[{:6.1}s] {}: {message}",
                self.started.elapsed().as_secs_f64(),
                self.title
            ),
        }
    }
}
