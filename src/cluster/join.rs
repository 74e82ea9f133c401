//! Joining a cluster: a challenge only a holder of the cluster's keys can answer.
//!
//! 1. The new node asks the leader's API for a challenge
//!    (`POST sys/storage/raft/bootstrap/challenge {"server_id"}`, unauthenticated). The leader
//!    answers with the seal configuration, the wrapped root key (ciphertext: it opens only with
//!    the unseal key) and a challenge: a random nonce, the server id and the time, sealed with
//!    AES-256-GCM under a key derived (HKDF-SHA256) from the root key. The leader keeps no state.
//! 2. The node is unsealed with the cluster's shares (or its static key): it unwraps the root
//!    key, derives the same key, opens the challenge and posts the nonce back
//!    (`POST sys/storage/raft/bootstrap/answer`).
//! 3. The leader opens the challenge it issued, checks the server id, the age and the nonce
//!    (constant-time), refuses a server id that is already a member (a wiped node under its old
//!    identity), issues a node certificate from the cluster CA and returns it sealed under a key
//!    derived from the root key and the nonce, so even a plain-HTTP API listener never carries
//!    the node's private key in the clear. Then it adds the node as a voter in the background.
//!
//! Nothing secret travels unencrypted, nothing is stored for an unanswered challenge, and a
//! flood of challenge requests costs the leader one AEAD operation each.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use zeroize::{Zeroize, Zeroizing};

use coffer_storage::aead;
use coffer_storage::keys::RootKey;

use crate::core::error::{Error, Result};
use crate::core::seal::StoredSealConfig;

/// How long a challenge may be answered.
pub const CHALLENGE_LIFETIME_SECS: i64 = 10 * 60;
const CHALLENGE_VERSION: u8 = 1;
const CHALLENGE_AAD: &[u8] = b"coffer raft join challenge";
const BUNDLE_AAD: &[u8] = b"coffer raft join bundle";

/// Body of `sys/storage/raft/bootstrap/challenge`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChallengeRequest {
    pub server_id: String,
}

/// The leader's answer to a challenge request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChallengeResponse {
    /// Base64 of the sealed [`ChallengePlain`].
    pub challenge: String,
    pub seal_config: StoredSealConfig,
    /// Base64 of the root key wrapped by the unseal key.
    pub wrapped_root_key: String,
    /// Base64 of the recovery check record (static seals).
    #[serde(default)]
    pub recovery_check: Option<String>,
    pub cluster_id: String,
}

/// Body of `sys/storage/raft/bootstrap/answer`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AnswerRequest {
    pub server_id: String,
    pub challenge: String,
    /// Base64 of the nonce found inside the challenge.
    pub answer: String,
    pub api_addr: String,
    pub cluster_addr: String,
    #[serde(default)]
    pub non_voter: bool,
}

/// The leader's reply to a correct answer: the node's TLS material, sealed.
#[derive(Debug, Serialize, Deserialize)]
pub struct AnswerResponse {
    pub bundle: String,
}

/// What the challenge seals.
#[derive(Serialize, Deserialize)]
struct ChallengePlain {
    v: u8,
    server_id: String,
    issued_at: i64,
    nonce: String,
}

/// The node's TLS material, as the answer response seals it.
#[derive(Serialize, Deserialize)]
pub struct Bundle {
    pub ca_cert_pem: String,
    pub node_cert_pem: String,
    pub node_key_pem: String,
}

impl Drop for Bundle {
    fn drop(&mut self) {
        self.node_key_pem.zeroize();
    }
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bundle([redacted])")
    }
}

fn derive(root: &RootKey, salt: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(Some(salt), root.expose());
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's limit: expand cannot fail.
    if hk.expand(info, out.as_mut()).is_err() {
        unreachable!("HKDF output length is valid");
    }
    out
}

fn challenge_key(root: &RootKey, cluster_id: &str) -> Zeroizing<[u8; 32]> {
    derive(root, cluster_id.as_bytes(), b"coffer raft join challenge v1")
}

fn bundle_key(root: &RootKey, nonce: &[u8]) -> Zeroizing<[u8; 32]> {
    derive(root, nonce, b"coffer raft join bundle v1")
}

fn bad_challenge() -> Error {
    Error::bad("invalid join challenge or answer")
}

/// Leader side: a fresh challenge for `server_id`.
pub fn issue_challenge(
    root: &RootKey,
    cluster_id: &str,
    server_id: &str,
    now: OffsetDateTime,
) -> Result<String> {
    let mut nonce = [0u8; 32];
    rand::RngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut nonce)
        .map_err(|e| Error::internal(format!("rng: {e}")))?;
    let plain = ChallengePlain {
        v: CHALLENGE_VERSION,
        server_id: server_id.to_owned(),
        issued_at: now.unix_timestamp(),
        nonce: B64.encode(nonce),
    };
    let json = Zeroizing::new(serde_json::to_vec(&plain)?);
    let sealed = aead::seal(challenge_key(root, cluster_id).as_ref(), 0, CHALLENGE_AAD, &json)
        .map_err(|e| Error::internal(format!("sealing a join challenge: {e}")))?;
    Ok(B64.encode(sealed))
}

