//! The binary form of a log entry: the body of a log record of format 4 and of every entry an
//! append-entries request carries (see [`crate::log_store`] and [`crate::network`]).
//!
//! ```text
//! entry        := term u64 | leader node u64 | index u64 | payload
//! payload      := 0 (blank) | 1 command | 2 len u32 JSON(Membership)
//! command      := format u8 | timestamp_ns u64 | action
//! action       := 0 batch (write) | 1 count u32 batch* (write_many) | 2 (restore_abort)
//!               | 3 batch (restore_stage) | 4 (restore_commit)
//! batch        := count u32 op* | count u32 precondition*
//! op           := 0 text (delete) | 1 text bytes (put)
//! precondition := text (0 (absent) | 1 version u64)
//! text, bytes  := len u32 | bytes (text: UTF-8)
//! ```
//!
//! Integers are little-endian. JSON, which records of formats 1–3 hold, cost a follower 12 %
//! of its CPU under 64 writers: every value is base64 and every string is scanned for escapes;
//! here a value is one length and one copy. A membership change is rare and keeps its JSON.
//!
//! Decoding refuses (never panics on) anything that is not exactly one entry: an unknown tag,
//! a length past the end, text that is not UTF-8, bytes left over. Counts are only trusted as
//! far as the bytes left can hold that many items, so a forged count allocates nothing. What
//! decodes is the entry that was encoded: `decode(encode(e)) == e` for every entry.

use std::sync::Arc;

use coffer_storage::{Batch, Expect, Op, Precondition};
use openraft::{CommittedLeaderId, EntryPayload};

use crate::types::{Action, Command, LogEntry, LogId, TypeConfig};

const BLANK: u8 = 0;
const NORMAL: u8 = 1;
const MEMBERSHIP: u8 = 2;

const WRITE: u8 = 0;
const WRITE_MANY: u8 = 1;
const RESTORE_ABORT: u8 = 2;
const RESTORE_STAGE: u8 = 3;
const RESTORE_COMMIT: u8 = 4;

const DELETE: u8 = 0;
const PUT: u8 = 1;

const ABSENT: u8 = 0;
const VERSION: u8 = 1;

/// Appends the binary form of `entry` to `out`.
pub(crate) fn encode(entry: &LogEntry, out: &mut Vec<u8>) -> Result<(), String> {
    let id = entry.log_id;
    out.extend_from_slice(&id.leader_id.term.to_le_bytes());
    out.extend_from_slice(&id.leader_id.node_id.to_le_bytes());
    out.extend_from_slice(&id.index.to_le_bytes());
    match &entry.payload {
        EntryPayload::Blank => out.push(BLANK),
        EntryPayload::Normal(cmd) => {
            out.push(NORMAL);
            out.push(cmd.format);
            out.extend_from_slice(&cmd.timestamp_ns.to_le_bytes());
            match &*cmd.action {
                Action::Write { batch } => {
                    out.push(WRITE);
                    put_batch(out, batch)?;
                }
                Action::WriteMany { batches } => {
                    out.push(WRITE_MANY);
                    put_len(out, batches.len())?;
                    for b in batches {
                        put_batch(out, b)?;
                    }
                }
                Action::RestoreAbort => out.push(RESTORE_ABORT),
                Action::RestoreStage { batch } => {
                    out.push(RESTORE_STAGE);
                    put_batch(out, batch)?;
                }
                Action::RestoreCommit => out.push(RESTORE_COMMIT),
            }
        }
        EntryPayload::Membership(m) => {
            out.push(MEMBERSHIP);
            let json = serde_json::to_vec(m).map_err(|e| format!("cannot encode a membership: {e}"))?;
            put_bytes(out, &json)?;
        }
    }
    Ok(())
}

/// The entry `bytes` hold, or why they are not exactly one entry.
pub(crate) fn decode(bytes: &[u8]) -> Result<LogEntry, String> {
    let mut r = Reader::new(bytes);
    let term = r.u64()?;
    let node_id = r.u64()?;
    let index = r.u64()?;
    let payload = match r.u8()? {
        BLANK => EntryPayload::Blank,
        NORMAL => {
            let format = r.u8()?;
            let timestamp_ns = r.u64()?;
            let action = match r.u8()? {
                WRITE => Action::Write { batch: r.batch()? },
                WRITE_MANY => {
                    // A batch takes at least its two counts.
                    let n = r.count(8)?;
                    let mut batches = Vec::with_capacity(n);
                    for _ in 0..n {
                        batches.push(r.batch()?);
                    }
                    Action::WriteMany { batches }
                }
                RESTORE_ABORT => Action::RestoreAbort,
                RESTORE_STAGE => Action::RestoreStage { batch: r.batch()? },
                RESTORE_COMMIT => Action::RestoreCommit,
                t => return Err(format!("unknown action tag {t}")),
            };
            EntryPayload::Normal(Command { format, timestamp_ns, action: Arc::new(action) })
        }
        MEMBERSHIP => {
            let json = r.bytes()?;
            EntryPayload::Membership(
                serde_json::from_slice(json).map_err(|e| format!("undecodable membership: {e}"))?,
            )
        }
        t => return Err(format!("unknown payload tag {t}")),
    };
    if r.pos != bytes.len() {
        return Err(format!("{} bytes after the entry", bytes.len() - r.pos));
    }
    let log_id = LogId::new(CommittedLeaderId::new(term, node_id), index);
    Ok(openraft::Entry::<TypeConfig> { log_id, payload })
}

