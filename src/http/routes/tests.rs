//! The route table over a representative set of requests.

use http::{HeaderMap, HeaderValue, Method};

use super::*;

use Placement::{LeaderBound, NodeLocal, ReadAfterBarrier};

/// Method, logical path, and where the request may be served.
const TABLE: &[(&str, &str, Placement)] = &[
    // The node's own state, served where it lands; wrong methods are answered (405) there too.
    ("GET", "sys/health", NodeLocal),
    ("HEAD", "sys/health", NodeLocal),
    ("GET", "sys/seal-status", NodeLocal),
    ("DELETE", "sys/seal-status", NodeLocal),
    ("GET", "sys/leader", NodeLocal),
    ("GET", "sys/init", NodeLocal),
    ("PUT", "sys/init", NodeLocal),
    ("PUT", "sys/unseal", NodeLocal),
    ("POST", "sys/unseal/", NodeLocal),
    ("POST", "sys/storage/raft/join", NodeLocal),
    ("POST", "sys/storage/raft/bootstrap", NodeLocal),
    // Writes, and methods no endpoint serves.
    ("POST", "secret/data/app", LeaderBound),
    ("PUT", "secret/data/app", LeaderBound),
    ("DELETE", "secret/data/app", LeaderBound),
    ("PATCH", "secret/data/app", LeaderBound),
    ("HEAD", "secret/data/app", LeaderBound),
    ("OPTIONS", "secret/data/app", LeaderBound),
    ("POST", "transit/encrypt/k", LeaderBound),
    ("POST", "sys/mounts/kv", LeaderBound),
    ("PUT", "sys/policies/acl/p", LeaderBound),
    ("POST", "auth/token/lookup-self", LeaderBound),
    // Logins and token creation, whatever the method.
    ("POST", "auth/approle/login", LeaderBound),
    ("GET", "auth/approle/login", LeaderBound),
    ("GET", "auth/my/userpass/login/bob", LeaderBound),
    ("GET", "auth/token/create", LeaderBound),
    ("GET", "auth/token/create-orphan", LeaderBound),
    ("POST", "auth/token/create/role1", LeaderBound),
    // Wrapping stores a token.
    ("GET", "sys/wrapping/unwrap", LeaderBound),
    ("POST", "sys/wrapping/wrap", LeaderBound),
    ("POST", "sys/wrapping/rewrap", LeaderBound),
    // The ceremonies' progress lives on the leader, reads included; so do seal and step-down.
    ("GET", "sys/generate-root/attempt", LeaderBound),
    ("PUT", "sys/generate-root/update", LeaderBound),
    ("GET", "sys/generate-root-token/attempt", LeaderBound),
    ("GET", "sys/rekey/init", LeaderBound),
    ("PUT", "sys/rekey/update", LeaderBound),
    ("GET", "sys/rekey/verify", LeaderBound),
    ("GET", "sys/rekey/backup", LeaderBound),
    ("GET", "sys/rekey-recovery-key/init", LeaderBound),
    ("DELETE", "sys/rekey/recovery-key-backup", LeaderBound),
    ("PUT", "sys/seal", NodeLocal),
    ("PUT", "sys/step-down", LeaderBound),
    // Raft membership, snapshots and the joining handshake's leader side.
    ("GET", "sys/storage/raft/configuration", LeaderBound),
    ("GET", "sys/storage/raft/snapshot", LeaderBound),
    ("POST", "sys/storage/raft/remove-peer", LeaderBound),
    ("POST", "sys/storage/raft/bootstrap/challenge", LeaderBound),
    // Reads without side effects.
    ("GET", "secret/data/app", ReadAfterBarrier),
    ("LIST", "secret/metadata/", ReadAfterBarrier),
    ("GET", "secret/metadata/", ReadAfterBarrier),
    ("GET", "transit/keys/k", ReadAfterBarrier),
    ("LIST", "transit/keys", ReadAfterBarrier),
    ("GET", "cubbyhole/x", ReadAfterBarrier),
    ("GET", "auth/token/lookup-self", ReadAfterBarrier),
    ("GET", "auth/approle/role/r/role-id", ReadAfterBarrier),
    ("LIST", "auth/approle/role", ReadAfterBarrier),
    ("GET", "sys/mounts", ReadAfterBarrier),
    ("GET", "sys/auth", ReadAfterBarrier),
    ("GET", "sys/policies/acl/default", ReadAfterBarrier),
    ("GET", "sys/key-status", ReadAfterBarrier),
    ("GET", "sys/internal/ui/mounts/secret", ReadAfterBarrier),
    ("GET", "sys/wrapping/lookup", ReadAfterBarrier),
    ("GET", "sys/audit-verify/file", ReadAfterBarrier),
    // A segment that merely starts with `login` is not a login.
    ("GET", "auth/approle/role/loginless", ReadAfterBarrier),
];

#[test]
fn every_request_has_its_placement() {
    let mut wrong = Vec::new();
    for (method, path, want) in TABLE {
        let Ok(m) = Method::from_bytes(method.as_bytes()) else { panic!("bad method {method}") };
        let got = placement(&m, path, &HeaderMap::new());
        if got != *want {
            wrong.push(format!("{method} {path}: {got:?}, want {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn a_wrapped_read_is_leader_bound() {
    let mut headers = HeaderMap::new();
    headers.insert("x-vault-wrap-ttl", HeaderValue::from_static("5m"));
    assert_eq!(placement(&Method::GET, "secret/data/app", &headers), LeaderBound);
    headers.insert("x-vault-wrap-ttl", HeaderValue::from_static(" "));
    assert_eq!(placement(&Method::GET, "secret/data/app", &headers), ReadAfterBarrier);
}

#[test]
fn parses_endpoints() {
    assert_eq!(Endpoint::parse("sys/health/"), Endpoint::Unrouted(UnroutedPath::Health));
    assert_eq!(Endpoint::parse("sys/step-down"), Endpoint::Unrouted(UnroutedPath::StepDown));
    assert_eq!(
        Endpoint::parse("sys/generate-root/attempt"),
        Endpoint::Quorum(QuorumPath::GenerateRootAttempt)
    );
    assert_eq!(
        Endpoint::parse("sys/rekey-recovery-key/verify"),
        Endpoint::Quorum(QuorumPath::RekeyVerify(RekeyTarget::Recovery))
    );
    assert_eq!(
        Endpoint::parse("sys/rekey/recovery-key-backup"),
        Endpoint::Quorum(QuorumPath::RekeyBackup(RekeyTarget::Recovery))
    );
    for logical in ["sys/rekey", "sys/generate-root", "sys/mounts", "sys/healthz", "secret/sys/health", ""] {
        assert_eq!(Endpoint::parse(logical), Endpoint::Logical, "{logical}");
    }
}
