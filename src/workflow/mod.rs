//! What the CLI commands run: configuration and presets, the two-stage training loop with its
//! log and checkpoints, evaluation and prediction outputs, and the demo.

pub mod demo;
pub mod plot;
pub mod preset;
pub mod run;
pub mod shard;
