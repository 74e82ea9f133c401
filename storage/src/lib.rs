//! coffer's storage stack, from the bottom up.
//!
//! ```text
//!   View        a mount's chroot: every key is confined below one prefix
//!   Barrier     AES-256-GCM with a keyring of terms; only ciphertext passes below it
//!   Storage     untrusted get / list / apply(Batch) with preconditions
//!   MemStorage | SledStorage | (RaftStorage in the raft crate) | WithLocal (node-local `local/`
//!               keys beside a replicated store)
//! ```
//!
//! # What this crate trusts and guarantees
//!
//! * A [`Storage`] implementation is **untrusted** for confidentiality and integrity: it only
//!   ever sees ciphertext produced by the [`barrier`], and every value it returns is
//!   authenticated by the barrier before use (AES-GCM with the full storage key as associated
//!   data, so a value moved to another key fails to decrypt).
//! * [`Storage::apply`] is all-or-nothing. Its preconditions (`key absent`, `key at version N`)
//!   are checked atomically with the writes; a failed precondition is the expected outcome
//!   [`StorageError::PreconditionFailed`], never an I/O error. KV v2 `cas`, AppRole
//!   `secret_id_num_uses`, token use counts and transit key rotation all rest on this.
//! * Every key carries a `version`: a number that strictly increases with every write to the
//!   store (a global counter; on Raft the log index). Two reads of the same key that return the
//!   same version returned the same bytes.
//! * [`SledStorage::apply`](sled_store::SledStorage) returns only after the batch is on stable
//!   storage (`flush` followed by `fsync` of sled's data file); concurrent writers share one
//!   sync. A failed sync stops the process: an acknowledged write is never lost.
//! * Secret material (root key, data keys) lives in [`keys`] types that zeroize on drop, cannot
//!   be cloned or compared with `==`, print `[redacted]`, and sit in `mlock`ed memory.

#![deny(unsafe_code)] // `keys::locked` is the single, documented exception (mlock/madvise).

pub mod aead;
pub mod barrier;
pub mod clock;
#[cfg(any(test, feature = "testing"))]
pub mod fuzzing;
pub mod keys;
pub mod local;
pub mod mem;
pub mod replication;
pub mod sled_store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod view;

#[cfg(test)]
mod fuzz_tests;

use std::fmt;

use async_trait::async_trait;

pub use barrier::{Barrier, BarrierError};
pub use local::{is_local, WithLocal, LOCAL_PREFIX};
pub use mem::MemStorage;
pub use replication::{ChangeFeed, Changes, LeaderInfo, Replication, Role, SingleNode, Subscription};
pub use sled_store::SledStorage;
pub use view::View;

/// A stored value and the version of the write that produced it.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    /// The bytes as stored (ciphertext when below the barrier).
    pub value: Vec<u8>,
    /// Version of the last write to this key; strictly increasing across the whole store.
    pub version: u64,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be plaintext above the barrier; never print them.
        f.debug_struct("Entry").field("len", &self.value.len()).field("version", &self.version).finish()
    }
}

/// One write inside a [`Batch`].
///
/// Serializable so a batch can travel in a replicated log entry; values are base64 strings in
/// the serialized form (compact in JSON, and never a readable dump of the bytes). The form is
/// internally tagged (`{"op":"put","key":…,"value":…}`); it is read by [`op_de`], which takes
/// the fields in any order without serde's buffering of tagged enums.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Remove the key (no error if it is absent).
    Delete { key: String },
    /// Create or replace the key.
    Put {
        key: String,
        #[serde(with = "serde_b64")]
        value: Vec<u8>,
    },
}

impl Op {
    /// The key this operation writes.
    pub fn key(&self) -> &str {
        match self {
            Op::Delete { key } | Op::Put { key, .. } => key,
        }
    }
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Delete { key } => write!(f, "Delete({key})"),
            Op::Put { key, value } => write!(f, "Put({key}, {} bytes)", value.len()),
        }
    }
}

/// What a precondition expects of a key when the batch is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Expect {
    /// The key must not exist.
    Absent,
    /// The key must exist and have been last written at exactly this version.
    Version(u64),
}

/// A condition checked atomically with the batch's writes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Precondition {
    pub key: String,
    pub expect: Expect,
}

