//! `docre check` and `docre score`: reading a data file as training would, and scoring a
//! result.json against gold labels.

use std::path::Path;

use crate::data::docred::{read_docred, Fact};
use crate::data::format::{examples, Format};
use crate::data::WordPieceTokenizer;
use crate::eval::{score, train_facts as facts_of};
use crate::{Error, Result};

pub fn check(data: &Path, format: Format, rel2id: Option<&Path>, tokenizer: Option<&Path>) -> Result<()> {
    let rels = format.relations(rel2id, None)?;
    let docs = format.read(data, &rels)?;
    let entities: usize = docs.iter().map(|d| d.entities.len()).sum();
    let mentions: usize = docs.iter().flat_map(|d| &d.entities).map(Vec::len).sum();
    let pairs: usize = docs.iter().map(|d| d.candidates.as_ref().map(Vec::len).unwrap_or(d.entities.len() * d.entities.len().saturating_sub(1))).sum();
    let facts: usize = docs.iter().map(|d| d.facts.len()).sum();
    println!("{}: {} documents{}", data.display(), docs.len(), if docs.iter().all(|d| !d.labelled) { " (unlabelled)" } else { "" });
    println!("entities {entities}, mentions {mentions}, entity pairs {pairs}, labelled facts {facts}");
    let mut counts = vec![0usize; rels.len()];
    for f in docs.iter().flat_map(|d| &d.facts) {
        counts[f.r] += 1;
    }
    let mut top: Vec<(usize, usize)> = counts.iter().copied().enumerate().filter(|&(_, c)| c > 0).collect();
    top.sort_by_key(|&(_, c)| std::cmp::Reverse(c));
    let shown: Vec<String> = top.iter().take(10).map(|&(r, c)| format!("{} {c}", rels.codes[r])).collect();
    println!("relations used: {} of {}; most frequent: {}", top.len(), rels.len() - 1, shown.join(", "));
    if let Some(t) = tokenizer {
        let tok = WordPieceTokenizer::load(t)?;
        let exs = examples(&docs, &tok, rels.len(), usize::MAX)?;
        let mut lens: Vec<usize> = exs.iter().map(|e| e.ids.len()).collect();
        lens.sort();
        let pct = |q: f64| lens[((lens.len() - 1) as f64 * q) as usize];
        println!("input ids with markers: median {}, 90th percentile {}, max {}; {} documents above 512, {} above 1022", pct(0.5), pct(0.9), pct(1.0), lens.iter().filter(|&&l| l > 512).count(), lens.iter().filter(|&&l| l > 1022).count());
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]

pub fn score_cmd(gold: &Path, pred: &Path, rel2id: Option<&Path>, train: Option<&Path>) -> Result<()> {
    let rels = Format::Docred.relations(rel2id, None)?;
    let inventory = rel2id.map_or("the built-in DocRED inventory".to_string(), |p| p.display().to_string());
    let docs = read_docred(gold, &rels)?;
    let text = std::fs::read_to_string(pred).map_err(|source| Error::Io { context: format!("cannot read {}", pred.display()), source })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Input(format!("{}: malformed JSON: {e}", pred.display())))?;
    let list = v.as_array().ok_or_else(|| Error::Input(format!("{}: expected a list of predictions", pred.display())))?;
    let mut preds = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let field = |k: &str| p.get(k).ok_or_else(|| Error::Input(format!("{}: prediction {i}: field `{k}` is missing", pred.display())));
        let title = field("title")?.as_str().map(str::to_string).unwrap_or_else(|| p["title"].to_string());
        let idx = |k: &str| field(k).and_then(|x| x.as_u64().map(|v| v as usize).ok_or_else(|| Error::Input(format!("{}: prediction {i}: `{k}` is not an integer", pred.display()))));
        let code = field("r")?.as_str().unwrap_or_default().to_string();
        let r = *rels.ids.get(&code).ok_or_else(|| Error::Input(format!("{}: prediction {i}: relation {code:?} is not in {inventory}", pred.display())))?;
        preds.push((title, Fact { h: idx("h_idx")?, t: idx("t_idx")?, r }));
    }
    let tf = train.map(|t| read_docred(t, &rels).map(|d| facts_of(&d))).transpose()?;
    let s = score(&docs, &preds, tf.as_ref())?;
    println!("{}", serde_json::to_string_pretty(&s).expect("scores serialize"));
    Ok(())
}
