//! Multi-node tests: real `coffer server` processes in a Raft cluster (`TestCluster`), with a
//! fault-injecting proxy between every pair of nodes.

mod basics;
mod canary;
mod clients;
mod crash;
mod faults;
pub mod harness;
mod metrics;
mod operations;
pub mod proxy;
