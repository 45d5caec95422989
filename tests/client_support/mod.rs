//! The client tests' helpers: the server tests' real server, plus input makers.
#![allow(dead_code)]

pub(crate) use crate::server_support as server;

#[allow(unused_imports)] // not every client test needs every helper
pub(crate) use server::*;

/// Runs the `quipu` binary against `server` with the admin token, as a user
/// does, and returns what it did.
pub fn quipu(server: &TestServer, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_quipu"))
        .args(["--host", &server.host()])
        .args(args)
        .env("QUIPU_TOKEN", TOKEN)
        .output()
        .unwrap()
}

/// `n` lines `m,k=v i=<i>i <i+1>` (ns timestamps), numbered from 1.
pub fn numbered_lines(n: u64) -> String {
    (1..=n).map(|i| format!("m,k=v i={i}i {}\n", 1_000_000_000_000 + i)).collect()
}

pub fn no_progress(_: u64) {}
