//! The model: the BERT-family encoder (config, weights, forward/backward, long-document
//! windows) and its f64 CPU reference; DocRE-II's heads (base module, inference module, losses,
//! test loop).

pub mod base;
pub mod batch;
pub mod bert;
pub mod checkpoint;
pub mod config;
pub mod docre;
pub mod head_dropout;
pub mod heads_reference;
pub mod hub;
pub mod inference;
pub mod params;
pub mod reference;
pub mod tensor_file;
pub mod windows;

pub use bert::{Bert, EncoderOutput, Pass, Tape, TokenBatch};
pub use config::BertConfig;
