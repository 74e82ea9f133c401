//! Device definitions, parsed once: the `file` device's options as typed values, and the
//! server-wide rules a definition must pass (CVE-2025-6000 class: an audit device must not be a
//! way to write arbitrary files).
//!
//! The rules, as in OpenBao 2.x:
//! - devices are declared in the server configuration; creating one through `sys/audit` needs
//!   `unsafe_allow_api_audit_creation = true` (`--dev` sets it);
//! - `prefix` needs `allow_audit_log_prefixing = true`, wherever the device comes from;
//! - `log_raw` is accepted from the configuration file only;
//! - and beyond OpenBao: no audit file inside the storage directory, no relative path over the
//!   API, no execute bits.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::error::AuditError;

/// Options a `file` device understands. Anything else is refused, so a typo (`fsnyc`) is not
/// silently ignored.
pub const FILE_OPTIONS: &[&str] = &[
    "elide_list_responses",
    "file_path",
    "format",
    "fsync",
    "hmac_accessor",
    "log_raw",
    "mode",
    "path",
    "prefix",
    "skip_test",
];

/// Where a file device writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkPath {
    /// `file_path = "stdout"`.
    Stdout,
    /// `file_path = "discard"`: nothing is written (the chain still advances).
    Discard,
    /// A regular file.
    File(PathBuf),
}

impl SinkPath {
    /// The name the head record and messages use.
    pub fn display(&self) -> String {
        match self {
            SinkPath::Stdout => "stdout".into(),
            SinkPath::Discard => "discard".into(),
            SinkPath::File(p) => p.display().to_string(),
        }
    }
}

/// The typed options of a `file` device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileOptions {
    pub sink: SinkPath,
    /// Permission bits a new file is created with (default 0600).
    pub mode: u32,
    /// Text written before each line (only with `allow_audit_log_prefixing`).
    pub prefix: String,
    pub log_raw: bool,
    pub hmac_accessor: bool,
    pub elide_list_responses: bool,
    /// `fdatasync` every line before the request goes on (default off, as Vault).
    pub fsync: bool,
}

/// Where a device definition comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The server configuration file (trusted: written by whoever runs the server).
    Config,
    /// `sys/audit/<path>` (an API caller, however privileged, is not the operator of the host).
    Api,
}

/// A device declared in the server configuration (`audit "file" "name" { ... }`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclaredDevice {
    /// Mount path with a trailing `/` (`file/`).
    pub path: String,
    /// Device type (`file`).
    pub kind: String,
    pub description: String,
    pub local: bool,
    /// Options as Vault stores them (string to string); `file_path` is absolute.
    pub options: BTreeMap<String, String>,
}

/// The server-wide audit rules, from the configuration.
#[derive(Clone, Debug, Default)]
pub struct AuditSettings {
    /// Devices declared in the configuration, enabled at unseal.
    pub declared: Vec<DeclaredDevice>,
    /// `unsafe_allow_api_audit_creation`.
    pub allow_api_creation: bool,
    /// `allow_audit_log_prefixing`.
    pub allow_prefixing: bool,
    /// The storage directory (file or raft storage); audit files may not live inside it.
    pub storage_dir: Option<PathBuf>,
}

/// `name` → `name/` (no leading slash).
pub fn normalize_path(p: &str) -> String {
    format!("{}/", p.trim().trim_matches('/'))
}

fn opt_bool(o: &BTreeMap<String, String>, k: &str, default: bool) -> Result<bool, AuditError> {
    match o.get(k) {
        None => Ok(default),
        Some(v) => crate::util::strconv::parse_bool_str(v.trim()).ok_or_else(|| {
            AuditError::invalid(
                format!("options.{k}"),
                format!("unable to parse '{k}': invalid boolean {v:?} (expected true or false)"),
            )
        }),
    }
}

