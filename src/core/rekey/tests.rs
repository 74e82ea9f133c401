//! Rekey tests over in-memory nodes: Shamir and static seals, verification, wrong shares,
//! cancellation and all-or-nothing installation.

use std::sync::atomic::Ordering;

use super::*;
use crate::core::generate_root::decode_token;
use crate::core::quorum::fixtures::{self, Node};
use crate::core::seal::render_shares;

fn msg(e: Error) -> String {
    assert_eq!(e.kind(), crate::core::error::ErrorKind::BadRequest, "{e}");
    e.to_string()
}

fn params(n: i64, t: i64, verify: bool) -> RekeyParams {
    RekeyParams {
        secret_shares: n,
        secret_threshold: t,
        require_verification: verify,
        ..RekeyParams::default()
    }
}

fn hex(keys: &[SecretBytes]) -> Vec<String> {
    render_shares(keys).0.iter().map(|s| s.as_str().to_owned()).collect()
}

/// Feeds shares to the update phase until it completes.
async fn run_update(node: &Node, target: RekeyTarget, nonce: &str, shares: &[SecretBytes]) -> RekeyResult {
    for (i, s) in shares.iter().enumerate() {
        match node.core.rekey_update(target, s.duplicate(), nonce).await.unwrap() {
            RekeyUpdate::Progress(st) => assert_eq!(st.progress, i + 1),
            RekeyUpdate::Complete(r) => {
                assert_eq!(i + 1, shares.len(), "completed early");
                return r;
            }
        }
    }
    panic!("update did not complete");
}

