//! Google Cloud, as bfctl reaches it: one authenticated REST client for the
//! APIs bfctl calls (GKE, Compute Engine, Secret Manager, Artifact
//! Registry), and following the long-running operations they answer.
//!
//! * [`api`]: Application Default Credentials, the client, errors as
//!   sentences.

pub mod api;
