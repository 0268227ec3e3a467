//! docre: DocRE-II document-level relation extraction, trained and run on the GPU through wgpu,
//! with every kernel hand-written in WGSL (see README.md and shaders/).

#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
#[cfg(not(target_arch = "wasm32"))]
pub mod cli;
pub mod data;
pub mod error;
pub mod eval;
pub mod fsutil;
pub mod gpu;
pub mod model;
pub mod ops;
pub mod progress;
pub mod rng;
pub mod selftest;
pub mod settings;
#[cfg(not(target_arch = "wasm32"))]
pub mod train;
#[cfg(not(target_arch = "wasm32"))]
pub mod workflow;

pub use error::{Error, Result};
