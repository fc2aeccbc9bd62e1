//! scc-ports: the ports of on-premise Sinch Contact Center, planned, checked, firewalled and proven.
//!
//! The core is pure (data in, data out): [`catalog`], [`range`], [`diag`], [`render`].
//! Only [`cli`] prints; only [`net`] touches sockets.

pub mod audit;
pub mod catalog;
pub mod cli;
pub mod deployment;
pub mod diag;
pub mod firewall;
pub mod flows;
pub mod net;
pub mod plan;
pub mod range;
pub mod render;
pub mod report;
pub mod safe;

/// The version of every JSON object this tool writes (`"format_version"`); raised when a field
/// changes meaning or goes away (adding fields does not raise it). See docs/safety.md.
pub const FORMAT_VERSION: u32 = 1;
