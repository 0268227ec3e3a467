//! Scoring (SPEC 5): the official DocRED F1 / Ign F1, Intra/Inter-F1, and result.json.

#[cfg(not(target_arch = "wasm32"))]
pub mod controls;
pub mod output;
pub mod predict;
pub mod score;
pub mod test_loop;
#[cfg(not(target_arch = "wasm32"))]
pub mod summary;
pub mod threshold;

pub use score::{score, train_facts, Scores};
