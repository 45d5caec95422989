//! The `quipu` binary's parts: the arguments, the commands by kind, and
//! their error type. `src/main.rs` parses the command line and runs one.

pub(crate) mod args;
pub(crate) mod error;
pub(crate) mod offline;
#[cfg(feature = "client")]
pub(crate) mod remote;
#[cfg(feature = "remote")]
pub(crate) mod remote_repo;
#[cfg(feature = "server")]
pub(crate) mod serve;
