//! Root token generation (`sys/generate-root/*`, `sys/generate-root-token/*`).
//!
//! A quorum of share holders (unseal shares for a Shamir seal, recovery shares for the static
//! seal) authorizes a new root token. The token is never returned in the clear: the caller picks
//! (or the server generates) a one-time password as long as a root token, and receives
//! `base64(token XOR otp)` without padding, which only the OTP holder can decode
//! (`bao operator generate-root -decode=<encoded> -otp=<otp>`).
//!
//! # State
//!
//! One attempt at a time per node, in memory only ([`RootGeneration`]): its nonce, the OTP and
//! the shares given so far. The shares are dropped (zeroized) when the threshold is reached,
//! whether the combined key is right or wrong; a wrong key keeps the attempt (same nonce) with
//! progress back at zero, as OpenBao does. Completion, cancellation and sealing drop the whole
//! attempt.

use base64::Engine;
use zeroize::Zeroizing;

use coffer_storage::keys::SecretBytes;

use crate::core::error::{Error, Result};
use crate::core::quorum::{self, Shares};
use crate::core::seal::{self, SealSource};
use crate::core::Core;
use crate::util::crypto::random_base62;

/// Length of the root tokens this server issues (`hvs.` + 24 base62 characters), which is the
/// length an OTP must have.
pub const ROOT_TOKEN_LENGTH: usize = 28;

/// The attempt in progress.
pub struct RootGeneration {
    nonce: String,
    otp: Zeroizing<String>,
    shares: Shares,
}

impl std::fmt::Debug for RootGeneration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootGeneration")
            .field("nonce", &self.nonce)
            .field("progress", &self.shares.len())
            .finish_non_exhaustive()
    }
}

/// What the status endpoint shows.
pub struct GenerateRootStatus {
    pub started: bool,
    /// Empty when no attempt is in progress.
    pub nonce: String,
    pub progress: usize,
    pub required: u8,
    /// The OTP, only in the answer to the call that generated it.
    pub otp: Option<Zeroizing<String>>,
    pub otp_length: usize,
}

impl std::fmt::Debug for GenerateRootStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerateRootStatus")
            .field("started", &self.started)
            .field("nonce", &self.nonce)
            .field("progress", &self.progress)
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

/// The answer to one submitted share.
pub struct GenerateRootProgress {
    pub nonce: String,
    pub progress: usize,
    pub required: u8,
    /// `base64(token XOR otp)` once the quorum is complete.
    pub encoded_token: Option<Zeroizing<String>>,
}

impl GenerateRootProgress {
    /// True once the token has been issued.
    pub fn complete(&self) -> bool {
        self.encoded_token.is_some()
    }
}

impl std::fmt::Debug for GenerateRootProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerateRootProgress")
            .field("nonce", &self.nonce)
            .field("progress", &self.progress)
            .field("complete", &self.complete())
            .finish_non_exhaustive()
    }
}

/// `base64(token XOR otp)` with no padding, as Vault's `roottoken.EncodeToken`.
pub fn encode_token(token: &str, otp: &str) -> Result<Zeroizing<String>> {
    if token.len() != otp.len() {
        return Err(Error::internal("root token and OTP lengths differ"));
    }
    let xored = Zeroizing::new(token.bytes().zip(otp.bytes()).map(|(t, o)| t ^ o).collect::<Vec<u8>>());
    Ok(Zeroizing::new(base64::engine::general_purpose::STANDARD_NO_PAD.encode(&*xored)))
}

/// Reverses [`encode_token`] (tests and clients; accepts padded or unpadded input).
pub fn decode_token(encoded: &str, otp: &str) -> Result<Zeroizing<String>> {
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .map(Zeroizing::new)
        .map_err(|_| Error::bad("encoded token is not valid base64"))?;
    if bytes.len() != otp.len() {
        return Err(Error::bad("encoded token and OTP lengths differ"));
    }
    let plain = Zeroizing::new(bytes.iter().zip(otp.bytes()).map(|(b, o)| b ^ o).collect::<Vec<u8>>());
    std::str::from_utf8(&plain)
        .map(|s| Zeroizing::new(s.to_owned()))
        .map_err(|_| Error::bad("decoded token is not valid UTF-8"))
}

