//! Test fixtures shared by the integration tests.

#![allow(dead_code)] // each test binary uses a different part

pub mod cli;
pub mod host_base;
pub mod local;
pub mod qemu;
pub mod registry;
pub mod release_files;
