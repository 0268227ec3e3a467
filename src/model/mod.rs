//! The model: its configurations (`config`), the BERT-family encoder (`encoder`), DocRE-II's
//! heads (`heads`), and checkpoint I/O (`checkpoint`).

pub mod checkpoint;
pub mod config;
pub mod encoder;
pub mod heads;

pub use config::BertConfig;
pub use encoder::{Bert, EncoderOutput, Pass, Tape, TokenBatch};
