//! The integration tests, one binary: CLI specs, the catalog against the source page, broken
//! inputs, golden outputs, and property tests of the range arithmetic.

mod catalog;
mod cli;
mod deployment;
mod golden;
mod live;
mod ranges;
mod support;
#[cfg(unix)]
mod text;
#[cfg(unix)]
mod writes;
