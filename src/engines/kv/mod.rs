//! The key/value engine: version 1 (plain) and version 2 (versioned).

pub mod v1;
pub mod v2;
