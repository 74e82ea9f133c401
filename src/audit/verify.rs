//! Checking an audit log.
//!
//! [`verify_device`] is the real check: the server reads its own device's file and verifies
//! every line of the current segment under the device's chain key, against the chain head it
//! keeps behind the barrier. It finds an altered line (even one whose unkeyed fields were
//! recomputed), missing lines, reordered or duplicated lines, and a truncated tail.
//!
//! [`verify_structure`] needs no key and no server: it checks that the lines parse and link to
//! each other as written. Anyone can produce a file that passes it, so it proves nothing about
//! tampering; `coffer audit verify -offline` says so.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::OpenOptionsExt;

use serde::Serialize;

use super::chain::{self, ChainKey, EarlierSegment, HeadRecord};
use super::device::Device;
use super::error::AuditError;
use super::options::SinkPath;

/// What kind of problem a verification found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A line's MAC does not verify, or it does not link to its predecessor.
    Altered,
    /// Lines are missing before a line.
    Missing,
    /// A sequence number repeats or goes back.
    Reordered,
    /// The file ends before the last line the server wrote.
    Truncated,
    /// A line is not a chained audit line at all.
    Malformed,
}

/// The first problem found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// 1-based line number in the file (the line after the last one for a truncated tail).
    pub line: u64,
    pub kind: ProblemKind,
    pub message: String,
}

/// The outcome of [`verify_device`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub file: String,
    /// Chained lines checked.
    pub lines: u64,
    /// Sequence numbers of the first and last line checked.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// The last sequence number the server had written when the check began.
    pub head_seq: Option<u64>,
    /// Bytes before the current segment (written before the device's chain began in this
    /// file; not covered by the chain).
    pub skipped_bytes: u64,
    pub problem: Option<Problem>,
    /// Segments the device wrote before the current one (other files, or this file before it
    /// was replaced).
    pub earlier: Vec<EarlierSegment>,
}

/// Verifies the file of an open device (see the module docs). Blocking: reads the whole
/// segment.
pub fn verify_device(device: &Device) -> Result<Report, AuditError> {
    let path = match &device.options().sink {
        SinkPath::File(p) => p.clone(),
        other => {
            return Err(AuditError::bad(format!(
                "audit device {} writes to {}: there is no file to verify",
                device.path(),
                other.display()
            )))
        }
    };
    // The head first: lines written while the check runs extend it.
    let head = device.head();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| AuditError::Io(format!("cannot open {:?}: {e}", path.display().to_string())))?;
    verify_file(BufReader::new(f), device.chain_key(), &device.options().prefix, &head)
        .map_err(|e| AuditError::Io(format!("cannot read {:?}: {e}", path.display().to_string())))
}

