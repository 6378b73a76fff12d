//! The embedded backends (the default, `--store embedded`): everything in
//! the local redb store, nothing shared with other nodes.

pub(crate) mod queues;
