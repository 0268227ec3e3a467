//! The BERT-family encoder: weights and the forward/backward passes, long-document windows, its
//! f64 CPU reference, and where its files come from (a folder or a Hugging Face hub id).

pub mod bert;
pub mod hub;
pub mod reference;
pub mod windows;

pub use bert::{Bert, EncoderOutput, Pass, Tape, TokenBatch};