/// Appends `entry` behind its length (u32 LE), as an append-entries frame carries it.
pub(crate) fn encode_framed(entry: &LogEntry, out: &mut Vec<u8>) -> Result<(), String> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    encode(entry, out)?;
    let len = u32::try_from(out.len() - at - 4).map_err(|_| "a log entry is too large".to_owned())?;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Appends a length or count (u32 LE).
pub(crate) fn put_len(out: &mut Vec<u8>, n: usize) -> Result<(), String> {
    let n = u32::try_from(n).map_err(|_| format!("an item of {n} bytes or items is too large"))?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

/// Appends bytes behind their length (u32 LE).
pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) -> Result<(), String> {
    put_len(out, b.len())?;
    out.extend_from_slice(b);
    Ok(())
}

fn put_batch(out: &mut Vec<u8>, batch: &Batch) -> Result<(), String> {
    put_len(out, batch.ops.len())?;
    for op in &batch.ops {
        match op {
            Op::Delete { key } => {
                out.push(DELETE);
                put_bytes(out, key.as_bytes())?;
            }
            Op::Put { key, value } => {
                out.push(PUT);
                put_bytes(out, key.as_bytes())?;
                put_bytes(out, value)?;
            }
        }
    }
    put_len(out, batch.preconditions.len())?;
    for p in &batch.preconditions {
        put_bytes(out, p.key.as_bytes())?;
        match p.expect {
            Expect::Absent => out.push(ABSENT),
            Expect::Version(v) => {
                out.push(VERSION);
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    Ok(())
}

/// Reads the items of a binary form, refusing (never panicking on) a read past the end.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// The bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len()).ok_or("truncated")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u64(&mut self) -> Result<u64, String> {
        self.array().map(u64::from_le_bytes)
    }

    /// A length (u32 LE).
    pub(crate) fn len(&mut self) -> Result<usize, String> {
        usize::try_from(u32::from_le_bytes(self.array()?)).map_err(|_| "length does not fit".to_owned())
    }

    /// A count of items of at least `min` bytes each, refused when the bytes left cannot hold
    /// that many.
    pub(crate) fn count(&mut self, min: usize) -> Result<usize, String> {
        let n = self.len()?;
        if n.saturating_mul(min) > self.remaining() {
            return Err(format!("truncated ({n} items announced)"));
        }
        Ok(n)
    }

    /// Bytes after their length.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.len()?;
        self.take(n)
    }

    fn text(&mut self) -> Result<String, String> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map(str::to_owned).map_err(|_| "a key is not UTF-8".to_owned())
    }

    fn batch(&mut self) -> Result<Batch, String> {
        // An operation takes at least a tag and a length; a precondition a length and a tag.
        let n = self.count(5)?;
        let mut ops = Vec::with_capacity(n);
        for _ in 0..n {
            ops.push(match self.u8()? {
                DELETE => Op::Delete { key: self.text()? },
                PUT => {
                    let key = self.text()?;
                    Op::Put { key, value: self.bytes()?.to_vec() }
                }
                t => return Err(format!("unknown operation tag {t}")),
            });
        }
        let n = self.count(5)?;
        let mut preconditions = Vec::with_capacity(n);
        for _ in 0..n {
            let key = self.text()?;
            let expect = match self.u8()? {
                ABSENT => Expect::Absent,
                VERSION => Expect::Version(self.u64()?),
                t => return Err(format!("unknown precondition tag {t}")),
            };
            preconditions.push(Precondition { key, expect });
        }
        Ok(Batch { ops, preconditions })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn sample() -> LogEntry {
        let batch = Batch::new()
            .put("logical/a/k", vec![0, 1, 2, 255])
            .delete("logical/a/old")
            .require_version("logical/a/k", 7)
            .require_absent("logical/a/new");
        let action = Action::WriteMany { batches: vec![batch, Batch::new().put("x", Vec::new())] };
        openraft::Entry {
            log_id: LogId::new(CommittedLeaderId::new(3, 2), 41),
            payload: EntryPayload::Normal(Command::new(action, 1_765_000_000_000_000_000)),
        }
    }

    #[test]
    fn every_cut_and_every_extension_is_refused() {
        let mut bytes = Vec::new();
        encode(&sample(), &mut bytes).unwrap();
        assert_eq!(decode(&bytes).unwrap(), sample());
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "a cut at {n} of {} was accepted", bytes.len());
        }
        assert!(decode(&[&bytes[..], &[0]].concat()).unwrap_err().contains("after the entry"));
    }

    #[test]
    fn forged_counts_tags_and_text_are_refused() {
        let mut bytes = Vec::new();
        encode(&sample(), &mut bytes).unwrap();
        // log id 24 | payload 1 | format 1 | timestamp 8 | action 1 | batch count 4
        let count_at = 24 + 1 + 1 + 8 + 1;
        let mut forged = bytes.clone();
        forged[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&forged).unwrap_err().contains("items announced"));
        for (at, what) in [(24, "payload"), (24 + 1 + 1 + 8, "action"), (count_at + 4 + 4, "operation")] {
            let mut bad = bytes.clone();
            bad[at] = 9;
            assert!(decode(&bad).unwrap_err().contains(what), "tag at {at}");
        }
        // The first key's first byte made invalid UTF-8.
        let key_at = count_at + 4 + 4 + 1 + 4;
        assert_eq!(bytes[key_at], b'l');
        let mut bad = bytes;
        bad[key_at] = 0xff;
        assert!(decode(&bad).unwrap_err().contains("UTF-8"));
    }
}