/// Whether a generate-root quorum of `shares` is accepted.
async fn quorum_accepted(node: &Node, shares: &[SecretBytes]) -> bool {
    let init = node.core.generate_root_init(None, false).await.unwrap();
    let mut outcome = false;
    for s in shares {
        match node.core.generate_root_update(s.duplicate(), &init.nonce).await {
            Ok(p) if p.complete() => {
                decode_token(p.encoded_token.as_ref().unwrap(), init.otp.as_ref().unwrap()).unwrap();
                outcome = true;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    node.core.generate_root_cancel(None, false).await.unwrap();
    outcome
}

/// Seals and tries to unseal with `shares`; true if the node came up.
async fn unseals_with(node: &Node, shares: &[String]) -> bool {
    node.core.seal().await;
    for s in shares {
        if node.core.unseal(Some(s), false).await.is_err() {
            break;
        }
    }
    let up = !node.core.is_sealed();
    node.core.unseal(None, true).await.ok();
    up
}

#[tokio::test]
async fn shamir_rekey_five_three_to_three_two() {
    let node = fixtures::shamir(5, 3).await;
    let s = node.core.rekey_status(RekeyTarget::Barrier).await.unwrap();
    assert_eq!(s, RekeyStatus { required: 3, ..RekeyStatus::default() });

    let st = node.core.rekey_init(RekeyTarget::Barrier, params(3, 2, false)).await.unwrap();
    assert_eq!((st.started, st.t, st.n, st.required, st.progress), (true, 2, 3, 3, 0));
    assert_eq!(node.core.rekey_status(RekeyTarget::Barrier).await.unwrap(), st);
    let e = node.core.rekey_init(RekeyTarget::Barrier, params(3, 2, false)).await.unwrap_err();
    assert_eq!(msg(e), "rekey already in progress");

    let old: Vec<SecretBytes> = [0, 2, 4].iter().map(|&i| node.share(i)).collect();
    let r = run_update(&node, RekeyTarget::Barrier, &st.nonce, &old).await;
    assert_eq!(r.nonce, st.nonce);
    assert!(!r.verification_required && r.verification_nonce.is_none());
    assert_eq!(r.keys.len(), 3);
    assert!(r.keys.iter().all(|k| k.len() == 33));
    assert!(!node.core.rekey_status(RekeyTarget::Barrier).await.unwrap().started);
    let ss = node.core.seal_status().await.unwrap();
    assert_eq!((ss.t, ss.n), (2, 3));

    // Old shares no longer authorize anything; new ones do.
    let old_quorum: Vec<SecretBytes> = (0..3).map(|i| node.share(i)).collect();
    assert!(!quorum_accepted(&node, &old_quorum).await);
    assert!(quorum_accepted(&node, &r.keys[1..]).await);
    let new = hex(&r.keys);
    assert!(!unseals_with(&node, &node.shares[..3]).await, "old shares must not unseal");
    assert!(unseals_with(&node, &new[..2]).await);
    assert!(unseals_with(&node, &[new[2].clone(), new[0].clone()]).await);

    // The data behind the barrier is untouched (same root key, same keyring).
    let restarted = node.restart().await;
    for s in &new[..2] {
        restarted.unseal(Some(s), false).await.unwrap();
    }
    assert!(!restarted.is_sealed());
}

#[tokio::test]
async fn shamir_rekey_with_verification() {
    let node = fixtures::shamir(5, 3).await;
    let st = node.core.rekey_init(RekeyTarget::Barrier, params(1, 1, true)).await.unwrap();
    assert!(st.verification_required);
    let e = node.core.rekey_verify_update(RekeyTarget::Barrier, node.share(0), "x").await.unwrap_err();
    assert_eq!(msg(e), "no rekey verification in progress");
    let vs = node.core.rekey_verify_status(RekeyTarget::Barrier).await.unwrap();
    assert_eq!(vs, RekeyVerifyStatus { started: false, nonce: String::new(), t: 1, n: 1, progress: 0 });

    let old: Vec<SecretBytes> = (0..3).map(|i| node.share(i)).collect();
    let r = run_update(&node, RekeyTarget::Barrier, &st.nonce, &old).await;
    assert_eq!(r.keys.len(), 1);
    assert_eq!(r.keys[0].len(), 32, "a single share is the key itself");
    let vn = r.verification_nonce.clone().unwrap();
    let status = node.core.rekey_status(RekeyTarget::Barrier).await.unwrap();
    assert_eq!(status.verification_nonce.as_deref(), Some(vn.as_str()));
    let e = node.core.rekey_update(RekeyTarget::Barrier, node.share(3), &st.nonce).await.unwrap_err();
    assert_eq!(
        msg(e),
        format!("rekey operation already finished; verification must be performed; nonce for the verification operation is \"{vn}\"")
    );

    // Until verified, the old shares stay in force and the new one does nothing.
    assert!(quorum_accepted(&node, &old).await);
    assert!(!quorum_accepted(&node, &[r.keys[0].duplicate()]).await);

    let e =
        node.core.rekey_verify_update(RekeyTarget::Barrier, r.keys[0].duplicate(), "x").await.unwrap_err();
    assert_eq!(msg(e), format!("incorrect nonce supplied; nonce for this verify operation is \"{vn}\""));
    // A wrong key fails verification and draws a new nonce.
    let e = node.core.rekey_verify_update(RekeyTarget::Barrier, node.share(0), &vn).await.unwrap_err();
    assert_eq!(msg(e), "rekey verification failed; incorrect key shares supplied");
    let vs = node.core.rekey_verify_status(RekeyTarget::Barrier).await.unwrap();
    assert!(vs.started && vs.nonce != vn && vs.progress == 0);
    // Restarting draws yet another; anonymous restarts need the current one.
    assert!(node.core.rekey_verify_restart(RekeyTarget::Barrier, None, true).await.is_err());
    let vs2 = node.core.rekey_verify_restart(RekeyTarget::Barrier, Some(&vs.nonce), true).await.unwrap();
    assert_ne!(vs2.nonce, vs.nonce);

    let done =
        node.core.rekey_verify_update(RekeyTarget::Barrier, r.keys[0].duplicate(), &vs2.nonce).await.unwrap();
    assert_eq!(done, RekeyVerifyUpdate::Complete { nonce: vs2.nonce.clone() });
    let e = node.core.rekey_verify_status(RekeyTarget::Barrier).await.unwrap_err();
    assert_eq!(msg(e), "no rekey configuration found");
    assert!(!quorum_accepted(&node, &old).await);
    assert!(quorum_accepted(&node, &[r.keys[0].duplicate()]).await);
    assert!(unseals_with(&node, &hex(&r.keys)).await);
    assert_eq!((node.core.seal_status().await.unwrap().t, node.core.seal_status().await.unwrap().n), (1, 1));
}

#[tokio::test]
async fn rekey_rejects_bad_input_and_wrong_shares() {
    let node = fixtures::shamir(5, 3).await;
    let b = RekeyTarget::Barrier;
    let e = node.core.rekey_update(b, node.share(0), "x").await.unwrap_err();
    assert_eq!(msg(e), "no barrier rekey in progress");
    for (p, text) in [
        (params(2, 3, false), "invalid rekey seal configuration: threshold cannot be larger than shares"),
        (
            params(3, 1, false),
            "invalid rekey seal configuration: threshold must be greater than one for multiple shares",
        ),
        (params(0, 0, false), "invalid rekey seal configuration: shares must be at least one"),
        (params(300, 2, false), "invalid rekey seal configuration: shares must be less than 256"),
        (
            RekeyParams { backup: true, ..params(3, 2, false) },
            "cannot request a backup of the new keys without providing PGP keys for encryption",
        ),
        (RekeyParams { pgp_keys: 2, ..params(3, 2, false) }, "incorrect number of PGP keys for rekey"),
        (
            RekeyParams { pgp_keys: 3, ..params(3, 2, false) },
            "PGP-encrypted key shares are not supported by this server",
        ),
    ] {
        assert_eq!(msg(node.core.rekey_init(b, p).await.unwrap_err()), text);
    }
    for e in [
        node.core.rekey_status(RekeyTarget::Recovery).await.unwrap_err(),
        node.core.rekey_init(RekeyTarget::Recovery, params(3, 2, false)).await.unwrap_err(),
        node.core.rekey_update(RekeyTarget::Recovery, node.share(0), "x").await.unwrap_err(),
        node.core.rekey_verify_status(RekeyTarget::Recovery).await.unwrap_err(),
        node.core.rekey_cancel(RekeyTarget::Recovery, None, false).await.unwrap_err(),
    ] {
        assert_eq!(msg(e), "recovery rekeying not supported");
    }

    let st = node.core.rekey_init(b, params(3, 2, false)).await.unwrap();
    let e = node.core.rekey_update(b, node.share(0), "nope").await.unwrap_err();
    assert_eq!(
        msg(e),
        format!("incorrect nonce supplied; nonce for this rekey operation is \"{}\"", st.nonce)
    );
    let e = node.core.rekey_update(b, SecretBytes::from_slice(&[0; 10]), &st.nonce).await.unwrap_err();
    assert_eq!(msg(e), "key is shorter than minimum 16 bytes");
    node.core.rekey_update(b, node.share(0), &st.nonce).await.unwrap();
    let e = node.core.rekey_update(b, node.share(0), &st.nonce).await.unwrap_err();
    assert_eq!(msg(e), "given key has already been provided during this generation operation");
    node.core.rekey_update(b, node.share(1), &st.nonce).await.unwrap();
    let e = node.core.rekey_update(b, node.stranger(), &st.nonce).await.unwrap_err();
    assert_eq!(msg(e), UNSEAL_KEY_MISMATCH);
    let s = node.core.rekey_status(b).await.unwrap();
    assert_eq!((s.started, s.progress, s.nonce.as_str()), (true, 0, st.nonce.as_str()));
    // Shares of different lengths cannot be combined.
    node.core.rekey_update(b, node.share(0), &st.nonce).await.unwrap();
    node.core.rekey_update(b, node.share(1), &st.nonce).await.unwrap();
    let e = node.core.rekey_update(b, SecretBytes::random(20).unwrap(), &st.nonce).await.unwrap_err();
    assert_eq!(msg(e), "failed to compute root key: all parts must be the same length");
    assert_eq!(node.core.rekey_status(b).await.unwrap().progress, 0);

    // Nothing changed on disk: the old shares still unseal.
    assert!(unseals_with(&node, &node.shares[2..]).await);

    // Cancel: anonymous callers need the nonce.
    let st = node.core.rekey_init(b, params(3, 2, false)).await.unwrap();
    assert!(node.core.rekey_cancel(b, None, true).await.is_err());
    assert!(node.core.rekey_cancel(b, Some("x"), false).await.is_err());
    node.core.rekey_cancel(b, Some(&st.nonce), true).await.unwrap();
    assert!(!node.core.rekey_status(b).await.unwrap().started);
    node.core.rekey_cancel(b, None, true).await.unwrap();
}

#[tokio::test]
async fn failed_write_leaves_the_old_key_hierarchy() {
    let node = fixtures::shamir(5, 3).await;
    let b = RekeyTarget::Barrier;
    let st = node.core.rekey_init(b, params(3, 2, false)).await.unwrap();
    node.core.rekey_update(b, node.share(0), &st.nonce).await.unwrap();
    node.core.rekey_update(b, node.share(1), &st.nonce).await.unwrap();
    node.storage.fail_apply.store(true, Ordering::SeqCst);
    let e = node.core.rekey_update(b, node.share(2), &st.nonce).await.unwrap_err();
    assert_eq!(e.kind(), crate::core::error::ErrorKind::Unavailable);
    node.storage.fail_apply.store(false, Ordering::SeqCst);
    let ss = node.core.seal_status().await.unwrap();
    assert_eq!((ss.t, ss.n), (3, 5));
    assert!(unseals_with(&node, &node.shares[..3]).await);
}

#[tokio::test]
async fn static_seal_barrier_rekey_only_proves_the_quorum() {
    let node = fixtures::static_seal(5, 3).await;
    let b = RekeyTarget::Barrier;
    let e = node.core.rekey_init(b, params(3, 2, true)).await.unwrap_err();
    assert_eq!(
        msg(e),
        "requiring verification not supported when rekeying the barrier key with recovery keys"
    );
    let st = node.core.rekey_init(b, RekeyParams::default()).await.unwrap();
    assert_eq!((st.started, st.t, st.n, st.required), (true, 0, 0, 3));
    node.core.rekey_update(b, node.share(0), &st.nonce).await.unwrap();
    node.core.rekey_update(b, node.share(1), &st.nonce).await.unwrap();
    let e = node.core.rekey_update(b, node.stranger(), &st.nonce).await.unwrap_err();
    assert_eq!(msg(e), RECOVERY_KEY_MISMATCH);
    let shares: Vec<SecretBytes> = (2..5).map(|i| node.share(i)).collect();
    let r = run_update(&node, b, &st.nonce, &shares).await;
    assert!(r.keys.is_empty());
    assert!(!node.core.rekey_status(b).await.unwrap().started);
    // Nothing changed: the recovery shares still work and the node restarts by itself.
    assert!(quorum_accepted(&node, &shares).await);
    assert!(!node.restart().await.is_sealed());
}

#[tokio::test]
async fn static_seal_recovery_rekey_replaces_recovery_key() {
    let node = fixtures::static_seal(5, 3).await;
    let rc = RekeyTarget::Recovery;
    let e = node.core.rekey_init(rc, params(3, 4, false)).await.unwrap_err();
    assert_eq!(msg(e), "invalid recovery configuration: threshold cannot be larger than shares");
    let st = node.core.rekey_init(rc, params(3, 2, true)).await.unwrap();
    assert_eq!((st.t, st.n, st.required), (2, 3, 3));
    assert!(!node.core.rekey_status(RekeyTarget::Barrier).await.unwrap().started, "targets are separate");
    node.core.rekey_update(rc, node.share(0), &st.nonce).await.unwrap();
    let e = node.core.rekey_update(rc, node.share(0), &st.nonce).await.unwrap_err();
    assert_eq!(msg(e), "given key has already been provided during this rekey operation");
    let old: Vec<SecretBytes> = (1..4).map(|i| node.share(i)).collect();
    node.core.rekey_cancel(rc, None, false).await.unwrap();
    let st = node.core.rekey_init(rc, params(3, 2, true)).await.unwrap();
    let r = run_update(&node, rc, &st.nonce, &old).await;
    assert_eq!(r.keys.len(), 3);
    let vn = r.verification_nonce.clone().unwrap();
    for (i, k) in r.keys[..2].iter().enumerate() {
        match node.core.rekey_verify_update(rc, k.duplicate(), &vn).await.unwrap() {
            RekeyVerifyUpdate::Progress(p) => assert_eq!((i, p.progress), (0, 1)),
            RekeyVerifyUpdate::Complete { nonce } => assert_eq!((i, nonce.as_str()), (1, vn.as_str())),
        }
    }
    let ss = node.core.seal_status().await.unwrap();
    assert_eq!((ss.t, ss.n), (2, 3));
    assert!(!quorum_accepted(&node, &old).await, "old recovery shares are refused");
    assert!(quorum_accepted(&node, &r.keys[1..]).await);

    // Persisted: after a restart (auto-unsealed by the static key) the new shares work, and
    // unsealing a sealed node takes them too.
    let restarted = node.restart().await;
    let again = Node {
        core: restarted,
        storage: node.storage.clone(),
        shares: hex(&r.keys),
        static_key: None,
        root_token: node.root_token.clone(),
    };
    assert!(quorum_accepted(&again, &r.keys[..2]).await);
    assert!(unseals_with(&again, &again.shares[..2]).await);
    assert!(!unseals_with(&again, &node.shares[..3]).await);
}
