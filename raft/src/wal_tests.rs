//! The WAL on its own: appends across segments, truncation, purging, reopening, torn writes
//! cut off at open, damage refused, and the migration of a layout-1 log (sled tree).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use openraft::storage::RaftLogStorage as _;
use openraft::{CommittedLeaderId, Entry, EntryPayload, RaftLogReader as _};

use crate::db::{Db, FatalHook};
use crate::log_store::{encode_entry, index_key, verify_record, LogStore, LOG_FORMAT};
use crate::types::{LogEntry, TypeConfig};
use crate::wal::{Wal, WalError};

fn entry(index: u64, size: usize) -> LogEntry {
    let batch = coffer_storage::Batch::new().put(format!("k/{index}"), vec![index as u8; size]);
    Entry {
        log_id: openraft::LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::<TypeConfig>::Normal(crate::types::Command::write(batch, 1)),
    }
}

fn records(range: std::ops::RangeInclusive<u64>, size: usize) -> Vec<(u64, Vec<u8>)> {
    range.map(|i| (i, encode_entry(&entry(i, size)).unwrap())).collect()
}

fn open(dir: &Path, purged: Option<u64>) -> Wal {
    Wal::open(dir, purged, verify_record).unwrap().0
}

fn indexes(wal: &Wal, from: u64, to: u64) -> Vec<u64> {
    wal.read(from, to).unwrap().into_iter().map(|(i, _)| i).collect()
}

#[test]
fn appends_truncates_and_purges_across_segments_and_reopens() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut wal = open(&dir, None);
    wal.set_segment_target(4096);
    for chunk in (1..=60u64).collect::<Vec<_>>().chunks(6) {
        let rs = records(chunk[0]..=chunk[chunk.len() - 1], 300);
        wal.append(&rs, false).unwrap().run().unwrap();
    }
    assert!(wal.segment_count() > 3, "{} segments", wal.segment_count());
    assert_eq!(wal.bounds(), Some((1, 60)));
    assert_eq!(indexes(&wal, 1, 60), (1..=60).collect::<Vec<_>>());
    for (i, raw) in wal.read(10, 20).unwrap() {
        verify_record(i, &raw).unwrap();
    }
    // Not consecutive: refused.
    assert!(wal.append(&records(62..=62, 10), false).is_err());
    assert!(wal.append(&records(30..=30, 10), false).is_err());
    // Truncate in the middle of a segment, append again.
    wal.truncate(33).unwrap().run().unwrap();
    assert_eq!(wal.bounds(), Some((1, 32)));
    wal.append(&records(33..=40, 20), false).unwrap().run().unwrap();
    assert_eq!(indexes(&wal, 30, 100), (30..=40).collect::<Vec<_>>());
    // Purge: whole segments go; the purged entries are never read.
    let before = wal.segment_count();
    wal.purge(25).unwrap();
    assert!(wal.segment_count() < before);
    assert_eq!(wal.bounds(), Some((26, 40)));
    assert_eq!(indexes(&wal, 1, 27), vec![26, 27]);
    drop(wal);
    // Reopened with the durable purge point: the same log.
    let wal = open(&dir, Some(25));
    assert_eq!(wal.bounds(), Some((26, 40)));
    assert_eq!(indexes(&wal, 0, u64::MAX), (26..=40).collect::<Vec<_>>());
    // Purged past the last entry: empty; the next append starts after the purge point.
    wal.purge(45).unwrap();
    assert_eq!(wal.bounds(), None);
    wal.append(&records(46..=48, 10), false).unwrap().run().unwrap();
    assert_eq!(wal.bounds(), Some((46, 48)));
    assert_eq!(wal.segment_count(), 1);
    drop(wal);
    assert_eq!(open(&dir, Some(45)).bounds(), Some((46, 48)));
}

fn last_segment(dir: &Path) -> std::path::PathBuf {
    let mut names: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    names.pop().unwrap()
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    use std::io::Write as _;
    std::fs::OpenOptions::new().append(true).open(path).unwrap().write_all(bytes).unwrap();
}

