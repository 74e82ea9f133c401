//! What the configuration file says, before validation (ripgrep's `LowArgs`).
//!
//! Every front end (TOML, HCL, JSON) is first turned into one `serde_json::Value` tree in Vault's
//! shape (labelled blocks are lists of one-key objects: `"listener": [{"tcp": {...}}]`), then
//! deserialized into these structs with `deny_unknown_fields` by the path-aware deserializer in
//! `de.rs`. Scalars are as lenient as Vault's: booleans may be written `true`, `"true"` or `1`,
//! integers as numbers or numeric strings, durations as seconds or Go durations (`"768h"`).
//! Nothing here is checked beyond its type; `mod.rs` and the block checks beside it
//! (`storage.rs`, `seal.rs`, `audit.rs`, `address.rs`) turn these into checked types.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use zeroize::Zeroizing;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub allow_audit_log_prefixing: Option<Flag>,
    pub api_addr: Option<Text>,
    /// `audit "TYPE" "PATH" { ... }` blocks, each brought into the flat form of [`RawAudit`].
    pub audit: Option<Vec<RawAudit>>,
    /// Vault's older name for `storage`.
    pub backend: Option<Vec<RawStorage>>,
    pub cluster_addr: Option<Text>,
    pub cluster_name: Option<Text>,
    pub default_lease_ttl: Option<Ttl>,
    pub disable_mlock: Option<Flag>,
    pub listener: Option<Vec<RawListener>>,
    pub log_level: Option<Text>,
    pub max_lease_ttl: Option<Ttl>,
    pub seal: Option<Vec<RawSeal>>,
    pub storage: Option<Vec<RawStorage>>,
    pub unsafe_allow_api_audit_creation: Option<Flag>,
}

/// One declared audit device (OpenBao's `audit "file" "name" { ... }`; `[[audit]]` in TOML).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    #[serde(rename = "type")]
    pub kind: Text,
    pub path: Text,
    pub description: Option<Text>,
    pub local: Option<Flag>,
    pub options: Option<BTreeMap<String, OptionValue>>,
}

/// An audit device option: Vault stores them as strings; numbers and booleans written without
/// quotes (`fsync = true`, `mode = 0600` in HCL) are taken as their text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionValue(pub String);

