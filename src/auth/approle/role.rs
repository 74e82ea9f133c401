//! AppRole roles: the stored record, parsing of role writes, and the read shape.
//!
//! A write body is parsed once into a [`RoleUpdate`] (type conversions, Vault's framework
//! errors), then applied to the existing or a new [`RoleEntry`] in Vault's order, so that the
//! first error a client sees is the one Vault would report.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::cidr;
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::token::sanitize_policies;
use crate::util::duration::{self, format_go_seconds};

/// Format version of stored roles.
pub const ROLE_VERSION: u8 = 1;

/// Longest role name (and secret ID) Vault accepts: its HMAC input limit.
pub const MAX_HMAC_INPUT: usize = 4096;

/// `at least one constraint should be enabled on the role`.
pub const NO_CONSTRAINT: &str = "at least one constraint should be enabled on the role";

/// The token type a role asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleTokenType {
    Batch,
    /// Whatever the mount's `token_type` says (service unless `default-batch`).
    #[default]
    Default,
    Service,
}

impl RoleTokenType {
    /// Vault's string form (`data.token_type`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Batch => "batch",
            Self::Default => "default",
            Self::Service => "service",
        }
    }

    /// The type of token to issue under a mount whose `token_type` tune is `mount`.
    pub fn resolve(self, mount: Option<&str>) -> &'static str {
        match (mount.unwrap_or("default-service"), self) {
            ("service", _) => "service",
            ("batch", _) => "batch",
            (_, Self::Batch) => "batch",
            (_, Self::Service) => "service",
            ("default-batch", Self::Default) => "batch",
            (_, Self::Default) => "service",
        }
    }
}

/// A stored role. Keyed by its lower-case name; `id` is an internal random identifier that
/// scopes the role's secret IDs, so a role deleted and created again never sees old secret IDs.
#[derive(Clone, Serialize, Deserialize)]
pub struct RoleEntry {
    /// Format version ([`ROLE_VERSION`]).
    pub v: u8,
    pub id: String,
    pub name: String,
    pub role_id: String,
    pub bind_secret_id: bool,
    pub secret_id_bound_cidrs: Vec<String>,
    pub secret_id_num_uses: u64,
    /// Seconds; 0 = secret IDs never expire.
    pub secret_id_ttl: u64,
    pub local_secret_ids: bool,
    /// Display form (bare address for a host).
    pub token_bound_cidrs: Vec<String>,
    pub token_explicit_max_ttl: u64,
    pub token_max_ttl: u64,
    pub token_no_default_policy: bool,
    pub token_num_uses: u64,
    pub token_period: u64,
    pub token_policies: Vec<String>,
    pub token_type: RoleTokenType,
    pub token_ttl: u64,
    #[serde(default)]
    pub token_strictly_bind_ip: bool,
    /// Deprecated `policies`, shown on reads only when set.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Deprecated `period`, shown on reads only when set.
    #[serde(default)]
    pub period: u64,
}

impl std::fmt::Debug for RoleEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The role ID is a login credential: keep it out of debug output.
        f.debug_struct("RoleEntry").field("name", &self.name).finish_non_exhaustive()
    }
}

impl RoleEntry {
    /// A new role with Vault's defaults; `id` and `role_id` are filled by the caller.
    pub fn new(name: &str, id: String) -> Self {
        Self {
            v: ROLE_VERSION,
            id,
            name: name.to_owned(),
            role_id: String::new(),
            bind_secret_id: true,
            secret_id_bound_cidrs: Vec::new(),
            secret_id_num_uses: 0,
            secret_id_ttl: 0,
            local_secret_ids: false,
            token_bound_cidrs: Vec::new(),
            token_explicit_max_ttl: 0,
            token_max_ttl: 0,
            token_no_default_policy: false,
            token_num_uses: 0,
            token_period: 0,
            token_policies: Vec::new(),
            token_type: RoleTokenType::Default,
            token_ttl: 0,
            token_strictly_bind_ip: false,
            policies: Vec::new(),
            period: 0,
        }
    }

    /// Vault's `validateRoleConstraints`.
    pub fn check_constraints(&self) -> Result<()> {
        if self.bind_secret_id || !self.secret_id_bound_cidrs.is_empty() || !self.token_bound_cidrs.is_empty()
        {
            Ok(())
        } else {
            Err(Error::bad(NO_CONSTRAINT))
        }
    }

