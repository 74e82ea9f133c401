//! The key/value engine: version 1 (plain) and, later, version 2 (versioned).

pub mod v1;