#[test]
fn torn_writes_are_cut_off_and_damage_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let fresh = |name: &str| {
        let dir = tmp.path().join(name);
        let wal = open(&dir, None);
        wal.append(&records(1..=10, 1200), false).unwrap().run().unwrap();
        dir
    };
    let reopen = |dir: &Path| Wal::open(dir, None, verify_record);

    // A frame cut short by the end of the file.
    let dir = fresh("short");
    let rec = encode_entry(&entry(11, 1200)).unwrap();
    let mut frame = (rec.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&rec[..rec.len() / 2]);
    append_bytes(&last_segment(&dir), &frame);
    let (wal, repaired) = reopen(&dir).unwrap();
    assert!(repaired.is_some());
    assert_eq!(wal.bounds(), Some((1, 10)));
    wal.append(&records(11..=11, 1200), false).unwrap().run().unwrap();
    drop(wal);
    assert_eq!(reopen(&dir).unwrap().0.bounds(), Some((1, 11)), "the repaired log took new appends");

    // Only a length field, and zeros to the end of the file (a size extended, data not written).
    for (name, tail) in [("len-only", vec![9u8, 0]), ("zeros", vec![0u8; 3000])] {
        let dir = fresh(name);
        append_bytes(&last_segment(&dir), &tail);
        let (wal, repaired) = reopen(&dir).unwrap();
        assert!(repaired.is_some(), "{name}");
        assert_eq!(wal.bounds(), Some((1, 10)), "{name}");
    }

    // The last frame with a zeroed sector: torn. A changed byte instead: damage, refused.
    let dir = fresh("zero-sector");
    let (path, offset, len) = open(&dir, None).frame_of(10).unwrap();
    assert!(len > 1100);
    let zero_at = (offset + 4).div_ceil(512) * 512;
    write_at(&path, zero_at, &[0u8; 512]);
    let (wal, repaired) = reopen(&dir).unwrap();
    assert!(repaired.is_some());
    assert_eq!(wal.bounds(), Some((1, 9)));
    let dir = fresh("flipped-last");
    let (path, offset, len) = open(&dir, None).frame_of(10).unwrap();
    write_at(&path, offset + 4 + u64::from(len) / 2, b"#");
    assert!(matches!(reopen(&dir), Err(WalError::Corrupt(_))));

    // Damage before the last frame, even a zeroed sector: refused (acknowledged entries).
    let dir = fresh("zero-middle");
    let (path, offset, _) = open(&dir, None).frame_of(5).unwrap();
    write_at(&path, (offset + 4).div_ceil(512) * 512, &[0u8; 512]);
    assert!(matches!(reopen(&dir), Err(WalError::Corrupt(_))));

    // A frame moved to another position: its checksum binds it to its index.
    let dir = tmp.path().join("moved");
    let rs = records(1..=3, 50);
    Wal::write_segment_for_test(&dir, 1, &[rs[0].1.clone(), rs[2].1.clone(), rs[1].1.clone()]);
    assert!(matches!(reopen(&dir), Err(WalError::Corrupt(_))));

    // A segment whose header names another index, a foreign file, a future format.
    let dir = tmp.path().join("renamed");
    Wal::write_segment_for_test(&dir, 1, &[rs[0].1.clone()]);
    std::fs::rename(dir.join(format!("{:020}.seg", 1)), dir.join(format!("{:020}.seg", 2))).unwrap();
    assert!(matches!(reopen(&dir), Err(WalError::Corrupt(_))));
    let dir = fresh("foreign");
    std::fs::write(dir.join("notes.txt"), b"x").unwrap();
    assert!(matches!(reopen(&dir), Err(WalError::Corrupt(_))));
    let dir = fresh("format");
    write_at(&last_segment(&dir), 8, &9u32.to_le_bytes());
    let err = reopen(&dir).err().unwrap().to_string();
    assert!(err.contains("format 9 is not supported"), "{err}");

    // A last segment whose creation was cut short (header incomplete) is removed.
    let dir = fresh("new-segment");
    std::fs::write(dir.join(format!("{:020}.seg", 11)), &b"cofferwl"[..5]).unwrap();
    let (wal, repaired) = reopen(&dir).unwrap();
    assert!(repaired.is_some());
    assert_eq!(wal.bounds(), Some((1, 10)));
    assert!(!dir.join(format!("{:020}.seg", 11)).exists());
}

fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt as _;
    std::fs::OpenOptions::new().write(true).open(path).unwrap().write_all_at(bytes, offset).unwrap();
}

fn hook() -> FatalHook {
    Arc::new(|m: &str| panic!("fatal: {m}"))
}

/// A data directory of the layout before the WAL (entries in the sled tree `log`, one of them
/// of the record format before checksums) opens: the entries move to the WAL, the layout is
/// recorded as 2, the tree is emptied, and a second open finds the same log.
#[test]
fn a_layout_1_log_moves_to_the_wal_at_open() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("raft");
    let entries: Vec<LogEntry> = (1..=30).map(|i| entry(i, 40)).collect();
    {
        let db = Db::open(&dir, hook()).unwrap();
        let meta = db.tree("log_meta").unwrap();
        meta.insert(b"format", &[1u8]).unwrap();
        meta.insert(b"last_purged", serde_json::to_vec(&entries[4].log_id).unwrap()).unwrap();
        let tree = db.tree("log").unwrap();
        for e in &entries {
            let raw = if e.log_id.index == 20 {
                [vec![1u8], serde_json::to_vec(e).unwrap()].concat()
            } else {
                encode_entry(e).unwrap()
            };
            tree.insert(index_key(e.log_id.index), raw).unwrap();
        }
        db.sync_blocking().unwrap();
    }
    for round in 0..2 {
        let db = Db::open(&dir, hook()).unwrap();
        let mut log = LogStore::open(Arc::clone(&db)).unwrap();
        assert_eq!(db.tree("log_meta").unwrap().get(b"format").unwrap().unwrap().as_ref(), [LOG_FORMAT]);
        assert!(db.tree("log").unwrap().is_empty(), "round {round}: the tree was not emptied");
        let read = rt.block_on(log.try_get_log_entries(0..=100)).unwrap();
        assert_eq!(read, entries[5..].to_vec(), "round {round}");
        let state = rt.block_on(log.get_log_state()).unwrap();
        assert_eq!(state.last_log_id, Some(entries[29].log_id));
        assert_eq!(state.last_purged_log_id, Some(entries[4].log_id));
        drop((log, db));
    }
}

fn node_config(dir: &Path) -> crate::RaftConfig {
    let mut c = crate::RaftConfig::new(
        1,
        dir,
        crate::NodeInfo {
            name: "n1".into(),
            api_addr: "https://127.0.0.1:1".into(),
            cluster_addr: "127.0.0.1:2".into(),
        },
    );
    c.heartbeat_interval = std::time::Duration::from_millis(20);
    c.election_timeout_min = std::time::Duration::from_millis(60);
    c.election_timeout_max = std::time::Duration::from_millis(120);
    c.fatal = hook();
    c
}

