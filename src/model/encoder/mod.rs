//! The BERT-family encoder: weights and the forward/backward passes, long-document windows, its
//! f64 CPU reference, and where its files come from (a folder or a Hugging Face hub id).

pub mod bert;
#[cfg(not(target_arch = "wasm32"))]
pub mod hub;
pub mod reference;
pub mod windows;

pub use bert::{Bert, EncoderOutput, Pass, Tape, TokenBatch};

/// Where a hub encoder came from, as recorded in checkpoints (which the browser reads too, while
/// downloading from the hub is host-only: `hub`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HubRef {
    pub id: String,
    /// As asked for (`main` when none was given).
    pub revision: String,
    /// The commit that revision resolved to.
    pub commit: String,
}
