//! The AppRole mount's relative paths, parsed once into [`ApprolePath`].
//!
//! Vault routes these with an ordered list of regexes; here the path is split into segments and
//! matched exhaustively. A role name must match Vault's `\w(([\w-.]+)?\w)?` (ASCII letters,
//! digits, `_`, and `-`/`.` inside); names are case-insensitive and stored lower-case.

use std::fmt;

/// A validated role name: the spelling the client used (for messages) and its storage form.
#[derive(Clone, PartialEq, Eq)]
pub struct RoleName {
    given: String,
    lower: String,
}

impl RoleName {
    /// Parses a role name; `None` if it does not match Vault's role-name pattern.
    pub fn parse(s: &str) -> Option<Self> {
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let mut chars = s.chars();
        let first = chars.next()?;
        let last = s.chars().last()?;
        if !word(first) || !word(last) || !s.chars().all(|c| word(c) || c == '-' || c == '.') {
            return None;
        }
        Some(Self { given: s.to_owned(), lower: s.to_ascii_lowercase() })
    }

    /// The name as the client wrote it (error messages echo it, as Vault does).
    pub fn given(&self) -> &str {
        &self.given
    }

    /// The canonical (lower-case) name: storage key and `role_name` metadata.
    pub fn canonical(&self) -> &str {
        &self.lower
    }
}

impl fmt::Debug for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoleName({})", self.lower)
    }
}

/// A single-field sub-path of a role (`role/<name>/<field>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleField {
    BindSecretId,
    BoundCidrList,
    LocalSecretIds,
    Period,
    Policies,
    SecretIdBoundCidrs,
    SecretIdNumUses,
    SecretIdTtl,
    TokenBoundCidrs,
    TokenMaxTtl,
    TokenNumUses,
    TokenTtl,
}

impl RoleField {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "bind-secret-id" => Self::BindSecretId,
            "bound-cidr-list" => Self::BoundCidrList,
            "local-secret-ids" => Self::LocalSecretIds,
            "period" => Self::Period,
            "policies" => Self::Policies,
            "secret-id-bound-cidrs" => Self::SecretIdBoundCidrs,
            "secret-id-num-uses" => Self::SecretIdNumUses,
            "secret-id-ttl" => Self::SecretIdTtl,
            "token-bound-cidrs" => Self::TokenBoundCidrs,
            "token-max-ttl" => Self::TokenMaxTtl,
            "token-num-uses" => Self::TokenNumUses,
            "token-ttl" => Self::TokenTtl,
            _ => return None,
        })
    }
}

/// Every path an AppRole mount serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApprolePath {
    /// `role/<n>/secret-id-accessor/destroy`
    AccessorDestroy(RoleName),
    /// `role/<n>/secret-id-accessor/lookup`
    AccessorLookup(RoleName),
    /// `role/<n>/custom-secret-id`
    CustomSecretId(RoleName),
    /// `login`
    Login,
    /// `role/<n>`
    Role(RoleName),
    /// `role/<n>/<field>`
    RoleField(RoleName, RoleField),
    /// `role/<n>/role-id`
    RoleId(RoleName),
    /// `role` / `role/`
    RoleList,
    /// `role/<n>/secret-id`: generate (write) or list accessors (LIST).
    SecretId(RoleName),
    /// `role/<n>/secret-id/destroy`
    SecretIdDestroy(RoleName),
    /// `role/<n>/secret-id/lookup`
    SecretIdLookup(RoleName),
    /// `tidy/secret-id`
    TidySecretId,
}

impl ApprolePath {
    /// Parses a path relative to the mount. One trailing `/` (LIST requests) is ignored.
    pub fn parse(path: &str) -> Option<Self> {
        let p = path.strip_suffix('/').unwrap_or(path);
        let segs: Vec<&str> = p.split('/').collect();
        let role = |s: &str| RoleName::parse(s);
        Some(match segs.as_slice() {
            ["login"] => Self::Login,
            ["tidy", "secret-id"] => Self::TidySecretId,
            ["role"] => Self::RoleList,
            ["role", n] => Self::Role(role(n)?),
            ["role", n, "role-id"] => Self::RoleId(role(n)?),
            ["role", n, "secret-id"] => Self::SecretId(role(n)?),
            ["role", n, "custom-secret-id"] => Self::CustomSecretId(role(n)?),
            ["role", n, "secret-id", "lookup"] => Self::SecretIdLookup(role(n)?),
            ["role", n, "secret-id", "destroy"] => Self::SecretIdDestroy(role(n)?),
            ["role", n, "secret-id-accessor", "lookup"] => Self::AccessorLookup(role(n)?),
            ["role", n, "secret-id-accessor", "destroy"] => Self::AccessorDestroy(role(n)?),
            ["role", n, field] => Self::RoleField(role(n)?, RoleField::parse(field)?),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> RoleName {
        RoleName::parse(s).unwrap()
    }

    #[test]
    fn role_names_follow_vaults_pattern() {
        for ok in ["a", "A1", "web_app", "my-role.v2", "a.b", "_x_", "9"] {
            assert!(RoleName::parse(ok).is_some(), "{ok}");
        }
        for bad in ["", "-a", "a-", ".a", "a.", "a b", "a$b", "ä", "a/b", "a\u{0}"] {
            assert!(RoleName::parse(bad).is_none(), "{bad:?}");
        }
        let n = name("MyRole");
        assert_eq!(n.given(), "MyRole");
        assert_eq!(n.canonical(), "myrole");
    }

    #[test]
    fn paths_parse_into_typed_variants() {
        use ApprolePath as P;
        assert_eq!(P::parse("login"), Some(P::Login));
        assert_eq!(P::parse("role/"), Some(P::RoleList));
        assert_eq!(P::parse("role"), Some(P::RoleList));
        assert_eq!(P::parse("role/Web"), Some(P::Role(name("Web"))));
        assert_eq!(P::parse("role/web/role-id"), Some(P::RoleId(name("web"))));
        assert_eq!(P::parse("role/web/secret-id/"), Some(P::SecretId(name("web"))));
        assert_eq!(P::parse("role/web/secret-id/lookup"), Some(P::SecretIdLookup(name("web"))));
        assert_eq!(P::parse("role/web/secret-id/destroy"), Some(P::SecretIdDestroy(name("web"))));
        assert_eq!(P::parse("role/web/secret-id-accessor/lookup"), Some(P::AccessorLookup(name("web"))));
        assert_eq!(P::parse("role/web/secret-id-accessor/destroy"), Some(P::AccessorDestroy(name("web"))));
        assert_eq!(P::parse("role/web/custom-secret-id"), Some(P::CustomSecretId(name("web"))));
        assert_eq!(P::parse("role/web/token-ttl"), Some(P::RoleField(name("web"), RoleField::TokenTtl)));
        assert_eq!(
            P::parse("role/web/bound-cidr-list"),
            Some(P::RoleField(name("web"), RoleField::BoundCidrList))
        );
        assert_eq!(P::parse("tidy/secret-id"), Some(P::TidySecretId));
        for bad in
            ["", "roles", "role/-x", "role/web/nope", "role/web/secret-id/x", "tidy", "login/x", "role//"]
        {
            assert_eq!(P::parse(bad), None, "{bad:?}");
        }
    }
}
