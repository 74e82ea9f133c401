//! Snapshot archives as `sys/storage/raft/snapshot` sends and takes them.
//!
//! Vault's layout, so the `vault`/`bao` CLI (which checks that the stream ends with
//! `SHA256SUMS.sealed`) saves and restores them: a gzip'd tar of
//! - `meta.json`: format version, the raft index the state was taken at, cluster id, time;
//! - `state.bin`: the replicated state (the raft crate's snapshot format: every record as
//!   stored, ciphertext below the barrier, with its own checksum);
//! - `SHA256SUMS`: SHA-256 of the two files;
//! - `SHA256SUMS.sealed`: the sums sealed (AES-256-GCM) under a key derived from the cluster's
//!   root key. A restore checks it, so a snapshot from a cluster with other keys is refused
//!   unless forced (`snapshot-force`); after a forced restore the cluster holds the other
//!   cluster's keyring and must be unsealed with that cluster's keys.

use std::io::{Read, Write};

use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use coffer_storage::aead;
use coffer_storage::keys::RootKey;

use crate::core::error::{Error, Result};

const ARCHIVE_VERSION: u8 = 1;
const SUMS_AAD: &[u8] = b"coffer snapshot sums";
/// Largest archive accepted for a restore.
pub const MAX_ARCHIVE: usize = 1024 * 1024 * 1024;

/// `meta.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Meta {
    pub version: u8,
    pub index: u64,
    pub cluster_id: String,
    pub created: String,
}

fn sums_key(root: &RootKey) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(None, root.expose());
    let mut out = Zeroizing::new([0u8; 32]);
    if hk.expand(b"coffer snapshot sums v1", out.as_mut()).is_err() {
        unreachable!("HKDF output length is valid");
    }
    out
}

fn sums(meta: &[u8], state: &[u8]) -> String {
    format!(
        "{}  meta.json\n{}  state.bin\n",
        hex::encode(Sha256::digest(meta)),
        hex::encode(Sha256::digest(state))
    )
}

fn io_err(e: impl std::fmt::Display) -> Error {
    Error::internal(format!("snapshot archive: {e}"))
}

/// Builds an archive of `state` taken at `index`.
pub fn pack(root: &RootKey, state: &[u8], index: u64, cluster_id: &str) -> Result<Vec<u8>> {
    let meta = Meta {
        version: ARCHIVE_VERSION,
        index,
        cluster_id: cluster_id.to_owned(),
        created: crate::util::timefmt::rfc3339_nano(coffer_storage::clock::now()),
    };
    let meta = serde_json::to_vec_pretty(&meta)?;
    let sums = sums(&meta, state);
    let sealed = aead::seal(sums_key(root).as_ref(), 0, SUMS_AAD, sums.as_bytes()).map_err(io_err)?;
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, data) in [
        ("meta.json", meta.as_slice()),
        ("state.bin", state),
        ("SHA256SUMS", sums.as_bytes()),
        ("SHA256SUMS.sealed", &sealed),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, name, data).map_err(io_err)?;
    }
    let gz = tar.into_inner().map_err(io_err)?;
    gz.finish().map_err(io_err)
}

/// What an archive holds, verified.
#[derive(Debug)]
pub struct Unpacked {
    pub meta: Meta,
    pub state: Vec<u8>,
}

fn bad(msg: &str) -> Error {
    Error::bad(format!("invalid snapshot: {msg}"))
}

/// Reads and checks an archive: structure and checksums always; the sealed sums against this
/// cluster's root key unless `force`.
pub fn unpack(root: &RootKey, archive: &[u8], force: bool) -> Result<Unpacked> {
    let gz = flate2::read::GzDecoder::new(archive);
    let mut tar = tar::Archive::new(gz.take(MAX_ARCHIVE as u64 * 4));
    let (mut meta, mut state, mut plain_sums, mut sealed) = (None, None, None, None);
    for entry in tar.entries().map_err(|_| bad("not a gzip'd tar archive"))? {
        let mut entry = entry.map_err(|_| bad("damaged archive"))?;
        let name = entry.path().map_err(|_| bad("damaged archive"))?.to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(|_| bad("damaged archive"))?;
        let slot = match name.as_str() {
            "meta.json" => &mut meta,
            "state.bin" => &mut state,
            "SHA256SUMS" => &mut plain_sums,
            "SHA256SUMS.sealed" => &mut sealed,
            other => return Err(bad(&format!("unexpected file {other:?}"))),
        };
        if slot.replace(data).is_some() {
            return Err(bad(&format!("duplicate file {name:?}")));
        }
    }
    let (Some(meta_bytes), Some(state), Some(plain_sums), Some(sealed)) = (meta, state, plain_sums, sealed)
    else {
        return Err(bad(
            "missing files (meta.json, state.bin, SHA256SUMS and SHA256SUMS.sealed are required)",
        ));
    };
    let want = sums(&meta_bytes, &state);
    if want.as_bytes() != plain_sums.as_slice() {
        return Err(bad("checksum mismatch"));
    }
    if !force {
        let opened = aead::open(sums_key(root).as_ref(), 0, SUMS_AAD, &sealed);
        match opened {
            Ok(s) if s.as_slice() == want.as_bytes() => {}
            _ => {
                return Err(Error::bad(
                    "could not verify hash file, possibly the snapshot is using a different set of unseal keys; use the snapshot-force API to bypass this check",
                ))
            }
        }
    }
    let meta: Meta = serde_json::from_slice(&meta_bytes).map_err(|_| bad("unreadable meta.json"))?;
    if meta.version != ARCHIVE_VERSION {
        return Err(bad(&format!("unsupported archive version {}", meta.version)));
    }
    Ok(Unpacked { meta, state })
}

/// Writes `data` into `w` (helper for streamed responses).
pub fn write_all(mut w: impl Write, data: &[u8]) -> std::io::Result<()> {
    w.write_all(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_round_trip_and_refuse_other_keys_and_damage() {
        let root = RootKey::generate().unwrap();
        let a = pack(&root, b"state bytes", 42, "cid").unwrap();
        let u = unpack(&root, &a, false).unwrap();
        assert_eq!((u.meta.index, u.state.as_slice()), (42, b"state bytes".as_slice()));
        let other = RootKey::generate().unwrap();
        let e = unpack(&other, &a, false).unwrap_err().to_string();
        assert!(e.contains("different set of unseal keys"), "{e}");
        assert!(unpack(&other, &a, true).is_ok(), "force skips the key check");
        assert!(unpack(&root, &a[..a.len() / 2], false).is_err(), "truncated");
        assert!(unpack(&root, b"not an archive", false).is_err());
        let mut flipped = a.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x40;
        assert!(unpack(&root, &flipped, true).is_err(), "damaged");
    }
}