    /// The `data` of `GET role/<name>`.
    pub fn read_data(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("bind_secret_id".into(), json!(self.bind_secret_id));
        m.insert("local_secret_ids".into(), json!(self.local_secret_ids));
        m.insert("secret_id_bound_cidrs".into(), list_or_null(&self.secret_id_bound_cidrs));
        m.insert("secret_id_num_uses".into(), json!(self.secret_id_num_uses));
        m.insert("secret_id_ttl".into(), json!(self.secret_id_ttl));
        // vaultrs needs lists here, never null.
        m.insert("token_bound_cidrs".into(), json!(self.token_bound_cidrs));
        m.insert("token_explicit_max_ttl".into(), json!(self.token_explicit_max_ttl));
        m.insert("token_max_ttl".into(), json!(self.token_max_ttl));
        m.insert("token_no_default_policy".into(), json!(self.token_no_default_policy));
        m.insert("token_num_uses".into(), json!(self.token_num_uses));
        m.insert("token_period".into(), json!(self.token_period));
        m.insert("token_policies".into(), json!(self.token_policies));
        m.insert("token_strictly_bind_ip".into(), json!(self.token_strictly_bind_ip));
        m.insert("token_ttl".into(), json!(self.token_ttl));
        m.insert("token_type".into(), json!(self.token_type.as_str()));
        if self.period != 0 {
            m.insert("period".into(), json!(self.period));
        }
        if !self.policies.is_empty() {
            m.insert("policies".into(), json!(self.policies));
        }
        m
    }
}

/// A JSON list, or `null` when empty (Vault's nil slices).
pub fn list_or_null(v: &[String]) -> Value {
    if v.is_empty() {
        Value::Null
    } else {
        json!(v)
    }
}

/// Vault's framework error for a negative duration (the value in seconds).
fn negative(key: &str, secs: i64) -> Error {
    Error::bad(format!(
        "Field validation failed: error converting input for field \"{key}\": cannot provide negative value '{secs}'"
    ))
}

/// Vault reports conversion errors of the main role endpoint without the framework's
/// `Field validation failed: ` prefix (its single-field endpoints keep it).
fn unprefixed(e: Error) -> Error {
    match e {
        Error::BadRequest(m) => match m.strip_prefix("Field validation failed: ") {
            Some(rest) => Error::BadRequest(rest.to_owned()),
            None => Error::BadRequest(m),
        },
        other => other,
    }
}

/// A signed duration field in seconds.
pub fn signed_duration(data: &Map<String, Value>, key: &str) -> Result<Option<i64>> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => duration::parse_seconds_signed(v).map(Some).map_err(|e| {
            Error::bad(format!("Field validation failed: error converting input for field \"{key}\": {e}"))
        }),
    }
}

/// A non-negative duration field in seconds; negatives give Vault's framework error.
pub fn duration_field(data: &Map<String, Value>, key: &str) -> Result<Option<u64>> {
    match signed_duration(data, key)? {
        None => Ok(None),
        Some(s) if s < 0 => Err(negative(key, s)),
        Some(s) => Ok(Some(s as u64)),
    }
}

/// Vault's `policyutil.ParsePolicies`: trim, lower-case, drop empties, `root` alone, sort, dedupe.
pub fn parse_policies(list: &[String]) -> Vec<String> {
    sanitize_policies(list, false)
}

/// A `'<key>' cannot be negative` check (Vault's tokenutil wording).
fn non_negative(key: &str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::bad(format!("'{key}' cannot be negative")))
}

/// A parsed role write body. `None` = the field was not sent. No `Debug`: it may carry a role ID.
#[derive(Default)]
pub struct RoleUpdate {
    pub bind_secret_id: Option<bool>,
    /// `secret_id_bound_cidrs`, else the deprecated `bound_cidr_list`.
    pub secret_id_bound_cidrs: Option<Vec<String>>,
    pub secret_id_num_uses: Option<i64>,
    pub secret_id_ttl: Option<u64>,
    pub local_secret_ids: Option<bool>,
    pub role_id: Option<String>,
    pub token_bound_cidrs: Option<Vec<String>>,
    pub token_explicit_max_ttl: Option<i64>,
    pub token_max_ttl: Option<i64>,
    pub token_no_default_policy: Option<bool>,
    pub token_num_uses: Option<i64>,
    pub token_period: Option<i64>,
    pub token_policies: Option<Vec<String>>,
    pub token_type: Option<String>,
    pub token_ttl: Option<i64>,
    pub token_strictly_bind_ip: Option<bool>,
    pub policies: Option<Vec<String>>,
    pub period: Option<u64>,
}

