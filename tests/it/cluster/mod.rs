//! Multi-node tests: the fault proxy, and (with the Raft cluster) the `TestCluster` harness.

pub mod proxy;
