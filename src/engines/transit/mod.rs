//! The transit secrets engine: encryption as a service, byte-compatible with Vault/OpenBao.
//!
//! # What it trusts and guarantees
//!
//! * A key is a [`key::TransitKey`] (Vault's `keysutil.Policy`, field for field) stored through
//!   the barrier in the mount's view; a record never leaves the barrier unencrypted. Backups
//!   (`backup/<name>`) use Vault's exact format, so keys move between coffer and Vault/OpenBao in
//!   both directions.
//! * Ciphertexts are `vault:v<N>:<base64(nonce ‖ ciphertext ‖ tag)>` ([`cipher`] on top of the
//!   primitives in [`crypto`]); a fresh random 96-bit nonce per encryption, or for convergent
//!   keys the nonce Vault derives (HMAC of the plaintext under a key derived from the context).
//!   A client-supplied `nonce` is refused.
//! * Every change to a key is a compare-and-set on its storage version ([`store`]); concurrent
//!   rotations each add a version. Decoded keys are cached and served without a storage read
//!   while the node's change count and the process's key writes say nothing changed ([`store`]).
//! * Key material sits in locked, zeroized memory; plaintexts are zeroized after use; no error
//!   text contains a plaintext or key. Failures are typed and become the core's errors in one
//!   place (`error`).
//! * Keys with `auto_rotate_period` are rotated by the core's leader-gated scheduler through
//!   [`Backend::periodic`] ([`rotation`]).
//!
//! Paths are parsed once into [`TransitPath`] and matched exhaustively.

mod asym;
mod backup;
mod batch;
mod bignum;
pub mod cipher;
pub mod crypto;
mod encryption;
mod error;
mod export;
mod import;
mod jwks;
mod jwt;
pub mod key;
mod key_type;
mod keys;
mod material;
mod mount_config;
#[cfg(test)]
mod perf_tests;
pub mod rotation;
pub(crate) mod signature;
mod signing;
pub mod store;
pub mod tools;

use std::sync::Arc;

use async_trait::async_trait;

use coffer_storage::View;

use crate::core::backend::{Backend, BackendEnv};
use crate::core::error::{Error, Result};
use crate::core::mounts::MountEntry;
use crate::core::request::{BackendRequest, Response};
use crate::policy::Operation;

use self::key::TransitKey;
use self::store::KeyStore;

/// Vault's text when the named key of an operation does not exist.
const KEY_NOT_FOUND: &str = "encryption key not found";