impl Core {
    /// Status of the root generation attempt (`GET sys/generate-root/attempt`).
    pub async fn generate_root_status(&self) -> Result<GenerateRootStatus> {
        let cfg = self.initialized_seal_config(Error::bad("server is not yet initialized")).await?;
        self.active()?;
        let generation = self.root_generation.lock().await;
        Ok(self.root_status(&cfg, generation.as_ref(), None))
    }

    fn root_status(
        &self,
        cfg: &seal::StoredSealConfig,
        generation: Option<&RootGeneration>,
        otp: Option<Zeroizing<String>>,
    ) -> GenerateRootStatus {
        GenerateRootStatus {
            started: generation.is_some(),
            nonce: generation.map(|g| g.nonce.clone()).unwrap_or_default(),
            progress: generation.map(|g| g.shares.len()).unwrap_or(0),
            required: self.quorum_threshold(cfg),
            otp,
            otp_length: ROOT_TOKEN_LENGTH,
        }
    }

    /// Starts an attempt (`PUT sys/generate-root/attempt`). Without an OTP the server generates
    /// one and returns it in this answer only. PGP-encrypted tokens are not supported.
    pub async fn generate_root_init(
        &self,
        otp: Option<Zeroizing<String>>,
        pgp_key: bool,
    ) -> Result<GenerateRootStatus> {
        let given = otp.filter(|o| !o.is_empty());
        if given.is_none() && pgp_key {
            return Err(Error::bad(
                "PGP-encrypted root tokens are not supported by this server; give an otp or none to have one generated",
            ));
        }
        let (otp, generated) = match given {
            Some(o) if o.len() != ROOT_TOKEN_LENGTH => {
                return Err(Error::bad("OTP string has incorrect length"));
            }
            Some(o) => (o, false),
            None => (Zeroizing::new(random_base62(ROOT_TOKEN_LENGTH)), true),
        };
        self.active()?;
        let cfg = self.initialized_seal_config(Error::Sealed).await?;
        let mut generation = self.root_generation.lock().await;
        if generation.is_some() {
            return Err(Error::bad("root generation already in progress"));
        }
        let nonce = uuid::Uuid::new_v4().to_string();
        tracing::info!(nonce = %nonce, "root generation initialized");
        let shown = generated.then(|| Zeroizing::new(otp.as_str().to_owned()));
        *generation = Some(RootGeneration { nonce, otp, shares: Shares::default() });
        Ok(self.root_status(&cfg, generation.as_ref(), shown))
    }

    /// Submits one share (`PUT sys/generate-root/update`). At the threshold the shares are
    /// combined and checked; a right key issues a root token and ends the attempt, a wrong key
    /// resets the progress (the attempt and its nonce stay).
    pub async fn generate_root_update(&self, key: SecretBytes, nonce: &str) -> Result<GenerateRootProgress> {
        if let Some(problem) = quorum::key_length_problem(&key) {
            return Err(Error::bad(format!("invalid key: {problem}")));
        }
        let cfg = self.initialized_seal_config(Error::bad("Vault is not initialized")).await?;
        // Completing issues a token; keep seal/unseal out of the way meanwhile.
        let _t = self.transition.lock().await;
        let active = self.active()?;
        let mut slot = self.root_generation.lock().await;
        let Some(generation) = slot.as_mut() else {
            return Err(Error::bad("no root generation in progress"));
        };
        if nonce != generation.nonce {
            return Err(Error::bad(format!(
                "incorrect nonce supplied; nonce for this root generation operation is {:?}",
                generation.nonce
            )));
        }
        if generation.shares.contains(&key) {
            return Err(Error::bad("given key has already been provided during this generation operation"));
        }
        generation.shares.push(key);
        let required = self.quorum_threshold(&cfg);
        let progress = generation.shares.len();
        if progress < usize::from(required) {
            return Ok(GenerateRootProgress {
                nonce: generation.nonce.clone(),
                progress,
                required,
                encoded_token: None,
            });
        }
        let combined = generation
            .shares
            .combine(required)
            .map_err(|e| Error::bad(format!("failed to compute root key: {e}")))?;
        if !self.quorum_key_matches(&combined).await? {
            tracing::warn!(nonce = %generation.nonce, "root generation: wrong key shares, progress reset");
            return Err(Error::bad(format!(
                "root generation aborted: unable to authenticate: {}",
                match self.seal_source {
                    SealSource::Shamir =>
                        "unable to retrieve stored keys: invalid key: failed to decrypt keys from storage: cipher: message authentication failed",
                    SealSource::Static { .. } =>
                        "recovery key verification failed: recovery key does not match submitted values",
                }
            )));
        }
        drop(combined);
        let token = self.create_root_token(&active, None).await?;
        let encoded = encode_token(token.expose(), &generation.otp)?;
        let nonce = generation.nonce.clone();
        *slot = None;
        tracing::info!(nonce = %nonce, "root generation finished");
        Ok(GenerateRootProgress { nonce, progress, required, encoded_token: Some(encoded) })
    }

