//! What the CLI commands run above the model: the two-stage training run with its log and
//! checkpoints, the demo, shards of a corpus, and plots.

pub mod demo;
pub mod plot;
pub mod run;
pub mod shard;
