//! Sensors in: the TLS listener, one session per connection, the admission
//! policy and the sensor registry.

pub(crate) mod elastic;
pub(crate) mod listener;
pub(crate) mod policy;
pub(crate) mod reject;
pub(crate) mod sensors;
pub(crate) mod session;
