//! The Raft log's entries in append-only segment files: one `pwrite` and one `fdatasync` per
//! append, nothing else on the write path.
//!
//! Until format 2 of the log layout the entries lived in a sled tree, and every append cost
//! sled's batch machinery (its IO buffer sealed and written twice, each write handed to its
//! seven-thread pool and followed by a synchronous `sync_file_range`), a sled flush and an fsync
//! of sled's data file (`bench/RESULTS.md`, "Cluster CPU levers"). etcd, Databend and hiqlite
//! keep their Raft logs in a dedicated WAL for the same reason.
//!
//! Layout: directory `<raft dir>/wal/`, files `<first index, 20 digits>.seg`. A segment starts
//! with a header — magic `cofferwl`, format (`u32` LE, [`WAL_FORMAT`]), first index (`u64` LE) —
//! followed by frames `len (u32 LE) | record`, one per entry, of consecutive indexes. The record
//! is the log store's checksummed record (`format | CRC-32(index ‖ JSON) | JSON`, or SHA-256 in
//! format 2), so a frame moved to another position, or damaged, is refused when read.
//!
//! Durability and recovery:
//! * An append writes its frames with one `pwrite` at the end of the last segment (readable at
//!   once), then the log store `fdatasync`s the file before acknowledging. A new segment is
//!   created, its header written and synced and the directory synced before any frame goes in.
//! * Open scans every segment and verifies every record's checksum. A damaged frame is refused
//!   ([`WalError::Corrupt`]: the node does not start) unless it has the shape of a write torn
//!   by a crash — the last frame of the last segment, cut short by the end of the file or
//!   holding a zeroed 512-byte sector — which was never acknowledged and is cut off (as etcd's
//!   WAL does).
//! * Truncation cuts the file (and removes later segments) and is synced before it returns.
//!   Purging removes whole segments once the purge point (kept by the log store) covers them;
//!   entries at or below it are never read, whatever is still on disk.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Format of the segment files this build writes and reads.
pub const WAL_FORMAT: u32 = 1;
const MAGIC: &[u8; 8] = b"cofferwl";
const HEADER_LEN: u64 = 8 + 4 + 8;
const FRAME_HEADER: u64 = 4;
/// A new segment is started by the first append after the last one reached this size.
pub(crate) const SEGMENT_TARGET: u64 = 8 << 20;
/// Frames longer than this are damage, not entries (entries are capped far below).
const MAX_FRAME: u32 = 64 << 20;
const SECTOR: usize = 512;

/// What went wrong in the WAL.
#[derive(Debug)]
pub(crate) enum WalError {
    /// A file or record is damaged in a way a crash cannot explain.
    Corrupt(String),
    Io(String),
}

impl std::fmt::Display for WalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalError::Corrupt(m) | WalError::Io(m) => f.write_str(m),
        }
    }
}

fn io<'a>(what: &'a str, path: &'a Path) -> impl FnOnce(std::io::Error) -> WalError + 'a {
    move |e| WalError::Io(format!("{what} {}: {e}", path.display()))
}

/// Checks one record read from position `index` (its checksum binds it to the index).
pub(crate) type Verify = fn(u64, &[u8]) -> Result<(), String>;

struct Segment {
    path: PathBuf,
    file: Arc<File>,
    /// Offset and length of the record of index `first + i` (`first` is the map key).
    frames: Vec<(u64, u32)>,
    /// Length of the file: where the next frame goes.
    end: u64,
}

struct Inner {
    segments: BTreeMap<u64, Segment>,
    /// Entries at or below are purged: never read, removed with their segments.
    purged: Option<u64>,
}

impl Inner {
    fn last(&self) -> Option<u64> {
        self.segments
            .iter()
            .next_back()
            .and_then(|(first, s)| (s.frames.len() as u64).checked_sub(1).map(|n| first + n))
    }

    fn first(&self) -> Option<u64> {
        let first = self.segments.iter().find(|(_, s)| !s.frames.is_empty()).map(|(f, _)| *f)?;
        let floor = self.purged.map_or(0, |p| p + 1);
        let first = first.max(floor);
        (Some(first) <= self.last()).then_some(first)
    }

