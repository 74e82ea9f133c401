//! Multi-node tests: real `coffer server` processes in a Raft cluster (`TestCluster`), with a
//! fault-injecting proxy between every pair of nodes.

mod audit;
mod basics;
mod canary;
mod chaos;
mod clients;
mod clock;
mod crash;
mod faults;
pub mod harness;
pub mod history;
mod metrics;
mod operations;
pub mod proxy;
