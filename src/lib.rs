//! scc-ports: the ports of on-premise Sinch Contact Center, planned, checked, firewalled and proven.
//!
//! The core is pure (data in, data out): [`catalog`], [`range`], [`diag`], [`render`].
//! Only the `cli` module of the binary prints.

pub mod catalog;
pub mod diag;
pub mod range;
pub mod net;