    /// The segment holding `index`, and the frame's position in it.
    fn locate(&self, index: u64) -> Option<(&Segment, usize)> {
        let (first, seg) = self.segments.range(..=index).next_back()?;
        let at = usize::try_from(index - first).ok()?;
        (at < seg.frames.len()).then_some((seg, at))
    }
}

/// The segment files of one node's log.
pub(crate) struct Wal {
    dir: PathBuf,
    inner: Mutex<Inner>,
    /// [`SEGMENT_TARGET`], smaller in tests.
    segment_target: u64,
}

/// A file to make durable after a write (`fdatasync`), and whether the directory changed.
pub(crate) struct ToSync {
    pub(crate) file: Option<Arc<File>>,
    pub(crate) dir: Option<PathBuf>,
}

impl ToSync {
    /// Makes the write durable (blocking).
    pub(crate) fn run(&self) -> std::io::Result<()> {
        if let Some(f) = &self.file {
            f.sync_data()?;
        }
        if let Some(d) = &self.dir {
            File::open(d)?.sync_all()?;
        }
        Ok(())
    }
}

fn segment_name(first: u64) -> String {
    format!("{first:020}.seg")
}

fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
}

/// True when the bytes hold a zeroed, sector-aligned 512-byte block (relative to `base`, the
/// bytes' offset in the file): what a write torn by a power cut leaves.
fn has_zero_sector(bytes: &[u8], base: u64) -> bool {
    let skip = usize::try_from((SECTOR as u64 - base % SECTOR as u64) % SECTOR as u64).unwrap_or(usize::MAX);
    bytes.get(skip..).is_some_and(|rest| rest.chunks_exact(SECTOR).any(|c| c.iter().all(|b| *b == 0)))
}

