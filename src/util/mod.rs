//! Small formats and helpers shared by every layer: Go-compatible durations, timestamps and
//! booleans, CIDR parsing, keyed hashes and random identifiers. A leaf: imports nothing from
//! the rest of the crate.

pub mod crypto;
pub mod duration;
pub mod json;
pub mod net;
pub mod strconv;
pub mod timefmt;
