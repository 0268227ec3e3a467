//! The controls a quality claim stands beside, as `docre eval` reports them: the base module
//! alone and with a decision threshold tuned on another split, the base module with the
//! inference module as it was initialised (what every stage-1 evaluation scores), and the
//! trained full model as it is and with its own tuned threshold. A trained inference module
//! has learned something only where it beats the recalibrated base module.

use std::collections::HashSet;

use crate::data::docred::{Document, Fact};
use crate::data::features::Example;
use crate::error::Result;
use crate::eval::output::titled;
use crate::eval::predict::{predict, Predictions};
use crate::eval::threshold::{decide, tune, Candidate};
use crate::eval::{score, Scores};
use crate::model::encoder_cache::EncoderCache;
use crate::model::Model;

/// Documents per prediction batch in evaluation.
const BATCH: usize = 4;

/// One split: its documents, their examples and, for a frozen encoder, its cached outputs.
pub struct Split<'a> {
    pub docs: &'a [Document],
    pub examples: &'a [Example],
    pub cache: Option<&'a EncoderCache>,
}

/// Decision thresholds (margins over the threshold class) tuned on one split.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Thresholds {
    pub base: f32,
    pub full: f32,
}

/// One line of the report: which model, at which threshold, and its scores.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Row {
    pub model: &'static str,
    pub threshold: f32,
    pub scores: Scores,
}

pub const BASE: &str = "base module";
pub const BASE_TUNED: &str = "base module, dev threshold";
pub const UNTRAINED: &str = "base + untrained inference module";
pub const FULL: &str = "full model";
pub const FULL_TUNED: &str = "full model, dev threshold";

fn pairs(examples: &[Example]) -> Vec<&[(usize, usize)]> {
    examples.iter().map(|e| e.pairs.as_slice()).collect()
}

/// The facts of every example at threshold `theta`.
pub fn redecide(cands: &[Vec<Candidate>], examples: &[Example], theta: f32) -> Vec<Vec<Fact>> {
    cands.iter().zip(examples).map(|(c, e)| decide(c, &e.pairs, theta)).collect()
}

/// The thresholds that maximise the base module's and the full model's F1 on `split`.
pub fn tune_on(p: &Predictions, split: &Split) -> Thresholds {
    let pairs = pairs(split.examples);
    Thresholds { base: tune(split.docs, &p.base_candidates, &pairs), full: tune(split.docs, &p.full_candidates, &pairs) }
}

/// Predicts `split` and tunes the thresholds on it.
pub fn thresholds(model: &Model, split: &Split) -> Result<Thresholds> {
    Ok(tune_on(&predict(model, split.examples, BATCH, split.cache)?, split))
}

/// Every control on `split`: the rows above, in that order. `tuned` comes from another split
/// (`thresholds`); without it the tuned rows are left out. `untrained_seed` is the seed the
/// heads were initialised from; without it the untrained row is left out. The model's heads
/// are swapped for the untrained control and back.
pub fn controls(model: &mut Model, split: &Split, train_facts: Option<&HashSet<(String, String, usize)>>, tuned: Option<Thresholds>, untrained_seed: Option<u64>) -> Result<Vec<Row>> {
    let p = predict(model, split.examples, BATCH, split.cache)?;
    let scored = |facts: &[Vec<Fact>]| score(split.docs, &titled(split.docs, facts), train_facts);
    let mut rows = vec![Row { model: BASE, threshold: 0.0, scores: scored(&p.base)? }];
    if let Some(t) = tuned {
        rows.push(Row { model: BASE_TUNED, threshold: t.base, scores: scored(&redecide(&p.base_candidates, split.examples, t.base))? });
    }
    if let Some(seed) = untrained_seed {
        let untrained = model.heads.with_untrained_inference(&model.gpu, seed)?;
        let trained = std::mem::replace(&mut model.heads, untrained);
        let pu = predict(model, split.examples, BATCH, split.cache);
        model.heads = trained;
        rows.push(Row { model: UNTRAINED, threshold: 0.0, scores: scored(&pu?.full)? });
    }
    rows.push(Row { model: FULL, threshold: 0.0, scores: scored(&p.full)? });
    if let Some(t) = tuned {
        rows.push(Row { model: FULL_TUNED, threshold: t.full, scores: scored(&redecide(&p.full_candidates, split.examples, t.full))? });
    }
    Ok(rows)
}

/// Scores of the base module and the full model on `docs` (`cache`: as for `predict`).
pub fn evaluate(model: &Model, docs: &[Document], examples: &[Example], batch: usize, train_facts: Option<&std::collections::HashSet<(String, String, usize)>>, cache: Option<&EncoderCache>) -> Result<(Scores, Scores, Predictions)> {
    let p = predict(model, examples, batch, cache)?;
    let base = score(docs, &titled(docs, &p.base), train_facts)?;
    let full = score(docs, &titled(docs, &p.full), train_facts)?;
    Ok((base, full, p))
}

/// The report's table: one line per row.
pub fn table(rows: &[Row]) -> String {
    let mut out = format!("{:<34} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}\n", "", "θ", "P", "R", "F1", "Ign F1", "Intra", "Inter");
    for r in rows {
        let s = &r.scores;
        out += &format!("{:<34} {:>+8.3} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4}\n", r.model, r.threshold, s.precision, s.recall, s.f1, s.ign_f1, s.intra_f1, s.inter_f1);
    }
    out
}
