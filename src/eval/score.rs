//! The DocRED scorer, adapted from the official evaluation (SPEC 5.1, 5.2): predictions are
//! (title, h, t, r) facts, matched against the gold file's labels by title.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::data::docred::{Document, Fact};
use crate::error::{Error, Result};

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Scores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// F1 with correct predictions of facts seen in the training file taken out of the precision
    /// (equal to F1 when no training facts are given).
    pub ign_f1: f64,
    /// F1 over pairs with / without a sentence holding mentions of both entities.
    pub intra_f1: f64,
    pub inter_f1: f64,
    pub predicted: usize,
    pub gold: usize,
    pub correct: usize,
}

/// (head mention name, tail mention name, relation) of every mention-name combination of every
/// fact of a training file: what Ign F1 ignores.
pub fn train_facts(train: &[Document]) -> HashSet<(String, String, usize)> {
    let mut set = HashSet::new();
    for d in train {
        for f in &d.facts {
            for a in &d.entities[f.h] {
                for b in &d.entities[f.t] {
                    set.insert((a.name.clone(), b.name.clone(), f.r));
                }
            }
        }
    }
    set
}

fn f1(p: f64, r: f64) -> f64 {
    if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) }
}

fn intra(doc: &Document, h: usize, t: usize) -> bool {
    doc.entities[h].iter().any(|a| doc.entities[t].iter().any(|b| a.sent == b.sent))
}

/// Scores `predictions` ((title, fact) pairs, any order, duplicates ignored) against `gold`.
/// A gold file without labels cannot be scored: that is an error, never a silent 0.
pub fn score(gold: &[Document], predictions: &[(String, Fact)], train: Option<&HashSet<(String, String, usize)>>) -> Result<Scores> {
    if gold.iter().all(|d| !d.labelled) {
        return Err(Error::Input("the gold file has no labels (like DocRED test): it cannot be scored here; submit result.json to CodaLab instead".into()));
    }
    let by_title: HashMap<&str, &Document> = gold.iter().map(|d| (d.title.as_str(), d)).collect();
    let gold_set: BTreeSet<(&str, Fact)> = gold.iter().flat_map(|d| d.facts.iter().map(move |f| (d.title.as_str(), *f))).collect();
    let preds: BTreeSet<(&str, Fact)> = predictions.iter().map(|(t, f)| (t.as_str(), *f)).collect();
    let (mut correct, mut correct_in_train) = (0usize, 0usize);
    let (mut gi, mut pi, mut ci) = ([0usize; 2], [0usize; 2], [0usize; 2]);
    for &(title, f) in &gold_set {
        gi[intra(by_title[title], f.h, f.t) as usize] += 1;
    }
    for &(title, f) in &preds {
        let Some(doc) = by_title.get(title) else { continue };
        if f.h >= doc.entities.len() || f.t >= doc.entities.len() {
            continue;
        }
        let k = intra(doc, f.h, f.t) as usize;
        pi[k] += 1;
        if gold_set.contains(&(title, f)) {
            correct += 1;
            ci[k] += 1;
            if let Some(tf) = train {
                if doc.entities[f.h].iter().any(|a| doc.entities[f.t].iter().any(|b| tf.contains(&(a.name.clone(), b.name.clone(), f.r)))) {
                    correct_in_train += 1;
                }
            }
        }
    }
    let np = preds.len();
    let p = correct as f64 / np.max(1) as f64;
    let r = correct as f64 / gold_set.len().max(1) as f64;
    let p_ign = (correct - correct_in_train) as f64 / ((np - correct_in_train) as f64 + 1e-5);
    let sub = |k: usize| f1(ci[k] as f64 / pi[k].max(1) as f64, ci[k] as f64 / gi[k].max(1) as f64);
    Ok(Scores { precision: p, recall: r, f1: f1(p, r), ign_f1: f1(p_ign, r), intra_f1: sub(1), inter_f1: sub(0), predicted: np, gold: gold_set.len(), correct })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::docred::EntityMention;

    fn m(sent: usize, name: &str) -> EntityMention {
        EntityMention { sent, start: 0, end: 1, name: name.into(), kind: String::new() }
    }

    /// Entities: 0 "A" (sentence 0), 1 "B" (sentence 0), 2 "C" (sentence 1).
    fn doc(facts: Vec<Fact>) -> Document {
        Document { title: "d".into(), sents: vec![vec!["w".into()], vec!["w".into()]], entities: vec![vec![m(0, "A")], vec![m(0, "B")], vec![m(1, "C")]], facts, labelled: true, candidates: None, marker_spans: None }
    }

    #[test]
    fn hand_computed_scores() {
        let f = |h, t, r| Fact { h, t, r };
        // Gold: A-B r1 (intra), A-C r2 (inter), B-C r1 (inter).
        let gold = vec![doc(vec![f(0, 1, 1), f(0, 2, 2), f(1, 2, 1)])];
        // Predicted: A-B r1 (correct, intra), A-C r2 (correct, inter), C-A r1 (wrong, inter), and a
        // duplicate and a prediction for an unknown title (counted, never correct).
        let preds: Vec<(String, Fact)> = [("d", f(0, 1, 1)), ("d", f(0, 1, 1)), ("d", f(0, 2, 2)), ("d", f(2, 0, 1)), ("x", f(0, 1, 1))].iter().map(|(t, f)| (t.to_string(), *f)).collect();
        let s = score(&gold, &preds, None).unwrap();
        assert_eq!((s.predicted, s.gold, s.correct), (4, 3, 2));
        assert!((s.precision - 0.5).abs() < 1e-12 && (s.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.f1 - 4.0 / 7.0).abs() < 1e-12);
        // Intra: 1 predicted, 1 gold, 1 correct → 1. Inter: 2 predicted (unknown title excluded),
        // 2 gold, 1 correct → P = R = 0.5.
        assert!((s.intra_f1 - 1.0).abs() < 1e-12 && (s.inter_f1 - 0.5).abs() < 1e-12, "{s:?}");
        // The train file knows (A, B, r1): one correct prediction is ignored.
        let train = train_facts(&[doc(vec![f(0, 1, 1)])]);
        let s = score(&gold, &preds, Some(&train)).unwrap();
        let p_ign = 1.0 / (3.0 + 1e-5);
        assert!((s.ign_f1 - 2.0 * p_ign * (2.0 / 3.0) / (p_ign + 2.0 / 3.0)).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn unlabelled_gold_is_refused() {
        let mut d = doc(vec![]);
        d.labelled = false;
        let e = score(&[d], &[], None).unwrap_err().to_string();
        assert!(e.contains("no labels"), "{e}");
    }
}
