//! Group commit: concurrent client writes share one log entry.
//!
//! openraft 0.9 persists one append at a time and waits for its fsync before the next, so one
//! entry per client write bounds throughput by fsync latency. Writes therefore go through a
//! queue: while up to [`IN_FLIGHT`] entries are being committed, new writes wait; the next entry
//! takes every waiting write (up to [`MAX_GROUP_BATCHES`] / [`MAX_GROUP_BYTES`]) as one
//! [`Action::WriteMany`], which the state machine applies batch by batch, each atomically with
//! its own preconditions and its own version. One client alone still gets one entry per write
//! (no added delay: nothing waits for a batch to fill).

use std::sync::{Arc, Weak};
use std::time::Duration;

use coffer_storage::{Batch, Op};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::RaftNode;
use crate::error::RaftError;
use crate::types::{Action, ApplyResult, Command};

/// Entries being committed at once.
pub const IN_FLIGHT: usize = 2;
/// Most client batches in one entry.
pub const MAX_GROUP_BATCHES: usize = 512;
/// Payload bytes (keys and values) per entry, well below [`crate::MAX_ENTRY_BYTES`] once encoded.
pub const MAX_GROUP_BYTES: usize = 384 * 1024;

/// A write waiting for its entry.
pub(crate) struct Pending {
    batch: Batch,
    size: usize,
    reply: oneshot::Sender<Result<ApplyResult, RaftError>>,
}

fn batch_size(b: &Batch) -> usize {
    b.ops
        .iter()
        .map(|op| match op {
            Op::Put { key, value } => key.len() + value.len(),
            Op::Delete { key } => key.len(),
        })
        .sum::<usize>()
        + b.preconditions.iter().map(|p| p.key.len() + 9).sum::<usize>()
}

/// The queue's sending side, held by the node.
pub(crate) type WriteQueue = mpsc::UnboundedSender<Pending>;

/// Starts the queue's task for `node`.
pub(crate) fn start(node: Weak<RaftNode>) -> WriteQueue {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(node, rx));
    tx
}

async fn run(node: Weak<RaftNode>, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        // Wait for a free slot first: writes arriving meanwhile join this entry.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
        let mut bytes = first.size;
        let mut group = vec![first];
        while group.len() < MAX_GROUP_BATCHES && bytes < MAX_GROUP_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.size;
                    group.push(p);
                }
                Err(_) => break,
            }
        }
        let Some(node) = node.upgrade() else { return };
        tokio::spawn(async move {
            let _slot = slot;
            let outcome = node.commit_group(&mut group).await;
            // Release the node before anyone hears back: a caller that shuts the node down
            // and reopens its database must not find this task still holding it.
            drop(node);
            reply_all(group, outcome);
        });
    }
}

/// A copy of `e` for every waiter of a failed entry.
fn share_error(e: &RaftError) -> RaftError {
    match e {
        RaftError::NotLeader { leader } => RaftError::NotLeader { leader: leader.clone() },
        other => RaftError::Unavailable(other.to_string()),
    }
}

impl RaftNode {
    /// Commits `batch` (through the group-commit queue) and returns its apply result.
    pub(crate) async fn write_batch(&self, batch: Batch) -> Result<ApplyResult, RaftError> {
        let (reply, rx) = oneshot::channel();
        let size = batch_size(&batch);
        self.writes
            .send(Pending { batch, size, reply })
            .map_err(|_| RaftError::Unavailable("the write queue has stopped".into()))?;
        // The entry's own timeout bounds the wait; this one only guards against a lost reply.
        match tokio::time::timeout(self.write_timeout() + Duration::from_secs(1), rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(RaftError::Unavailable("write abandoned; its outcome is unknown".into())),
            Err(_) => Err(RaftError::Unavailable(
                "write not confirmed within the write timeout (no quorum?); its outcome is unknown".into(),
            )),
        }
    }

    async fn commit_group(&self, group: &mut [Pending]) -> Result<ApplyResult, RaftError> {
        let now_ns = coffer_storage::clock::now_unix_ns();
        let action = if group.len() == 1 {
            Action::Write { batch: std::mem::take(&mut group[0].batch) }
        } else {
            Action::WriteMany { batches: group.iter_mut().map(|p| std::mem::take(&mut p.batch)).collect() }
        };
        let fut = self.raft.client_write(Command::new(action, now_ns));
        match tokio::time::timeout(self.write_timeout(), fut).await {
            Ok(Ok(resp)) => Ok(resp.data),
            Ok(Err(e)) => Err(self.map_write_error(e)),
            Err(_) => Err(RaftError::Unavailable(
                "write not confirmed within the write timeout (no quorum?); its outcome is unknown".into(),
            )),
        }
    }
}

/// Hands every waiter of `group` its share of the entry's `outcome`.
fn reply_all(mut group: Vec<Pending>, outcome: Result<ApplyResult, RaftError>) {
    match outcome {
        Ok(ApplyResult::Many(results)) if results.len() == group.len() => {
            for (p, r) in group.into_iter().zip(results) {
                let _ = p.reply.send(Ok(r));
            }
        }
        Ok(ApplyResult::Many(_)) => {
            for p in group {
                let _ = p.reply.send(Err(RaftError::Unavailable("group commit result mismatch".into())));
            }
        }
        Ok(single) if group.len() == 1 => {
            if let Some(p) = group.pop() {
                let _ = p.reply.send(Ok(single));
            }
        }
        Ok(other) => {
            // A whole-entry rejection (e.g. an unknown format): every batch shares it.
            for p in group {
                let _ = p.reply.send(Ok(other.clone()));
            }
        }
        Err(e) => {
            for p in group {
                let _ = p.reply.send(Err(share_error(&e)));
            }
        }
    }
}
