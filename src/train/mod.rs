//! Training: stage-2 sampling, the optimizer step of both stages, and the frozen-encoder cache.

pub mod encoder_cache;
pub mod sampling;
pub mod trainer;
