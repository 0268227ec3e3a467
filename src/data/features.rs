//! Documents → model inputs (SPEC 0.1, 1.2, 1.4): marked word-piece ids, each entity's mention
//! positions, every ordered entity pair and its multi-hot label.

use super::docred::Document;
use super::tokenizer::{MarkedDocument, Mention, WordPieceTokenizer};
use crate::error::Result;

#[derive(Clone, Debug)]
pub struct Example {
    /// Index of the document in its file.
    pub doc: usize,
    pub ids: Vec<u32>,
    /// Input index of each mention's leading `*`, per entity (an entity whose mentions were all
    /// cut away has none).
    pub mention_starts: Vec<Vec<usize>>,
    /// The pairs to classify: the file's candidates, or all ordered pairs (h, t), h ≠ t, h-major.
    pub pairs: Vec<(usize, usize)>,
    /// Multi-hot labels [pairs, classes]; NA pairs are [1, 0, …].
    pub labels: Vec<f32>,
}

impl Example {
    pub fn entities(&self) -> usize {
        self.mention_starts.len()
    }
}

/// Input ids `featurize` gives the document (after the cut at `max_ids`), without building its
/// example: what ordering a corpus by length needs.
pub fn input_len(doc: &Document, tok: &WordPieceTokenizer, max_ids: usize) -> Result<usize> {
    Ok(encode(doc, tok)?.ids.len().min(max_ids))
}

/// The document's word pieces with every mention marked, entity by entity.
fn encode(doc: &Document, tok: &WordPieceTokenizer) -> Result<MarkedDocument> {
    let mentions: Vec<Mention> = doc.entities.iter().flatten().map(|m| Mention { sent: m.sent, start: m.start, end: m.end }).collect();
    tok.encode_marked(&doc.sents, &mentions, doc.marker_spans.as_deref())
}

/// Featurizes one document. Documents longer than `max_ids` input ids are cut (the [SEP] kept)
/// and the returned warning names the document; mentions past the cut are dropped.
pub fn featurize(index: usize, doc: &Document, tok: &WordPieceTokenizer, classes: usize, max_ids: usize) -> Result<(Example, Option<String>)> {
    // The entity of each mention, in the order `encode` marks them.
    let owner: Vec<usize> = doc.entities.iter().enumerate().flat_map(|(e, ms)| std::iter::repeat_n(e, ms.len())).collect();
    let marked = encode(doc, tok)?;
    let mut ids = marked.ids;
    let mut warning = None;
    if ids.len() > max_ids {
        let dropped = marked.mention_starts.iter().filter(|&&s| s >= max_ids - 1).count();
        warning = Some(format!(
            "document {index} ({:?}) has {} word pieces with markers; cut to {max_ids} input ids ({dropped} of {} mentions dropped)",
            doc.title,
            ids.len(),
            owner.len()
        ));
        ids.truncate(max_ids - 1);
        ids.push(tok.sep);
    }
    let mut mention_starts = vec![Vec::new(); doc.entities.len()];
    for (&s, &e) in marked.mention_starts.iter().zip(&owner) {
        if s < ids.len() - 1 {
            mention_starts[e].push(s);
        }
    }
    let n = doc.entities.len();
    let pairs: Vec<(usize, usize)> = match &doc.candidates {
        Some(c) => c.clone(),
        None => (0..n).flat_map(|h| (0..n).filter(move |&t| t != h).map(move |t| (h, t))).collect(),
    };
    let mut labels = vec![0.0f32; pairs.len() * classes];
    for (i, &(h, t)) in pairs.iter().enumerate() {
        let row = &mut labels[i * classes..(i + 1) * classes];
        for f in doc.facts.iter().filter(|f| f.h == h && f.t == t) {
            row[f.r] = 1.0;
        }
        if row.iter().all(|&v| v == 0.0) {
            row[0] = 1.0;
        }
    }
    Ok((Example { doc: index, ids, mention_starts, pairs, labels }, warning))
}
