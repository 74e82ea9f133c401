//! `coffer audit verify FILE`: checks the hash chain of an audit log.

use std::io::BufRead;

use serde_json::Value;

use super::device::line_hash;
use super::GENESIS;

/// Outcome of a verification.
#[derive(Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Lines checked.
    pub lines: u64,
    /// Chains found (a new chain starts when a device opens an empty file or a foreign one).
    pub chains: u64,
    /// First problem: (1-based line number, description).
    pub first_error: Option<(u64, String)>,
}

/// Verifies every line of `reader`. `prefix` is the device's configured line prefix, if any.
pub fn verify(reader: impl BufRead, prefix: &str) -> std::io::Result<VerifyReport> {
    let mut report = VerifyReport { lines: 0, chains: 0, first_error: None };
    let mut prev_hash: Option<String> = None;
    let mut prev_seq: Option<u64> = None;
    for line in reader.split(b'\n') {
        let line = line?;
        report.lines += 1;
        let n = report.lines;
        let body = line.strip_prefix(prefix.as_bytes()).unwrap_or(&line);
        let fail = |msg: String| Some((n, msg));
        let parsed: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                report.first_error = fail(format!("line {n} is not valid JSON ({e}): the line was altered"));
                return Ok(report);
            }
        };
        let (Some(seq), Some(prev)) = (parsed["chain"]["seq"].as_u64(), parsed["chain"]["prev"].as_str())
        else {
            report.first_error =
                fail(format!("line {n} has no chain link: the line was altered or inserted"));
            return Ok(report);
        };
        if seq == 0 {
            if prev != GENESIS {
                report.first_error = fail(format!("line {n} starts a chain with a non-genesis link"));
                return Ok(report);
            }
            report.chains += 1;
        } else {
            match (&prev_hash, prev_seq) {
                (Some(h), Some(s)) => {
                    if seq != s + 1 {
                        report.first_error = fail(format!(
                            "line {n} has sequence {seq} but follows sequence {s}: {} line(s) missing before it",
                            seq.saturating_sub(s + 1)
                        ));
                        return Ok(report);
                    }
                    if prev != h {
                        report.first_error = fail(format!(
                            "line {n} does not follow from line {}: line {} was altered, or lines between them are missing",
                            n - 1,
                            n - 1
                        ));
                        return Ok(report);
                    }
                }
                _ => {
                    report.first_error = fail(format!(
                        "line {n} continues a chain (sequence {seq}) whose earlier lines are missing"
                    ));
                    return Ok(report);
                }
            }
        }
        prev_hash = Some(line_hash(&line));
        prev_seq = Some(seq);
    }
    Ok(report)
}
