//! What prediction writes: (title, fact) pairs, CodaLab's `result.json`, the readable listing,
//! and the output set of `predict` and `merge` switched as a whole.

use std::path::{Path, PathBuf};

use crate::data::docred::{Document, Fact, Relations};
use crate::error::Result;
use crate::eval::threshold::Scored;
use crate::fsutil::{write_atomic, zip_one, OutputDir};

/// (title, fact) pairs of predictions for scoring and result.json.
pub fn titled(docs: &[Document], facts: &[Vec<Fact>]) -> Vec<(String, Fact)> {
    facts.iter().enumerate().flat_map(|(i, fs)| fs.iter().map(move |f| (docs[i].title.clone(), *f))).collect()
}

/// One entry of CodaLab's `result.json`, with its `score` (the margin over the threshold class;
/// CodaLab's scorer reads only the other keys). A typed entry, not a JSON map, so that a merge
/// writes the keys in the same order and the f32 score in the same shortest digits.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ResultFact {
    pub title: String,
    pub h_idx: usize,
    pub t_idx: usize,
    pub r: String,
    pub evidence: Vec<usize>,
    pub score: f32,
}

/// The `result.json` entries of `docs`' scored facts.
pub fn result_facts(docs: &[Document], facts: &[Vec<Scored>], rels: &Relations) -> Vec<ResultFact> {
    docs.iter()
        .zip(facts)
        .flat_map(|(d, fs)| fs.iter().map(|s| ResultFact { title: d.title.clone(), h_idx: s.fact.h, t_idx: s.fact.t, r: rels.codes[s.fact.r].clone(), evidence: Vec::new(), score: s.score }))
        .collect()
}

/// CodaLab `result.json`: a list of {title, h_idx, t_idx, r, evidence, score}.
pub fn result_json(docs: &[Document], facts: &[Vec<Scored>], rels: &Relations) -> String {
    serde_json::to_string(&result_facts(docs, facts, rels)).expect("json")
}

/// Readable triples: "head name | relation name | tail name" per document.
pub fn listing(docs: &[Document], facts: &[Vec<Scored>], rels: &Relations) -> String {
    let mut s = String::new();
    for (d, fs) in docs.iter().zip(facts) {
        s.push_str(&format!("# {}\n", d.title));
        for Scored { fact: f, .. } in fs {
            s.push_str(&format!("{} | {} | {}\n", d.entities[f.h][0].name, rels.name(f.r), d.entities[f.t][0].name));
        }
    }
    s
}

/// Writes `text` atomically into `dir/name`.
pub fn write_output(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let p = dir.join(name);
    write_atomic(&p, text.as_bytes())?;
    Ok(p)
}

/// The output set of predict and merge: result.json, predictions.txt and, with `zip`,
/// result.zip (a result.zip of an earlier set goes with it otherwise), switched together;
/// returns the paths written, for the closing line.
pub fn write_set(dir: &mut OutputDir, json: &str, listing: &str, zip: bool) -> Result<String> {
    let zipped = zip.then(|| zip_one("result.json", json.as_bytes())).transpose()?;
    let mut files: Vec<(&str, &[u8])> = vec![("result.json", json.as_bytes()), ("predictions.txt", listing.as_bytes())];
    if let Some(z) = &zipped {
        files.push(("result.zip", z));
    }
    let paths = dir.write_set(&files, &["result.zip"])?;
    Ok(paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))
}
