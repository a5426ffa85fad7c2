//! Primitives every area uses: UTC days, the lock protocol, the binary
//! `COPY` format of event rows, an event's identity.

pub mod copy;
pub(crate) mod days;
pub(crate) mod event_key;
pub mod locks;
