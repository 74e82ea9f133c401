//! coffer: a Vault/OpenBao-compatible secrets daemon.
//!
//! # Layers
//!
//! Modules import only what sits below them; `tests/it/layering.rs` reads the `crate::` paths
//! of every production file and fails on an edge this graph does not draw.
//!
//! ```text
//!   cli            the binary's commands (server, operator, kv, transit, run/inject, ...)
//!    │
//!   http           hyper 1 + rustls: parsing, envelope, errors → statuses, route table
//!    │
//!   cluster        Raft membership glue: bootstrap, join handshake, cluster TLS, forwarding
//!    │             (on `coffer_raft`)
//!   builtin        the registry of built-in backends and default mounts
//!    │
//!   engines  auth  backends only (kv, transit, cubbyhole, sys | token, approle);
//!    │        │    they never import each other
//!   core           backend contract, router, mounts, policy store, token store and lifecycle,
//!    │             seal/unseal, request pipeline, invalidation, leader-gated scheduler
//!    ├── audit     devices, keyed hash chain (own error type)
//!    ├── policy    pure: model, HCL/JSON parser, compiled ACL, Operation
//!    └── secret, util   leaves: client-visible secret newtypes; formats and helpers
//!
//!   metrics        → util only: counters and histograms every layer may record into, and
//!                  the `sys/metrics` exposition (Prometheus, OpenMetrics, Vault's JSON)
//!
//!   config         → util, secret, audit     (parsed once, handed to cli/server)
//!   client         → util, secret            (the HTTP client every CLI command uses)
//!   resolve        → util, secret, client    (`vault:` references)
//! ```
//!
//! Below the root crate: `coffer_storage` (Storage, Barrier, View, Replication) and
//! `coffer_raft` (openraft glue: replicated Storage + Replication), which depends only on
//! storage.
//!
//! # Request lifecycle
//!
//! 1. [`http`] parses method, path, query, headers and body once into a
//!    [`core::request::Request`] (or serves one of the endpoints that work while sealed).
//! 2. [`core::Core::handle`]: sealed → 503; token checked once for every endpoint
//!    ([`core::authn`]); route to the longest mount prefix; existence check picks create vs
//!    update; ACL check (with sudo for root paths); audit.
//! 3. The backend parses its relative path into a typed enum and serves it from its view.
//! 4. [`core::envelope`] renders the Vault envelope; [`http::error`] maps errors to statuses.
//!
//! Secrets never appear in logs, errors, storage keys or panics: key material and tokens live
//! in zeroizing types with redacted `Debug` (see `coffer_storage::keys` and
//! [`secret::ClientToken`]).

#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod builtin;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod core;
pub mod engines;
pub mod http;
pub mod metrics;
pub mod policy;
pub mod process;
pub mod resolve;
pub mod secret;
pub mod util;

#[cfg(test)]
mod fuzz_tests;
