//! Test fixtures shared by the integration tests.

pub mod fake_apiserver;
