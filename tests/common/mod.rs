//! Helpers shared by integration tests.
#![allow(dead_code)]

pub mod burst;
pub mod netns;
