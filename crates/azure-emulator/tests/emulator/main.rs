//! Integration tests over real HTTP (reqwest against a running emulator), one test binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;
mod control;
mod faults;
mod graph;
mod la_queries;
mod log_analytics;
mod token;
