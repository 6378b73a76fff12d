//! Redis mode (`--store redis://`): queues, policy, leases and sensor
//! metadata in the reference key schema, shared by every node.

pub(crate) mod backend;
pub(crate) mod policy;
pub(crate) mod queues;
