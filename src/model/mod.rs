//! The model: the BERT-family encoder (config, weights, forward/backward, long-document
//! windows) and its f64 CPU reference.

pub mod bert;
pub mod config;
pub mod reference;
pub mod tensor_file;
pub mod windows;

pub use bert::{Bert, EncoderOutput, Pass, Tape, TokenBatch};
pub use config::BertConfig;
