//! The model: its configurations (`config`), the BERT-family encoder (`encoder`) and a frozen
//! encoder's cached outputs (`encoder_cache`), DocRE-II's heads (`heads`), batches of examples
//! (`batch`), the two together with the one way to encode a batch (`encode`), and checkpoint I/O
//! (`checkpoint`).

pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod encode;
pub mod encoder;
pub mod encoder_cache;
pub mod heads;

pub use batch::Batch;
pub use config::BertConfig;
pub use encode::{Encoded, Model};
pub use encoder::{Bert, EncoderOutput, Pass, Tape, TokenBatch};