fn open_challenge(root: &RootKey, cluster_id: &str, challenge: &str) -> Result<ChallengePlain> {
    let sealed = B64.decode(challenge.trim()).map_err(|_| bad_challenge())?;
    let plain = aead::open(challenge_key(root, cluster_id).as_ref(), 0, CHALLENGE_AAD, &sealed)
        .map_err(|_| bad_challenge())?;
    let c: ChallengePlain = serde_json::from_slice(&plain).map_err(|_| bad_challenge())?;
    if c.v != CHALLENGE_VERSION {
        return Err(bad_challenge());
    }
    Ok(c)
}

/// Joiner side: the answer to a challenge, given the root key unwrapped with the cluster's
/// unseal key.
pub fn answer_challenge(root: &RootKey, cluster_id: &str, challenge: &str) -> Result<String> {
    Ok(open_challenge(root, cluster_id, challenge)?.nonce)
}

/// Leader side: checks an answer; returns the nonce (the salt of the bundle key).
pub fn verify_answer(
    root: &RootKey,
    cluster_id: &str,
    req: &AnswerRequest,
    now: OffsetDateTime,
) -> Result<Vec<u8>> {
    let c = open_challenge(root, cluster_id, &req.challenge)?;
    let age = now.unix_timestamp() - c.issued_at;
    if !(0..=CHALLENGE_LIFETIME_SECS).contains(&age) {
        return Err(Error::bad("join challenge expired; join again"));
    }
    let same_server: bool = c.server_id.as_bytes().ct_eq(req.server_id.as_bytes()).into();
    let same_nonce: bool = c.nonce.as_bytes().ct_eq(req.answer.trim().as_bytes()).into();
    if !(same_server && same_nonce) {
        return Err(bad_challenge());
    }
    B64.decode(&c.nonce).map_err(|_| bad_challenge())
}

/// Leader side: seals the node's TLS material for the joiner.
pub fn seal_bundle(root: &RootKey, nonce: &[u8], bundle: &Bundle) -> Result<String> {
    let json = Zeroizing::new(serde_json::to_vec(bundle)?);
    let sealed = aead::seal(bundle_key(root, nonce).as_ref(), 0, BUNDLE_AAD, &json)
        .map_err(|e| Error::internal(format!("sealing a join bundle: {e}")))?;
    Ok(B64.encode(sealed))
}

/// Joiner side: opens the bundle of an answer response.
pub fn open_bundle(root: &RootKey, answer_b64: &str, bundle_b64: &str) -> Result<Bundle> {
    let nonce = B64.decode(answer_b64).map_err(|_| bad_challenge())?;
    let sealed = B64.decode(bundle_b64.trim()).map_err(|_| bad_challenge())?;
    let plain =
        aead::open(bundle_key(root, &nonce).as_ref(), 0, BUNDLE_AAD, &sealed).map_err(|_| bad_challenge())?;
    serde_json::from_slice(&plain).map_err(|_| bad_challenge())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(server_id: &str, challenge: &str, nonce: &str) -> AnswerRequest {
        AnswerRequest {
            server_id: server_id.into(),
            challenge: challenge.into(),
            answer: nonce.into(),
            api_addr: String::new(),
            cluster_addr: String::new(),
            non_voter: false,
        }
    }

    #[test]
    fn only_the_root_key_holder_answers_and_gets_the_bundle() {
        let root = RootKey::generate().unwrap();
        let now = coffer_storage::clock::now();
        let ch = issue_challenge(&root, "cid", "node2", now).unwrap();
        // The right key answers; the bundle opens with the same key and nonce.
        let nonce = answer_challenge(&root, "cid", &ch).unwrap();
        let n = verify_answer(&root, "cid", &answer("node2", &ch, &nonce), now).unwrap();
        let b = Bundle { ca_cert_pem: "ca".into(), node_cert_pem: "cert".into(), node_key_pem: "key".into() };
        let sealed = seal_bundle(&root, &n, &b).unwrap();
        assert!(!sealed.contains("key"));
        assert_eq!(open_bundle(&root, &nonce, &sealed).unwrap().node_key_pem, "key");
        // Another cluster's key cannot open the challenge nor the bundle.
        let other = RootKey::generate().unwrap();
        assert!(answer_challenge(&other, "cid", &ch).is_err());
        assert!(open_bundle(&other, &nonce, &sealed).is_err());
        // A wrong nonce, another server id, a stale or tampered challenge are refused.
        assert!(verify_answer(&root, "cid", &answer("node2", &ch, "AAAA"), now).is_err());
        assert!(verify_answer(&root, "cid", &answer("node3", &ch, &nonce), now).is_err());
        let late = now + time::Duration::seconds(CHALLENGE_LIFETIME_SECS + 1);
        assert!(verify_answer(&root, "cid", &answer("node2", &ch, &nonce), late).is_err());
        let mut raw = B64.decode(&ch).unwrap();
        raw[20] ^= 1;
        assert!(verify_answer(&root, "cid", &answer("node2", &B64.encode(raw), &nonce), now).is_err());
        // The challenge is bound to the cluster id.
        assert!(answer_challenge(&root, "other-cluster", &ch).is_err());
    }
}
