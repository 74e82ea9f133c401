//! The paths of the token auth method, parsed once into [`TokenPath`]. A path that is not one
//! of these is `Unknown` (404 `unsupported path`); role names are single segments.

/// A parsed `auth/token/` path.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenPath<'a> {
    Accessors,
    Create,
    CreateOrphan,
    CreateRole(&'a str),
    Lookup,
    LookupAccessor,
    LookupSelf,
    Renew,
    RenewAccessor,
    RenewSelf,
    Revoke,
    RevokeAccessor,
    RevokeOrphan,
    RevokeSelf,
    Role(&'a str),
    Roles,
    Tidy,
    Unknown,
}

impl<'a> TokenPath<'a> {
    /// Parses a path relative to the mount (a trailing `/` is ignored).
    pub fn parse(path: &'a str) -> Self {
        let p = path.trim_end_matches('/');
        match p {
            "accessors" => TokenPath::Accessors,
            "create" => TokenPath::Create,
            "create-orphan" => TokenPath::CreateOrphan,
            "lookup" => TokenPath::Lookup,
            "lookup-accessor" => TokenPath::LookupAccessor,
            "lookup-self" => TokenPath::LookupSelf,
            "renew" => TokenPath::Renew,
            "renew-accessor" => TokenPath::RenewAccessor,
            "renew-self" => TokenPath::RenewSelf,
            "revoke" => TokenPath::Revoke,
            "revoke-accessor" => TokenPath::RevokeAccessor,
            "revoke-orphan" => TokenPath::RevokeOrphan,
            "revoke-self" => TokenPath::RevokeSelf,
            "roles" => TokenPath::Roles,
            "tidy" => TokenPath::Tidy,
            _ => {
                if let Some(r) = single_segment(p, "create/") {
                    TokenPath::CreateRole(r)
                } else if let Some(r) = single_segment(p, "roles/") {
                    TokenPath::Role(r)
                } else {
                    TokenPath::Unknown
                }
            }
        }
    }
}

/// The rest of `path` after `prefix` when it is one non-empty segment.
fn single_segment<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix).filter(|r| !r.is_empty() && !r.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(TokenPath::parse("create/r1"), TokenPath::CreateRole("r1"));
        assert_eq!(TokenPath::parse("roles/r1"), TokenPath::Role("r1"));
        assert_eq!(TokenPath::parse("roles/r1/x"), TokenPath::Unknown);
        assert_eq!(TokenPath::parse("lookup-self"), TokenPath::LookupSelf);
        assert_eq!(TokenPath::parse("zzz"), TokenPath::Unknown);
    }
}
