//! The keyed hash chain of an audit device.
//!
//! # Line format (chain version 2)
//!
//! Every line is the device's prefix, then one JSON object whose last member is the chain link:
//!
//! ```text
//! {"auth":{..},"request":{..},"time":"..","type":"request","chain":{"v":2,"seq":7,"prev":"<hex>","mac":"<hex>"}}
//! ```
//!
//! `mac` is HMAC-SHA256 under the device's chain key over the exact bytes of the line before
//! `,"mac":` (prefix included), so it covers the entry, the sequence number and `prev`; `prev`
//! is the `mac` of the line before (the segment's `start_prev` for the first line of a
//! segment, [`GENESIS`] for the first line ever). Verification works on bytes: no JSON
//! canonicalisation is involved.
//!
//! The chain key (32 random bytes, one per device, separate from the hashing salt) and the
//! chain head (the last sequence number and MAC written) are stored behind the barrier, so
//! whoever can edit the file can neither compute a valid MAC nor hide removed lines at the end.
//! The head is persisted in the background (coalesced, see `device.rs`), never on a request's
//! path.

use std::fmt;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::error::AuditError;
use crate::util::crypto::{hmac_sha256, hmac_sha256_hex};

/// `prev` of the first line of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The `v` member of a line's `chain` object.
pub const CHAIN_VERSION: u64 = 2;
/// Format version of the stored chain key record.
pub const KEY_RECORD_VERSION: u32 = 1;
/// Format version of the stored head record.
pub const HEAD_RECORD_VERSION: u32 = 1;

// A device's chain records are node-local (`local/` keys, never replicated): every node of a
// cluster writes its own file and keeps its own chain. A follower could not write replicated
// keys at all, the nodes would overwrite each other's heads, and opening a device would wait
// for a quorum. `sys/audit-verify` checks the file of the node it is sent to, with that node's
// key and head.

/// Storage key (behind the barrier, node-local) of a device's chain key.
pub fn key_path(device_id: &str) -> String {
    format!("{}audit-chain/{device_id}/key", coffer_storage::LOCAL_PREFIX)
}

/// Storage key (behind the barrier, node-local) of a device's chain head.
pub fn head_path(device_id: &str) -> String {
    format!("{}audit-chain/{device_id}/head", coffer_storage::LOCAL_PREFIX)
}

/// Where keys were kept before they were node-local (replicated): read when a device has no
/// local key yet, so a chain continues across the upgrade; deleted with the device.
pub fn legacy_key_path(device_id: &str) -> String {
    format!("core/audit-chain/{device_id}/key")
}

/// Where heads were kept before they were node-local (replicated): read when a device has no
/// local head yet (see [`legacy_key_path`]).
pub fn legacy_head_path(device_id: &str) -> String {
    format!("core/audit-chain/{device_id}/head")
}

/// The per-device HMAC key of the chain. Zeroized on drop; no `Clone`, no `PartialEq`.
pub struct ChainKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChainKey([redacted])")
    }
}

#[derive(Serialize, Deserialize)]
struct KeyRecord {
    version: u32,
    key: String,
}

impl ChainKey {
    /// 32 bytes from the OS.
    pub fn generate() -> Result<Self, AuditError> {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng
            .try_fill_bytes(k.as_mut())
            .map_err(|e| AuditError::State(format!("no randomness for a chain key: {e}")))?;
        Ok(Self(k))
    }

    /// The stored record (the plaintext buffer is wiped by the barrier once encrypted).
    pub fn to_record(&self) -> Vec<u8> {
        let hex = Zeroizing::new(hex::encode(self.0.as_ref()));
        format!("{{\"version\":{KEY_RECORD_VERSION},\"key\":\"{}\"}}", hex.as_str()).into_bytes()
    }

    /// Reads a stored record.
    pub fn from_record(bytes: &[u8]) -> Result<Self, AuditError> {
        let mut rec: KeyRecord = serde_json::from_slice(bytes)
            .map_err(|_| AuditError::State("the chain key record is not readable".into()))?;
        let result = if rec.version != KEY_RECORD_VERSION {
            Err(AuditError::State(format!("unsupported chain key record version {}", rec.version)))
        } else {
            let mut k = Zeroizing::new([0u8; 32]);
            match hex::decode_to_slice(rec.key.as_bytes(), k.as_mut()) {
                Ok(()) => Ok(Self(k)),
                Err(_) => Err(AuditError::State("the chain key record holds no 32-byte key".into())),
            }
        };
        rec.key.zeroize();
        result
    }

