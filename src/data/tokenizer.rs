//! Word-piece tokenization through a Hugging Face `tokenizer.json`, and ATLOP's entity-marker
//! scheme (SPEC 1.2): every word is tokenized on its own, a literal `*` goes before the first
//! and after the last word of each mention, and a mention is represented by its leading `*`.

use std::path::Path;

use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;

use crate::error::{Error, Result};

pub struct WordPieceTokenizer {
    inner: Backend,
    path: String,
    /// SHA-256 of what defines the tokenizer (the tokenizer.json bytes, or the word list), for
    /// cache keys.
    fingerprint: [u8; 32],
    pub cls: u32,
    pub sep: u32,
    pub marker: u32,
}

enum Backend {
    /// A Hugging Face `tokenizer.json`.
    Hf(Box<Tokenizer>),
    /// One id per lower-cased word (unknown words → [UNK]): for randomly initialized encoders
    /// (the `tiny` preset), which need no pretrained vocabulary.
    Words(std::collections::HashMap<String, u32>),
}

/// Special ids of the word-level vocabulary.
const WORD_SPECIALS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "*"];

/// A mention as a word span [start, end) inside one sentence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mention {
    pub sent: usize,
    pub start: usize,
    pub end: usize,
}

/// Encoder input ids of a marked document and, per mention (in the order given), the input
/// index of its leading `*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkedDocument {
    pub ids: Vec<u32>,
    pub mention_starts: Vec<usize>,
}

