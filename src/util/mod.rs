//! Small formats shared by every layer: Go-compatible durations and timestamps.

pub mod duration;
pub mod timefmt;