/// An all-or-nothing set of writes guarded by preconditions.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub ops: Vec<Op>,
    pub preconditions: Vec<Precondition>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put.
    pub fn put(mut self, key: impl Into<String>, value: Vec<u8>) -> Self {
        self.ops.push(Op::Put { key: key.into(), value });
        self
    }

    /// Adds a delete.
    pub fn delete(mut self, key: impl Into<String>) -> Self {
        self.ops.push(Op::Delete { key: key.into() });
        self
    }

    /// Requires `key` to be absent when the batch applies.
    pub fn require_absent(mut self, key: impl Into<String>) -> Self {
        self.preconditions.push(Precondition { key: key.into(), expect: Expect::Absent });
        self
    }

    /// Requires `key` to be at `version` when the batch applies.
    pub fn require_version(mut self, key: impl Into<String>, version: u64) -> Self {
        self.preconditions.push(Precondition { key: key.into(), expect: Expect::Version(version) });
        self
    }

    /// Requires `key` to be exactly as it was read: absent (`None`) or at the given version.
    pub fn require(self, key: impl Into<String>, version: Option<u64>) -> Self {
        match version {
            None => self.require_absent(key),
            Some(v) => self.require_version(key, v),
        }
    }

    /// True when the batch writes nothing and checks nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.preconditions.is_empty()
    }
}

/// Serde helper: bytes as standard base64 (used for [`Op::Put`] values).
mod serde_b64 {
    use std::fmt;

    use base64::Engine as _;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    /// Decodes the string where the deserializer holds it (no owned copy of the text).
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Vec<u8>, E> {
                base64::engine::general_purpose::STANDARD.decode(text.as_bytes()).map_err(E::custom)
            }
        }
        d.deserialize_str(Text)
    }

    /// A base64 field read through [`deserialize`].
    pub struct Bytes(pub Vec<u8>);

    impl<'de> serde::Deserialize<'de> for Bytes {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            deserialize(d).map(Bytes)
        }
    }
}

/// Reading an [`Op`]. The derived reader of an internally tagged enum buffers every field of
/// every operation into serde's generic `Content` before choosing the variant (13 % of a
/// follower's CPU under 64 writers, most of its append-entries decoding); this one reads the
/// fields straight into place, in any order, with the derived form's refusals: an unknown,
/// repeated, missing or foreign field is an error.
mod op_de {
    use std::fmt;

    use serde::de::{Error, MapAccess, Visitor};
    use serde::{Deserialize, Deserializer};

    use super::{serde_b64, Op};

    #[derive(Deserialize)]
    #[serde(field_identifier, rename_all = "snake_case")]
    enum Field {
        Op,
        Key,
        Value,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Delete,
        Put,
    }

    impl<'de> Deserialize<'de> for Op {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(OpVisitor)
        }
    }

    struct OpVisitor;

    impl<'de> Visitor<'de> for OpVisitor {
        type Value = Op;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a storage operation")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Op, A::Error> {
            let (mut kind, mut key, mut value) = (None, None, None);
            while let Some(field) = map.next_key()? {
                match field {
                    Field::Op if kind.is_none() => kind = Some(map.next_value::<Kind>()?),
                    Field::Key if key.is_none() => key = Some(map.next_value::<String>()?),
                    Field::Value if value.is_none() => value = Some(map.next_value::<serde_b64::Bytes>()?.0),
                    Field::Op => return Err(A::Error::duplicate_field("op")),
                    Field::Key => return Err(A::Error::duplicate_field("key")),
                    Field::Value => return Err(A::Error::duplicate_field("value")),
                }
            }
            let key = key.ok_or_else(|| A::Error::missing_field("key"))?;
            match kind.ok_or_else(|| A::Error::missing_field("op"))? {
                Kind::Delete if value.is_some() => Err(A::Error::unknown_field("value", &["key"])),
                Kind::Delete => Ok(Op::Delete { key }),
                Kind::Put => {
                    Ok(Op::Put { key, value: value.ok_or_else(|| A::Error::missing_field("value"))? })
                }
            }
        }
    }
}

/// Errors of the physical layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The stored bytes could not be interpreted (damaged record, unknown format version).
    #[error("corrupt storage record at {key:?}: {reason}")]
    Corrupt { key: String, reason: String },
    /// The store failed to read or write. Durability failures never surface here: they stop
    /// the process (see [`SledStorage`]).
    #[error("storage I/O error: {0}")]
    Io(String),
    /// A key is not valid for this store (empty, or escapes a view's prefix).
    #[error("invalid storage key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    /// This node cannot write: the write must go to the leader (replicated stores only).
    #[error("node is not the leader")]
    NotLeader { leader_api_addr: Option<String> },
    /// A precondition of the batch did not hold; nothing was written.
    #[error("precondition failed on key {key:?}")]
    PreconditionFailed { key: String },
    /// A value exceeds what the store accepts in one entry.
    #[error("value for key {key:?} is {size} bytes, max: {max} bytes")]
    TooLarge { key: String, size: usize, max: usize },
    /// The store is unavailable (replicated store without quorum, shutting down).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// The untrusted physical store: ciphertext in, ciphertext out.
