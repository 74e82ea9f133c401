//! The snapshot file format: a consistent dump of the state machine at an applied index.
//!
//! ```text
//! magic "COFFSNAP" (8) | format u8 (= 1) | meta length u32 BE | meta (JSON SnapshotMeta)
//! then per key:  0x01 | key length u32 BE | key | record length u32 BE | record
//! then           0x00 | SHA-256 (32 bytes) of everything before it
//! ```
//!
//! A record is the state machine's stored form (`format | version u64 BE | value`), so a
//! snapshot restores versions exactly. Values are ciphertext; nothing here logs them.
//! `decode` checks magic, format, framing, checksum, keys and records before anything is
//! installed.

use coffer_storage::validate_key;
use sha2::{Digest as _, Sha256};

use crate::state_machine::{record_version, STAGE_PREFIX};
use crate::types::SnapshotMeta;

/// Magic bytes at the start of every snapshot.
pub const MAGIC: &[u8; 8] = b"COFFSNAP";
/// Current snapshot format.
pub const SNAPSHOT_FORMAT: u8 = 1;
/// Largest key accepted when decoding.
const MAX_KEY: usize = 64 * 1024;
/// Largest record accepted when decoding.
const MAX_RECORD: usize = 64 * 1024 * 1024;

/// A decoded snapshot.
pub(crate) struct Decoded {
    pub meta: SnapshotMeta,
    pub records: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Encodes `records` (sorted by key) under `meta`.
#[cfg(test)]
pub(crate) fn encode(meta: &SnapshotMeta, records: &[(Vec<u8>, Vec<u8>)]) -> Result<Vec<u8>, String> {
    let size: usize = records.iter().map(|(k, v)| k.len() + v.len()).sum();
    let body = encode_body(meta, records.iter().map(|(k, v)| (k.as_slice(), v.as_slice())), size)?;
    Ok(seal(body))
}

/// Everything of a snapshot but its checksum ([`seal`] appends it): `records` (sorted by key,
/// `size` bytes of keys and records in all, a capacity hint) under `meta`. Split from the
/// checksum so that a snapshot of the live state is copied under its lock and checksummed after.
pub(crate) fn encode_body<'a>(
    meta: &SnapshotMeta,
    records: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])>,
    size: usize,
) -> Result<Vec<u8>, String> {
    let meta_json = serde_json::to_vec(meta).map_err(|e| format!("cannot encode snapshot meta: {e}"))?;
    let framing = records.len().saturating_mul(9);
    let mut out = Vec::with_capacity(8 + 1 + 4 + meta_json.len() + size.saturating_add(framing) + 33);
    out.extend_from_slice(MAGIC);
    out.push(SNAPSHOT_FORMAT);
    out.extend_from_slice(&len32(meta_json.len())?.to_be_bytes());
    out.extend_from_slice(&meta_json);
    for (k, v) in records {
        out.push(1);
        out.extend_from_slice(&len32(k.len())?.to_be_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(&len32(v.len())?.to_be_bytes());
        out.extend_from_slice(v);
    }
    out.push(0);
    Ok(out)
}

/// Appends the SHA-256 of `body` (an [`encode_body`] result): the snapshot bytes.
pub(crate) fn seal(mut body: Vec<u8>) -> Vec<u8> {
    let sum = Sha256::digest(&body);
    body.extend_from_slice(&sum);
    body
}

fn len32(n: usize) -> Result<u32, String> {
    u32::try_from(n).map_err(|_| format!("snapshot item of {n} bytes is too large"))
}

/// Decodes and verifies a snapshot.
pub(crate) fn decode(bytes: &[u8]) -> Result<Decoded, String> {
    if bytes.len() < 8 + 1 + 4 + 1 + 32 {
        return Err("snapshot is truncated".into());
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return Err("snapshot checksum mismatch (truncated or damaged)".into());
    }
    if &body[..8] != MAGIC {
        return Err("not a coffer snapshot (bad magic)".into());
    }
    if body[8] != SNAPSHOT_FORMAT {
        return Err(format!(
            "snapshot format {} is not supported by this build (expected {SNAPSHOT_FORMAT})",
            body[8]
        ));
    }
    let mut r = Reader { buf: body, pos: 9 };
    let meta_len = r.u32()? as usize;
    let meta: SnapshotMeta =
        serde_json::from_slice(r.take(meta_len)?).map_err(|e| format!("bad snapshot metadata: {e}"))?;
    let mut records = Vec::new();
    loop {
        match r.take(1)?[0] {
            0 => break,
            1 => {
                let kl = r.u32()? as usize;
                if kl > MAX_KEY {
                    return Err("snapshot key too long".into());
                }
                let k = r.take(kl)?.to_vec();
                let vl = r.u32()? as usize;
                if vl > MAX_RECORD {
                    return Err("snapshot record too long".into());
                }
                let v = r.take(vl)?.to_vec();
                check_record(&k, &v)?;
                if records.last().is_some_and(|(prev, _): &(Vec<u8>, Vec<u8>)| prev >= &k) {
                    return Err("snapshot keys are not strictly sorted".into());
                }
                records.push((k, v));
            }
            t => return Err(format!("bad snapshot record tag {t}")),
        }
    }
    if r.pos != body.len() {
        return Err("trailing bytes after snapshot records".into());
    }
    Ok(Decoded { meta, records })
}

/// A record as the state machine holds it: a storage key (or a restore's staged one) and a
/// record reads can decode. Anything else is refused before it is installed, where it would
/// make its prefix unlistable and its key unreadable.
fn check_record(key: &[u8], record: &[u8]) -> Result<(), String> {
    let real = key.strip_prefix(STAGE_PREFIX).unwrap_or(key);
    let real = std::str::from_utf8(real).map_err(|_| "snapshot key is not UTF-8".to_owned())?;
    validate_key(real).map_err(|_| "snapshot key is not a valid storage key".to_owned())?;
    if record_version(record).is_none() {
        return Err("unreadable snapshot record".into());
    }
    Ok(())
}

/// The metadata in the first bytes of a snapshot, unverified (`None` when `head` does not hold
/// it whole or it does not parse): only a hint of which snapshot a file holds, to be confirmed
/// by [`decode`] before anything relies on it.
pub(crate) fn peek_meta(head: &[u8]) -> Option<SnapshotMeta> {
    if head.get(..8)? != MAGIC || *head.get(8)? != SNAPSHOT_FORMAT {
        return None;
    }
    let len = u32::from_be_bytes(head.get(9..13)?.try_into().ok()?) as usize;
    serde_json::from_slice(head.get(13..13usize.checked_add(len)?)?).ok()
}

/// Reads only the metadata (after verifying the checksum).
pub(crate) fn decode_meta(bytes: &[u8]) -> Result<SnapshotMeta, String> {
    decode(bytes).map(|d| d.meta)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len()).ok_or("snapshot is truncated")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn meta() -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), 5)),
            last_membership: Default::default(),
            snapshot_id: "5-1".into(),
        }
    }

    #[test]
    fn round_trip_and_every_damage_is_refused() {
        let recs = vec![(b"a".to_vec(), vec![1, 0, 0, 0, 0, 0, 0, 0, 5, 9]), (b"b".to_vec(), vec![1; 9])];
        let bytes = encode(&meta(), &recs).unwrap();
        let d = decode(&bytes).unwrap();
        assert_eq!(d.meta, meta());
        assert_eq!(d.records, recs);
        // Truncation, a flipped bit anywhere, bad magic: all refused.
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        for i in [0, 8, 12, 20, bytes.len() - 40, bytes.len() - 1] {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert!(decode(&b).is_err(), "flip at {i} accepted");
        }
        assert!(decode(b"").is_err());
    }

    #[test]
    fn the_metadata_is_peeked_from_the_head_alone() {
        let bytes = encode(&meta(), &[(b"a".to_vec(), vec![1; 9])]).unwrap();
        let meta_end = 13 + u32::from_be_bytes(bytes[9..13].try_into().unwrap()) as usize;
        assert_eq!(peek_meta(&bytes[..meta_end]), Some(meta()));
        assert_eq!(peek_meta(&bytes), Some(meta()));
        for n in [0, 8, 9, 12, 13, meta_end - 1] {
            assert_eq!(peek_meta(&bytes[..n]), None, "a head of {n} bytes");
        }
        let mut b = bytes.clone();
        b[0] ^= 1;
        assert_eq!(peek_meta(&b), None, "bad magic");
        let mut b = bytes;
        b[8] = SNAPSHOT_FORMAT + 1;
        assert_eq!(peek_meta(&b), None, "unknown format");
    }
}
