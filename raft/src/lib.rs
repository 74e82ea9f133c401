//! placeholder (architecture guide written below once the API settles)

#![forbid(unsafe_code)]

pub mod db;
pub mod error;
pub mod log_store;
pub mod snapshot;
pub mod state_machine;
pub mod types;

pub use error::RaftError;

/// Largest log entry payload (sum of key and value bytes of a batch) a leader proposes.
pub const MAX_ENTRY_BYTES: usize = 1024 * 1024;

#[cfg(test)]
mod suite_tests;
