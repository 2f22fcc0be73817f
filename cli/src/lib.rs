//! bfctl as a library: the pieces the `bfctl` binary is made of, public so
//! that integration tests can drive them.
//!
//! * [`config`]: `bfctl.yaml`, parsed strictly;
//! * [`render`]: the component graph and its templates, rendered to objects.

pub mod config;
pub mod render;
