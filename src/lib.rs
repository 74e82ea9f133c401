//! coffer: a Vault/OpenBao-compatible secrets daemon.
//!
//! # Layers (dependencies point down only)
//!
//! ```text
//!   http      hyper 1 + rustls: envelope, errors, auth headers        src/http
//!   core      seal state, tokens, ACL, router, mounts                 src/core
//!   engines   kv, cubbyhole, sys; auth methods: token, approle        src/engines, src/auth
//!   View      a mount's prefix-confined storage                       storage/
//!   Barrier   AES-256-GCM keyring; only ciphertext below              storage/
//!   Storage   get / list / apply(Batch) with preconditions            storage/
//! ```
//!
//! # Request lifecycle
//!
//! 1. [`http::handler`] parses method, path, query, headers and body once into a
//!    [`core::request::Request`] (or serves one of the sealed-state `sys/` endpoints itself).
//! 2. [`core::Core::handle`]: sealed → 503; token looked up by HMAC; route to the longest mount
//!    prefix; existence check picks create vs update; ACL check (with sudo for root paths).
//! 3. The backend parses its relative path into a typed enum and serves it from its view.
//! 4. [`http::envelope`] renders the Vault envelope; [`http::error`] maps errors to statuses.
//!
//! Secrets never appear in logs, errors, storage keys or panics: key material and tokens live
//! in zeroizing types with redacted `Debug` (see `coffer_storage::keys` and
//! [`auth::token::ClientToken`]).

#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod builtin;
pub mod cli;
pub mod client;
pub mod config;
pub mod core;
pub mod engines;
pub mod http;
pub mod policy;
pub mod process;
pub mod resolve;
pub mod secret;
pub mod util;
