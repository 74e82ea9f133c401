//! Go's JSON forms of the asymmetric key material in a Vault key record: `*big.Int` (a JSON
//! number of any size, in decimal), `*rsa.PrivateKey` and `*rsa.PublicKey`.
//!
//! Big numbers are read and written as raw JSON numbers (serde_json's `RawValue`), never through
//! `f64`, so records and backups round-trip with Vault/OpenBao exactly; a record must therefore be
//! (de)serialized from and to bytes, not through `serde_json::Value`. Secret numbers live in
//! [`SecretBytes`]; the decimal texts and big integers met on the way are zeroized. In memory an
//! RSA private key is its PKCS#1 DER ([`RsaKeyMaterial`]); its JSON is Go's struct, CRT values
//! included.

use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{BigUint, RsaPrivateKey};
use serde::de::{Error as _, IgnoredAny};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use zeroize::{Zeroize, Zeroizing};

use coffer_storage::keys::SecretBytes;

use super::asym;

/// Reads a non-negative decimal JSON number into a big integer (zeroized when dropped).
fn read_int<'de, D: Deserializer<'de>>(d: D) -> Result<Zeroizing<BigUint>, D::Error> {
    let raw: Box<RawValue> = Deserialize::deserialize(d)?;
    let mut text: Box<str> = raw.into();
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let parsed = if digits { BigUint::parse_bytes(text.as_bytes(), 10) } else { None };
    text.zeroize();
    parsed.map(Zeroizing::new).ok_or_else(|| D::Error::custom("invalid big integer in key material"))
}

/// Writes a big integer as a decimal JSON number; the decimal text is zeroized afterwards.
fn write_int<S: Serializer>(n: &BigUint, s: S) -> Result<S::Ok, S::Error> {
    let text = Zeroizing::new(n.to_str_radix(10));
    let raw = RawValue::from_string(String::clone(&text)).map_err(S::Error::custom)?;
    let out = raw.serialize(s);
    let mut raw: Box<str> = raw.into();
    raw.zeroize();
    out
}

/// A public exponent as Go's `int` (0 when it does not fit, which no valid key has).
fn small_u64(n: &BigUint) -> u64 {
    let bytes = n.to_bytes_be();
    if bytes.len() > 8 {
        return 0;
    }
    bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// A public big integer, big-endian without leading zeros.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicInt(pub Vec<u8>);

impl Serialize for PublicInt {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        write_int(&BigUint::from_bytes_be(&self.0), s)
    }
}

impl<'de> Deserialize<'de> for PublicInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(PublicInt(read_int(d)?.to_bytes_be()))
    }
}

/// A secret big integer (big-endian) in locked memory.
pub struct SecretInt(pub SecretBytes);

impl SecretInt {
    fn from_big(n: &BigUint) -> Self {
        let bytes = Zeroizing::new(n.to_bytes_be());
        SecretInt(SecretBytes::from_slice(&bytes))
    }

    fn to_big(&self) -> Zeroizing<BigUint> {
        Zeroizing::new(BigUint::from_bytes_be(self.0.expose()))
    }
}

impl Serialize for SecretInt {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        write_int(&self.to_big(), s)
    }
}

impl<'de> Deserialize<'de> for SecretInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(SecretInt::from_big(&*read_int(d)?))
    }
}

impl std::fmt::Debug for SecretInt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Go's `rsa.PublicKey`: `{"N": <int>, "E": <int>}`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct RsaPublicParts {
    #[serde(rename = "N")]
    pub n: PublicInt,
    #[serde(rename = "E")]
    pub e: u64,
}

impl RsaPublicParts {
    /// The key as RustCrypto's type.
    pub fn key(&self) -> Result<rsa::RsaPublicKey, super::crypto::CryptoError> {
        asym::rsa_public(&self.n.0, self.e)
    }

    pub fn from_key(key: &rsa::RsaPublicKey) -> Self {
        let e = small_u64(key.e());
        RsaPublicParts { n: PublicInt(key.n().to_bytes_be()), e }
    }
}

/// Go's `rsa.PrecomputedValues` (only the fields Go marshals).
#[derive(Deserialize, Serialize)]
struct GoPrecomputed {
    #[serde(rename = "Dp", default)]
    dp: Option<SecretInt>,
    #[serde(rename = "Dq", default)]
    dq: Option<SecretInt>,
    #[serde(rename = "Qinv", default)]
    qinv: Option<SecretInt>,
    /// Go writes `[]` for two-prime keys; anything read here is recomputed.
    #[serde(rename = "CRTValues", default, serialize_with = "empty_list", deserialize_with = "ignore")]
    crt_values: (),
}