impl WordPieceTokenizer {
    /// Loads `tokenizer.json` with truncation and padding switched off: checkpoints such as
    /// all-MiniLM-L6-v2 ship with both on, which would silently cut documents at 128 pieces.
    pub fn load(path: &Path) -> Result<WordPieceTokenizer> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io { context: format!("cannot read tokenizer {}", path.display()), source })?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// `load` on the bytes of a tokenizer.json; `origin` names it in errors.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<WordPieceTokenizer> {
        let mut inner = Tokenizer::from_bytes(bytes).map_err(|e| Error::Input(format!("{origin}: cannot load tokenizer: {e}")))?;
        inner
            .with_truncation(None)
            .map_err(|e| Error::Input(format!("{origin}: cannot switch truncation off: {e}")))?
            .with_padding(None);
        let id = |candidates: &[&str]| -> Result<u32> {
            candidates
                .iter()
                .find_map(|t| inner.token_to_id(t))
                .ok_or_else(|| Error::Input(format!("{origin}: the vocabulary has none of the tokens {candidates:?}")))
        };
        Ok(WordPieceTokenizer {
            cls: id(&["[CLS]", "<s>"])?,
            sep: id(&["[SEP]", "</s>"])?,
            marker: id(&["*"])?,
            path: origin.to_string(),
            fingerprint: Sha256::digest(bytes).into(),
            inner: Backend::Hf(Box::new(inner)),
        })
    }

    /// A word-level vocabulary: the specials, then `words` (lower-cased, first occurrence order).
    pub fn word_level<'a>(words: impl IntoIterator<Item = &'a str>) -> WordPieceTokenizer {
        let mut vocab = std::collections::HashMap::new();
        let mut hash = Sha256::new();
        for (i, s) in WORD_SPECIALS.iter().enumerate() {
            vocab.insert(s.to_string(), i as u32);
        }
        for w in words {
            let n = vocab.len() as u32;
            if let std::collections::hash_map::Entry::Vacant(e) = vocab.entry(w.to_lowercase()) {
                hash.update(e.key().as_bytes());
                hash.update([0]);
                e.insert(n);
            }
        }
        WordPieceTokenizer { inner: Backend::Words(vocab), path: "word-level vocabulary".into(), fingerprint: hash.finalize().into(), cls: 2, sep: 3, marker: 4 }
    }

    /// SHA-256 of the tokenizer's definition: equal fingerprints tokenize alike.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// The word-level vocabulary in id order (to save it with a checkpoint), or None for HF.
    pub fn word_list(&self) -> Option<Vec<String>> {
        match &self.inner {
            Backend::Words(v) => {
                let mut w: Vec<(&String, &u32)> = v.iter().collect();
                w.sort_by_key(|(_, &i)| i);
                Some(w.into_iter().skip(WORD_SPECIALS.len()).map(|(s, _)| s.clone()).collect())
            }
            Backend::Hf(_) => None,
        }
    }

    /// Vocabulary size (ids are below it).
    pub fn vocab_size(&self) -> usize {
        match &self.inner {
            Backend::Hf(t) => t.get_vocab_size(true),
            Backend::Words(v) => v.len(),
        }
    }

    /// Word pieces of one word (or any text), without special tokens. Byte-level BPE (RoBERTa)
    /// gets each word without a prefix space, as ATLOP's per-word `tokenize` does; a
    /// whitespace-only word has no pieces, as in ATLOP's tokenizers (`tokenizers` alone would
    /// give RoBERTa a 'Ġ').
    pub fn pieces(&self, text: &str) -> Result<Vec<u32>> {
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        match &self.inner {
            Backend::Hf(t) => {
                let enc = t.encode(text, false).map_err(|e| Error::Input(format!("{}: cannot tokenize {text:?}: {e}", self.path)))?;
                Ok(enc.get_ids().to_vec())
            }
            Backend::Words(v) => Ok(text.split_whitespace().map(|w| *v.get(&w.to_lowercase()).unwrap_or(&1)).collect()),
        }
    }

    /// `[CLS] + pieces(text) + [SEP]`: a plain sentence for the encoder.
    pub fn encode_text(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = vec![self.cls];
        ids.extend(self.pieces(text)?);
        ids.push(self.sep);
        Ok(ids)
    }

    /// ATLOP tokenization of a document given as sentences of words, with `*` markers. Without
    /// `spans` (DocRED): one `*` before every word where a mention starts and one after every
    /// word where one ends, even when several mentions share it. With `spans` (document-level
    /// word spans [start, end), ATLOP's CDR/GDA rule): a `*` before and after each span, so
    /// spans sharing a word give several.
    pub fn encode_marked(&self, sentences: &[Vec<String>], mentions: &[Mention], spans: Option<&[(usize, usize)]>) -> Result<MarkedDocument> {
        let offsets = super::sentence_offsets(sentences);
        let words: usize = sentences.iter().map(Vec::len).sum();
        let (mut before, mut after) = (vec![0usize; words], vec![0usize; words]);
        match spans {
            Some(spans) => {
                for &(a, b) in spans {
                    if a >= b || b > words {
                        return Err(Error::Input(format!("marker span [{a}, {b}) lies outside the document's {words} words")));
                    }
                    before[a] += 1;
                    after[b - 1] += 1;
                }
            }
            None => {
                // Mentions outside their sentence are reported below.
                for m in mentions.iter().filter(|m| m.start < m.end && sentences.get(m.sent).is_some_and(|s| m.end <= s.len())) {
                    before[offsets[m.sent] + m.start] = 1;
                    after[offsets[m.sent] + m.end - 1] = 1;
                }
            }
        }
        let mut ids = vec![self.cls];
        // word_start[s][w]: input index where word w of sentence s begins (at its `*` if any).
        let mut word_start: Vec<Vec<usize>> = Vec::new();
        for (s, ws) in sentences.iter().enumerate() {
            let mut starts_here = Vec::with_capacity(ws.len() + 1);
            for (w, word) in ws.iter().enumerate() {
                let i = offsets[s] + w;
                starts_here.push(ids.len());
                ids.extend(std::iter::repeat_n(self.marker, before[i]));
                ids.extend(self.pieces(word)?);
                ids.extend(std::iter::repeat_n(self.marker, after[i]));
            }
            starts_here.push(ids.len());
            word_start.push(starts_here);
        }
        ids.push(self.sep);
        let mention_starts = mentions
            .iter()
            .map(|m| {
                word_start
                    .get(m.sent)
                    .and_then(|ws| ws.get(m.start))
                    .copied()
                    .filter(|_| m.start < m.end && m.end <= sentences[m.sent].len())
                    .ok_or_else(|| Error::Input(format!("mention {m:?} lies outside its sentence")))
            })
            .collect::<Result<Vec<usize>>>()?;
        Ok(MarkedDocument { ids, mention_starts })
    }
}