/// Verifies `reader` (a device's whole file) against `head` under `key`.
pub fn verify_file(
    mut reader: impl BufRead,
    key: &ChainKey,
    prefix: &str,
    head: &HeadRecord,
) -> std::io::Result<Report> {
    let seg = &head.segment;
    let last = head.last.as_ref().filter(|l| l.seq >= seg.start_seq);
    let mut report = Report {
        file: seg.file.clone(),
        lines: 0,
        first_seq: None,
        last_seq: None,
        head_seq: head.last.as_ref().map(|l| l.seq),
        skipped_bytes: 0,
        problem: None,
        earlier: head.earlier.clone(),
    };
    // Lines before the segment: counted, not checked.
    let mut line_no = 0u64;
    let mut before = Vec::new();
    (&mut reader).take(seg.start_offset).read_to_end(&mut before)?;
    line_no += before.iter().filter(|b| **b == b'\n').count() as u64;
    report.skipped_bytes = before.len() as u64;
    if (before.len() as u64) < seg.start_offset {
        report.problem = Some(Problem {
            line: line_no + 1,
            kind: ProblemKind::Truncated,
            message: format!(
                "the file is {} bytes long but this device's chain segment starts at byte {}: the file was truncated",
                before.len(),
                seg.start_offset
            ),
        });
        return Ok(report);
    }
    let mut expected_seq = seg.start_seq;
    let mut expected_prev = seg.start_prev.clone();
    let mut head_seen = last.is_none();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line_no += 1;
        let n = line_no;
        let mut fail = |kind, message: String| {
            report.problem = Some(Problem { line: n, kind, message });
        };
        let Some(line) = buf.strip_suffix(b"\n") else {
            if head_seen {
                // A line being written right now.
                line_no -= 1;
                break;
            }
            fail(
                ProblemKind::Truncated,
                format!("line {n} is incomplete: the file was cut in the middle of a line"),
            );
            return Ok(report);
        };
        let (link, signed) = match chain::parse_line(line, prefix) {
            Ok(x) => x,
            Err(e) => {
                fail(ProblemKind::Malformed, format!("line {n} {e}: it was altered or inserted"));
                return Ok(report);
            }
        };
        if !key.verify(signed, &link.mac) {
            fail(
                ProblemKind::Altered,
                format!("line {n} was altered: its MAC does not verify under the device's chain key"),
            );
            return Ok(report);
        }
        if link.seq > expected_seq {
            let missing = link.seq - expected_seq;
            fail(
                ProblemKind::Missing,
                format!(
                    "{missing} line(s) missing before line {n} (sequence {expected_seq}{}): they were deleted, or the file was cut here and later lines appended",
                    if missing > 1 { format!("..={}", link.seq - 1) } else { String::new() }
                ),
            );
            return Ok(report);
        }
        if link.seq < expected_seq {
            fail(
                ProblemKind::Reordered,
                format!(
                    "line {n} has sequence {} where {expected_seq} was expected: lines were duplicated or reordered",
                    link.seq
                ),
            );
            return Ok(report);
        }
        if link.prev != expected_prev {
            fail(
                ProblemKind::Altered,
                format!("line {n} does not follow from the line before it: lines were replaced"),
            );
            return Ok(report);
        }
        if let Some(l) = last {
            if link.seq == l.seq {
                if link.mac != l.mac {
                    fail(
                        ProblemKind::Altered,
                        format!("line {n} is not the line the server wrote with sequence {}", l.seq),
                    );
                    return Ok(report);
                }
                head_seen = true;
            }
        }
        report.lines += 1;
        report.first_seq.get_or_insert(link.seq);
        report.last_seq = Some(link.seq);
        expected_seq = link.seq + 1;
        expected_prev = link.mac;
    }
    if !head_seen {
        let (after, h) = (report.last_seq, last.map(|l| l.seq).unwrap_or(0));
        let missing = h + 1 - expected_seq;
        report.problem = Some(Problem {
            line: line_no + 1,
            kind: ProblemKind::Truncated,
            message: match after {
                Some(s) => format!(
                    "the file ends at sequence {s} (line {line_no}) but the server wrote up to sequence {h}: the last {missing} line(s) were removed (truncated tail)"
                ),
                None => format!(
                    "the file holds none of the {missing} line(s) (sequences {}..={h}) this device wrote to it: they were removed",
                    seg.start_seq
                ),
            },
        });
    }
    Ok(report)
}

/// The outcome of [`verify_structure`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StructureReport {
    pub lines: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// First problem: (1-based line number, description).
    pub first_error: Option<(u64, String)>,
}