    /// Cancels the attempt (`DELETE sys/generate-root/attempt`). `nonce_required` is set for
    /// anonymous callers; a given nonce must match. No attempt in progress is not an error.
    pub async fn generate_root_cancel(&self, nonce: Option<&str>, nonce_required: bool) -> Result<()> {
        self.active()?;
        let mut slot = self.root_generation.lock().await;
        if let Some(generation) = slot.as_ref() {
            quorum::check_cancel_nonce(&generation.nonce, nonce, nonce_required)?;
            tracing::info!(nonce = %generation.nonce, "root generation cancelled");
        }
        *slot = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::core::quorum::fixtures::{self, Node};
    use crate::secret::ClientToken;

    fn msg(e: Error) -> String {
        assert_eq!(e.kind(), crate::core::error::ErrorKind::BadRequest, "{e}");
        e.to_string()
    }

    /// Runs a whole generation with shares `idx` and returns the decoded token.
    async fn generate(node: &Node, idx: &[usize]) -> Result<Zeroizing<String>> {
        let status = node.core.generate_root_init(None, false).await?;
        let otp = status.otp.unwrap();
        let mut last = None;
        for &i in idx {
            last = Some(node.core.generate_root_update(node.share(i), &status.nonce).await?);
        }
        let done = last.unwrap();
        assert!(done.complete());
        decode_token(done.encoded_token.as_ref().unwrap(), &otp)
    }

    async fn assert_root(node: &Node, token: &str) {
        let active = node.core.active().unwrap();
        let (entry, _) = active
            .tokens
            .lookup(&ClientToken::new(token.to_owned()), coffer_storage::clock::now())
            .await
            .unwrap()
            .expect("the generated token exists");
        assert_eq!(entry.policies, vec!["root".to_owned()]);
    }

    #[test]
    fn token_encoding_round_trips_and_has_no_padding() {
        let token = "hvs.ABCDEFGHIJKLMNOPQRSTUVWX";
        let otp = random_base62(ROOT_TOKEN_LENGTH);
        let enc = encode_token(token, &otp).unwrap();
        assert!(!enc.contains('='));
        assert_eq!(decode_token(&enc, &otp).unwrap().as_str(), token);
        assert!(encode_token(token, "short").is_err());
    }

    #[tokio::test]
    async fn full_generation_with_five_three_shares() {
        let node = fixtures::shamir(5, 3).await;
        let s = node.core.generate_root_status().await.unwrap();
        assert!(!s.started);
        assert_eq!((s.progress, s.required, s.otp_length, s.nonce.as_str()), (0, 3, 28, ""));

        let init = node.core.generate_root_init(None, false).await.unwrap();
        let otp = init.otp.as_ref().expect("a generated OTP is returned once");
        assert_eq!(otp.len(), ROOT_TOKEN_LENGTH);
        assert!(otp.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(init.started);
        let status = node.core.generate_root_status().await.unwrap();
        assert!(status.otp.is_none(), "the OTP is never shown again");
        assert_eq!(status.nonce, init.nonce);

        for (n, i) in [4usize, 1].into_iter().enumerate() {
            let p = node.core.generate_root_update(node.share(i), &init.nonce).await.unwrap();
            assert_eq!((p.progress, p.required, p.complete()), (n + 1, 3, false));
        }
        let done = node.core.generate_root_update(node.share(2), &init.nonce).await.unwrap();
        assert!(done.complete());
        assert_eq!((done.progress, done.required), (3, 3));
        let token = decode_token(done.encoded_token.as_ref().unwrap(), otp).unwrap();
        assert!(token.starts_with("hvs.") && token.len() == ROOT_TOKEN_LENGTH);
        assert_root(&node, &token).await;
        assert!(!node.core.generate_root_status().await.unwrap().started, "completion ends the attempt");
    }

    #[tokio::test]
    async fn client_otp_is_used_and_checked() {
        let node = fixtures::shamir(1, 1).await;
        let e = node.core.generate_root_init(Some(Zeroizing::new("short".into())), false).await.unwrap_err();
        assert_eq!(msg(e), "OTP string has incorrect length");
        let e = node.core.generate_root_init(None, true).await.unwrap_err();
        assert!(msg(e).contains("PGP"));
        let otp = random_base62(ROOT_TOKEN_LENGTH);
        let init = node.core.generate_root_init(Some(Zeroizing::new(otp.clone())), false).await.unwrap();
        assert!(init.otp.is_none(), "a client-chosen OTP is not echoed");
        let done = node.core.generate_root_update(node.share(0), &init.nonce).await.unwrap();
        let token = decode_token(done.encoded_token.as_ref().unwrap(), &otp).unwrap();
        assert_root(&node, &token).await;
    }

    #[tokio::test]
    async fn wrong_duplicate_and_mismatched_submissions() {
        let node = fixtures::shamir(5, 3).await;
        let e = node.core.generate_root_update(node.share(0), "x").await.unwrap_err();
        assert_eq!(msg(e), "no root generation in progress");
        let init = node.core.generate_root_init(None, false).await.unwrap();
        let e = node.core.generate_root_init(None, false).await.unwrap_err();
        assert_eq!(msg(e), "root generation already in progress");

        let e = node.core.generate_root_update(node.share(0), "not-the-nonce").await.unwrap_err();
        assert_eq!(
            msg(e),
            format!(
                "incorrect nonce supplied; nonce for this root generation operation is \"{}\"",
                init.nonce
            )
        );
        let e =
            node.core.generate_root_update(SecretBytes::from_slice(&[1; 8]), &init.nonce).await.unwrap_err();
        assert_eq!(msg(e), "invalid key: key is shorter than minimum 16 bytes");

        node.core.generate_root_update(node.share(0), &init.nonce).await.unwrap();
        let e = node.core.generate_root_update(node.share(0), &init.nonce).await.unwrap_err();
        assert_eq!(msg(e), "given key has already been provided during this generation operation");
        assert_eq!(node.core.generate_root_status().await.unwrap().progress, 1);

        // A stranger share completes the threshold with a wrong key: refused, progress reset,
        // the attempt and its nonce stay.
        node.core.generate_root_update(node.share(1), &init.nonce).await.unwrap();
        let e = node.core.generate_root_update(node.stranger(), &init.nonce).await.unwrap_err();
        assert!(msg(e).starts_with("root generation aborted: unable to authenticate: "));
        let s = node.core.generate_root_status().await.unwrap();
        assert_eq!((s.started, s.progress, s.nonce.as_str()), (true, 0, init.nonce.as_str()));

        // The right shares still work on the same attempt.
        let otp = init.otp.unwrap();
        for i in [3, 0] {
            node.core.generate_root_update(node.share(i), &init.nonce).await.unwrap();
        }
        let done = node.core.generate_root_update(node.share(4), &init.nonce).await.unwrap();
        assert_root(&node, &decode_token(done.encoded_token.as_ref().unwrap(), &otp).unwrap()).await;
    }

    #[tokio::test]
    async fn cancel_needs_the_nonce_from_anonymous_callers() {
        let node = fixtures::shamir(5, 3).await;
        node.core.generate_root_cancel(None, true).await.unwrap(); // nothing to cancel
        let init = node.core.generate_root_init(None, false).await.unwrap();
        node.core.generate_root_update(node.share(0), &init.nonce).await.unwrap();
        assert!(node.core.generate_root_cancel(None, true).await.is_err());
        assert!(node.core.generate_root_cancel(Some("guess"), true).await.is_err());
        assert!(node.core.generate_root_cancel(Some("guess"), false).await.is_err());
        assert!(node.core.generate_root_status().await.unwrap().started, "failed cancels change nothing");
        node.core.generate_root_cancel(Some(&init.nonce), true).await.unwrap();
        let s = node.core.generate_root_status().await.unwrap();
        assert_eq!((s.started, s.progress), (false, 0));

        // An authorized caller needs no nonce.
        node.core.generate_root_init(None, false).await.unwrap();
        node.core.generate_root_cancel(None, false).await.unwrap();
        assert!(!node.core.generate_root_status().await.unwrap().started);
        let e = node.core.generate_root_update(node.share(1), &init.nonce).await.unwrap_err();
        assert_eq!(msg(e), "no root generation in progress");
    }

    #[tokio::test]
    async fn sealing_drops_the_attempt() {
        let node = fixtures::shamir(5, 3).await;
        let init = node.core.generate_root_init(None, false).await.unwrap();
        node.core.generate_root_update(node.share(0), &init.nonce).await.unwrap();
        node.core.seal().await;
        assert!(matches!(node.core.generate_root_status().await.unwrap_err(), Error::Sealed));
        assert!(matches!(node.core.generate_root_init(None, false).await.unwrap_err(), Error::Sealed));
        assert!(matches!(
            node.core.generate_root_update(node.share(1), &init.nonce).await.unwrap_err(),
            Error::Sealed
        ));
        for i in 0..3 {
            node.core.unseal(Some(&node.shares[i]), false).await.unwrap();
        }
        assert!(!node.core.generate_root_status().await.unwrap().started);
    }

    #[tokio::test]
    async fn uninitialized_node_answers_like_openbao() {
        let core = Core::standalone(
            crate::core::CoreConfig::default(),
            std::sync::Arc::new(coffer_storage::MemStorage::new()),
            SealSource::Shamir,
            std::sync::Arc::new(crate::builtin::Builtin),
        );
        assert_eq!(msg(core.generate_root_status().await.unwrap_err()), "server is not yet initialized");
        assert!(matches!(core.generate_root_init(None, false).await.unwrap_err(), Error::Sealed));
    }

    #[tokio::test]
    async fn static_seal_uses_recovery_shares() {
        let node = fixtures::static_seal(5, 3).await;
        assert_eq!(node.core.generate_root_status().await.unwrap().required, 3);
        let token = generate(&node, &[0, 2, 4]).await.unwrap();
        assert_root(&node, &token).await;

        let init = node.core.generate_root_init(None, false).await.unwrap();
        node.core.generate_root_update(node.share(0), &init.nonce).await.unwrap();
        node.core.generate_root_update(node.share(1), &init.nonce).await.unwrap();
        let e = node.core.generate_root_update(node.stranger(), &init.nonce).await.unwrap_err();
        assert_eq!(
            msg(e),
            "root generation aborted: unable to authenticate: recovery key verification failed: recovery key does not match submitted values"
        );
    }

    #[tokio::test]
    async fn one_share_node_takes_the_key_itself() {
        let node = fixtures::shamir(1, 1).await;
        let token = generate(&node, &[0]).await.unwrap();
        assert_root(&node, &token).await;
        // A single wrong key is refused at once.
        let init = node.core.generate_root_init(None, false).await.unwrap();
        let e =
            node.core.generate_root_update(SecretBytes::random(32).unwrap(), &init.nonce).await.unwrap_err();
        assert!(msg(e).starts_with("root generation aborted"));
    }
}