/// Parses the options of a `file` device. Checks types and values only; the server rules are
/// [`AuditSettings::check`].
pub fn parse_file_options(o: &BTreeMap<String, String>) -> Result<FileOptions, AuditError> {
    if let Some(k) = o.keys().find(|k| !FILE_OPTIONS.contains(&k.as_str())) {
        return Err(AuditError::invalid(
            format!("options.{k}"),
            format!("unknown option {k:?} for file audit devices (known: {})", FILE_OPTIONS.join(", ")),
        ));
    }
    let path = o
        .get("file_path")
        .or_else(|| o.get("path"))
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| AuditError::invalid("options.file_path", "file_path is required"))?;
    let sink = match path {
        "stdout" => SinkPath::Stdout,
        "discard" => SinkPath::Discard,
        p => SinkPath::File(PathBuf::from(p)),
    };
    if let Some(f) = o.get("format") {
        if f != "json" {
            return Err(AuditError::invalid(
                "options.format",
                format!("unsupported audit format {f:?}: only \"json\" is supported"),
            ));
        }
    }
    let prefix = o.get("prefix").cloned().unwrap_or_default();
    if prefix.chars().any(|c| c.is_control()) {
        return Err(AuditError::invalid("options.prefix", "audit prefix may not contain control characters"));
    }
    let mode = match o.get("mode") {
        None => 0o600,
        Some(m) => u32::from_str_radix(m.trim().trim_start_matches("0o"), 8).map_err(|_| {
            AuditError::invalid(
                "options.mode",
                format!("invalid file mode {m:?} (expected octal, e.g. \"0600\")"),
            )
        })?,
    };
    // An audit file must never become an executable or special file.
    if mode & 0o111 != 0 || mode > 0o777 {
        return Err(AuditError::invalid(
            "options.mode",
            format!("file mode {mode:o} is not allowed for audit files (no execute bits, no special bits)"),
        ));
    }
    opt_bool(o, "skip_test", false)?;
    Ok(FileOptions {
        sink,
        mode,
        prefix,
        log_raw: opt_bool(o, "log_raw", false)?,
        hmac_accessor: opt_bool(o, "hmac_accessor", true)?,
        elide_list_responses: opt_bool(o, "elide_list_responses", false)?,
        fsync: opt_bool(o, "fsync", false)?,
    })
}

impl AuditSettings {
    /// Checks a device definition against the server's rules and parses its options.
    pub fn check(
        &self,
        kind: &str,
        options: &BTreeMap<String, String>,
        origin: Origin,
    ) -> Result<FileOptions, AuditError> {
        if origin == Origin::Api && !self.allow_api_creation {
            return Err(AuditError::Refused(API_CREATION_REFUSED.into()));
        }
        if kind != "file" {
            return Err(AuditError::invalid(
                "type",
                format!("unknown backend type: {kind:?} (only \"file\" audit devices are supported)"),
            ));
        }
        let opts = parse_file_options(options)?;
        if options.contains_key("prefix") && !self.allow_prefixing {
            return Err(AuditError::invalid(
                "options.prefix",
                "audit log prefixing is not allowed (set allow_audit_log_prefixing = true in the server configuration to allow it)",
            ));
        }
        if origin == Origin::Api && opts.log_raw {
            return Err(AuditError::invalid(
                "options.log_raw",
                "log_raw can only be set on audit devices declared in the server configuration",
            ));
        }
        if let SinkPath::File(p) = &opts.sink {
            if origin == Origin::Api && !p.is_absolute() {
                return Err(AuditError::invalid(
                    "options.file_path",
                    format!("file_path {:?} must be an absolute path", p.display().to_string()),
                ));
            }
            if let Some(dir) = &self.storage_dir {
                if is_inside(dir, p) {
                    return Err(AuditError::invalid(
                        "options.file_path",
                        format!(
                            "file_path {:?} is inside the storage directory; audit logs must be kept outside it",
                            p.display().to_string()
                        ),
                    ));
                }
            }
        }
        Ok(opts)
    }
}

/// OpenBao's message for `sys/audit/<path>` writes when API creation is off.
pub const API_CREATION_REFUSED: &str =
    "cannot enable audit device via API; use declarative, config-based audit device management instead";

/// Whether `file` is `dir` or lies below it, after resolving symbolic links in the parts of
/// both paths that exist (so `/data/../data/x`, or a symlink pointing into the storage
/// directory, are caught) and `.`/`..` lexically in the parts that do not.
pub fn is_inside(dir: &Path, file: &Path) -> bool {
    resolve(file).starts_with(resolve(dir))
}