async fn lead(node: &crate::RaftNode) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while node.role() != coffer_storage::Role::Leader {
        assert!(std::time::Instant::now() < end, "the node did not lead");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

fn reopen(dir: &Path) -> Arc<Db> {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match Db::open(dir, hook()) {
            Ok(db) => return db,
            Err(e) if std::time::Instant::now() < end => {
                eprintln!("reopening {}: {e}; retrying", dir.display());
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => panic!("cannot reopen {}: {e}", dir.display()),
        }
    }
}

/// The state machine is held in memory: every open rebuilds it from the snapshot file and
/// re-applies the log up to the committed index before `open` returns (nothing is served from a
/// partial state). Here a snapshot covers the first ten writes and the log the next ten; after
/// a restart the applied state is the same, byte for byte, before any election. The sled trees
/// of the version that kept the records in sled are dropped at open, and what they held is not
/// read (a stray record there never shows up).
#[test]
fn a_restarted_node_rebuilds_its_state_machine_from_snapshot_and_log() {
    use coffer_storage::Storage as _;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node1");
    let digest = rt.block_on(async {
        let node = crate::RaftNode::open(node_config(&dir)).await.unwrap();
        node.initialize_single().await.unwrap();
        lead(&node).await;
        for i in 0..10 {
            node.storage().apply(coffer_storage::Batch::new().put(format!("k/{i}"), vec![1])).await.unwrap();
        }
        node.trigger_snapshot().await.unwrap();
        let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while node.raft().metrics().borrow().snapshot.is_none() {
            assert!(std::time::Instant::now() < end, "no snapshot was built");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        for i in 10..20 {
            node.storage().apply(coffer_storage::Batch::new().put(format!("k/{i}"), vec![2])).await.unwrap();
        }
        let digest = node.digest().unwrap();
        node.shutdown().await.unwrap();
        digest
    });
    let tree_names =
        |db: &Db| -> Vec<Vec<u8>> { db.db.tree_names().into_iter().map(|n| n.to_vec()).collect() };
    {
        let db = reopen(&dir);
        // What the version that kept records in sled would have left behind.
        db.tree("sm_data").unwrap().insert(b"k/stray", crate::apply::encode_record(999, b"old")).unwrap();
        db.tree("sm_meta").unwrap().insert(b"dirty", &[1u8]).unwrap();
        db.sync_blocking().unwrap();
    }
    rt.block_on(async {
        let node = crate::RaftNode::open(node_config(&dir)).await.unwrap();
        assert_eq!(node.digest().unwrap(), digest, "the state after the restart differs");
        assert!(node.storage().get("k/stray").await.unwrap().is_none(), "the old sled tree was read");
        for i in 0..20 {
            assert!(node.storage().get(&format!("k/{i}")).await.unwrap().is_some(), "k/{i} is gone");
        }
        node.shutdown().await.unwrap();
    });
    let db = reopen(&dir);
    let names = tree_names(&db);
    assert!(
        !names.iter().any(|n| n.as_slice() == b"sm_data" || n.as_slice() == b"sm_meta"),
        "the old trees were not dropped"
    );
}

/// The committed log id is kept in `<raft dir>/committed` alone (sled is not written on every
/// commit); a damaged file is ignored, never trusted; a store whose sled holds the committed id
/// (written by a build before `1d23338`) still reads it, and the newer of the two counts.
#[test]
fn the_committed_index_is_read_from_its_file_and_a_damaged_file_is_ignored() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("raft");
    let id = entry(7, 1).log_id;
    {
        let db = Db::open(&dir, hook()).unwrap();
        let mut log = LogStore::open(Arc::clone(&db)).unwrap();
        rt.block_on(log.save_committed(Some(id))).unwrap();
        assert!(db.tree("log_meta").unwrap().get(b"committed").unwrap().is_none(), "sled was written");
        assert_eq!(rt.block_on(log.read_committed()).unwrap(), Some(id));
        // An older build's copy in sled: read, and the newer one wins.
        let older = entry(5, 1).log_id;
        db.tree("log_meta").unwrap().insert(b"committed", serde_json::to_vec(&Some(older)).unwrap()).unwrap();
        assert_eq!(rt.block_on(log.read_committed()).unwrap(), Some(id));
        let newer = entry(9, 1).log_id;
        db.tree("log_meta").unwrap().insert(b"committed", serde_json::to_vec(&Some(newer)).unwrap()).unwrap();
        assert_eq!(rt.block_on(log.read_committed()).unwrap(), Some(newer));
        db.tree("log_meta").unwrap().remove(b"committed").unwrap();
        db.sync_blocking().unwrap();
    }
    let db = Db::open(&dir, hook()).unwrap();
    let mut log = LogStore::open(Arc::clone(&db)).unwrap();
    assert_eq!(rt.block_on(log.read_committed()).unwrap(), Some(id));
    // One changed byte in the JSON: the checksum refuses it.
    let path = dir.join("committed");
    let mut raw = std::fs::read(&path).unwrap();
    let at = raw.iter().position(|b| b.is_ascii_digit()).unwrap();
    raw[at] = if raw[at] == b'9' { b'8' } else { raw[at] + 1 };
    std::fs::write(&path, &raw).unwrap();
    assert_eq!(rt.block_on(log.read_committed()).unwrap(), None);
}
