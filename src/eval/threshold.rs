//! Decision thresholds tuned on one split and applied on another: the control that tells a
//! module that learned something from one that only moved the decision boundary.
//!
//! A threshold θ moves the threshold class's logit: a pair gets relation r when r's logit beats
//! the threshold class's by more than θ and fewer than `top_k` logits beat r's. Among logits
//! that beat the shifted threshold class only relations can beat r's, so the rank condition is
//! r's rank among the relation logits alone, whatever θ is; at θ = 0 this is SPEC 3.5's
//! get_label. Each pair's candidates (its `top_k` best relations) and their margins are
//! therefore all a threshold needs, and lowering θ can add a relation whose logit is below
//! the threshold class's (with top-1 decisions, the only way a binary task gains positives).

use std::collections::HashSet;

use crate::data::docred::{Document, Fact};

/// One relation that passes a pair's rank condition, with its margin over the threshold class.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub pair: usize,
    pub r: usize,
    pub margin: f32,
}

/// The candidates of one example's logits [pairs, classes] (class 0 is the threshold class).
pub fn candidates(logits: &[f32], classes: usize, top_k: usize) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (pair, row) in logits.chunks(classes).enumerate() {
        for r in 1..classes {
            // The comparisons get_label makes on the GPU, on the same f32 values, leaving out the
            // threshold class, which never beats a relation that passes it.
            let larger = row[1..].iter().filter(|&&v| v > row[r]).count();
            if larger < top_k {
                out.push(Candidate { pair, r, margin: row[r] - row[0] });
            }
        }
    }
    out
}

/// A decided fact with its score: its relation's margin over the threshold class.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scored {
    pub fact: Fact,
    pub score: f32,
}

/// The facts decided at threshold `theta` (0: the model's own decisions), with their scores.
pub fn decide_scored(cands: &[Candidate], pairs: &[(usize, usize)], theta: f32) -> Vec<Scored> {
    cands.iter().filter(|c| c.margin > theta).map(|c| Scored { fact: Fact { h: pairs[c.pair].0, t: pairs[c.pair].1, r: c.r }, score: c.margin }).collect()
}

/// The facts decided at threshold `theta` (0: the model's own decisions).
pub fn decide(cands: &[Candidate], pairs: &[(usize, usize)], theta: f32) -> Vec<Fact> {
    decide_scored(cands, pairs, theta).into_iter().map(|s| s.fact).collect()
}

/// The θ that maximises F1 over `docs` (each with its candidates and pair list), as the scorer
/// counts it: distinct facts against the gold facts. Between two margins it takes the midpoint,
/// so that nearby values on another split fall on the side they fell on here. With no gold
/// facts it is 0.
pub fn tune(docs: &[Document], cands: &[Vec<Candidate>], pairs: &[&[(usize, usize)]]) -> f32 {
    let gold: usize = docs.iter().map(|d| d.facts.iter().collect::<HashSet<_>>().len()).sum();
    if gold == 0 {
        return 0.0;
    }
    let mut scored: Vec<(f32, bool)> = Vec::new();
    for ((d, c), p) in docs.iter().zip(cands).zip(pairs) {
        let facts: HashSet<&Fact> = d.facts.iter().collect();
        let mut seen = HashSet::new();
        for cand in c {
            let f = Fact { h: p[cand.pair].0, t: p[cand.pair].1, r: cand.r };
            if seen.insert(f) {
                scored.push((cand.margin, facts.contains(&f)));
            }
        }
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    // Predicting the first k facts (a cut between distinct margins) gives F1 = 2·tp / (k + gold).
    let (mut best_k, mut best_f1, mut tp) = (0usize, 0.0f64, 0usize);
    for k in 1..=scored.len() {
        tp += scored[k - 1].1 as usize;
        if k < scored.len() && scored[k].0 == scored[k - 1].0 {
            continue;
        }
        let f1 = 2.0 * tp as f64 / (k + gold) as f64;
        if f1 > best_f1 {
            (best_k, best_f1) = (k, f1);
        }
    }
    match best_k {
        0 => scored.first().map_or(0.0, |s| s.0),
        k if k == scored.len() => scored[k - 1].0 - 1.0,
        k => 0.5 * (scored[k - 1].0 + scored[k].0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_get_label_at_zero() {
        // Two pairs, classes (TH, r1, r2, r3), top 2: pair 1's best relations are r1 and r3.
        let logits = [0.0, 1.0, -1.0, 0.5, 0.2, 0.9, 0.0, 0.8];
        let c = candidates(&logits, 4, 2);
        let got: Vec<(usize, usize)> = c.iter().map(|c| (c.pair, c.r)).collect();
        assert_eq!(got, vec![(0, 1), (0, 3), (1, 1), (1, 3)]);
        let pairs = [(0, 1), (1, 0)];
        let facts = decide(&c, &pairs, 0.0);
        assert_eq!(facts, vec![Fact { h: 0, t: 1, r: 1 }, Fact { h: 0, t: 1, r: 3 }, Fact { h: 1, t: 0, r: 1 }, Fact { h: 1, t: 0, r: 3 }]);
        assert_eq!(decide(&c, &pairs, 0.6).len(), 2, "r3 of both pairs (margins 0.5 and 0.6) drops at θ = 0.6");
    }

    #[test]
    fn a_lower_threshold_adds_relations_below_the_threshold_class() {
        // Binary task, top-1 decisions: pair 1's relation logit is under the threshold class's.
        let logits = [0.0, 2.0, 1.0, 0.5];
        let c = candidates(&logits, 2, 1);
        let pairs = [(0, 1), (1, 0)];
        assert_eq!(decide(&c, &pairs, 0.0).len(), 1, "get_label: only pair 0");
        assert_eq!(decide(&c, &pairs, -0.6).len(), 2, "θ = −0.6 lets pair 1 (margin −0.5) in");
    }

    fn doc(facts: &[Fact]) -> Document {
        Document { facts: facts.to_vec(), labelled: true, ..Default::default() }
    }

    #[test]
    fn tuning_finds_the_cut_that_maximises_f1() {
        let pairs = [(0, 1), (1, 0), (0, 2), (2, 0)];
        let f = |p: usize| Fact { h: pairs[p].0, t: pairs[p].1, r: 1 };
        // Margins 3, 2, 1, −1; gold: the pairs at 3, 1 and −1 (and one fact never proposed).
        let cands: Vec<Candidate> = [3.0, 2.0, 1.0, -1.0].iter().enumerate().map(|(pair, &margin)| Candidate { pair, r: 1, margin }).collect();
        let docs = [doc(&[f(0), f(2), f(3), Fact { h: 1, t: 2, r: 1 }])];
        // k = 1: 2/5; k = 2: 2/6; k = 3: 4/7; k = 4: 6/8 — the best takes all four.
        let theta = tune(&docs, &[cands.clone()], &[&pairs]);
        assert_eq!(theta, -2.0);
        // Without the gold at −1, k = 3 is best (4/6 against 4/7): the cut lies between 1 and −1.
        let docs = [doc(&[f(0), f(2), Fact { h: 1, t: 2, r: 1 }])];
        assert_eq!(tune(&docs, &[cands.clone()], &[&pairs]), 0.0);
        // No correct candidate: nothing is predicted, above the largest margin.
        let docs = [doc(&[Fact { h: 1, t: 2, r: 1 }])];
        let theta = tune(&docs, &[cands.clone()], &[&pairs]);
        assert!(decide(&cands, &pairs, theta).is_empty());
    }
}
