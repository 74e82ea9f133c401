//! The paths of a KV v2 mount, parsed once into a typed value.

/// A path relative to a KV v2 mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvPath<'a> {
    /// `config`: engine settings.
    Config,
    /// `data/<key>`: versions of a secret.
    Data(&'a str),
    /// `delete/<key>`: soft-delete versions.
    Delete(&'a str),
    /// `destroy/<key>`: erase versions.
    Destroy(&'a str),
    /// `detailed-metadata/<prefix>` (OpenBao): a listing with each key's metadata.
    DetailedMetadata(&'a str),
    /// Anything else: answered with 404 and Vault's "Invalid path" warning.
    Invalid,
    /// `metadata/<key>`: a key's settings and version history (list: its children).
    Metadata(&'a str),
    /// `data`, `metadata`, `delete`, `undelete`, `destroy` without a key.
    Root,
    /// `subkeys/<key>`: the structure of a version without its values.
    Subkeys(&'a str),
    /// `undelete/<key>`: restore soft-deleted versions.
    Undelete(&'a str),
}

impl<'a> KvPath<'a> {
    /// Parses a mount-relative path. List requests arrive with a trailing `/`, so
    /// `LIST metadata` is `Metadata("")`, as in Vault.
    pub fn parse(path: &'a str) -> Self {
        if matches!(path, "data" | "metadata" | "delete" | "undelete" | "destroy") {
            return KvPath::Root;
        }
        if path == "config" {
            return KvPath::Config;
        }
        let Some((head, key)) = path.split_once('/') else { return KvPath::Invalid };
        match head {
            "data" => KvPath::Data(key),
            "delete" => KvPath::Delete(key),
            "destroy" => KvPath::Destroy(key),
            "detailed-metadata" => KvPath::DetailedMetadata(key),
            "metadata" => KvPath::Metadata(key),
            "subkeys" => KvPath::Subkeys(key),
            "undelete" => KvPath::Undelete(key),
            _ => KvPath::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(KvPath::parse("config"), KvPath::Config);
        assert_eq!(KvPath::parse("config/"), KvPath::Invalid);
        assert_eq!(KvPath::parse("data/a/b"), KvPath::Data("a/b"));
        assert_eq!(KvPath::parse("data/"), KvPath::Data(""));
        assert_eq!(KvPath::parse("data"), KvPath::Root);
        assert_eq!(KvPath::parse("metadata"), KvPath::Root);
        assert_eq!(KvPath::parse("metadata/"), KvPath::Metadata(""));
        assert_eq!(KvPath::parse("metadata/dir/"), KvPath::Metadata("dir/"));
        assert_eq!(KvPath::parse("subkeys"), KvPath::Invalid);
        assert_eq!(KvPath::parse("subkeys/x"), KvPath::Subkeys("x"));
        assert_eq!(KvPath::parse("delete/x"), KvPath::Delete("x"));
        assert_eq!(KvPath::parse("undelete/x"), KvPath::Undelete("x"));
        assert_eq!(KvPath::parse("destroy/x"), KvPath::Destroy("x"));
        assert_eq!(KvPath::parse("detailed-metadata/"), KvPath::DetailedMetadata(""));
        assert_eq!(KvPath::parse(""), KvPath::Invalid);
        assert_eq!(KvPath::parse("foo"), KvPath::Invalid);
        assert_eq!(KvPath::parse("foo/bar"), KvPath::Invalid);
    }
}