impl Wal {
    /// Opens (creating when absent) the WAL in `dir`. Segments wholly at or below `purged` are
    /// removed; a torn last frame is cut off (returned, for the log).
    pub(crate) fn open(
        dir: &Path,
        purged: Option<u64>,
        verify: Verify,
    ) -> Result<(Self, Option<String>), WalError> {
        coffer_storage::sled_store::create_private_dir(dir).map_err(|e| WalError::Io(e.to_string()))?;
        let mut names = Vec::new();
        for e in std::fs::read_dir(dir).map_err(io("cannot read", dir))? {
            let e = e.map_err(io("cannot read", dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            match parse_name(&name) {
                Some(first) => names.push((first, e.path())),
                None => {
                    return Err(WalError::Corrupt(format!("unexpected file {name} in {}", dir.display())))
                }
            }
        }
        names.sort();
        let mut segments = BTreeMap::new();
        let mut repaired = None;
        let count = names.len();
        for (i, (first, path)) in names.into_iter().enumerate() {
            let last_file = i + 1 == count;
            let (seg, torn) = Self::scan(&path, first, last_file, verify)?;
            if let Some(t) = torn {
                repaired = Some(t);
            }
            let Some(seg) = seg else { continue };
            let last = (seg.frames.len() as u64).checked_sub(1).map(|n| first + n);
            if purged.is_some_and(|p| last.is_some_and(|l| l <= p)) || (seg.frames.is_empty() && !last_file) {
                std::fs::remove_file(&path).map_err(io("cannot remove", &path))?;
                continue;
            }
            segments.insert(first, seg);
        }
        let inner = Mutex::new(Inner { segments, purged });
        Ok((Self { dir: dir.to_owned(), inner, segment_target: SEGMENT_TARGET }, repaired))
    }

    /// Reads one segment; `None` for a last segment whose header a crash cut short.
    fn scan(
        path: &Path,
        first: u64,
        last_file: bool,
        verify: Verify,
    ) -> Result<(Option<Segment>, Option<String>), WalError> {
        let bytes = std::fs::read(path).map_err(io("cannot read", path))?;
        let len = bytes.len() as u64;
        if len < HEADER_LEN {
            let cut_short = bytes.iter().all(|b| *b == 0) || MAGIC.starts_with(&bytes[..bytes.len().min(8)]);
            if last_file && cut_short {
                std::fs::remove_file(path).map_err(io("cannot remove", path))?;
                return Ok((None, Some(format!("removed {} (its creation was cut short)", path.display()))));
            }
            return Err(WalError::Corrupt(format!("{} is too short for a segment header", path.display())));
        }
        if &bytes[..8] != MAGIC {
            return Err(WalError::Corrupt(format!("{} is not a coffer WAL segment", path.display())));
        }
        let format = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if format != WAL_FORMAT {
            return Err(WalError::Corrupt(format!(
                "{}: WAL format {format} is not supported by this build (expected {WAL_FORMAT})",
                path.display()
            )));
        }
        let mut raw_first = [0u8; 8];
        raw_first.copy_from_slice(&bytes[12..20]);
        if u64::from_le_bytes(raw_first) != first {
            return Err(WalError::Corrupt(format!("{}: header names another first index", path.display())));
        }
        let mut frames = Vec::new();
        let mut at = HEADER_LEN;
        let mut torn = None;
        while at < len {
            let index = first + frames.len() as u64;
            let rest = &bytes[at as usize..];
            let frame_len = rest.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            let body_end = frame_len.map(|l| at + FRAME_HEADER + u64::from(l));
            let problem = match (frame_len, body_end) {
                (Some(l), Some(end)) if l > 0 && l <= MAX_FRAME && end <= len => {
                    let body = &bytes[(at + FRAME_HEADER) as usize..end as usize];
                    verify(index, body).err()
                }
                (Some(l), _) if l > MAX_FRAME || l == 0 => {
                    Some(format!("frame of entry {index} has length {l}"))
                }
                _ => Some(format!("frame of entry {index} is cut short by the end of the file")),
            };
            let Some(problem) = problem else {
                let l = frame_len.unwrap_or(0);
                frames.push((at + FRAME_HEADER, l));
                at += FRAME_HEADER + u64::from(l);
                continue;
            };
            // Torn: in the last segment, a frame cut short by the end of the file, zeros to the
            // end of the file, or the last frame holding a zeroed sector.
            let short = body_end.map_or(true, |e| e > len);
            let is_last_frame = body_end.map_or(true, |e| e >= len);
            let torn_shape =
                short || rest.iter().all(|b| *b == 0) || (is_last_frame && has_zero_sector(rest, at));
            if last_file && torn_shape {
                let file = OpenOptions::new().write(true).open(path).map_err(io("cannot open", path))?;
                file.set_len(at).map_err(io("cannot cut", path))?;
                file.sync_all().map_err(io("cannot sync", path))?;
                torn = Some(format!("cut a torn write off {} at entry {index}: {problem}", path.display()));
                break;
            }
            return Err(WalError::Corrupt(format!("{}: {problem}", path.display())));
        }
        let end = if torn.is_some() { at } else { len };
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(io("cannot open", path))?;
        Ok((Some(Segment { path: path.to_owned(), file: Arc::new(file), frames, end }), torn))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// First and last readable index (`None`: no entry above the purge point).
    pub(crate) fn bounds(&self) -> Option<(u64, u64)> {
        let inner = self.lock();
        Some((inner.first()?, inner.last()?))
    }

    /// True when no segment holds an entry (purged or not).
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().segments.values().all(|s| s.frames.is_empty())
    }

    /// The highest missing index at or above `from` below a present entry (see the log store).
    pub(crate) fn highest_gap_from(&self, from: Option<u64>) -> Option<u64> {
        let inner = self.lock();
        let mut expected = from;
        let mut gap = None;
        for (first, seg) in &inner.segments {
            if seg.frames.is_empty() {
                continue;
            }
            let last = first + seg.frames.len() as u64 - 1;
            if expected.is_some_and(|e| last < e) {
                continue;
            }
            if expected.is_some_and(|e| *first > e) {
                gap = Some(first - 1);
            }
            expected = Some(last + 1);
        }
        gap
    }

    /// The records of `start..=end` that are present and above the purge point, in order; a
    /// missing index in between ends the run (the caller sees fewer entries).
    pub(crate) fn read(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>, WalError> {
        let inner = self.lock();
        let Some(first) = inner.first() else { return Ok(Vec::new()) };
        let start = start.max(first);
        let mut out = Vec::new();
        let mut index = start;
        while index <= end {
            let Some((seg, at)) = inner.locate(index) else { break };
            for &(offset, len) in &seg.frames[at..] {
                if index > end {
                    break;
                }
                let mut buf = vec![0u8; len as usize];
                seg.file.read_exact_at(&mut buf, offset).map_err(io("cannot read", &seg.path))?;
                out.push((index, buf));
                index += 1;
            }
        }
        Ok(out)
    }

    /// Appends records of consecutive indexes after the last entry (or, when every entry
    /// present is purged, right after the purge point; with `allow_gap`, the migration of an
    /// old log with a hole, anywhere after the last entry in a new segment). Readable on
    /// return; the returned sync must run before the append is acknowledged.
    pub(crate) fn append(&self, records: &[(u64, Vec<u8>)], allow_gap: bool) -> Result<ToSync, WalError> {
        let Some(&(start, _)) = records.first() else { return Ok(ToSync { file: None, dir: None }) };
        for (i, (index, _)) in records.iter().enumerate() {
            if *index != start + i as u64 {
                return Err(WalError::Io(format!("append of non-consecutive entries at {index}")));
            }
        }
        let mut inner = self.lock();
        let last = inner.last();
        let continues = last.is_some_and(|l| start == l + 1);
        if !continues && allow_gap && last.is_some_and(|l| start > l) {
            self.new_segment(&mut inner, start)?;
        } else if !continues {
            // A fresh start: an empty log, or one whose entries are all purged (openraft's
            // storage suite also appends below the purge point then).
            let all_purged = match (last, inner.purged) {
                (None, _) => true,
                (Some(l), Some(p)) => l <= p,
                (Some(_), None) => false,
            };
            if !all_purged {
                return Err(WalError::Io(format!(
                    "append at {start} after entry {last:?} (purged up to {:?})",
                    inner.purged
                )));
            }
            // A fresh start: segments of purged entries go.
            for (_, seg) in std::mem::take(&mut inner.segments) {
                std::fs::remove_file(&seg.path).map_err(io("cannot remove", &seg.path))?;
            }
            self.new_segment(&mut inner, start)?;
        } else if inner.segments.values().next_back().is_some_and(|s| s.end >= self.segment_target) {
            self.new_segment(&mut inner, start)?;
        }
        let Some(seg) = inner.segments.values_mut().next_back() else {
            return Err(WalError::Io("no segment to append to".into()));
        };
        let total: usize = records.iter().map(|(_, r)| FRAME_HEADER as usize + r.len()).sum();
        let mut buf = Vec::with_capacity(total);
        let mut frames = Vec::with_capacity(records.len());
        for (_, r) in records {
            let len = u32::try_from(r.len())
                .ok()
                .filter(|l| *l > 0 && *l <= MAX_FRAME)
                .ok_or_else(|| WalError::Io(format!("log record of {} bytes", r.len())))?;
            buf.extend_from_slice(&len.to_le_bytes());
            frames.push((seg.end + buf.len() as u64, len));
            buf.extend_from_slice(r);
        }
        seg.file.write_all_at(&buf, seg.end).map_err(io("cannot write", &seg.path))?;
        seg.end += buf.len() as u64;
        seg.frames.extend(frames);
        // A new segment's directory entry (and any purged segment removed above) was synced
        // by `new_segment` itself: only the file is left to sync.
        Ok(ToSync { file: Some(Arc::clone(&seg.file)), dir: None })
    }

    /// Starts segment `first`: header written and synced, directory synced.
    fn new_segment(&self, inner: &mut Inner, first: u64) -> Result<(), WalError> {
        let path = self.dir.join(segment_name(first));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(io("cannot create", &path))?;
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&WAL_FORMAT.to_le_bytes());
        header.extend_from_slice(&first.to_le_bytes());
        file.write_all(&header).map_err(io("cannot write", &path))?;
        file.sync_all().map_err(io("cannot sync", &path))?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io("cannot sync", &self.dir))?;
        inner
            .segments
            .insert(first, Segment { path, file: Arc::new(file), frames: Vec::new(), end: HEADER_LEN });
        Ok(())
    }

    /// Removes the entries from `from` on. The returned sync must run before it is reported.
    pub(crate) fn truncate(&self, from: u64) -> Result<ToSync, WalError> {
        let mut inner = self.lock();
        let mut dir_changed = false;
        let later: Vec<u64> = inner.segments.range(from..).map(|(f, _)| *f).collect();
        for first in later {
            if let Some(seg) = inner.segments.remove(&first) {
                std::fs::remove_file(&seg.path).map_err(io("cannot remove", &seg.path))?;
                dir_changed = true;
            }
        }
        let mut file = None;
        if let Some((first, seg)) = inner.segments.range_mut(..from).next_back() {
            let keep = usize::try_from(from - first).unwrap_or(usize::MAX);
            if keep < seg.frames.len() {
                let cut = seg.frames[keep].0 - FRAME_HEADER;
                seg.file.set_len(cut).map_err(io("cannot cut", &seg.path))?;
                seg.frames.truncate(keep);
                seg.end = cut;
                file = Some(Arc::clone(&seg.file));
            }
        }
        Ok(ToSync { file, dir: dir_changed.then(|| self.dir.clone()) })
    }

    /// Moves the purge point to `upto` and removes the segments it wholly covers (the caller
    /// has made the purge point durable first).
    pub(crate) fn purge(&self, upto: u64) -> Result<(), WalError> {
        let mut inner = self.lock();
        inner.purged = inner.purged.max(Some(upto));
        let mut gone = Vec::new();
        let firsts: Vec<u64> = inner.segments.keys().copied().collect();
        for (i, first) in firsts.iter().enumerate() {
            // Covered when the next segment starts at or below upto + 1, or (the last one)
            // when all its entries are at or below upto.
            let covered = match firsts.get(i + 1) {
                Some(next) => *next <= upto.saturating_add(1),
                None => inner.segments.get(first).is_some_and(|s| first + s.frames.len() as u64 <= upto + 1),
            };
            if covered {
                gone.push(*first);
            }
        }
        for first in gone {
            if let Some(seg) = inner.segments.remove(&first) {
                std::fs::remove_file(&seg.path).map_err(io("cannot remove", &seg.path))?;
            }
        }
        Ok(())
    }

    /// Where the record of `index` sits: segment file, offset of its frame's length field and
    /// the record's length (tests that damage records on disk).
    #[cfg(test)]
    pub(crate) fn set_segment_target(&mut self, bytes: u64) {
        self.segment_target = bytes;
    }

    /// Number of segment files.
    #[cfg(test)]
    pub(crate) fn segment_count(&self) -> usize {
        self.lock().segments.len()
    }

    /// Writes segment `first` holding `records` (framed, unchecked) into `dir`: tests that build
    /// damaged or holed logs.
    #[cfg(test)]
    pub(crate) fn write_segment_for_test(dir: &Path, first: u64, records: &[Vec<u8>]) {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&WAL_FORMAT.to_le_bytes());
        bytes.extend_from_slice(&first.to_le_bytes());
        for r in records {
            bytes.extend_from_slice(&(r.len() as u32).to_le_bytes());
            bytes.extend_from_slice(r);
        }
        std::fs::create_dir_all(dir).expect("wal dir");
        std::fs::write(dir.join(segment_name(first)), bytes).expect("segment");
    }

    #[cfg(test)]
    pub(crate) fn frame_of(&self, index: u64) -> Option<(PathBuf, u64, u32)> {
        let inner = self.lock();
        let (seg, at) = inner.locate(index)?;
        let (offset, len) = seg.frames[at];
        Some((seg.path.clone(), offset - FRAME_HEADER, len))
    }
}
