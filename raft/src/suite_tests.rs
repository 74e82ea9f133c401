//! openraft's storage conformance suite on our sled log store and state machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};

use crate::db::{Db, FatalHook};
use crate::log_store::LogStore;
use crate::state_machine::{Shared, StateMachine};
use crate::types::{OrStorageError, TypeConfig};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), OrStorageError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let hook: FatalHook = Arc::new(|m: &str| panic!("fatal in suite: {m}"));
        let db = Db::open(&dir.path().join("raft"), hook).expect("open db");
        let log = LogStore::open(Arc::clone(&db)).expect("log store");
        let sm = StateMachine::new(Shared::open(db).expect("sm"));
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    Suite::test_all(Builder).expect("openraft storage suite");
}
