//! Fuzz targets of the root crate (issue 13; security.md S2, S3, §5.1), on stable Rust through
//! [`coffer_storage::fuzzing`]: each target replays its corpus (`fuzz/corpus/<target>/`) and
//! then runs generated inputs, and prints how many malformed inputs it tried.
//!
//! | target | what | property |
//! | --- | --- | --- |
//! | `policy_parse` | policy documents (HCL and JSON) | typed error or a policy; what parses compiles into an ACL that answers every check; generated documents parse the same from HCL and JSON |
//! | `request_path` | request targets (`/v1/...?...`) | 400/404 or a canonical path (no `.`/`..` segment, no `//`, no control character); the route table and placement answer for it consistently |
//! | `shamir_combine` | key shares | typed error exactly when Vault's rules say so; order does not matter; a damaged share changes exactly its byte of the secret |
//! | `transit_ciphertext` | `vault:v<N>:<base64>` strings and signatures | typed, client-side errors; only a genuine ciphertext decrypts, to its plaintext |
//! | `config_parse` | configuration text in all three front ends | typed error or a config; no message or `Debug` output repeats a secret |
//! | `forwarded_request` | bodies of forwarded requests, and arbitrary requests through the leader's HTTP handling | never a 5xx or a panic; errors are Vault-shaped and never echo submitted values |
//! | `transit_http` | transit decrypt, verify and restore through the HTTP layer | 4xx for anything not genuine; a 200 decrypt returns the genuine plaintext |

#![allow(clippy::unwrap_used, clippy::expect_used)]

use coffer_storage::fuzzing::Suite;

#[cfg(test)]
mod config;
#[cfg(test)]
mod http;
#[cfg(test)]
mod paths;
#[cfg(test)]
mod policy;
#[cfg(test)]
mod shamir;
#[cfg(test)]
mod transit;

/// The root crate's fuzz targets (the number of targets above).
static SUITE: Suite = Suite::new("coffer", 7);

/// A value planted in inputs where a secret would be: no error message may repeat it.
const CANARY: &str = "CANARYz7q4secretVALUE";

/// A current-thread runtime for targets that call async code.
fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}
