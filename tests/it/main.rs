//! coffer's integration tests: one binary, real servers on ephemeral ports, real HTTP/TLS.
//!
//! Modules group tests by area; `harness` starts and stops servers and polls with deadlines.

mod approle;
mod audit;
mod bao_cli;
mod canary;
mod cli;
mod clients;
mod cluster;
mod config;
mod dev_cluster;
mod harness;
mod http_limits;
mod kv2;
mod layering;
mod lifecycle;
mod malformed;
mod metrics;
mod packaging;
mod policy;
mod regression;
mod resolve;
mod sealops;
mod smoke;
mod sys_auth;
mod token_security;
mod tokens;
mod transit;
mod transit_signing;
