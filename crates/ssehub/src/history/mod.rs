//! The log of accepted updates: the one source of both replay and live fan-out.
//!
//! A backend assigns each appended update a sequence number, keeps an index
//! from event id to sequence number (finding an id never scans), serves pages
//! of events after a sequence number, and feeds every appended event, in
//! sequence order, to the hub's tail (see [`Tailed`]). [`open`] opens the
//! configured one.

pub mod disk;
mod ids;
pub mod log;
mod memory;
mod open;
pub mod redis;
pub mod tail;

pub use disk::DiskLog;
pub use ids::IdGenerator;
pub use log::{
    Announcements, Cluster, Directory, Holding, Log, LogError, Node, Nodes, NotReady, Retention,
};
pub use memory::MemoryLog;
pub use open::{open, Store};
pub use redis::RedisLog;
pub use tail::{Tail, Tailed};
