//! The bodies of the `docre` commands (src/main.rs holds their flags and the dispatch), here so
//! that tests can call them.

pub mod bench;
pub mod data;
pub mod eval;
pub mod info;
pub mod predict;
pub mod train;
