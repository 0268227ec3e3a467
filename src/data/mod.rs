//! Turning documents into encoder inputs.

pub mod bio;
pub mod docred;
pub mod features;
pub mod tokenizer;

pub use tokenizer::{MarkedDocument, Mention, WordPieceTokenizer};
