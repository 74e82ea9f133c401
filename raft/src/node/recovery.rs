//! Start-up repairs of what a kill during a snapshot install can leave behind, before openraft
//! reads the log and the state machine (it refuses them, or panics on its own state checks).

use std::sync::Arc;

use crate::db::Db;
use crate::error::RaftError;
use crate::log_store::LogStore;
use crate::state_machine::Shared;

/// Reconciles the log's purge point with the state machine and the stored snapshot before
/// openraft reads them; openraft refuses to start (or panics on its own state check) otherwise.
/// The chaos soak left followers so, killed around a snapshot install (openraft 0.9 asks a
/// follower to purge up to a snapshot it is still installing, without waiting for the install):
///
/// * the log purged past every stored snapshot: when the state machine — durable before any
///   purge — covers the purged entries, the snapshot is only an export of it, so one is written
///   from it; when it does not, entries were lost: a typed error instead of starting;
/// * a hole between the purge point and the last entry that the state machine has applied past:
///   the purge point moves to the applied entry (covered by a snapshot from the state machine),
///   as a completed install would have left it; a hole the state machine does not cover is a
///   typed error.
pub(super) async fn reconcile_log_with_state_machine(
    log: &mut LogStore,
    shared: &Arc<Shared>,
    db: &Arc<Db>,
) -> Result<(), RaftError> {
    use openraft::storage::RaftLogStorage as _;
    let corrupt = |reason: String| RaftError::Corrupt { what: "raft snapshot".into(), reason };
    complete_interrupted_install(log, shared, db).await?;
    let purged = log.last_purged().map_err(corrupt)?;
    let snapshot = shared.read_snapshot_file().map_err(corrupt)?.and_then(|(meta, _)| meta.last_log_id);
    let (applied, _) = shared.applied_state().map_err(corrupt)?;
    if purged.is_some() && snapshot < purged && applied < purged {
        return Err(corrupt(format!(
            "the log is purged up to {purged:?} but the state machine was applied only up to {applied:?} \
             and the snapshot covers {snapshot:?}"
        )));
    }
    // A hole between the purge point and the last entry (openraft reads every entry there at
    // start): only repairable when the state machine has applied past it.
    let gap = log.highest_gap_from(purged.map(|p| p.index + 1)).map_err(corrupt)?;
    let hole = match (gap, applied) {
        (None, _) => false,
        (Some(g), Some(a)) if a.index >= g => true,
        (Some(g), _) => {
            return Err(corrupt(format!(
                "the log is missing entries up to index {g} that the state machine (applied up to \
                 {applied:?}) does not hold"
            )))
        }
    };
    let snapshot_behind = purged.is_some() && snapshot < purged;
    if !hole && !snapshot_behind {
        return Ok(());
    }
    if snapshot < applied {
        let s = Arc::clone(shared);
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            let dump = s.dump()?;
            let (meta, bytes) = Shared::encode_dump(&dump)?;
            s.store_snapshot_file(&meta, &bytes)
        })
        .await
        .map_err(|e| corrupt(e.to_string()))?
        .map_err(corrupt)?;
    }
    db.sync().await.map_err(|e| RaftError::Io(e.to_string()))?;
    if hole {
        if let Some(a) = applied {
            log.purge(a).await.map_err(|e| corrupt(e.to_string()))?;
        }
    }
    tracing::warn!(
        ?purged,
        ?snapshot,
        ?applied,
        hole,
        "reconciled the raft log with the state machine after an interrupted snapshot install"
    );
    Ok(())
}

/// A snapshot install writes the snapshot file (durably) and then replaces the state machine's
/// contents; a node killed in between holds a snapshot newer than its state machine, which
/// openraft refuses at start (`snapshot_last_log_id <= committed` panics). The file is complete
/// and verified (checksummed), and holds only committed state: the install is completed from
/// it, and the log entries it covers are purged, as the interrupted install would have left them.
async fn complete_interrupted_install(
    log: &mut LogStore,
    shared: &Arc<Shared>,
    db: &Arc<Db>,
) -> Result<(), RaftError> {
    use openraft::storage::RaftLogStorage as _;
    let corrupt = |reason: String| RaftError::Corrupt { what: "raft snapshot".into(), reason };
    let Some((meta, bytes)) = shared.read_snapshot_file().map_err(corrupt)? else { return Ok(()) };
    let (applied, _) = shared.applied_state().map_err(corrupt)?;
    let Some(last) = meta.last_log_id.filter(|l| Some(*l) > applied) else { return Ok(()) };
    let decoded = crate::snapshot::decode(&bytes).map_err(corrupt)?;
    if decoded.meta.last_log_id != meta.last_log_id {
        return Err(corrupt("the snapshot file's contents do not match its metadata".into()));
    }
    shared.replace_at_start(decoded).map_err(corrupt)?;
    db.sync().await.map_err(|e| RaftError::Io(e.to_string()))?;
    log.purge(last).await.map_err(|e| corrupt(e.to_string()))?;
    tracing::warn!(
        ?applied,
        snapshot = ?meta.last_log_id,
        "completed a snapshot install that was interrupted after its file was written"
    );
    Ok(())
}
