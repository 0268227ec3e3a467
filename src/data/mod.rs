//! Turning documents into encoder inputs.

pub mod tokenizer;

pub use tokenizer::{MarkedDocument, Mention, WordPieceTokenizer};
