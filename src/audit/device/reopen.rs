//! Reopening a device's file at unseal: where the chain continues (see the module docs of
//! [`device`](super)).
//!
//! A file that still holds the device's segment continues after the stored head, or after the
//! lines beyond it that authentically extend it (their MACs verify and they chain); an
//! incomplete last line is cut off. A file that ends before the stored head, or whose head line
//! differs, is reported in the log and left as it is for `coffer audit verify`. A replaced file
//! (rotated, or deleted and recreated: another inode) or another sink starts a new segment, and
//! the old one is remembered in the head record (at most [`EARLIER_SEGMENTS`]).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use super::Sink;
use crate::audit::chain::{self, ChainKey, HeadRecord, Link, Segment, GENESIS, HEAD_RECORD_VERSION};
use crate::audit::error::AuditError;
use crate::audit::options::{FileOptions, SinkPath};
use crate::util::timefmt::rfc3339_nano;

/// Earlier segments remembered in the head record.
const EARLIER_SEGMENTS: usize = 16;

/// Opens the sink of the device at `device_path` and works out the head its next line extends
/// (from `stored_head`, the head behind the barrier, if any).
pub(super) fn resume(
    device_path: &str,
    opts: &FileOptions,
    key: &ChainKey,
    stored_head: Option<&HeadRecord>,
) -> Result<(Sink, HeadRecord), AuditError> {
    let sink_name = opts.sink.display();
    let mut head = stored_head.cloned().unwrap_or_else(|| HeadRecord {
        version: HEAD_RECORD_VERSION,
        last: None,
        segment: Segment {
            file: sink_name.clone(),
            file_id: None,
            start_seq: 0,
            start_offset: 0,
            start_prev: GENESIS.into(),
        },
        earlier: Vec::new(),
    });
    let p = match &opts.sink {
        SinkPath::Discard | SinkPath::Stdout => {
            if stored_head.is_some_and(|h| h.segment.file != sink_name) {
                start_segment(&mut head, &sink_name, 0, Some("the device now writes elsewhere"));
            }
            let sink = if opts.sink == SinkPath::Stdout { Sink::Stdout } else { Sink::Discard };
            return Ok((sink, head));
        }
        SinkPath::File(p) => p,
    };
    let mut f = open_file(p, opts.mode)?;
    let len = f.seek(SeekFrom::End(0)).map_err(|e| io_err(p, "cannot read", e))?;
    let id = file_id(&f).map_err(|e| io_err(p, "cannot read", e))?;
    let same_path = stored_head.is_some_and(|h| h.segment.file == sink_name);
    // The same file as before, unless it was replaced (rotated, or deleted and recreated): then
    // its inode differs.
    let present = same_path && head.segment.file_id.as_deref().is_none_or(|s| s == id);
    if present {
        match recover_tail(&mut f, &head, len, key, &opts.prefix).map_err(|e| io_err(p, "cannot read", e))? {
            Tail::Continue { last, extra, len: end } => {
                if extra > 0 {
                    tracing::info!(device = %device_path, lines = extra, "audit log lines written after the last stored chain head verify; continuing after them");
                }
                if end < len {
                    tracing::warn!(device = %device_path, bytes = len - end, "removing an incomplete last line (an interrupted write) from the audit file");
                    f.set_len(end).map_err(|e| io_err(p, "cannot truncate", e))?;
                }
                head.last = last;
            }
            Tail::Damaged(reason) => {
                tracing::error!(device = %device_path, file = %sink_name, "audit file damaged: {reason}; continuing the chain from the stored head (coffer audit verify will report it)");
                if !ends_with_newline(&mut f, len).map_err(|e| io_err(p, "cannot read", e))? {
                    f.write_all(b"\n").map_err(|e| io_err(p, "cannot write", e))?;
                }
            }
        }
    } else {
        let mut offset = len;
        if !ends_with_newline(&mut f, len).map_err(|e| io_err(p, "cannot read", e))? {
            f.write_all(b"\n").map_err(|e| io_err(p, "cannot write", e))?;
            offset += 1;
        }
        let reason = if same_path {
            tracing::warn!(device = %device_path, file = %sink_name, "the audit file was replaced (rotated, or deleted and recreated); starting a new chain segment in it");
            Some("the file was replaced (rotated, or deleted and recreated) while the server was down")
        } else if stored_head.is_some() {
            Some("the device now writes to another file")
        } else {
            None
        };
        start_segment(&mut head, &sink_name, offset, reason);
        head.segment.file_id = Some(id);
    }
    Ok((Sink::File(f), head))
}

/// Starts a new segment in `file` at `offset`, after the head's last line. With a `reason`, the
/// segment being left is remembered (if it holds any line).
fn start_segment(head: &mut HeadRecord, file: &str, offset: u64, reason: Option<&str>) {
    let (seq, prev) = head.next();
    if let (Some(reason), Some(last)) = (reason, &head.last) {
        if last.seq >= head.segment.start_seq {
            head.earlier.push(chain::EarlierSegment {
                file: head.segment.file.clone(),
                first_seq: head.segment.start_seq,
                last_seq: last.seq,
                reason: reason.to_owned(),
                noticed: rfc3339_nano(coffer_storage::clock::now()),
            });
            let n = head.earlier.len();
            if n > EARLIER_SEGMENTS {
                head.earlier.drain(..n - EARLIER_SEGMENTS);
            }
        }
    }
    head.segment = Segment {
        file: file.to_owned(),
        file_id: None,
        start_seq: seq,
        start_offset: offset,
        start_prev: prev,
    };
}

