//! The route table over a representative set of requests.

use http::{HeaderMap, HeaderValue, Method};

use super::*;

fn list() -> Method {
    Method::from_bytes(b"LIST").unwrap_or(Method::GET)
}

fn classify(method: &Method, path: &str) -> Placement {
    placement(method, path, &HeaderMap::new())
}

#[test]
fn node_local_requests_are_the_nodes_own_state() {
    for (method, path) in [
        (Method::GET, "sys/health"),
        (Method::HEAD, "sys/health"),
        (Method::GET, "sys/seal-status"),
        (Method::GET, "sys/leader"),
        (Method::GET, "sys/init"),
        (Method::PUT, "sys/init"),
        (Method::PUT, "sys/unseal"),
        (Method::POST, "sys/unseal/"),
        (Method::POST, "sys/storage/raft/join"),
        (Method::POST, "sys/storage/raft/bootstrap"),
        // Wrong methods are answered (405) where they land too.
        (Method::DELETE, "sys/seal-status"),
    ] {
        assert_eq!(classify(&method, path), Placement::NodeLocal, "{method} {path}");
    }
}

#[test]
fn writes_logins_ceremonies_and_node_actions_are_leader_bound() {
    for (method, path) in [
        (Method::POST, "secret/data/app"),
        (Method::PUT, "secret/data/app"),
        (Method::DELETE, "secret/data/app"),
        (Method::PATCH, "secret/data/app"),
        (Method::POST, "transit/encrypt/k"),
        (Method::POST, "sys/mounts/kv"),
        (Method::PUT, "sys/policies/acl/p"),
        (Method::POST, "auth/token/lookup-self"),
        (Method::HEAD, "secret/data/app"),
        (Method::OPTIONS, "secret/data/app"),
        // Logins and token creation, whatever the method.
        (Method::POST, "auth/approle/login"),
        (Method::GET, "auth/approle/login"),
        (Method::GET, "auth/my/userpass/login/bob"),
        (Method::GET, "auth/token/create"),
        (Method::GET, "auth/token/create-orphan"),
        (Method::POST, "auth/token/create/role1"),
        // Wrapping stores a token.
        (Method::GET, "sys/wrapping/unwrap"),
        (Method::POST, "sys/wrapping/wrap"),
        (Method::POST, "sys/wrapping/rewrap"),
        // The ceremonies' progress lives on the leader, reads included.
        (Method::GET, "sys/generate-root/attempt"),
        (Method::PUT, "sys/generate-root/update"),
        (Method::GET, "sys/generate-root-token/attempt"),
        (Method::GET, "sys/rekey/init"),
        (Method::PUT, "sys/rekey/update"),
        (Method::GET, "sys/rekey/verify"),
        (Method::GET, "sys/rekey/backup"),
        (Method::GET, "sys/rekey-recovery-key/init"),
        (Method::DELETE, "sys/rekey/recovery-key-backup"),
        (Method::PUT, "sys/seal"),
        (Method::PUT, "sys/step-down"),
        // Raft membership and snapshots are the leader's.
        (Method::GET, "sys/storage/raft/configuration"),
        (Method::GET, "sys/storage/raft/snapshot"),
        (Method::POST, "sys/storage/raft/remove-peer"),
        (Method::POST, "sys/storage/raft/bootstrap/challenge"),
    ] {
        assert_eq!(classify(&method, path), Placement::LeaderBound, "{method} {path}");
    }
}

#[test]
fn side_effect_free_reads_may_be_served_after_a_read_barrier() {
    for (method, path) in [
        (Method::GET, "secret/data/app"),
        (list(), "secret/metadata/"),
        (Method::GET, "secret/metadata/"),
        (Method::GET, "transit/keys/k"),
        (list(), "transit/keys"),
        (Method::GET, "cubbyhole/x"),
        (Method::GET, "auth/token/lookup-self"),
        (Method::GET, "auth/approle/role/r/role-id"),
        (list(), "auth/approle/role"),
        (Method::GET, "sys/mounts"),
        (Method::GET, "sys/auth"),
        (Method::GET, "sys/policies/acl/default"),
        (Method::GET, "sys/key-status"),
        (Method::GET, "sys/internal/ui/mounts/secret"),
        (Method::GET, "sys/wrapping/lookup"),
        (Method::GET, "sys/audit-verify/file"),
        // A segment that merely starts with `login` is not a login.
        (Method::GET, "auth/approle/role/loginless"),
    ] {
        assert_eq!(classify(&method, path), Placement::ReadAfterBarrier, "{method} {path}");
    }
}

#[test]
fn a_wrapped_read_is_leader_bound() {
    let mut headers = HeaderMap::new();
    headers.insert("x-vault-wrap-ttl", HeaderValue::from_static("5m"));
    assert_eq!(placement(&Method::GET, "secret/data/app", &headers), Placement::LeaderBound);
    headers.insert("x-vault-wrap-ttl", HeaderValue::from_static(" "));
    assert_eq!(placement(&Method::GET, "secret/data/app", &headers), Placement::ReadAfterBarrier);
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
