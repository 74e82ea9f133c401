//! ACL policies, pure: the model, the HCL/JSON parser and the compiled [`Acl`]. No storage and
//! no I/O: the policy store (stored policies, built-ins, the compiled-ACL cache) lives in
//! [`core::policy_store`](crate::core::policy_store).
//!
//! - [`model`]: a typed [`Policy`] (capabilities, path patterns, stanzas).
//! - [`parse`]: a policy document → a [`Policy`] (Vault's grammar, checks and error texts,
//!   [`error`]).
//! - [`acl`]: policies → an [`Acl`] (merged per pattern) and the checks the core makes:
//!   [`Acl::check`] / [`Acl::check_request`] for a request, [`Acl::capabilities`] for
//!   `sys/capabilities*`, [`Acl::has_mount_access`] for the UI/CLI preflight.
//! - [`Operation`]: what a request does, in the terms policies use.
//!
//! What the ACL trusts: the request path it is given is already canonical (no `.`/`..`
//! segments, no `//`); the HTTP layer guarantees that before routing. What it guarantees: a
//! request is allowed only if the one stanza chosen by Vault's matching rules grants the
//! operation's capability and every constraint of that stanza holds; anything it cannot
//! evaluate (a stored policy that no longer parses) fails closed.

pub mod acl;
pub mod error;
pub mod model;
pub mod operation;
pub mod parse;
mod tree;

pub use acl::{Acl, AclDecision};
pub use error::ParseError;
pub use model::{Caps, Policy};
pub use operation::Operation;
