//! coffer's integration tests: one binary, real servers on ephemeral ports, real HTTP/TLS.
//!
//! Modules group tests by area; `harness` starts and stops servers and polls with deadlines.

mod audit;
mod harness;
mod kv2;
mod regression;
mod smoke;
mod tokens;
