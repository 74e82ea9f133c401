//! Shamir secret sharing over GF(2^8), byte-wise, in Vault's share layout.
//!
//! A share of an `n`-byte secret is `n + 1` bytes: the polynomial values for each secret byte,
//! then the x-coordinate. x-coordinates are distinct, random, never 0 (x = 0 would be the
//! secret itself). The field uses the AES polynomial (reduction constant 0x1B).
//!
//! All field arithmetic is constant-time: multiplication is a fixed 8-round shift-and-xor loop
//! with masks instead of branches, and inversion is a^254 by a fixed chain of multiplications
//! (no log/exp tables, see CVE-2023-25000). Only the public x-coordinates and share lengths
//! influence control flow.

use rand::seq::SliceRandom;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::core::error::{Error, Result};
use coffer_storage::keys::SecretBytes;

/// Errors of combining shares, with Vault's texts.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShamirError {
    #[error("less than two parts cannot be used to reconstruct the secret")]
    TooFewParts,
    #[error("all parts must be the same length")]
    UnequalLengths,
    #[error("parts must be at least two bytes")]
    TooShort,
    #[error("duplicate part detected")]
    Duplicate,
    #[error("parts cannot be less than threshold")]
    PartsBelowThreshold,
    #[error("parts cannot exceed 255")]
    TooManyParts,
    #[error("threshold must be at least 2")]
    ThresholdTooSmall,
    #[error("cannot split an empty secret")]
    EmptySecret,
    #[error("random number generator failed")]
    Rng,
}

/// Constant-time multiplication in GF(2^8) with the AES polynomial.
#[inline]
fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut r: u8 = 0;
    for _ in 0..8 {
        // mask = 0xFF if the low bit of b is set, else 0x00 — no branch on secret data.
        let mask = (b & 1).wrapping_neg();
        r ^= a & mask;
        let carry = (a >> 7).wrapping_neg();
        a = (a << 1) ^ (0x1B & carry);
        b >>= 1;
    }
    r
}

/// a^254 = a^-1 for a != 0 (and 0 for a = 0), by a fixed chain.
#[inline]
fn inv(a: u8) -> u8 {
    let a2 = mul(a, a);
    let a4 = mul(a2, a2);
    let a8 = mul(a4, a4);
    let a16 = mul(a8, a8);
    let a32 = mul(a16, a16);
    let a64 = mul(a32, a32);
    let a128 = mul(a64, a64);
    // 254 = 128 + 64 + 32 + 16 + 8 + 4 + 2
    let mut r = mul(a128, a64);
    r = mul(r, a32);
    r = mul(r, a16);
    r = mul(r, a8);
    r = mul(r, a4);
    mul(r, a2)
}

#[inline]
fn div(a: u8, b: u8) -> u8 {
    mul(a, inv(b))
}

/// Evaluates a polynomial (coefficients low to high) at x, Horner's rule.
fn eval(coeffs: &[u8], x: u8) -> u8 {
    let mut acc = 0u8;
    for &c in coeffs.iter().rev() {
        acc = mul(acc, x) ^ c;
    }
    acc
}

/// Splits `secret` into `parts` shares, any `threshold` of which reconstruct it.
pub fn split(secret: &[u8], parts: usize, threshold: usize) -> Result<Vec<SecretBytes>, ShamirError> {
    if parts < threshold {
        return Err(ShamirError::PartsBelowThreshold);
    }
    if parts > 255 {
        return Err(ShamirError::TooManyParts);
    }
    if threshold < 2 {
        return Err(ShamirError::ThresholdTooSmall);
    }
    if secret.is_empty() {
        return Err(ShamirError::EmptySecret);
    }
    let mut xs: Vec<u8> = (1..=255u8).collect();
    xs.shuffle(&mut rand::rngs::OsRng);
    let mut shares: Vec<SecretBytes> = (0..parts).map(|_| SecretBytes::zeroed(secret.len() + 1)).collect();
    for (i, share) in shares.iter_mut().enumerate() {
        share.expose_mut()[secret.len()] = xs[i];
    }
    let mut coeffs = Zeroizing::new(vec![0u8; threshold]);
    for (idx, &byte) in secret.iter().enumerate() {
        coeffs[0] = byte;
        rand::rngs::OsRng.try_fill_bytes(&mut coeffs[1..]).map_err(|_| ShamirError::Rng)?;
        for (i, share) in shares.iter_mut().enumerate() {
            share.expose_mut()[idx] = eval(&coeffs, xs[i]);
        }
    }
    Ok(shares)
}

/// Reconstructs the secret from shares (Lagrange interpolation at x = 0).
pub fn combine(parts: &[&[u8]]) -> Result<SecretBytes, ShamirError> {
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
    for i in 0..xs.len() {
        if xs[i] == 0 {
            // x = 0 would be the secret itself; no valid share has it.
            return Err(ShamirError::Duplicate);
        }
        for j in 0..i {
            if xs[i] == xs[j] {
                return Err(ShamirError::Duplicate);
            }
        }
    }
    let mut secret = SecretBytes::zeroed(len - 1);
    for idx in 0..len - 1 {
        let mut acc = 0u8;
        for (i, part) in parts.iter().enumerate() {
            // Lagrange basis at 0: prod_{j != i} x_j / (x_j - x_i); subtraction is xor.
            let mut basis = 1u8;
            for (j, &xj) in xs.iter().enumerate() {
                if i != j {
                    basis = mul(basis, div(xj, xj ^ xs[i]));
                }
            }
            acc ^= mul(part[idx], basis);
        }
        secret.expose_mut()[idx] = acc;
    }
    Ok(secret)
}