///
/// Implementations must pass the conformance suite, `testing::conformance` (built with the
/// `testing` feature or in this crate's tests).
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<Entry>, StorageError>;

    /// Lists the immediate children of `prefix` (which is empty or ends in `/`): the part of
    /// each key after the prefix up to and including the next `/`, sorted and deduplicated.
    /// `a/b` and `a/c/d` under prefix `a/` list as `["b", "c/"]`.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError>;

    /// Applies a batch atomically. Returns the version assigned to the batch's writes (every
    /// key the batch puts is then at this version). An empty batch of ops still checks its
    /// preconditions.
    async fn apply(&self, batch: Batch) -> Result<u64, StorageError>;
}

/// Checks that a key is usable: non-empty, no NUL, not ending in `/`.
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    if key.is_empty() {
        return Err(StorageError::InvalidKey { key: key.to_owned(), reason: "empty key" });
    }
    if key.ends_with('/') {
        return Err(StorageError::InvalidKey { key: key.to_owned(), reason: "key ends with '/'" });
    }
    if key.contains('\0') {
        return Err(StorageError::InvalidKey { key: key.to_owned(), reason: "key contains NUL" });
    }
    Ok(())
}

/// Turns a sorted iterator of full keys under `prefix` into the immediate-children listing
/// described on [`Storage::list`].
pub fn children<'a>(prefix: &str, keys: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in keys {
        let Some(rest) = key.strip_prefix(prefix) else { continue };
        if rest.is_empty() {
            continue;
        }
        let child = match rest.find('/') {
            Some(i) => &rest[..=i],
            None => rest,
        };
        if out.last().map(String::as_str) != Some(child) {
            out.push(child.to_owned());
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod serde_tests {
    use super::*;

    #[test]
    fn batches_round_trip_through_json_with_base64_values() {
        let b = Batch::new()
            .put("a/b", vec![0, 255, 7])
            .delete("c")
            .require_absent("a/b")
            .require_version("c", 9);
        let json = serde_json::to_string(&b).unwrap();
        assert!(json.contains("\"AP8H\""), "{json}");
        let back: Batch = serde_json::from_str(&json).unwrap();
        assert_eq!(back, b);
        assert!(serde_json::from_str::<Batch>(
            r#"{"ops":[{"op":"put","key":"k","value":"!"}],"preconditions":[]}"#
        )
        .is_err());
    }

    /// The reader of [`Op`] replaced serde's derived one: kept here as the reference.
    #[derive(serde::Deserialize, Debug, PartialEq)]
    #[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
    enum DerivedOp {
        Delete {
            key: String,
        },
        Put {
            key: String,
            #[serde(with = "serde_b64")]
            value: Vec<u8>,
        },
    }

    /// Every combination of tag, fields (present, missing, repeated, foreign, unknown,
    /// malformed) and order: the hand-written reader accepts exactly what the derived one
    /// accepts, and reads the same operation.
    #[test]
    fn the_operation_reader_agrees_with_the_derived_one() {
        let parts: [(&str, &str); 8] = [
            ("op", r#""put""#),
            ("op", r#""delete""#),
            ("op", r#""append""#),
            ("key", r#""k/1""#),
            ("value", r#""AP8H""#),
            ("value", r#""!!""#),
            ("other", "1"),
            ("key", "7"),
        ];
        let mut checked = 0;
        // Every sequence of up to four parts (repeats and every order included).
        let mut seqs: Vec<Vec<usize>> = vec![vec![]];
        for len in 1..=4u32 {
            for mut n in 0..parts.len().pow(len) {
                let mut seq = Vec::new();
                for _ in 0..len {
                    seq.push(n % parts.len());
                    n /= parts.len();
                }
                seqs.push(seq);
            }
        }
        for seq in &seqs {
            let body: Vec<String> =
                seq.iter().map(|&i| format!(r#""{}":{}"#, parts[i].0, parts[i].1)).collect();
            let json = format!("{{{}}}", body.join(","));
            let ours = serde_json::from_str::<Op>(&json);
            let derived = serde_json::from_str::<DerivedOp>(&json);
            match (ours, derived) {
                (Ok(Op::Delete { key }), Ok(DerivedOp::Delete { key: k })) => assert_eq!(key, k, "{json}"),
                (Ok(Op::Put { key, value }), Ok(DerivedOp::Put { key: k, value: v })) => {
                    assert_eq!((key, value), (k, v), "{json}")
                }
                (Err(_), Err(_)) => {}
                (ours, derived) => panic!("{json}: ours {ours:?}, derived {derived:?}"),
            }
            checked += 1;
        }
        assert!(checked > 4000, "{checked}");
        assert!(serde_json::from_str::<Op>(r#"[1]"#).is_err());
    }
}
