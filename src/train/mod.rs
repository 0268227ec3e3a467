//! Training: its configuration and presets, batching, stage-2 sampling and the optimizer step
//! of both stages.

pub mod batching;
pub mod preset;
pub mod sampling;
pub mod trainer;