/// Decodes an operator-supplied key share: hex first, then standard base64 (Vault's order:
/// base64 is tried when hex fails or decodes to a length outside [16, 33]).
pub fn decode_share(s: &str) -> Result<SecretBytes> {
    use base64::Engine;
    let s = s.trim();
    let hex_ok = hex::decode(s).ok().filter(|b| (16..=33).contains(&b.len()));
    let bytes = match hex_ok {
        Some(b) => Zeroizing::new(b),
        None => match base64::engine::general_purpose::STANDARD.decode(s) {
            Ok(b) => Zeroizing::new(b),
            Err(_) => return Err(Error::bad("'key' must be a valid hex or base64 string")),
        },
    };
    if bytes.len() < 16 {
        return Err(Error::bad("invalid key: key is shorter than minimum 16 bytes"));
    }
    if bytes.len() > 33 {
        return Err(Error::bad("invalid key: key is longer than maximum 33 bytes"));
    }
    Ok(SecretBytes::from_slice(&bytes))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn reference_mul(a: u8, b: u8) -> u8 {
        // Textbook Russian-peasant multiplication with branches, as an oracle.
        let (mut a, mut b, mut p) = (a, b, 0u8);
        while b != 0 {
            if b & 1 != 0 {
                p ^= a;
            }
            let hi = a & 0x80;
            a <<= 1;
            if hi != 0 {
                a ^= 0x1B;
            }
            b >>= 1;
        }
        p
    }

    #[test]
    fn field_arithmetic_is_correct() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(mul(a, b), reference_mul(a, b));
            }
            if a != 0 {
                assert_eq!(mul(a, inv(a)), 1, "inverse of {a}");
            }
        }
        assert_eq!(inv(0), 0);
    }

    fn refs(shares: &[SecretBytes]) -> Vec<&[u8]> {
        shares.iter().map(|s| s.expose()).collect()
    }

    #[test]
    fn rejects_bad_parameters_and_parts() {
        assert_eq!(split(b"x", 2, 3).unwrap_err(), ShamirError::PartsBelowThreshold);
        assert_eq!(split(b"x", 256, 3).unwrap_err(), ShamirError::TooManyParts);
        assert_eq!(split(b"x", 3, 1).unwrap_err(), ShamirError::ThresholdTooSmall);
        assert_eq!(split(b"", 3, 2).unwrap_err(), ShamirError::EmptySecret);
        let s = split(&[7; 32], 5, 3).unwrap();
        let r = refs(&s);
        assert_eq!(combine(&r[..1]).unwrap_err(), ShamirError::TooFewParts);
        assert_eq!(combine(&[r[0], r[0]]).unwrap_err(), ShamirError::Duplicate);
        assert_eq!(combine(&[r[0], &r[1][..32]]).unwrap_err(), ShamirError::UnequalLengths);
        assert_eq!(combine(&[&[1u8][..], &[2u8][..]]).unwrap_err(), ShamirError::TooShort);
        assert!(s.iter().all(|sh| sh.expose()[32] != 0), "x = 0 must never be produced");
    }

    #[test]
    fn decode_share_forms() {
        let hex_share = "ab".repeat(33);
        assert_eq!(decode_share(&hex_share).unwrap().len(), 33);
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        assert_eq!(decode_share(&b64).unwrap().len(), 32);
        assert_eq!(
            decode_share("zz!").unwrap_err().to_string(),
            "'key' must be a valid hex or base64 string"
        );
        assert_eq!(
            decode_share("abcd").unwrap_err().to_string(),
            "invalid key: key is shorter than minimum 16 bytes"
        );
        let long = base64::engine::general_purpose::STANDARD.encode([1u8; 40]);
        assert_eq!(
            decode_share(&long).unwrap_err().to_string(),
            "invalid key: key is longer than maximum 33 bytes"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn any_threshold_subset_reconstructs_and_fewer_do_not(
            secret in proptest::collection::vec(any::<u8>(), 1..48),
            n in 2usize..12,
            t_off in 0usize..12,
            seed in any::<u64>(),
        ) {
            let t = 2 + t_off % (n - 1); // 2 <= t <= n
            let shares = split(&secret, n, t).unwrap();
            let mut idx: Vec<usize> = (0..n).collect();
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
            idx.shuffle(&mut rng);
            let chosen: Vec<&[u8]> = idx[..t].iter().map(|&i| shares[i].expose()).collect();
            let got = combine(&chosen).unwrap();
            prop_assert_eq!(got.expose(), &secret[..]);
            // t - 1 shares (when >= 2) must not give the secret (except with probability 2^-8
            // per byte; require at least 8 bytes to make a false pass negligible).
            if t > 2 && secret.len() >= 8 {
                let fewer: Vec<&[u8]> = idx[..t - 1].iter().map(|&i| shares[i].expose()).collect();
                let wrong = combine(&fewer).unwrap();
                prop_assert_ne!(wrong.expose(), &secret[..]);
            }
        }
    }
}
