//! Exit statuses, the same for every command:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | a check failed: sales lost or duplicated, an unhealthy status, something left after a teardown |
//! | 2 | an error: bad input, an unreachable cluster, a failed step |
//! | 130 | interrupted (Ctrl-C) |
//!
//! Commands return an `anyhow::Error`; one that wraps a [`Verdict`] maps to
//! 1 or 130, anything else to 2 ([`code_of`]).

/// An outcome that is not an error of bfctl's.
#[derive(Debug, thiserror::Error)]
pub enum Verdict {
    /// What was checked does not hold (exit 1).
    #[error("{0}")]
    CheckFailed(String),
    /// The user interrupted (exit 130).
    #[error("{0}")]
    Interrupted(String),
}

pub const OK: u8 = 0;
pub const CHECK_FAILED: u8 = 1;
pub const ERROR: u8 = 2;
pub const INTERRUPTED: u8 = 130;

/// The exit status for a command's error.
pub fn code_of(error: &anyhow::Error) -> u8 {
    match error.downcast_ref::<Verdict>() {
        Some(Verdict::CheckFailed(_)) => CHECK_FAILED,
        Some(Verdict::Interrupted(_)) => INTERRUPTED,
        None => ERROR,
    }
}

/// A failed check, as an error for `?`.
pub fn check_failed(message: impl Into<String>) -> anyhow::Error {
    Verdict::CheckFailed(message.into()).into()
}

/// An interruption, as an error for `?`.
pub fn interrupted(message: impl Into<String>) -> anyhow::Error {
    Verdict::Interrupted(message.into()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_map_to_their_codes_and_context_keeps_them() {
        assert_eq!(code_of(&check_failed("lost 3")), 1);
        assert_eq!(code_of(&interrupted("stopped")), 130);
        assert_eq!(code_of(&anyhow::anyhow!("boom")), 2);
        let wrapped =
            anyhow::Context::context(Err::<(), _>(check_failed("x")), "outer").unwrap_err();
        assert_eq!(code_of(&wrapped), 1);
    }
}
