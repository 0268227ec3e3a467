//! The test-time loop over one batch (SPEC 3.5) without re-running settled documents.
//!
//! A pass of the inference module reads two things: the feature grid F⁰, which is the same in
//! every pass, and the relation grid of the labels before it. Nothing in the module mixes
//! documents (ECA's rows and columns, the dense ablation's key sets, the FFNs and LayerNorms all
//! stay within one document's pairs). So a document whose labels equal the ones its last pass
//! read would get that pass's logits again, bit for bit; the loop adds the stored logits
//! instead of running it. Each pass runs only the documents whose labels changed (every
//! document in the first pass), gathered into a grid of their own, and its logits are copied
//! back into their rows. `Heads::predict`, which runs every pass over every pair, is the
//! reference the tests hold this to.
//!
//! The labels are read back after every pass to choose the next pass's documents.

use crate::error::Result;
use crate::gpu::{profile, DType, Gpu, Recorder, Tensor};
use crate::model::config::TestOutput;
use crate::model::heads::batch::HeadBatch;
use crate::model::heads::Heads;

/// The base module's logits and the full model's (after K passes), [P, C] in pair order, with
/// how much inference work ran.
pub struct LoopOut {
    pub base_logits: Vec<f32>,
    pub full_logits: Vec<f32>,
    pub work: LoopWork,
}

/// Documents the K passes ran, against K × the batch's documents for the full loop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopWork {
    /// Passes that ran every document of the batch.
    pub full_passes: usize,
    /// Passes that ran some documents but not all.
    pub partial_passes: usize,
    /// Passes with nothing to run.
    pub skipped_passes: usize,
    /// Document passes that ran, and that the full loop would have run.
    pub document_passes: usize,
    pub document_passes_full: usize,
}

impl LoopWork {
    pub fn absorb(&mut self, other: LoopWork) {
        self.full_passes += other.full_passes;
        self.partial_passes += other.partial_passes;
        self.skipped_passes += other.skipped_passes;
        self.document_passes += other.document_passes;
        self.document_passes_full += other.document_passes_full;
    }
}

/// Runs the loop of `heads` on a batch whose encoder outputs `x` and `a` are recorded in `rec`
/// (which this submits); returns once the final logits are read back.
pub async fn run(gpu: &Gpu, heads: &Heads, mut rec: Recorder, hb: &HeadBatch, x: &Tensor, a: &Tensor) -> Result<LoopOut> {
    let classes = heads.config.classes;
    let passes = heads.config.iterations;
    let grid = &hb.grid;
    profile::phase("base module");
    let (mut s, mut labels, f0) = heads.predict_start(&mut rec, hb, x, a)?;
    profile::phase("inference passes");
    rec.finish()?;
    let base_logits = s.read_f32_async(gpu).await?;
    let docs = grid.docs;
    let rows = |d: usize| {
        let (first, count) = grid.doc_ranges[d];
        first * classes..(first + count) * classes
    };
    // Labels now, and the labels each document's stored logits were computed from.
    let mut now = if passes > 0 { labels.read_f32_async(gpu).await? } else { Vec::new() };
    let mut read = now.clone();
    let mut out: Option<Tensor> = None;
    let mut work = LoopWork { document_passes_full: passes * docs, ..LoopWork::default() };
    for pass in 0..passes {
        let active: Vec<usize> = match &out {
            None => (0..docs).collect(),
            Some(_) => (0..docs).filter(|&d| now[rows(d)] != read[rows(d)]).collect(),
        };
        work.document_passes += active.len();
        let mut rec = Recorder::new(gpu);
        let stored = match out.take() {
            Some(stored) if active.is_empty() => {
                work.skipped_passes += 1;
                // With the last pass as the output the running logits, and with them the labels,
                // cannot change again: every later pass would read the same labels.
                if heads.config.test_output == TestOutput::Last {
                    break;
                }
                stored
            }
            Some(stored) if active.len() < docs => {
                work.partial_passes += 1;
                let sub = grid.subset(gpu, &active)?;
                // (first row in the batch, first row in the subset, rows) of each document run.
                let blocks: Vec<(usize, usize, usize)> = active.iter().zip(&sub.doc_ranges).map(|(&d, &(at, _))| (grid.doc_ranges[d].0, at, grid.doc_ranges[d].1)).collect();
                let f_sub = Tensor::uninit(gpu, "settled_f0", &[sub.pairs, f0.shape()[1]], DType::F32)?;
                let l_sub = Tensor::uninit(gpu, "settled_labels", &[sub.pairs, classes], DType::F32)?;
                for &(batch_row, sub_row, rows) in &blocks {
                    rec.copy_rows(&f0, batch_row, &f_sub, sub_row, rows)?;
                    rec.copy_rows(&labels, batch_row, &l_sub, sub_row, rows)?;
                }
                let out_sub = heads.predict_pass(&mut rec, &sub, &f_sub, &l_sub)?;
                // A new tensor each pass: with test_output = last, S is the stored logits' tensor.
                let merged = Tensor::uninit(gpu, "pass_logits", stored.shape(), DType::F32)?;
                rec.copy(&stored, &merged)?;
                for &(batch_row, sub_row, rows) in &blocks {
                    rec.copy_rows(&out_sub, sub_row, &merged, batch_row, rows)?;
                }
                merged
            }
            _ => {
                work.full_passes += 1;
                heads.predict_pass(&mut rec, grid, &f0, &labels)?
            }
        };
        for &d in &active {
            read[rows(d)].copy_from_slice(&now[rows(d)]);
        }
        s = heads.predict_update(&mut rec, &s, stored.clone())?;
        out = Some(stored);
        // The last pass's labels would choose no further pass: the host decides from the logits.
        let last = pass + 1 == passes;
        if !last {
            labels = heads.predict_labels(&mut rec, &s)?;
        }
        rec.finish()?;
        if !last {
            now = labels.read_f32_async(gpu).await?;
        }
    }
    let full_logits = s.read_f32_async(gpu).await?;
    Ok(LoopOut { base_logits, full_logits, work })
}
