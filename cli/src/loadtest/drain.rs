//! After the load: waiting, bounded, for the pipeline to count every sale
//! the gateway accepted, sampling how far counting lags behind accepting
//! while the load runs, and the sale-to-Valkey latency from the consumers'
//! histogram buckets.

use std::time::{Duration, Instant};

use super::load::gateway_sales_accepted;
use super::probe::{Counted, PipelineProbe};
use super::report::{PipelineCheck, SaleToValkey};

/// Percentiles of the sales between two bucket readings.
pub(super) fn sale_to_valkey(before: &[(f64, f64)], after: &[(f64, f64)]) -> Option<SaleToValkey> {
    let deltas: Vec<(f64, f64)> = after
        .iter()
        .map(|(bound, count)| {
            let earlier = before
                .iter()
                .find(|(b, _)| b == bound)
                .map_or(0.0, |(_, c)| *c);
            (*bound, count - earlier)
        })
        .collect();
    let total = deltas.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let quantile = |q: f64| {
        deltas
            .iter()
            .find(|(_, cumulative)| *cumulative >= q * total)
            .map(|(bound, _)| *bound)
            .filter(|bound| bound.is_finite())
            .map(|seconds| seconds * 1000.0)
    };
    Some(SaleToValkey {
        sales: total as u64,
        p50: quantile(0.5),
        p90: quantile(0.9),
        p99: quantile(0.99),
    })
}

/// Waits until Valkey's count reaches what was there before plus what was
/// accepted (then one more second, so that duplicates would show), and
/// compares sales, units and amounts. A count that cannot be read (Valkey
/// restarting) is read again until the timeout: the pipeline failing is
/// what a load test measures, not a reason to stop.
pub(super) fn check_drain(
    probe: &mut dyn PipelineProbe,
    before: &Counted,
    accepted_sales: i64,
    accepted: Option<&localrun::totals::Totals>,
    timeout: Duration,
) -> anyhow::Result<PipelineCheck> {
    let started = Instant::now();
    let target = before.sales + accepted_sales;
    let mut drained = false;
    while started.elapsed() < timeout {
        if probe.counted().is_ok_and(|now| now.sales >= target) {
            drained = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let drain_seconds = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(1));
    let after = read_with_retries(probe, Duration::from_secs(10))?;
    let counted = after.sales - before.sales;
    Ok(PipelineCheck {
        sales_counted: counted,
        counted_by: probe.source().to_string(),
        lost: (accepted_sales - counted).max(0),
        duplicated: (counted - accepted_sales).max(0),
        aggregates_match: match (
            accepted,
            after.units,
            before.units,
            after.amount_cents,
            before.amount_cents,
        ) {
            (
                Some(accepted),
                Some(units),
                Some(units_before),
                Some(amount),
                Some(amount_before),
            ) => Some(
                units - units_before == accepted.units
                    && amount - amount_before == accepted.amount_cents,
            ),
            _ => None,
        },
        drain_seconds,
        drained,
        sale_to_valkey_ms: None,
        max_lag_sales: None,
    })
}

/// The count, read again for up to `patience` while it cannot be read.
fn read_with_retries(probe: &mut dyn PipelineProbe, patience: Duration) -> anyhow::Result<Counted> {
    let started = Instant::now();
    loop {
        match probe.counted() {
            Ok(counted) => return Ok(counted),
            Err(error) if started.elapsed() >= patience => {
                return Err(error.context(format!(
                    "the count could not be read for {} s after the drain",
                    patience.as_secs()
                )));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// Samples, while the load runs, how many accepted sales Valkey has not
/// counted yet: the gateway's counter of 202s against Valkey's count, each
/// relative to its value at the start.
pub(super) struct LagSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Option<i64>>,
}

impl LagSampler {
    pub(super) fn start(target: &str, mut probe: Box<dyn PipelineProbe>) -> LagSampler {
        let target = target.to_string();
        let counted =
            |probe: &mut Box<dyn PipelineProbe>| probe.counted().ok().map(|counted| counted.sales);
        let accepted_start = gateway_sales_accepted(&target);
        let counted_start = counted(&mut probe);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let (accepted_start, counted_start) = (accepted_start?, counted_start?);
            let mut max_lag = 0;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                // Accepted first: a sale accepted after this read and
                // counted before the next one cannot make the lag negative.
                let accepted = gateway_sales_accepted(&target);
                let now_counted = counted(&mut probe);
                if let (Some(accepted), Some(now_counted)) = (accepted, now_counted) {
                    let lag = (accepted - accepted_start) - (now_counted - counted_start);
                    max_lag = max_lag.max(lag);
                }
            }
            Some(max_lag)
        });
        LagSampler { stop, thread }
    }

    pub(super) fn finish(self) -> Option<i64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().ok().flatten()
    }
}
