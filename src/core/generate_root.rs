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

use crate::auth::token::store::random_base62;
use crate::core::error::{Error, Result};
use crate::core::quorum::{self, Shares};
use crate::core::seal::{self, SealSource};
use crate::core::Core;

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
        let Some(cfg) = seal::read_config(self.barrier.raw().as_ref()).await? else {
            return Err(Error::bad("server is not yet initialized"));
        };
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
        let Some(cfg) = seal::read_config(self.barrier.raw().as_ref()).await? else {
            return Err(Error::Sealed);
        };
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
        let Some(cfg) = seal::read_config(self.barrier.raw().as_ref()).await? else {
            return Err(Error::bad("Vault is not initialized"));
        };
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
