//! Training: stage-2 label corruption and negative sampling (more to come: the trainer).

pub mod sampling;