/// A line of the file as the reopen scan sees it.
struct ScannedLine {
    /// Offset just past the line's newline.
    end: u64,
    /// The link, if the line is a chained line whose MAC verifies under the device's key.
    link: Option<chain::LineLink>,
}

/// Reads the complete lines of `f` in `[from, to)`; a partial first line (when `from` is not a
/// line start) is the caller's concern. Returns the lines and the offset after the last
/// complete one.
fn scan(f: &mut File, from: u64, to: u64, key: &ChainKey, prefix: &str) -> std::io::Result<Vec<ScannedLine>> {
    let mut buf = Vec::new();
    f.seek(SeekFrom::Start(from))?;
    f.take(to.saturating_sub(from)).read_to_end(&mut buf)?;
    let mut out = Vec::new();
    let mut pos = 0usize;
    while let Some(nl) = buf[pos..].iter().position(|b| *b == b'\n') {
        let line = &buf[pos..pos + nl];
        let link = chain::parse_line(line, prefix)
            .ok()
            .and_then(|(link, signed)| key.verify(signed, &link.mac).then_some(link));
        pos += nl + 1;
        out.push(ScannedLine { end: from + pos as u64, link });
    }
    Ok(out)
}

/// How the file relates to the stored head of its segment.
enum Tail {
    /// The file ends at the stored head or authentically extends it; continue after `last`
    /// (or from the segment start when `last` is `None`), truncating a partial line at `len`.
    Continue { last: Option<Link>, extra: u64, len: u64 },
    /// The file does not hold the stored head (truncated or altered); the reason is logged.
    Damaged(String),
}

/// Finds where the chain continues in a file that still holds the segment (see module docs).
fn recover_tail(
    f: &mut File,
    head: &HeadRecord,
    file_len: u64,
    key: &ChainKey,
    prefix: &str,
) -> std::io::Result<Tail> {
    let seg = &head.segment;
    // The line the scan must find: the stored head, or nothing (an empty segment).
    let anchor = head.last.as_ref().filter(|l| l.seq >= seg.start_seq);
    let mut window: u64 = 1 << 20;
    let lines = loop {
        let begin = file_len.saturating_sub(window).max(seg.start_offset);
        let mut lines = scan(f, begin, file_len, key, prefix)?;
        if begin > seg.start_offset && !lines.is_empty() {
            // The first "line" may be the end of a longer one.
            lines.remove(0);
        }
        let reached = begin == seg.start_offset
            || anchor.is_some_and(|a| lines.iter().filter_map(|l| l.link.as_ref()).any(|l| l.seq <= a.seq));
        if reached {
            break lines;
        }
        window = window.saturating_mul(4);
    };
    let (mut expected_seq, mut prev, mut idx) = match anchor {
        None => (seg.start_seq, seg.start_prev.clone(), 0usize),
        Some(a) => {
            let Some(i) = lines.iter().position(|l| l.link.as_ref().is_some_and(|k| k.seq == a.seq)) else {
                return Ok(Tail::Damaged(format!(
                    "the file does not contain the last line the server wrote (sequence {}): it was truncated or altered",
                    a.seq
                )));
            };
            if lines[i].link.as_ref().map(|k| k.mac.as_str()) != Some(a.mac.as_str()) {
                return Ok(Tail::Damaged(format!(
                    "the line with sequence {} is not the one the server wrote",
                    a.seq
                )));
            }
            (a.seq + 1, a.mac.clone(), i + 1)
        }
    };
    let mut last = anchor.cloned();
    let mut end = match anchor {
        None => seg.start_offset,
        Some(_) => lines[idx - 1].end,
    };
    let mut extra = 0;
    while let Some(l) = lines.get(idx) {
        match &l.link {
            Some(k) if k.seq == expected_seq && k.prev == prev => {
                last = Some(Link { seq: k.seq, mac: k.mac.clone() });
                prev = k.mac.clone();
                expected_seq += 1;
                end = l.end;
                extra += 1;
                idx += 1;
            }
            _ => break,
        }
    }
    if idx < lines.len() {
        return Ok(Tail::Damaged(format!(
            "{} line(s) after sequence {} do not extend the chain",
            lines.len() - idx,
            expected_seq.saturating_sub(1)
        )));
    }
    Ok(Tail::Continue { last, extra, len: end })
}

/// `device:inode` of an open file, to tell a file from its replacement.
fn file_id(f: &File) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata()?;
    Ok(format!("{}:{}", m.dev(), m.ino()))
}

fn ends_with_newline(f: &mut File, len: u64) -> std::io::Result<bool> {
    if len == 0 {
        return Ok(true);
    }
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(len - 1))?;
    f.read_exact(&mut b)?;
    Ok(b[0] == b'\n')
}

fn io_err(p: &std::path::Path, what: &str, e: std::io::Error) -> AuditError {
    AuditError::Io(format!("{what} {:?}: {e}", p.display().to_string()))
}

/// Opens the file sink: a regular, non-executable file, never through a symbolic link.
fn open_file(p: &std::path::Path, mode: u32) -> Result<File, AuditError> {
    if let Ok(meta) = std::fs::symlink_metadata(p) {
        if !meta.file_type().is_file() {
            return Err(AuditError::invalid(
                "options.file_path",
                format!("audit file path {:?} exists and is not a regular file", p.display().to_string()),
            ));
        }
        if meta.permissions().mode() & 0o111 != 0 {
            return Err(AuditError::invalid(
                "options.file_path",
                format!("audit file {:?} is executable; refusing to write to it", p.display().to_string()),
            ));
        }
    }
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(p)
        .map_err(|e| io_err(p, "sanity check failed; unable to open", e))
}
