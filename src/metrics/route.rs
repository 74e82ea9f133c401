//! Label values of the request metrics: the route family and the status class.
//!
//! Both come from fixed lists, so the number of series is bounded whatever clients send: a
//! path never becomes a label. The family of a `sys/` path is its first segment after `sys/`
//! when that is a known endpoint (`sys/mounts`, `sys/policies`, ...), else `sys/other`; the
//! family of any other path is the type of the mount that serves it (`kv`, `transit`,
//! `auth/approle`, ...), as the HTTP layer finds it in the mount table.

/// Every route family, in label order. Index = [`Route`].
pub const ROUTES: &[&str] = &[
    // Requests refused before their path was read (too large, malformed, ...).
    "invalid",
    // No mount serves the path, or the node is sealed and cannot tell.
    "unknown",
    // A mount of a type not listed here.
    "other",
    "auth/approle",
    "auth/other",
    "auth/token",
    "cubbyhole",
    "identity",
    "kv",
    "transit",
    "sys/other",
    "sys/audit",
    "sys/audit-hash",
    "sys/audit-verify",
    "sys/auth",
    "sys/capabilities",
    "sys/capabilities-accessor",
    "sys/capabilities-self",
    "sys/generate-root",
    "sys/generate-root-token",
    "sys/health",
    "sys/init",
    "sys/internal",
    "sys/key-status",
    "sys/leader",
    "sys/metrics",
    "sys/mounts",
    "sys/policies",
    "sys/policy",
    "sys/rekey",
    "sys/rekey-recovery-key",
    "sys/remount",
    "sys/rotate",
    "sys/seal",
    "sys/seal-status",
    "sys/step-down",
    "sys/storage",
    "sys/tools",
    "sys/unseal",
    "sys/wrapping",
];

/// Index of the first `sys/` family in [`ROUTES`].
const FIRST_SYS: usize = 10;

/// A route family (an index into [`ROUTES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route(usize);

impl Route {
    pub const INVALID: Route = Route(0);
    pub const UNKNOWN: Route = Route(1);
    const OTHER: Route = Route(2);
    const AUTH_APPROLE: Route = Route(3);
    const AUTH_OTHER: Route = Route(4);
    const AUTH_TOKEN: Route = Route(5);
    const CUBBYHOLE: Route = Route(6);
    const IDENTITY: Route = Route(7);
    const KV: Route = Route(8);
    const TRANSIT: Route = Route(9);
    const SYS_OTHER: Route = Route(FIRST_SYS);

    /// The family of a logical path (no `/v1/`) under `sys/`; `None` for other paths.
    pub fn of_sys_path(path: &str) -> Option<Route> {
        let rest = path.strip_prefix("sys/").or_else(|| (path == "sys").then_some(""))?;
        let segment = rest.split('/').next().unwrap_or_default();
        let found = ROUTES[FIRST_SYS..].iter().position(|r| r.strip_prefix("sys/") == Some(segment));
        Some(found.map_or(Self::SYS_OTHER, |i| Route(FIRST_SYS + i)))
    }

    /// The family of a mount of type `kind` (an auth method when `auth`).
    pub fn of_mount(auth: bool, kind: &str) -> Route {
        match (auth, kind) {
            (true, "approle") => Self::AUTH_APPROLE,
            (true, "token") => Self::AUTH_TOKEN,
            (true, _) => Self::AUTH_OTHER,
            (false, "kv" | "generic" | "kv-v1" | "kv-v2") => Self::KV,
            (false, "transit") => Self::TRANSIT,
            (false, "cubbyhole") => Self::CUBBYHOLE,
            (false, "identity") => Self::IDENTITY,
            (false, "system") => Self::SYS_OTHER,
            (false, _) => Self::OTHER,
        }
    }

    /// The label value.
    pub fn name(self) -> &'static str {
        ROUTES.get(self.0).copied().unwrap_or("other")
    }

    pub(crate) fn index(self) -> usize {
        self.0
    }
}

/// Label values of the status classes, by `status / 100 - 1`.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The index into [`STATUS_CLASSES`] of an HTTP status code.
pub fn status_class(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_come_from_the_fixed_list() {
        let sys = |p: &str| Route::of_sys_path(p).map(Route::name);
        assert_eq!(sys("sys/mounts/kv/tune"), Some("sys/mounts"));
        assert_eq!(sys("sys/health"), Some("sys/health"));
        assert_eq!(sys("sys/policies/acl/x"), Some("sys/policies"));
        assert_eq!(sys("sys/storage/raft/configuration"), Some("sys/storage"));
        assert_eq!(sys("sys/whatever-a-client-sends/secret"), Some("sys/other"));
        assert_eq!(sys("sys"), Some("sys/other"));
        assert_eq!(sys("sysx/mounts"), None);
        assert_eq!(sys("kv/data/sys/mounts"), None);
        assert_eq!(Route::of_mount(false, "kv").name(), "kv");
        assert_eq!(Route::of_mount(false, "generic").name(), "kv");
        assert_eq!(Route::of_mount(false, "transit").name(), "transit");
        assert_eq!(Route::of_mount(false, "cubbyhole").name(), "cubbyhole");
        assert_eq!(Route::of_mount(false, "identity").name(), "identity");
        assert_eq!(Route::of_mount(false, "plugin-x").name(), "other");
        assert_eq!(Route::of_mount(false, "system").name(), "sys/other");
        assert_eq!(Route::of_mount(true, "approle").name(), "auth/approle");
        assert_eq!(Route::of_mount(true, "token").name(), "auth/token");
        assert_eq!(Route::of_mount(true, "ldap").name(), "auth/other");
        assert_eq!(Route::INVALID.name(), "invalid");
        assert_eq!(ROUTES[FIRST_SYS], "sys/other");
        assert!(ROUTES[FIRST_SYS..].iter().all(|r| r.starts_with("sys/")));
        assert!(ROUTES[..FIRST_SYS].iter().all(|r| !r.starts_with("sys/")));
    }

    #[test]
    fn status_classes() {
        assert_eq!(STATUS_CLASSES[status_class(200)], "2xx");
        assert_eq!(STATUS_CLASSES[status_class(204)], "2xx");
        assert_eq!(STATUS_CLASSES[status_class(307)], "3xx");
        assert_eq!(STATUS_CLASSES[status_class(429)], "4xx");
        assert_eq!(STATUS_CLASSES[status_class(503)], "5xx");
        assert_eq!(STATUS_CLASSES[status_class(0)], "1xx");
        assert_eq!(STATUS_CLASSES[status_class(999)], "5xx");
    }
}
