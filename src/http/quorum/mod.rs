//! HTTP side of the quorum operations: root token generation ([`generate_root`]) and rekeying
//! ([`rekey`]).
//!
//! # Endpoints
//!
//! | path | body style | who may call |
//! | --- | --- | --- |
//! | `sys/generate-root/{attempt,update}` | plain JSON (Vault's legacy shape) | see below |
//! | `sys/rekey/{init,update,verify}`, `sys/rekey-recovery-key/{init,update,verify}` | plain JSON | see below |
//! | `sys/generate-root-token/{attempt,update}` | envelope (`data`) | token with the ACL capability |
//! | `sys/rekey/backup`, `sys/rekey/recovery-key-backup` | errors only (no backups exist) | token with `sudo` |
//!
//! # Authentication of the legacy endpoints
//!
//! Vault serves `sys/generate-root/*` and `sys/rekey/*` without a token, which lets anyone start
//! or cancel an operation and hog its single slot (CVE-2025-4656, CVE-2026-5807). OpenBao
//! disables them by default (`disable_unauthed_generate_root_endpoints`,
//! `disable_unauthed_rekey_endpoints`: the paths then answer 405) and offers authenticated
//! replacements (`sys/generate-root-token/*`, `sys/rotate/root/*`) that need a token whose
//! policy grants the operation's capability on the path (no `sudo`).
//!
//! coffer keeps the legacy paths but, unless `CoreConfig::unauthenticated_generate_root` /
//! `unauthenticated_rekey` is set, applies that same rule to them: a valid token whose ACL
//! allows `read` (GET), `update` (PUT/POST) or `delete` (DELETE) on the request path. So hvac
//! and older CLIs keep working when they send a token, and anonymous callers get 403.
//! "Valid" means what it means on every other endpoint
//! ([`Core::authenticate`](crate::core::Core::authenticate): live, from one of the token's
//! `bound_cidrs`, a use spent), and every request is audited
//! ([`guarded`](crate::http::admission::guarded)): the shares in request bodies and the OTPs,
//! nonces, encoded tokens and new shares in responses reach the audit devices only hashed.
//! With the setting on, no token is needed; an anonymous caller must then give the operation's
//! `nonce` (query parameter or body) to cancel it (or restart a verification). That stops blind
//! `DELETE`s, not a determined attacker (the status endpoints show the nonce to anyone, as
//! clients need it): keep unauthenticated access off where that matters.

pub mod generate_root;
pub mod rekey;
mod wire;

#[cfg(test)]
mod tests;

use crate::http::reply::Reply;
use crate::http::request::HttpRequest;
use crate::http::routes::QuorumPath;
use crate::http::state::HttpState;

/// Serves one quorum-operation request.
pub async fn serve(state: &HttpState, request: &HttpRequest, endpoint: QuorumPath) -> Reply {
    match endpoint {
        QuorumPath::GenerateRootAttempt => {
            generate_root::serve_legacy(state, request, generate_root::Step::Attempt).await
        }
        QuorumPath::GenerateRootUpdate => {
            generate_root::serve_legacy(state, request, generate_root::Step::Update).await
        }
        QuorumPath::GenerateRootTokenAttempt => {
            generate_root::serve_authenticated(state, request, generate_root::Step::Attempt).await
        }
        QuorumPath::GenerateRootTokenUpdate => {
            generate_root::serve_authenticated(state, request, generate_root::Step::Update).await
        }
        QuorumPath::RekeyBackup(_) => rekey::serve_backup(state, request).await,
        QuorumPath::RekeyInit(target) => rekey::serve_legacy(state, request, rekey::Step::Init, target).await,
        QuorumPath::RekeyUpdate(target) => {
            rekey::serve_legacy(state, request, rekey::Step::Update, target).await
        }
        QuorumPath::RekeyVerify(target) => {
            rekey::serve_legacy(state, request, rekey::Step::Verify, target).await
        }
    }
}
