//! What prediction writes: (title, fact) pairs, CodaLab's `result.json`, the readable listing,
//! and the output set of `predict` and `merge` switched as a whole.

use std::path::{Path, PathBuf};

use crate::data::docred::{Document, Fact, Relations};
use crate::error::Result;
use crate::fsutil::{write_atomic, zip_one, OutputDir};

/// (title, fact) pairs of predictions for scoring and result.json.
pub fn titled(docs: &[Document], facts: &[Vec<Fact>]) -> Vec<(String, Fact)> {
    facts.iter().enumerate().flat_map(|(i, fs)| fs.iter().map(move |f| (docs[i].title.clone(), *f))).collect()
}

/// CodaLab `result.json`: a list of {title, h_idx, t_idx, r, evidence}.
pub fn result_json(preds: &[(String, Fact)], rels: &Relations) -> String {
    let list: Vec<serde_json::Value> = preds.iter().map(|(t, f)| serde_json::json!({"title": t, "h_idx": f.h, "t_idx": f.t, "r": rels.codes[f.r], "evidence": []})).collect();
    serde_json::to_string(&list).expect("json")
}

/// Readable triples: "head name | relation name | tail name" per document.
pub fn listing(docs: &[Document], facts: &[Vec<Fact>], rels: &Relations) -> String {
    let mut s = String::new();
    for (d, fs) in docs.iter().zip(facts) {
        s.push_str(&format!("# {}\n", d.title));
        for f in fs {
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