/// An absolute, physical form of `p` (see [`is_inside`]).
fn resolve(p: &Path) -> PathBuf {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")).join(p)
    };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => out.push(c.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => {
                out.push(n);
                if let Ok(real) = out.canonicalize() {
                    out = real;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn options_are_typed_and_unknown_ones_refused() {
        let o = parse_file_options(&opts(&[("file_path", "/var/log/a.log"), ("fsync", "true")])).unwrap();
        assert_eq!(o.sink, SinkPath::File("/var/log/a.log".into()));
        assert!(o.fsync && o.hmac_accessor && !o.log_raw);
        assert_eq!(o.mode, 0o600);
        let e = parse_file_options(&opts(&[("file_path", "/a"), ("fsync", "yes")])).unwrap_err();
        assert!(matches!(&e, AuditError::Invalid { key: Some(k), .. } if k == "options.fsync"), "{e:?}");
        assert!(e.to_string().contains("invalid boolean"), "{e}");
        let e = parse_file_options(&opts(&[("file_path", "/a"), ("fsnyc", "true")])).unwrap_err();
        assert!(e.to_string().starts_with("unknown option \"fsnyc\""), "{e}");
        assert!(parse_file_options(&opts(&[("mode", "0600")])).is_err(), "file_path is required");
        assert!(parse_file_options(&opts(&[("file_path", "/a"), ("mode", "0755")])).is_err());
        assert!(parse_file_options(&opts(&[("file_path", "/a"), ("mode", "4600")])).is_err());
        assert!(parse_file_options(&opts(&[("file_path", "/a"), ("format", "jsonx")])).is_err());
        assert_eq!(parse_file_options(&opts(&[("file_path", "stdout")])).unwrap().sink, SinkPath::Stdout);
    }

    #[test]
    fn server_rules_per_origin() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let mut s = AuditSettings { storage_dir: Some(data.clone()), ..AuditSettings::default() };
        let log = dir.path().join("audit.log");
        let o = opts(&[("file_path", log.to_str().unwrap())]);
        assert!(matches!(s.check("file", &o, Origin::Api), Err(AuditError::Refused(_))));
        assert!(s.check("file", &o, Origin::Config).is_ok());
        s.allow_api_creation = true;
        assert!(s.check("file", &o, Origin::Api).is_ok());
        assert!(s.check("socket", &o, Origin::Api).is_err());

        let raw = opts(&[("file_path", log.to_str().unwrap()), ("log_raw", "true")]);
        assert!(s.check("file", &raw, Origin::Api).unwrap_err().to_string().contains("log_raw"));
        assert!(s.check("file", &raw, Origin::Config).unwrap().log_raw);
        let not_raw = opts(&[("file_path", log.to_str().unwrap()), ("log_raw", "false")]);
        assert!(s.check("file", &not_raw, Origin::Api).is_ok());

        let prefixed = opts(&[("file_path", log.to_str().unwrap()), ("prefix", "ssh-ed25519 AAAA ")]);
        for origin in [Origin::Api, Origin::Config] {
            let e = s.check("file", &prefixed, origin).unwrap_err();
            assert!(e.to_string().starts_with("audit log prefixing is not allowed"), "{e}");
        }
        s.allow_prefixing = true;
        assert_eq!(s.check("file", &prefixed, Origin::Api).unwrap().prefix, "ssh-ed25519 AAAA ");

        let relative = opts(&[("file_path", "audit.log")]);
        assert!(s.check("file", &relative, Origin::Api).unwrap_err().to_string().contains("absolute"));
    }

    #[test]
    fn paths_inside_the_storage_directory_are_caught() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::create_dir(data.join("db")).unwrap();
        let link = dir.path().join("innocent");
        std::os::unix::fs::symlink(&data, &link).unwrap();
        for inside in [
            data.join("audit.log"),
            data.join("db/conf"),
            data.join("new-dir/x.log"),
            data.clone(),
            dir.path().join("other/../data/x.log"),
            data.join("./db/../y.log"),
            link.join("x.log"),
        ] {
            assert!(is_inside(&data, &inside), "{} should be inside", inside.display());
        }
        for outside in [dir.path().join("audit.log"), dir.path().join("data2/x.log"), data.join("../x.log")] {
            assert!(!is_inside(&data, &outside), "{} should be outside", outside.display());
        }
        // A storage directory that does not exist yet is compared lexically.
        let later = dir.path().join("later");
        assert!(is_inside(&later, &later.join("a.log")));
        assert!(!is_inside(&later, &dir.path().join("a.log")));
    }
}
