//! Secrets engines: backends mounted under `sys/mounts` (kv v1 and v2, transit, cubbyhole) and
//! the `sys/` backend. They implement [`Backend`](crate::core::backend::Backend) and import the
//! core below them, never the auth methods beside them.

pub mod cubbyhole;
pub mod kv;
pub mod sys;
pub mod transit;
