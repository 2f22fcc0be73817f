//! After the load: waiting, bounded, for the pipeline to count every sale
//! the gateway accepted, sampling how far counting lags behind accepting
//! while the load runs, and the sale-to-Valkey latency from the consumers'
//! histogram buckets.

use std::time::{Duration, Instant};

use super::load::gateway_sales_accepted;
use super::probe::{Counted, PipelineProbe};
use super::report::{PipelineCheck, PipelineSample, SaleToValkey};

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

/// Waits, bounded by `timeout`, until the count reaches what was there
/// before plus what was accepted and nothing is pending in Kafka (then one
/// more second, so that duplicates would show), and gives the verdict:
/// accepted, counted, pending, lost, duplicated. A count that cannot be
/// read (Valkey restarting) is read again until the timeout: the pipeline
/// failing is what a load test measures, not a reason to stop.
///
/// `unconfirmed` is the number of sales whose request was answered 5xx or
/// not at all: each may or may not have reached Kafka (a producer killed
/// after the broker acknowledged, a gateway killed mid-answer), so up to
/// that many counted beyond the accepted are not duplicates.
pub(super) fn check_drain(
    probe: &mut dyn PipelineProbe,
    before: &Counted,
    sent: &Sent,
    timeout: Duration,
) -> anyhow::Result<PipelineCheck> {
    let started = Instant::now();
    let target = before.sales + sent.accepted_sales;
    let mut drained = false;
    while started.elapsed() < timeout {
        // Every accepted sale counted; and when unconfirmed sales may have
        // been counted in their place, nothing left in Kafka either.
        let drained_now = match probe.counted() {
            Ok(now) if now.sales >= target + sent.unconfirmed => true,
            Ok(now) if now.sales >= target => probe
                .pending()
                .is_ok_and(|pending| pending.is_none_or(|p| p == 0)),
            _ => false,
        };
        if drained_now {
            drained = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let drain_seconds = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(1));
    let after = read_with_retries(probe, Duration::from_secs(10))?;
    let pending = probe.pending().ok().flatten();
    Ok(verdict(
        before,
        &after,
        pending,
        sent,
        probe.source(),
        drain_seconds,
        drained,
    ))
}

/// What the load sent, for the verdict.
pub(super) struct Sent<'a> {
    /// Sales answered 202.
    pub(super) accepted_sales: i64,
    /// Units and amounts of those, when the engine knows the payloads.
    pub(super) accepted: Option<&'a localrun::totals::Totals>,
    /// Sales answered 5xx or not at all (see [`check_drain`]).
    pub(super) unconfirmed: i64,
}

/// The four counts from the readings before and after.
fn verdict(
    before: &Counted,
    after: &Counted,
    pending: Option<i64>,
    sent: &Sent,
    counted_by: &str,
    drain_seconds: f64,
    drained: bool,
) -> PipelineCheck {
    let counted = after.sales - before.sales;
    // Pending sales may still be counted: they are not lost. Only what was
    // counted is certain, so only that can be a duplicate (a cluster's
    // pending comes from a gauge that lags by seconds).
    let beyond_accepted = (counted - sent.accepted_sales).max(0);
    PipelineCheck {
        sales_counted: counted,
        counted_by: counted_by.to_string(),
        pending,
        lost: (sent.accepted_sales - counted - pending.unwrap_or(0)).max(0),
        duplicated: (beyond_accepted - sent.unconfirmed).max(0),
        unconfirmed: sent.unconfirmed,
        unconfirmed_written: beyond_accepted.min(sent.unconfirmed),
        // Units and amounts are compared when exactly the accepted sales
        // were counted: with unconfirmed ones among them, which ones
        // landed is not known.
        aggregates_match: match (
            sent.accepted,
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
            ) if counted == sent.accepted_sales => Some(
                units - units_before == accepted.units
                    && amount - amount_before == accepted.amount_cents,
            ),
            _ => None,
        },
        drain_seconds,
        drained,
        sale_to_valkey_ms: None,
        max_lag_sales: None,
    }
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
/// counted yet (the gateway's counter of 202s against the count, each
/// relative to its value at the start; four times a second) and how many
/// are pending in Kafka (once a second).
pub(super) struct LagSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Sampled>,
}

/// What the sampler saw.
#[derive(Default)]
pub(super) struct Sampled {
    pub(super) max_lag_sales: Option<i64>,
    pub(super) samples: Vec<PipelineSample>,
}

impl LagSampler {
    pub(super) fn start(
        target: &str,
        mut probe: Box<dyn PipelineProbe>,
        started: Instant,
    ) -> LagSampler {
        let target = target.to_string();
        let counted =
            |probe: &mut Box<dyn PipelineProbe>| probe.counted().ok().map(|counted| counted.sales);
        let accepted_start = gateway_sales_accepted(&target);
        let counted_start = counted(&mut probe);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut sampled = Sampled::default();
            let mut tick = 0u64;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                tick += 1;
                // Accepted first: a sale accepted after this read and
                // counted before the next one cannot make the lag negative.
                let accepted = gateway_sales_accepted(&target);
                let now_counted = counted(&mut probe);
                let lag = match (accepted_start, counted_start, accepted, now_counted) {
                    (Some(accepted_start), Some(counted_start), Some(accepted), Some(now)) => {
                        Some((accepted - accepted_start) - (now - counted_start))
                    }
                    _ => None,
                };
                if let Some(lag) = lag {
                    sampled.max_lag_sales = Some(sampled.max_lag_sales.unwrap_or(0).max(lag));
                }
                if tick.is_multiple_of(4) {
                    sampled.samples.push(PipelineSample {
                        second: started.elapsed().as_secs_f64(),
                        pending: probe.pending().ok().flatten(),
                        counted: now_counted
                            .zip(counted_start)
                            .map(|(now, start)| now - start),
                    });
                }
            }
            sampled
        });
        LagSampler { stop, thread }
    }

    pub(super) fn finish(self) -> Sampled {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(sales: i64) -> Counted {
        Counted {
            sales,
            units: None,
            amount_cents: None,
        }
    }

    fn check(
        counted_after: i64,
        pending: Option<i64>,
        accepted: i64,
        unconfirmed: i64,
    ) -> PipelineCheck {
        let sent = Sent {
            accepted_sales: accepted,
            accepted: None,
            unconfirmed,
        };
        verdict(
            &counted(100),
            &counted(100 + counted_after),
            pending,
            &sent,
            "Valkey",
            1.0,
            true,
        )
    }

    #[test]
    fn pending_sales_are_not_lost() {
        let c = check(900, Some(100), 1000, 0);
        assert_eq!((c.lost, c.duplicated, c.pending), (0, 0, Some(100)));
        let c = check(900, Some(0), 1000, 0);
        assert_eq!((c.lost, c.duplicated), (100, 0));
        let c = check(900, None, 1000, 0);
        assert_eq!(c.lost, 100);
        // A pending count that lags never makes duplicates.
        let c = check(1000, Some(215), 1000, 0);
        assert_eq!((c.lost, c.duplicated), (0, 0));
    }

    #[test]
    fn unconfirmed_sales_that_landed_are_not_duplicates() {
        let c = check(1003, Some(0), 1000, 5);
        assert_eq!((c.lost, c.duplicated, c.unconfirmed_written), (0, 0, 3));
        let c = check(1008, Some(0), 1000, 5);
        assert_eq!((c.lost, c.duplicated, c.unconfirmed_written), (0, 3, 5));
    }
}