    /// Lowercase hex HMAC-SHA256 of `data`.
    pub fn mac_hex(&self, data: &[u8]) -> String {
        hmac_sha256_hex(self.0.as_ref(), &[data])
    }

    /// Whether `mac_hex` is the MAC of `data` (constant-time comparison).
    pub fn verify(&self, data: &[u8], mac_hex: &str) -> bool {
        let mut tag = [0u8; 32];
        if hex::decode_to_slice(mac_hex.as_bytes(), &mut tag).is_err() {
            return false;
        }
        hmac_sha256(self.0.as_ref(), &[data]).ct_eq(&tag).into()
    }
}

/// One link of the chain: a line's sequence number and MAC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub seq: u64,
    pub mac: String,
}

/// The part of the chain in the device's current file: where it starts. A device starts a new
/// segment when its file is new (first use, rotation) or no longer holds the segment it wrote
/// (replaced, truncated); bytes before `start_offset` are not part of this chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// The sink (`file_path`, `stdout`, `discard`).
    pub file: String,
    /// `device:inode` of the file, to tell it from a replacement at the same path.
    #[serde(default)]
    pub file_id: Option<String>,
    /// Sequence number of the segment's first line.
    pub start_seq: u64,
    /// Byte offset of that line in the file.
    pub start_offset: u64,
    /// `prev` of that line.
    pub start_prev: String,
}

/// The stored head of a device's chain (format [`HEAD_RECORD_VERSION`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadRecord {
    pub version: u32,
    /// The last line written (`None` before the first).
    pub last: Option<Link>,
    pub segment: Segment,
    /// Segments the device wrote before the current one, newest last (at most 16).
    #[serde(default)]
    pub earlier: Vec<EarlierSegment>,
}

/// A segment the device no longer writes to (its file was rotated, replaced, or the device
/// moved to another file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlierSegment {
    pub file: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub reason: String,
    /// When the device noticed (RFC 3339).
    pub noticed: String,
}

impl HeadRecord {
    /// Reads a stored record.
    pub fn from_record(bytes: &[u8]) -> Result<Self, AuditError> {
        let r: HeadRecord = serde_json::from_slice(bytes)
            .map_err(|_| AuditError::State("the chain head record is not readable".into()))?;
        if r.version != HEAD_RECORD_VERSION {
            return Err(AuditError::State(format!("unsupported chain head record version {}", r.version)));
        }
        Ok(r)
    }

    /// The sequence number and `prev` of the next line.
    pub fn next(&self) -> (u64, String) {
        match &self.last {
            Some(l) => (l.seq + 1, l.mac.clone()),
            None => (self.segment.start_seq, self.segment.start_prev.clone()),
        }
    }
}

/// Length of the fixed-size tail `,"mac":"<64 hex>"}}` every line ends with.
const MAC_SUFFIX_LEN: usize = 8 + 64 + 3;

/// Builds the line (with its newline) for the serialized entry `body` (a JSON object):
/// returns the bytes and the line's MAC.
pub fn seal_line(key: &ChainKey, prefix: &str, body: &[u8], seq: u64, prev: &str) -> (Vec<u8>, String) {
    let inner = body.strip_suffix(b"}").unwrap_or(body);
    let mut line = Vec::with_capacity(prefix.len() + body.len() + 160);
    line.extend_from_slice(prefix.as_bytes());
    line.extend_from_slice(inner);
    if inner != b"{" {
        line.push(b',');
    }
    line.extend_from_slice(
        format!("\"chain\":{{\"v\":{CHAIN_VERSION},\"seq\":{seq},\"prev\":\"{prev}\"").as_bytes(),
    );
    let mac = key.mac_hex(&line);
    line.extend_from_slice(format!(",\"mac\":\"{mac}\"}}}}\n").as_bytes());
    (line, mac)
}

/// The chain fields of a line, as written (not yet authenticated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineLink {
    pub seq: u64,
    pub prev: String,
    pub mac: String,
}

/// Why a line is not a chained line at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineError {
    /// The configured prefix is missing.
    NoPrefix,
    /// Not a JSON object.
    NotJson,
    /// No `chain` member, or one of another format version.
    NoChain,
    /// The `chain` member is not the last member or is malformed.
    BadChain,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LineError::NoPrefix => "does not start with the device's prefix",
            LineError::NotJson => "is not a JSON object",
            LineError::NoChain => {
                "has no chain link of format 2 (written by an older coffer, or not an audit line)"
            }
            LineError::BadChain => "has a malformed chain link",
        })
    }
}