/// A parsed transit path.
#[derive(Debug, PartialEq, Eq)]
pub enum TransitPath<'a> {
    Backup(&'a str),
    CacheConfig,
    ConfigKeys,
    Datakey(&'a str, &'a str),
    Decrypt(&'a str),
    Encrypt(&'a str),
    Export { kind: &'a str, name: &'a str, version: Option<&'a str> },
    Hash(Option<&'a str>),
    Hmac(&'a str, Option<&'a str>),
    Jwks(&'a str),
    JwtSign(&'a str),
    JwtVerify(&'a str),
    Key(&'a str),
    KeyConfig(&'a str),
    KeyRotate(&'a str),
    KeyImport(&'a str),
    KeyImportVersion(&'a str),
    KeyTrim(&'a str),
    Keys,
    Random(&'a str),
    Restore(Option<&'a str>),
    Rewrap(&'a str),
    Sign(&'a str, Option<&'a str>),
    Unknown,
    Verify(&'a str, Option<&'a str>),
    WrappingKey,
}

/// Vault's `GenericNameRegex`: `\w(([\w-.]+)?\w)?`.
pub fn valid_name(s: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = s.chars();
    match (chars.next(), s.chars().last()) {
        (Some(first), Some(last)) => {
            word(first) && word(last) && s.chars().all(|c| word(c) || c == '-' || c == '.')
        }
        _ => false,
    }
}

/// Parses a path relative to the mount.
pub fn parse(path: &str) -> TransitPath<'_> {
    use TransitPath as P;
    let p = path.trim_end_matches('/');
    let segs: Vec<&str> = p.split('/').collect();
    fn name(s: &str) -> Option<&str> {
        valid_name(s).then_some(s)
    }
    fn opt_alg<'b>(rest: &[&'b str]) -> Option<Option<&'b str>> {
        match rest {
            [] => Some(None),
            [a] if valid_name(a) => Some(Some(a)),
            _ => None,
        }
    }
    let parsed = match segs.as_slice() {
        ["keys"] => Some(P::Keys),
        ["keys", n] => name(n).map(P::Key),
        ["keys", n, "config"] => name(n).map(P::KeyConfig),
        ["keys", n, "rotate"] => name(n).map(P::KeyRotate),
        ["keys", n, "trim"] => name(n).map(P::KeyTrim),
        ["keys", n, "import"] => name(n).map(P::KeyImport),
        ["keys", n, "import_version"] => name(n).map(P::KeyImportVersion),
        ["wrapping_key"] => Some(P::WrappingKey),
        ["jwt", "sign", n] => name(n).map(P::JwtSign),
        ["jwt", "verify", n] => name(n).map(P::JwtVerify),
        ["jwks", n] => name(n).map(P::Jwks),
        ["encrypt", n] => name(n).map(P::Encrypt),
        ["decrypt", n] => name(n).map(P::Decrypt),
        ["rewrap", n] => name(n).map(P::Rewrap),
        ["datakey", kind, n] => name(n).map(|n| P::Datakey(kind, n)),
        ["hmac", n, rest @ ..] => name(n).and_then(|n| opt_alg(rest).map(|a| P::Hmac(n, a))),
        ["sign", n, rest @ ..] => name(n).and_then(|n| opt_alg(rest).map(|a| P::Sign(n, a))),
        ["verify", n, rest @ ..] => name(n).and_then(|n| opt_alg(rest).map(|a| P::Verify(n, a))),
        ["hash", rest @ ..] => opt_alg(rest).map(P::Hash),
        ["random", ..] if segs.len() <= 3 => Some(P::Random(p.strip_prefix("random").unwrap_or(""))),
        ["export", kind, n] => name(n).map(|n| P::Export { kind, name: n, version: None }),
        ["export", kind, n, v] => name(n).map(|n| P::Export { kind, name: n, version: Some(v) }),
        ["backup", n] => name(n).map(P::Backup),
        ["restore"] => Some(P::Restore(None)),
        ["restore", ..] => Some(P::Restore(p.strip_prefix("restore/"))),
        ["cache-config"] => Some(P::CacheConfig),
        ["config", "keys"] => Some(P::ConfigKeys),
        _ => None,
    };
    parsed.unwrap_or(P::Unknown)
}

/// The transit backend of one mount.
pub struct Transit {
    keys: KeyStore,
}

impl std::fmt::Debug for Transit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transit").finish_non_exhaustive()
    }
}

impl Transit {
    /// A backend for a mount (automatic rotation runs through [`Backend::periodic`]).
    pub fn new(env: BackendEnv) -> Self {
        Transit { keys: KeyStore::new(env.system) }
    }

    /// The key store (tests, the rotation task).
    pub fn store(&self) -> &KeyStore {
        &self.keys
    }

    /// The named key, or a 400 with `missing` when it does not exist.
    async fn existing_key(&self, req: &BackendRequest, name: &str, missing: &str) -> Result<Arc<TransitKey>> {
        self.keys.get(&req.view, name).await?.ok_or_else(|| Error::bad(missing))
    }
}

#[async_trait]
impl Backend for Transit {
    fn periodic_interval(&self) -> Option<std::time::Duration> {
        Some(rotation::CHECK_INTERVAL)
    }

    /// Rotates keys whose `auto_rotate_period` has passed (leader only, by the scheduler).
    async fn periodic(&self, view: &View, mount: &MountEntry, now: time::OffsetDateTime) -> Result<()> {
        let names = rotation::rotate_due(self, view, now).await?;
        if !names.is_empty() {
            tracing::info!(mount = %mount.route_prefix(), keys = names.len(), "transit keys rotated automatically");
        }
        Ok(())
    }

    /// A key record changed on another node: drop its decoded copy.
    fn invalidate(&self, key: Option<&str>) {
        match key.and_then(|k| k.strip_prefix(store::RECORD_PREFIX)) {
            Some(name) => self.keys.invalidate(name),
            None => self.keys.clear(),
        }
    }

    /// `jwks/<name>` is readable without a token when the key is marked `jwks_public`.
    async fn anonymous_allowed(&self, view: &View, operation: Operation, path: &str) -> Result<bool> {
        match (parse(path), operation) {
            (TransitPath::Jwks(name), Operation::Read) => jwks::anonymous_readable(self, view, name).await,
            _ => Ok(false),
        }
    }

    async fn exists(&self, req: &BackendRequest) -> Result<Option<bool>> {
        match parse(&req.path) {
            TransitPath::Encrypt(name) => Ok(Some(self.keys.exists(&req.view, name).await?)),
            _ => Ok(None),
        }
    }

    async fn handle(&self, req: &BackendRequest) -> Result<Response> {
        let path = parse(&req.path);
        let mut resp = self.dispatch(req, &path).await?;
        // Vault's framework: a body field that is also a path parameter is overwritten.
        if path.has_name() && req.data.contains_key("name") {
            resp.warnings.push(
                "Endpoint replaced the value of these parameters with the values captured from the endpoint's path: [name]"
                    .into(),
            );
        }
        Ok(resp)
    }
}

impl TransitPath<'_> {
    /// Whether the path carries a `name` parameter.
    fn has_name(&self) -> bool {
        !matches!(
            self,
            TransitPath::CacheConfig
                | TransitPath::ConfigKeys
                | TransitPath::Hash(_)
                | TransitPath::Keys
                | TransitPath::Random(_)
                | TransitPath::Restore(None)
                | TransitPath::Unknown
                | TransitPath::WrappingKey
        )
    }
}

impl Transit {
    async fn dispatch(&self, req: &BackendRequest, path: &TransitPath<'_>) -> Result<Response> {
        use Operation as O;
        use TransitPath as P;
        let op = req.operation;
        let write = matches!(op, O::Create | O::Update);
        match (path, op) {
            (P::Keys, O::List) => keys::list(self, req).await,
            (P::Key(n), _) if write => keys::create(self, req, n).await,
            (P::Key(n), O::Read) => keys::read(self, req, n).await,
            (P::Key(n), O::Delete) => keys::delete(self, req, n).await,
            (P::KeyConfig(n), _) if write => keys::config(self, req, n).await,
            (P::KeyRotate(n), _) if write => keys::rotate(self, req, n).await,
            (P::KeyTrim(n), _) if write => keys::trim(self, req, n).await,
            (P::KeyImport(n), _) if write => import::import(self, req, n).await,
            (P::KeyImportVersion(n), _) if write => import::import_version(self, req, n).await,
            (P::WrappingKey, O::Read) => import::read_wrapping_key(req).await,
            (P::JwtSign(n), _) if write => jwt::sign(self, req, n).await,
            (P::JwtVerify(n), _) if write => jwt::verify(self, req, n).await,
            (P::Jwks(n), O::Read) => jwks::read(self, req, n).await,
            (P::Export { kind, name, version }, O::Read) => {
                export::export(self, req, kind, name, *version).await
            }
            (P::Backup(n), O::Read) => backup::backup(self, req, n).await,
            (P::Restore(n), _) if write => backup::restore(self, req, *n).await,
            (P::CacheConfig, O::Read) => mount_config::cache_config_read(self, req).await,
            (P::CacheConfig, _) if write => mount_config::cache_config_write(self, req).await,
            (P::ConfigKeys, O::Read) => mount_config::config_keys_read(req).await,
            (P::ConfigKeys, _) if write => mount_config::config_keys_write(req).await,
            (P::Encrypt(n), _) if write => encryption::encrypt(self, req, n).await,
            (P::Decrypt(n), _) if write => encryption::decrypt(self, req, n).await,
            (P::Rewrap(n), _) if write => encryption::rewrap(self, req, n).await,
            (P::Datakey(kind, n), _) if write => encryption::datakey(self, req, kind, n).await,
            (P::Hmac(n, alg), _) if write => signing::hmac(self, req, n, *alg).await,
            (P::Sign(n, alg), _) if write => signing::sign(self, req, n, *alg).await,
            (P::Verify(n, alg), _) if write => signing::verify(self, req, n, *alg).await,
            (P::Hash(alg), _) if write => tools::hash(&req.data, *alg),
            (P::Random(tail), _) if write => {
                let (source, bytes) = tools::random_url_parts(tail);
                tools::random(&req.data, source, bytes)
            }
            (P::Unknown, _) => Err(Error::UnsupportedPath),
            _ => Err(Error::UnsupportedOperation),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths() {
        assert_eq!(parse("keys"), TransitPath::Keys);
        assert_eq!(parse("keys/"), TransitPath::Keys);
        assert_eq!(parse("keys/a.b-c"), TransitPath::Key("a.b-c"));
        assert_eq!(parse("keys/a/rotate"), TransitPath::KeyRotate("a"));
        assert_eq!(parse("keys/-a"), TransitPath::Unknown);
        assert_eq!(parse("hmac/k/sha2-512"), TransitPath::Hmac("k", Some("sha2-512")));
        assert_eq!(parse("datakey/plaintext/k"), TransitPath::Datakey("plaintext", "k"));
        assert_eq!(parse("random/seal/4"), TransitPath::Random("/seal/4"));
        assert_eq!(parse("restore/a/b"), TransitPath::Restore(Some("a/b")));
        assert_eq!(
            parse("export/hmac-key/k/latest"),
            TransitPath::Export { kind: "hmac-key", name: "k", version: Some("latest") }
        );
        assert_eq!(parse("nope"), TransitPath::Unknown);
    }
}
