//! Start-up checks and repairs of the log against the snapshot file, before openraft reads the
//! log and the state machine (it refuses them, or panics on its own state checks).

use std::sync::Arc;

use crate::error::RaftError;
use crate::log_store::LogStore;
use crate::state_machine::Shared;

/// Reconciles the log's purge point with the snapshot file (which the state machine was just
/// loaded from, [`Shared::load_at_open`]) before openraft reads them; openraft refuses to start
/// (or panics on its own state check) otherwise. The chaos soak left followers so, killed around
/// a snapshot install (openraft 0.9 asks a follower to purge up to a snapshot it is still
/// installing, without waiting for the install):
///
/// * the log purged past the snapshot: entries are neither in the log nor in the snapshot, so
///   opening fails with a typed error. A purge waits until the state machine applied what it
///   removes, and a snapshot file is durable before openraft learns of it, so only damage or a
///   bug gets here;
/// * a hole between the purge point and the last entry (an install that finished with its purge
///   held back: old entries, then none up to the installed snapshot, then later ones): when the
///   snapshot covers it, the purge point moves to the snapshot, as the completed install would
///   have left it; a hole the snapshot does not cover is a typed error.
pub(super) async fn reconcile_log_with_state_machine(
    log: &mut LogStore,
    shared: &Arc<Shared>,
) -> Result<(), RaftError> {
    use openraft::storage::RaftLogStorage as _;
    let corrupt = |reason: String| RaftError::Corrupt { what: "raft snapshot".into(), reason };
    let purged = log.last_purged().map_err(corrupt)?;
    let (snapshot, _) = shared.applied_state().map_err(corrupt)?;
    if purged.is_some() && snapshot < purged {
        return Err(corrupt(format!(
            "the log is purged up to {purged:?} but the snapshot covers only {snapshot:?}"
        )));
    }
    // A hole between the purge point and the last entry (openraft reads every entry there at
    // start): only repairable when the snapshot covers it.
    let gap = log.highest_gap_from(purged.map(|p| p.index + 1)).map_err(corrupt)?;
    let Some(g) = gap else { return Ok(()) };
    let Some(s) = snapshot.filter(|s| s.index >= g) else {
        return Err(corrupt(format!(
            "the log is missing entries up to index {g} that the snapshot (up to {snapshot:?}) does not hold"
        )));
    };
    log.purge(s).await.map_err(|e| corrupt(e.to_string()))?;
    tracing::warn!(
        ?purged,
        snapshot = ?s,
        hole_up_to = g,
        "reconciled the raft log with the snapshot after an interrupted snapshot install"
    );
    Ok(())
}
