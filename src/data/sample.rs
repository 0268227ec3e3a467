//! Six short Re-DocRED documents bundled in the binary (data/demo, MIT): the demo's data and the
//! tests' and self-test's small real inputs.

use crate::data::docred::{read_json_str, Document, Relations};
use crate::error::Result;

const DOCS: &str = include_str!("../../data/demo/redocred_sample.json");

/// Documents used for training in the demo (the rest are shown as unseen documents).
pub const TRAIN_DOCS: usize = 4;

/// The relations of the bundled documents (Na first, then their codes in string order), named
/// from the built-in DocRED inventory: a small classifier for a quick demo.
pub fn relations() -> Relations {
    let docs: serde_json::Value = serde_json::from_str(DOCS).expect("the bundled documents are valid JSON");
    let mut codes: Vec<String> = docs.as_array().into_iter().flatten().flat_map(|d| d["labels"].as_array().into_iter().flatten()).filter_map(|l| l["r"].as_str().map(str::to_string)).collect();
    codes.sort();
    codes.dedup();
    codes.insert(0, "Na".into());
    Relations { ids: codes.iter().enumerate().map(|(i, c)| (c.clone(), i)).collect(), names: Relations::docred().names, codes }
}

/// The six bundled Re-DocRED documents; the first `TRAIN_DOCS` are the demo's training set.
pub fn documents(rels: &Relations) -> Result<Vec<Document>> {
    read_json_str(DOCS, "bundled demo documents", rels)
}
