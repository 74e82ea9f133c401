//! `shamir_combine`: key shares through Shamir combine and the share decoder.

use coffer_storage::fuzzing::{bytes_from, Structured};
use proptest::collection::vec;
use proptest::prelude::*;

use super::SUITE;
use crate::core::shamir::{combine, decode_share, split, ShamirError};

/// `input = count (mod 9) ‖ part length (mod 40) ‖ bytes`, cut into `count` parts of that
/// length (the last one short when the bytes run out).
fn parts(input: &[u8]) -> Vec<&[u8]> {
    let (count, len) = match input {
        [c, l, ..] => (usize::from(*c % 9), usize::from(*l % 40)),
        _ => (0, 0),
    };
    let mut rest = input.get(2..).unwrap_or_default();
    let mut out = Vec::new();
    for _ in 0..count {
        let take = len.min(rest.len());
        out.push(&rest[..take]);
        rest = &rest[take..];
    }
    out
}

/// Vault's rules, in Vault's order.
fn expected(parts: &[&[u8]]) -> Result<usize, ShamirError> {
    if parts.len() < 2 {
        return Err(ShamirError::TooFewParts);
    }
    let len = parts[0].len();
    if parts.iter().any(|p| p.len() != len) {
        return Err(ShamirError::UnequalLengths);
    }
    if len < 2 {
        return Err(ShamirError::TooShort);
    }
    let xs: Vec<u8> = parts.iter().map(|p| p[len - 1]).collect();
    for (i, x) in xs.iter().enumerate() {
        if *x == 0 || xs[..i].contains(x) {
            return Err(ShamirError::Duplicate);
        }
    }
    Ok(len - 1)
}

fn check(input: &[u8]) -> Result<(), String> {
    let parts = parts(input);
    let got = combine(&parts);
    match (&got, expected(&parts)) {
        (Ok(s), Ok(len)) if s.len() == len => {
            // Interpolation does not depend on the order of the shares.
            let reversed: Vec<&[u8]> = parts.iter().rev().copied().collect();
            let again = combine(&reversed).map_err(|e| e.to_string())?;
            if again.expose() != s.expose() {
                return Err("the order of the shares changed the secret".into());
            }
        }
        (Err(e), Err(want)) if *e == want => {}
        (got, want) => {
            return Err(format!(
                "combine gave {:?}, Vault's rules say {want:?}",
                got.as_ref().map(|s| s.len())
            ))
        }
    }
    // The same bytes as an operator-typed share.
    let text = String::from_utf8_lossy(input);
    match decode_share(&text) {
        Ok(s) if (16..=33).contains(&s.len()) => Ok(()),
        Ok(s) => Err(format!("decoded a share of {} bytes", s.len())),
        Err(e) => {
            let msg = e.to_string();
            let known = [
                "'key' must be a valid hex or base64 string",
                "invalid key: key is shorter",
                "invalid key: key is longer",
            ];
            if known.iter().any(|k| msg.starts_with(k)) {
                Ok(())
            } else {
                Err(format!("unexpected share error: {msg}"))
            }
        }
    }
}

#[test]
fn shamir_combine() {
    let mut t = SUITE.target("shamir_combine", 3000);
    t.replay(check);
    let n = t.cases();
    t.generate_n(n, bytes_from(t.seeds(), &[]), |b| check(b));
    // Real shares with one byte of one share damaged: the secret comes back with exactly that
    // byte wrong (a share's y values carry no integrity, the root key's AEAD catches it).
    let case = (vec(any::<u8>(), 1..34), 2usize..8, 0usize..8, any::<usize>(), any::<usize>(), 1u8..=255);
    t.generate_n(n / 4, case.prop_map(Structured), |Structured((secret, n, t_off, which, at, delta))| {
        let t = 2 + t_off % (n - 1);
        let shares = split(secret, *n, t).map_err(|e| e.to_string())?;
        let mut chosen: Vec<Vec<u8>> = shares[..t].iter().map(|s| s.expose().to_vec()).collect();
        let i = which % t;
        let b = at % secret.len();
        chosen[i][b] ^= delta;
        let refs: Vec<&[u8]> = chosen.iter().map(Vec::as_slice).collect();
        let got = combine(&refs).map_err(|e| e.to_string())?;
        let differs: Vec<usize> = (0..secret.len()).filter(|&j| got.expose()[j] != secret[j]).collect();
        if differs == [b] {
            Ok(())
        } else {
            Err(format!("damaging byte {b} of a share changed bytes {differs:?} of the secret"))
        }
    });
    t.finish();
}