fn empty_list<S: Serializer>(_: &(), s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(std::iter::empty::<u8>())
}

fn ignore<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    IgnoredAny::deserialize(d).map(|_| ())
}

/// Go's `rsa.PrivateKey` (with the embedded public key's fields promoted).
#[derive(Deserialize, Serialize)]
struct GoRsaPrivate {
    #[serde(rename = "N")]
    n: PublicInt,
    #[serde(rename = "E")]
    e: u64,
    #[serde(rename = "D")]
    d: SecretInt,
    #[serde(rename = "Primes")]
    primes: Vec<SecretInt>,
    #[serde(rename = "Precomputed", default = "no_precomputed")]
    precomputed: GoPrecomputed,
}

fn no_precomputed() -> GoPrecomputed {
    GoPrecomputed { dp: None, dq: None, qinv: None, crt_values: () }
}

/// An RSA private key: PKCS#1 DER in locked memory; its JSON is Go's `rsa.PrivateKey`.
pub struct RsaKeyMaterial(SecretBytes);

impl RsaKeyMaterial {
    pub fn from_key(key: &RsaPrivateKey) -> Result<Self, super::crypto::CryptoError> {
        asym::rsa_to_pkcs1(key).map(RsaKeyMaterial)
    }

    /// The key as RustCrypto's type (validated; dropped and zeroized after the operation).
    pub fn key(&self) -> Result<RsaPrivateKey, super::crypto::CryptoError> {
        asym::rsa_from_pkcs1(self.0.expose())
    }

    pub fn duplicate(&self) -> Self {
        RsaKeyMaterial(self.0.duplicate())
    }
}

impl std::fmt::Debug for RsaKeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for RsaKeyMaterial {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let key = self.key().map_err(S::Error::custom)?;
        let secret = |n: Option<&BigUint>| n.map(SecretInt::from_big);
        let qinv = key.qinv().and_then(|q| q.to_biguint()).map(Zeroizing::new);
        let go = GoRsaPrivate {
            n: PublicInt(key.n().to_bytes_be()),
            e: small_u64(key.e()),
            d: SecretInt::from_big(key.d()),
            primes: key.primes().iter().map(SecretInt::from_big).collect(),
            precomputed: GoPrecomputed {
                dp: secret(key.dp()),
                dq: secret(key.dq()),
                qinv: secret(qinv.as_deref()),
                crt_values: (),
            },
        };
        go.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RsaKeyMaterial {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let go = GoRsaPrivate::deserialize(d)?;
        let primes: Vec<BigUint> = go.primes.iter().map(|p| BigUint::clone(&p.to_big())).collect();
        let key = RsaPrivateKey::from_components(
            BigUint::from_bytes_be(&go.n.0),
            BigUint::from(go.e),
            BigUint::clone(&go.d.to_big()),
            primes,
        )
        .map_err(|e| D::Error::custom(format!("invalid RSA key: {e}")))?;
        RsaKeyMaterial::from_key(&key).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Serialize)]
    struct Holder {
        x: Option<PublicInt>,
        d: Option<SecretInt>,
    }

    #[test]
    fn big_numbers_round_trip_exactly() {
        let text = r#"{"x":115792089210356248762697446949407573529996955224135760342422259061068512044369,"d":null}"#;
        let h: Holder = serde_json::from_str(text).unwrap();
        assert_eq!(h.x.as_ref().unwrap().0.len(), 32);
        assert_eq!(serde_json::to_string(&h).unwrap(), text);
        assert!(serde_json::from_str::<Holder>(r#"{"x":-1,"d":null}"#).is_err());
        assert!(serde_json::from_str::<Holder>(r#"{"x":1.5,"d":null}"#).is_err());
        assert!(serde_json::from_str::<Holder>(r#"{"x":"1","d":null}"#).is_err());
    }

    #[test]
    fn rsa_key_round_trips_as_go_json() {
        let key = asym::rsa_generate(1024).unwrap();
        let m = RsaKeyMaterial::from_key(&key).unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.starts_with(r#"{"N":"#) && json.contains(r#""CRTValues":[]"#), "{json}");
        let back: RsaKeyMaterial = serde_json::from_str(&json).unwrap();
        assert_eq!(back.key().unwrap(), key);
        assert!(!format!("{m:?}").contains(&key.d().to_string()));
    }
}