/// Parses the chain link of a line (without its newline). Returns the link and the bytes its
/// MAC covers. Does not check the MAC.
pub fn parse_line<'a>(line: &'a [u8], prefix: &str) -> Result<(LineLink, &'a [u8]), LineError> {
    let json = line.strip_prefix(prefix.as_bytes()).ok_or(LineError::NoPrefix)?;
    let v: serde_json::Value = serde_json::from_slice(json).map_err(|_| LineError::NotJson)?;
    let Some(chain) = v.get("chain") else {
        return Err(if v.is_object() { LineError::NoChain } else { LineError::NotJson });
    };
    if chain.get("v").and_then(serde_json::Value::as_u64) != Some(CHAIN_VERSION) {
        return Err(LineError::NoChain);
    }
    let (Some(seq), Some(prev), Some(mac)) = (
        chain.get("seq").and_then(serde_json::Value::as_u64),
        chain.get("prev").and_then(serde_json::Value::as_str),
        chain.get("mac").and_then(serde_json::Value::as_str),
    ) else {
        return Err(LineError::BadChain);
    };
    if line.len() < MAC_SUFFIX_LEN || mac.len() != 64 {
        return Err(LineError::BadChain);
    }
    let (signed, suffix) = line.split_at(line.len() - MAC_SUFFIX_LEN);
    if suffix != format!(",\"mac\":\"{mac}\"}}}}").as_bytes() {
        return Err(LineError::BadChain);
    }
    Ok((LineLink { seq, prev: prev.to_owned(), mac: mac.to_owned() }, signed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_lines_parse_and_verify_and_edits_do_not() {
        let key = ChainKey::generate().unwrap();
        let (line, mac) = seal_line(&key, "", br#"{"time":"t","type":"request"}"#, 7, GENESIS);
        assert!(line.ends_with(b"}}\n"));
        let text = std::str::from_utf8(&line).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(v["chain"]["seq"], 7);
        assert_eq!(v["chain"]["v"], 2);
        assert_eq!(v["chain"]["mac"], mac);
        assert_eq!(v["type"], "request");
        let body = &line[..line.len() - 1];
        let (link, signed) = parse_line(body, "").unwrap();
        assert_eq!(link, LineLink { seq: 7, prev: GENESIS.into(), mac: mac.clone() });
        assert!(key.verify(signed, &link.mac));
        // Another key, or any edited byte, fails.
        assert!(!ChainKey::generate().unwrap().verify(signed, &link.mac));
        let edited = text.replace("request", "requesT");
        let (l2, s2) = parse_line(edited.trim_end().as_bytes(), "").unwrap();
        assert!(!key.verify(s2, &l2.mac));
        // With a prefix.
        let (line, _) = seal_line(&key, "P: ", b"{\"a\":1}", 0, GENESIS);
        let (link, signed) = parse_line(&line[..line.len() - 1], "P: ").unwrap();
        assert!(key.verify(signed, &link.mac));
        assert_eq!(parse_line(&line[..line.len() - 1], "Q: ").unwrap_err(), LineError::NoPrefix);
        // Not chained lines.
        assert_eq!(parse_line(b"{\"a\":1}", "").unwrap_err(), LineError::NoChain);
        assert_eq!(parse_line(b"garbage", "").unwrap_err(), LineError::NotJson);
        assert_eq!(
            parse_line(b"{\"chain\":{\"seq\":1,\"prev\":\"00\"}}", "").unwrap_err(),
            LineError::NoChain,
            "format 1 lines are not accepted as format 2"
        );
    }

    #[test]
    fn chain_key_records_round_trip_and_are_redacted() {
        let k = ChainKey::generate().unwrap();
        let rec = k.to_record();
        let k2 = ChainKey::from_record(&rec).unwrap();
        assert_eq!(k.mac_hex(b"x"), k2.mac_hex(b"x"));
        assert_eq!(format!("{k:?}"), "ChainKey([redacted])");
        assert!(ChainKey::from_record(b"{\"version\":9,\"key\":\"00\"}").is_err());
        assert!(ChainKey::from_record(b"{\"version\":1,\"key\":\"00\"}").is_err());
    }
}