/// Checks only that the lines of `reader` parse as chained lines and link to each other as
/// written (no key: see the module docs).
pub fn verify_structure(reader: impl BufRead, prefix: &str) -> std::io::Result<StructureReport> {
    let mut report = StructureReport { lines: 0, first_seq: None, last_seq: None, first_error: None };
    let mut prev: Option<chain::LineLink> = None;
    for line in reader.split(b'\n') {
        let line = line?;
        report.lines += 1;
        let n = report.lines;
        let link = match chain::parse_line(&line, prefix) {
            Ok((link, _)) => link,
            Err(e) => {
                report.first_error = Some((n, format!("line {n} {e}")));
                return Ok(report);
            }
        };
        if let Some(p) = &prev {
            if link.seq != p.seq + 1 {
                report.first_error = Some((
                    n,
                    format!(
                        "line {n} has sequence {} after sequence {}: lines are missing or reordered",
                        link.seq, p.seq
                    ),
                ));
                return Ok(report);
            }
            if link.prev != p.mac {
                report.first_error =
                    Some((n, format!("line {n} does not link to the line before it: lines were replaced")));
                return Ok(report);
            }
        }
        report.first_seq.get_or_insert(link.seq);
        report.last_seq = Some(link.seq);
        prev = Some(link);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::{seal_line, Link, Segment, GENESIS, HEAD_RECORD_VERSION};

    /// A log of `n` lines and the head that goes with it.
    fn log(key: &ChainKey, n: u64) -> (Vec<String>, HeadRecord) {
        let mut prev = GENESIS.to_owned();
        let mut lines = Vec::new();
        for seq in 0..n {
            let (line, mac) = seal_line(key, "", format!("{{\"n\":{seq}}}").as_bytes(), seq, &prev);
            lines.push(String::from_utf8(line).unwrap().trim_end().to_owned());
            prev = mac;
        }
        let head = HeadRecord {
            version: HEAD_RECORD_VERSION,
            last: (n > 0).then(|| Link { seq: n - 1, mac: prev.clone() }),
            segment: Segment {
                file: "f".into(),
                file_id: None,
                start_seq: 0,
                start_offset: 0,
                start_prev: GENESIS.into(),
            },
            earlier: Vec::new(),
        };
        (lines, head)
    }

    fn run(key: &ChainKey, lines: &[String], head: &HeadRecord) -> Option<Problem> {
        let text = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
        verify_file(text.as_bytes(), key, "", head).unwrap().problem
    }

    #[test]
    fn every_kind_of_tampering_is_found() {
        let key = ChainKey::generate().unwrap();
        let (lines, head) = log(&key, 8);
        assert_eq!(run(&key, &lines, &head), None);

        // Edited, with its chain fields "recomputed" the way an unkeyed chain would allow.
        let mut edited = lines.clone();
        edited[3] = edited[3].replace("{\"n\":3", "{\"n\":33");
        let p = run(&key, &edited, &head).unwrap();
        assert_eq!((p.line, p.kind), (4, ProblemKind::Altered), "{p:?}");

        let mut missing = lines.clone();
        missing.remove(4);
        let p = run(&key, &missing, &head).unwrap();
        assert_eq!((p.line, p.kind), (5, ProblemKind::Missing), "{p:?}");

        let mut swapped = lines.clone();
        swapped.swap(2, 3);
        assert_eq!(run(&key, &swapped, &head).unwrap().kind, ProblemKind::Missing);

        let p = run(&key, &lines[..6], &head).unwrap();
        assert_eq!((p.line, p.kind), (7, ProblemKind::Truncated), "{p:?}");
        assert!(p.message.contains("last 2 line(s)"), "{}", p.message);
        let p = run(&key, &[], &head).unwrap();
        assert_eq!(p.kind, ProblemKind::Truncated);

        let mut inserted = lines.clone();
        inserted.insert(2, "{\"type\":\"request\"}".into());
        assert_eq!(run(&key, &inserted, &head).unwrap().kind, ProblemKind::Malformed);

        // Lines of another device (another key) do not pass, even in a well-formed chain.
        let other = ChainKey::generate().unwrap();
        let (foreign, _) = log(&other, 8);
        assert_eq!(run(&key, &foreign, &head).unwrap().kind, ProblemKind::Altered);

        // Lines appended after the snapshot of the head are fine (written during the check).
        let (more, _) = log(&key, 10);
        assert_eq!(run(&key, &more, &head), None);
    }

    #[test]
    fn structure_check_cannot_tell_a_recomputed_chain() {
        let key = ChainKey::generate().unwrap();
        let (lines, _) = log(&key, 5);
        let text = lines.join("\n") + "\n";
        let r = verify_structure(text.as_bytes(), "").unwrap();
        assert_eq!((r.lines, r.first_seq, r.last_seq, r.first_error), (5, Some(0), Some(4), None));
        // The structure check sees a deleted line...
        let mut missing = lines.clone();
        missing.remove(2);
        assert_eq!(
            verify_structure((missing.join("\n") + "\n").as_bytes(), "").unwrap().first_error.unwrap().0,
            3
        );
        // ...but not a line rewritten under another key: that needs the server.
        let other = ChainKey::generate().unwrap();
        let (forged, _) = log(&other, 5);
        assert_eq!(verify_structure((forged.join("\n") + "\n").as_bytes(), "").unwrap().first_error, None);
    }
}