impl RoleUpdate {
    /// Parses a request body. Unknown keys (hvac's `enable_local_secret_ids`) are ignored.
    pub fn parse(d: &Map<String, Value>) -> Result<Self> {
        Self::parse_fields(d).map_err(unprefixed)
    }

    fn parse_fields(d: &Map<String, Value>) -> Result<Self> {
        let secret_id_bound_cidrs = match fields::comma_strings(d, "secret_id_bound_cidrs")? {
            Some(v) => Some(v),
            None => fields::comma_strings(d, "bound_cidr_list")?,
        };
        Ok(Self {
            bind_secret_id: fields::boolean(d, "bind_secret_id")?,
            secret_id_bound_cidrs,
            secret_id_num_uses: fields::int(d, "secret_id_num_uses")?,
            secret_id_ttl: duration_field(d, "secret_id_ttl")?,
            local_secret_ids: fields::boolean(d, "local_secret_ids")?,
            role_id: fields::string(d, "role_id")?,
            token_bound_cidrs: fields::comma_strings(d, "token_bound_cidrs")?,
            token_explicit_max_ttl: signed_duration(d, "token_explicit_max_ttl")?,
            token_max_ttl: signed_duration(d, "token_max_ttl")?,
            token_no_default_policy: fields::boolean(d, "token_no_default_policy")?,
            token_num_uses: fields::int(d, "token_num_uses")?,
            token_period: signed_duration(d, "token_period")?,
            token_policies: fields::comma_strings(d, "token_policies")?,
            token_type: fields::string(d, "token_type")?,
            token_ttl: signed_duration(d, "token_ttl")?,
            token_strictly_bind_ip: fields::boolean(d, "token_strictly_bind_ip")?,
            policies: fields::comma_strings(d, "policies")?,
            period: duration_field(d, "period")?,
        })
    }

    /// Applies the update to `role` in Vault's order (`pathRoleCreateUpdate`). `mount_max` is the
    /// mount's maximum lease TTL in seconds. Returns the response warnings. The caller generates
    /// a role ID on create when none was given, then checks constraints and uniqueness.
    pub fn apply(self, role: &mut RoleEntry, create: bool, mount_max: u64) -> Result<Vec<String>> {
        let mut warnings = Vec::new();
        // Backwards compatibility: the `default-*` mount types are accepted on roles.
        let token_type = self.token_type.map(|t| match t.as_str() {
            "default-service" => {
                warnings.push("default-service has no useful meaning; adjusting to service".to_owned());
                "service".to_owned()
            }
            "default-batch" => {
                warnings.push("default-batch has no useful meaning; adjusting to batch".to_owned());
                "batch".to_owned()
            }
            _ => t,
        });

        // tokenutil.ParseTokenFields
        if let Some(raw) = &self.token_bound_cidrs {
            role.token_bound_cidrs = raw.iter().map(|s| cidr::parse_addr(s)).collect::<Result<_, _>>()?;
        }
        if let Some(v) = self.token_explicit_max_ttl {
            role.token_explicit_max_ttl = non_negative("token_explicit_max_ttl", v)?;
        }
        if let Some(v) = self.token_max_ttl {
            role.token_max_ttl = non_negative("token_max_ttl", v)?;
        }
        if let Some(v) = self.token_no_default_policy {
            role.token_no_default_policy = v;
        }
        if let Some(v) = self.token_period {
            role.token_period = non_negative("token_period", v)?;
        }
        if let Some(v) = &self.token_policies {
            role.token_policies = v.clone();
        }
        if let Some(t) = token_type {
            role.token_type = match t.as_str() {
                "" | "default" => RoleTokenType::Default,
                "service" => RoleTokenType::Service,
                "batch" => RoleTokenType::Batch,
                _ => return Err(Error::bad(format!("invalid 'token_type' value {t:?}"))),
            };
        }
        if let Some(v) = self.token_num_uses {
            role.token_num_uses = non_negative("token_num_uses", v)?;
        }
        if role.token_type == RoleTokenType::Batch {
            if role.token_period != 0 {
                return Err(Error::bad(
                    "'token_type' cannot be 'batch' or 'default_batch' when set to generate periodic tokens",
                ));
            }
            if role.token_num_uses != 0 {
                return Err(Error::bad(
                    "'token_type' cannot be 'batch' or 'default_batch' when set to generate tokens with limited use count",
                ));
            }
        }
        if let Some(v) = self.token_ttl {
            role.token_ttl = non_negative("token_ttl", v)?;
        }
        if role.token_ttl > 0 && role.token_max_ttl > 0 && role.token_ttl > role.token_max_ttl {
            return Err(Error::bad("'token_ttl' cannot be greater than 'token_max_ttl'"));
        }
        if let Some(v) = self.token_strictly_bind_ip {
            role.token_strictly_bind_ip = v;
        }

        if let Some(v) = self.local_secret_ids {
            if !create {
                return Err(Error::bad("local_secret_ids can only be modified during role creation"));
            }
            role.local_secret_ids = v;
        }
        if let Some(v) = self.role_id {
            role.role_id = v;
        }
        if let Some(v) = self.bind_secret_id {
            role.bind_secret_id = v;
        }
        if let Some(v) = self.secret_id_bound_cidrs {
            role.secret_id_bound_cidrs = v;
        }
        if !role.secret_id_bound_cidrs.is_empty() {
            cidr::validate_blocks(&role.secret_id_bound_cidrs)
                .map_err(|e| Error::bad(format!("failed to validate CIDR blocks: {e}")))?;
        }
        if let Some(v) = self.secret_id_num_uses {
            role.secret_id_num_uses =
                u64::try_from(v).map_err(|_| Error::bad("secret_id_num_uses cannot be negative"))?;
        }
        if let Some(v) = self.secret_id_ttl {
            role.secret_id_ttl = v;
        }

        // tokenutil.UpgradeValue for the deprecated aliases.
        match (&self.token_policies, self.policies) {
            (None, Some(p)) => {
                role.policies = parse_policies(&p);
                role.token_policies = role.policies.clone();
            }
            (Some(_), Some(_)) => role.policies = role.token_policies.clone(),
            (Some(_), None) => role.policies = Vec::new(),
            (None, None) => {}
        }
        match (self.token_period, self.period) {
            (None, Some(p)) => {
                role.period = p;
                role.token_period = p;
            }
            (Some(_), Some(_)) => role.period = role.token_period,
            (Some(_), None) => role.period = 0,
            (None, None) => {}
        }
        if role.period > mount_max {
            return Err(period_too_long(role.period, mount_max));
        }
        if role.token_max_ttl > mount_max {
            warnings.push(
                "token_max_ttl is greater than the backend mount's maximum TTL value; issued tokens' max TTL value will be truncated"
                    .to_owned(),
            );
        }
        Ok(warnings)
    }
}

