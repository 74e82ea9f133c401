//! ACL policies: parsing (HCL and JSON), the compiled [`Acl`], and the policy store.
//!
//! - [`parse`]: a policy document → a typed [`Policy`] (Vault's grammar, checks and error texts).
//! - [`acl`]: policies → an [`Acl`] (merged per pattern) and the checks the core makes:
//!   [`Acl::check`] / [`Acl::check_request`] for a request, [`Acl::capabilities`] for
//!   `sys/capabilities*`, [`Acl::has_mount_access`] for the UI/CLI preflight.
//! - [`store`]: stored policies, the built-ins (`root`, `default`, `response-wrapping`) and the
//!   cache of compiled ACLs.
//!
//! What the ACL trusts: the request path it is given is already canonical (no `.`/`..`
//! segments, no `//`); the HTTP layer guarantees that before routing. What it guarantees: a
//! request is allowed only if the one stanza chosen by Vault's matching rules grants the
//! operation's capability and every constraint of that stanza holds; anything it cannot
//! evaluate (a stored policy that no longer parses) fails closed.

pub mod acl;
pub mod parse;
pub mod store;

pub use acl::{Acl, AclDecision};
pub use parse::{Caps, ParseError, Policy};
pub use store::{check_assignable, sanitize_name, PolicyStore, RESPONSE_WRAPPING};
