//! Reading documents (DocRED-style and biomedical formats, the bundled sample) and turning them
//! into encoder inputs.

pub mod bio;
pub mod docred;
pub mod features;
pub mod format;
pub mod sample;
pub mod strict_json;
pub mod tokenizer;

pub use tokenizer::{MarkedDocument, Mention, WordPieceTokenizer};

/// Document-level offset of each sentence's first word.
pub(crate) fn sentence_offsets(sents: &[Vec<String>]) -> Vec<usize> {
    sents
        .iter()
        .scan(0, |acc, s| {
            let o = *acc;
            *acc += s.len();
            Some(o)
        })
        .collect()
}