/// `period of "…" is greater than the backend's maximum lease TTL of "…"`.
pub fn period_too_long(period: u64, max: u64) -> Error {
    Error::bad(format!(
        "period of {:?} is greater than the backend's maximum lease TTL of {:?}",
        format_go_seconds(i64::try_from(period).unwrap_or(i64::MAX)),
        format_go_seconds(i64::try_from(max).unwrap_or(i64::MAX))
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const MAX: u64 = 768 * 3600;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn create(v: Value) -> Result<(RoleEntry, Vec<String>)> {
        let mut r = RoleEntry::new("r", "id".into());
        let w = RoleUpdate::parse(&body(v))?.apply(&mut r, true, MAX)?;
        Ok((r, w))
    }

    fn err(v: Value) -> String {
        create(v).unwrap_err().to_string()
    }

    #[test]
    fn defaults_and_read_shape() {
        let (r, w) = create(json!({})).unwrap();
        assert!(w.is_empty());
        let d = r.read_data();
        assert_eq!(d["bind_secret_id"], true);
        assert_eq!(d["token_type"], "default");
        assert_eq!(d["token_policies"], json!([]));
        assert_eq!(d["token_bound_cidrs"], json!([]));
        assert_eq!(d["secret_id_bound_cidrs"], Value::Null);
        assert!(!d.contains_key("period") && !d.contains_key("policies"));
        assert!(r.check_constraints().is_ok());
    }

    #[test]
    fn hvac_comma_strings_and_aliases() {
        let (r, _) = create(json!({"token_policies": "b, a", "token_ttl": "1h", "token_max_ttl": 7200,
                                   "secret_id_bound_cidrs": "10.0.0.0/8,127.0.0.1/32",
                                   "token_bound_cidrs": "127.0.0.1,10.0.0.0/8",
                                   "enable_local_secret_ids": false}))
        .unwrap();
        assert_eq!(r.token_policies, vec!["b", "a"]);
        assert_eq!((r.token_ttl, r.token_max_ttl), (3600, 7200));
        assert_eq!(r.secret_id_bound_cidrs, vec!["10.0.0.0/8", "127.0.0.1/32"]);
        assert_eq!(r.token_bound_cidrs, vec!["127.0.0.1", "10.0.0.0/8"]);
        let (r, _) =
            create(json!({"policies": "X, y", "period": "1h", "bound_cidr_list": "1.2.3.0/24"})).unwrap();
        assert_eq!(r.policies, vec!["x", "y"]);
        assert_eq!(r.token_policies, vec!["x", "y"]);
        assert_eq!((r.period, r.token_period), (3600, 3600));
        assert_eq!(r.secret_id_bound_cidrs, vec!["1.2.3.0/24"]);
        let d = r.read_data();
        assert_eq!(d["period"], 3600);
        assert_eq!(d["policies"], json!(["x", "y"]));
    }

    #[test]
    fn token_type_conversions() {
        let (r, w) = create(json!({"token_type": "default-service"})).unwrap();
        assert_eq!(r.token_type, RoleTokenType::Service);
        assert_eq!(w, vec!["default-service has no useful meaning; adjusting to service"]);
        let (r, w) = create(json!({"token_type": "default-batch"})).unwrap();
        assert_eq!(r.token_type, RoleTokenType::Batch);
        assert_eq!(w, vec!["default-batch has no useful meaning; adjusting to batch"]);
        assert_eq!(create(json!({"token_type": ""})).unwrap().0.token_type, RoleTokenType::Default);
        assert_eq!(err(json!({"token_type": "x"})), "invalid 'token_type' value \"x\"");
        assert_eq!(RoleTokenType::Default.resolve(None), "service");
        assert_eq!(RoleTokenType::Default.resolve(Some("default-batch")), "batch");
        assert_eq!(RoleTokenType::Batch.resolve(Some("service")), "service");
        assert_eq!(RoleTokenType::Batch.resolve(Some("default-service")), "batch");
    }

    #[test]
    fn validation_errors_use_vaults_texts() {
        assert_eq!(err(json!({"token_ttl": -1})), "'token_ttl' cannot be negative");
        assert_eq!(err(json!({"token_max_ttl": "-5s"})), "'token_max_ttl' cannot be negative");
        assert_eq!(err(json!({"token_num_uses": -1})), "'token_num_uses' cannot be negative");
        assert_eq!(err(json!({"token_period": -1})), "'token_period' cannot be negative");
        assert_eq!(
            err(json!({"token_ttl": "2h", "token_max_ttl": "1h"})),
            "'token_ttl' cannot be greater than 'token_max_ttl'"
        );
        assert_eq!(err(json!({"secret_id_num_uses": -1})), "secret_id_num_uses cannot be negative");
        assert_eq!(
            err(json!({"token_type": "batch", "token_period": 60})),
            "'token_type' cannot be 'batch' or 'default_batch' when set to generate periodic tokens"
        );
        assert_eq!(
            err(json!({"token_type": "batch", "token_num_uses": 3})),
            "'token_type' cannot be 'batch' or 'default_batch' when set to generate tokens with limited use count"
        );
        assert_eq!(
            err(json!({"period": "10000h"})),
            "period of \"10000h0m0s\" is greater than the backend's maximum lease TTL of \"768h0m0s\""
        );
        assert_eq!(
            err(json!({"secret_id_bound_cidrs": "bogus"})),
            "failed to validate CIDR blocks: invalid CIDR address: bogus"
        );
        assert!(err(json!({"token_bound_cidrs": "bogus"})).starts_with("error parsing address \"bogus\""));
        assert_eq!(
            err(json!({"secret_id_ttl": "-5s"})),
            "error converting input for field \"secret_id_ttl\": cannot provide negative value '-5'"
        );
        assert!(err(json!({"secret_id_num_uses": "x"})).contains("\"secret_id_num_uses\""));
        let (_, w) = create(json!({"token_max_ttl": "10000h"})).unwrap();
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("token_max_ttl is greater than the backend mount's maximum TTL"));
    }

    #[test]
    fn local_secret_ids_only_on_create_and_constraints() {
        let mut r = RoleEntry::new("r", "id".into());
        let u = RoleUpdate::parse(&body(json!({"local_secret_ids": false}))).unwrap();
        assert_eq!(
            u.apply(&mut r, false, MAX).unwrap_err().to_string(),
            "local_secret_ids can only be modified during role creation"
        );
        let (r, _) = create(json!({"bind_secret_id": false})).unwrap();
        assert_eq!(r.check_constraints().unwrap_err().to_string(), NO_CONSTRAINT);
        let (r, _) = create(json!({"bind_secret_id": false, "token_bound_cidrs": "10.0.0.0/8"})).unwrap();
        assert!(r.check_constraints().is_ok());
    }
}
