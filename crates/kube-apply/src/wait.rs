//! The one wait primitive: poll a check until it is done, fails, times out
//! or is interrupted. Polls start fast (most objects are ready within a
//! second of being applied) and back off, doubling, to the poll interval.
//! Readiness waits, deletion waits and teardown's phase waits all use it.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::graph::Interrupt;

/// How long to wait, and how often to look at most.
#[derive(Debug, Clone, Copy)]
pub struct Poll {
    pub timeout: Duration,
    pub every: Duration,
}

/// What one look found.
#[derive(Debug)]
pub enum Check<T> {
    Done(T),
    /// Not yet: what it is waiting for, in words (said once per change).
    Waiting(String),
    /// It will not happen without a change.
    Failed(String),
}

/// How a wait ended without its check being done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitError {
    Failed(String),
    /// The timeout passed; `last` is the last thing the check said.
    TimedOut {
        last: String,
    },
    Interrupted,
}

/// The first pause between two looks.
fn first_pause(every: Duration) -> Duration {
    Duration::from_millis(50).min(every)
}

/// Looks with `check` until it is done; `on_change` hears each new
/// "waiting" message. Without an interrupt it can only time out.
pub async fn poll_until<T, F, Fut>(
    poll: Poll,
    mut interrupt: Option<&mut Interrupt>,
    mut on_change: impl FnMut(&str),
    mut check: F,
) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Check<T>>,
{
    let deadline = Instant::now() + poll.timeout;
    let mut pause = first_pause(poll.every);
    let mut last = String::new();
    loop {
        match check().await {
            Check::Done(value) => return Ok(value),
            Check::Failed(message) => return Err(WaitError::Failed(message)),
            Check::Waiting(message) => {
                if message != last {
                    on_change(&message);
                    last = message;
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(WaitError::TimedOut { last });
        }
        match interrupt.as_deref_mut() {
            Some(interrupt) => tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = interrupt.wait() => return Err(WaitError::Interrupted),
            },
            None => tokio::time::sleep(pause).await,
        }
        pause = (pause * 2).min(poll.every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn quick() -> Poll {
        Poll {
            timeout: Duration::from_millis(300),
            every: Duration::from_millis(10),
        }
    }

    #[tokio::test]
    async fn done_after_a_few_looks_each_change_said_once() {
        let looks = Cell::new(0);
        let mut heard = Vec::new();
        let result = poll_until(
            quick(),
            None,
            |message| heard.push(message.to_string()),
            || {
                looks.set(looks.get() + 1);
                let n = looks.get();
                async move {
                    match n {
                        1 | 2 => Check::Waiting("starting".into()),
                        3 => Check::Waiting("almost".into()),
                        _ => Check::Done(n),
                    }
                }
            },
        )
        .await;
        assert_eq!(result, Ok(4));
        assert_eq!(heard, ["starting", "almost"]);
    }

    #[tokio::test]
    async fn a_failure_ends_at_once_and_a_timeout_keeps_the_last_message() {
        let failed: Result<(), _> = poll_until(
            quick(),
            None,
            |_| {},
            || async { Check::Failed("bad".into()) },
        )
        .await;
        assert_eq!(failed, Err(WaitError::Failed("bad".into())));
        let timed_out: Result<(), _> = poll_until(
            quick(),
            None,
            |_| {},
            || async { Check::Waiting("still".into()) },
        )
        .await;
        assert_eq!(
            timed_out,
            Err(WaitError::TimedOut {
                last: "still".into()
            })
        );
    }

    #[tokio::test]
    async fn an_interrupt_ends_the_wait() {
        let (trigger, mut interrupt) = Interrupt::new();
        let _ = trigger.send(true);
        let slow = Poll {
            timeout: Duration::from_secs(60),
            every: Duration::from_secs(10),
        };
        let result: Result<(), _> = poll_until(
            slow,
            Some(&mut interrupt),
            |_| {},
            || async { Check::Waiting("never".into()) },
        )
        .await;
        assert_eq!(result, Err(WaitError::Interrupted));
    }
}
