//! What the server keeps: the embedded database, the analyzer queues, and
//! in Redis mode the state shared with other nodes.

pub(crate) mod db;
pub(crate) mod embedded;
pub(crate) mod queues;
pub(crate) mod redis;