impl<'de> Deserialize<'de> for OptionValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = OptionValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<OptionValue, E> {
                Ok(OptionValue(s.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<OptionValue, E> {
                Ok(OptionValue(b.to_string()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<OptionValue, E> {
                Ok(OptionValue(n.to_string()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<OptionValue, E> {
                Ok(OptionValue(n.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A `storage "TYPE" { ... }` block.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawStorage {
    File(RawFileStorage),
    Inmem(RawInmemStorage),
    Raft(RawRaftStorage),
}

/// `storage "file"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFileStorage {
    pub path: Text,
}

/// `storage "inmem"` has no settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInmemStorage {}

/// `storage "raft"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRaftStorage {
    pub node_id: Option<Text>,
    pub path: Text,
    pub retry_join: Option<Vec<RawRetryJoin>>,
    /// Entries applied between snapshots (Vault's default 8192).
    pub snapshot_threshold: Option<Int>,
    /// Entries kept behind a snapshot for lagging followers (Vault's default 10000).
    pub trailing_logs: Option<Int>,
    /// coffer: leader heartbeat interval (Go duration; default 150ms).
    pub heartbeat_interval: Option<Text>,
    /// coffer: election timeout (Go duration; default 1s): the longest a follower waits
    /// without hearing from the leader before it stands for election (it stands after 80–100%
    /// of it; a candidacy that split the vote is retried after 30–50% of it).
    pub election_timeout: Option<Text>,
    /// coffer: send leader-bound requests from a standby to the leader (default true); when
    /// false, standbys answer 307 to the leader's `api_addr`.
    pub request_forwarding: Option<Flag>,
    /// coffer: `linearizable` (default: a read on any node reflects every acknowledged write)
    /// or `stale` (standbys serve reads from what they have applied).
    pub read_consistency: Option<Text>,
}

/// One `retry_join { ... }` block of `storage "raft"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetryJoin {
    pub leader_api_addr: Text,
    pub leader_ca_cert_file: Option<Text>,
    pub leader_client_cert_file: Option<Text>,
    pub leader_client_key_file: Option<Text>,
    pub leader_tls_servername: Option<Text>,
}

/// A `listener "TYPE" { ... }` block.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawListener {
    Tcp(RawTcpListener),
}

/// `listener "tcp"`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTcpListener {
    pub address: Option<Text>,
    pub cluster_address: Option<Text>,
    pub disable_unauthed_generate_root_endpoints: Option<Flag>,
    pub disable_unauthed_rekey_endpoints: Option<Flag>,
    pub http_idle_timeout: Option<Ttl>,
    pub http_read_header_timeout: Option<Ttl>,
    pub http_read_timeout: Option<Ttl>,
    pub http_write_timeout: Option<Ttl>,
    pub max_connections: Option<Int>,
    pub max_request_size: Option<Int>,
    /// Vault's `telemetry { ... }` block of a listener.
    pub telemetry: Option<RawListenerTelemetry>,
    pub tls_cert_file: Option<Text>,
    pub tls_disable: Option<Flag>,
    pub tls_handshake_timeout: Option<Ttl>,
    pub tls_key_file: Option<Text>,
    pub tls_min_version: Option<Text>,
    pub tls_require_and_verify_client_cert: Option<Flag>,
}

/// The `telemetry` block of a `tcp` listener.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListenerTelemetry {
    /// Serve `sys/metrics` on this listener without a token.
    pub unauthenticated_metrics_access: Option<Flag>,
}

/// A `seal "TYPE" { ... }` block.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawSeal {
    Static(RawStaticSeal),
}

/// OpenBao's `seal "static"`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStaticSeal {
    pub current_key: Option<SecretText>,
    pub current_key_id: Option<Text>,
    pub disabled: Option<Flag>,
    pub previous_key: Option<SecretText>,
    pub previous_key_id: Option<Text>,
}

/// A string; numbers are taken as their decimal text (HCL users write `node_id = 1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text, E> {
                Ok(Text(s.to_owned()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Text, E> {
                Ok(Text(s))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Text, E> {
                Ok(Text(n.to_string()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Text, E> {
                Ok(Text(n.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A string holding secret material or a reference to it (`env:NAME`, `file:PATH`). Zeroized
/// on drop; `Debug` is redacted; type errors never show the value.
pub struct SecretText(pub Zeroizing<String>);

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SecretText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string (env:NAME, file:PATH or the key itself)")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<SecretText, E> {
                Ok(SecretText(Zeroizing::new(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<SecretText, E> {
                Ok(SecretText(Zeroizing::new(s)))
            }
        }
        d.deserialize_any(V)
    }
}

/// A boolean as Go's `strconv.ParseBool` reads it: `true`/`false`, `1`/`0`, `"t"`, `"TRUE"`...
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean (true or false)")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Flag, E> {
                Ok(Flag(b))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Flag, E> {
                match n {
                    0 => Ok(Flag(false)),
                    1 => Ok(Flag(true)),
                    _ => Err(E::custom(format!("expected a boolean (true or false), found {n}"))),
                }
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Flag, E> {
                Err(E::custom(format!("expected a boolean (true or false), found {n}")))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Flag, E> {
                match s {
                    "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Flag(true)),
                    "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Flag(false)),
                    // Not a secret-bearing key: naming the value helps.
                    _ => Err(E::custom(format!("expected a boolean (true or false), found \"{s}\""))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A signed integer, as a number or a numeric string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Int(pub i64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Int, E> {
                i64::try_from(n).map(Int).map_err(|_| E::custom(format!("integer {n} is too large")))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Int, E> {
                Ok(Int(n))
            }
            fn visit_f64<E: de::Error>(self, x: f64) -> Result<Int, E> {
                if x.fract() == 0.0 && x.abs() < 9.0e15 {
                    Ok(Int(x as i64))
                } else {
                    Err(E::custom(format!("expected an integer, found {x}")))
                }
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Int, E> {
                s.trim()
                    .parse()
                    .map(Int)
                    .map_err(|_| E::custom(format!("expected an integer, found \"{s}\"")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration in whole seconds: a number of seconds, a numeric string, or a Go duration string
/// (`"768h"`, `"1h30m"`, `"30d"`), as Vault's `parseutil.ParseDurationSecond` reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ttl(pub u64);

impl<'de> Deserialize<'de> for Ttl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Ttl;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration (\"768h\", \"30m\" or a number of seconds)")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Ttl, E> {
                Ok(Ttl(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Ttl, E> {
                Err(E::custom(format!("cannot use negative duration {n}")))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Ttl, E> {
                crate::util::duration::parse_seconds(&serde_json::Value::String(s.to_owned()))
                    .map(Ttl)
                    .map_err(|e| E::custom(e.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::de::from_value;

    #[test]
    fn flags_accept_vault_spellings() {
        for (v, want) in [
            (json!(true), true),
            (json!(false), false),
            (json!(1), true),
            (json!(0), false),
            (json!("true"), true),
            (json!("1"), true),
            (json!("F"), false),
            (json!("FALSE"), false),
        ] {
            assert_eq!(from_value::<Flag>(v.clone(), "k").unwrap(), Flag(want), "{v}");
        }
        assert_eq!(
            from_value::<Flag>(json!("yes"), "tls_disable").unwrap_err().to_string(),
            "tls_disable: expected a boolean (true or false), found \"yes\""
        );
        assert_eq!(
            from_value::<Flag>(json!(2), "k").unwrap_err().to_string(),
            "k: expected a boolean (true or false), found 2"
        );
        assert_eq!(
            from_value::<Flag>(json!([true]), "k").unwrap_err().to_string(),
            "k: expected a boolean (true or false), found a list"
        );
    }

    #[test]
    fn ints_accept_numbers_and_numeric_strings() {
        assert_eq!(from_value::<Int>(json!(42), "k").unwrap(), Int(42));
        assert_eq!(from_value::<Int>(json!(-1), "k").unwrap(), Int(-1));
        assert_eq!(from_value::<Int>(json!("33554432"), "k").unwrap(), Int(33554432));
        assert_eq!(from_value::<Int>(json!(1024.0), "k").unwrap(), Int(1024));
        assert_eq!(
            from_value::<Int>(json!("32MiB"), "max_request_size").unwrap_err().to_string(),
            "max_request_size: expected an integer, found \"32MiB\""
        );
        assert!(from_value::<Int>(json!(1.5), "k").is_err());
        assert!(from_value::<Int>(json!(u64::MAX), "k").is_err());
    }

    #[test]
    fn ttls_accept_seconds_and_go_durations() {
        assert_eq!(from_value::<Ttl>(json!(3600), "k").unwrap(), Ttl(3600));
        assert_eq!(from_value::<Ttl>(json!("768h"), "k").unwrap(), Ttl(768 * 3600));
        assert_eq!(from_value::<Ttl>(json!("1h30m"), "k").unwrap(), Ttl(5400));
        assert_eq!(from_value::<Ttl>(json!("90"), "k").unwrap(), Ttl(90));
        assert_eq!(
            from_value::<Ttl>(json!("soon"), "max_lease_ttl").unwrap_err().to_string(),
            "max_lease_ttl: time: invalid duration \"soon\""
        );
        assert!(from_value::<Ttl>(json!(-5), "k").is_err());
        assert!(from_value::<Ttl>(json!("-5m"), "k").is_err());
    }

    #[test]
    fn text_takes_numbers_as_text() {
        assert_eq!(from_value::<Text>(json!(7), "k").unwrap(), Text("7".into()));
        assert_eq!(
            from_value::<Text>(json!(true), "node_id").unwrap_err().to_string(),
            "node_id: expected a string, found a boolean"
        );
    }

    #[test]
    fn secret_text_is_redacted_and_never_echoed() {
        let s = from_value::<SecretText>(json!("hunter2"), "k").unwrap();
        assert_eq!(format!("{s:?}"), "[redacted]");
        let e =
            from_value::<SecretText>(json!(123456789), "seal.static.current_key").unwrap_err().to_string();
        assert_eq!(
            e,
            "seal.static.current_key: expected a string (env:NAME, file:PATH or the key itself), found a number"
        );
    }

    #[test]
    fn raw_config_rejects_unknown_keys_everywhere() {
        let e = from_value::<RawConfig>(json!({"storage": [{"file": {"path": "/x", "mode": 1}}]}), "")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "storage.file.mode: unknown key");
        let e = from_value::<RawConfig>(json!({"seal": [{"static": {"current_kye": "x"}}]}), "")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "seal.static.current_kye: unknown key (did you mean `current_key`?)");
    }
}
