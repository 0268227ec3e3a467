//! Scoring (SPEC 5): the official DocRED F1 / Ign F1, Intra/Inter-F1, and result.json.

pub mod controls;
pub mod output;
pub mod predict;
pub mod score;
pub mod summary;
pub mod threshold;

pub use score::{score, train_facts, Scores};
