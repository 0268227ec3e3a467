//! Running a trained model over examples: the base module's decisions and the full model's
//! (after the test-time loop), as facts per document.

use crate::data::docred::Fact;
use crate::data::features::Example;
use crate::error::Result;
use crate::gpu::{profile, Recorder};
use crate::eval::test_loop::{self, LoopWork};
use crate::eval::threshold::{candidates, decide, decide_scored, Candidate, Scored};
use crate::model::Pass;
use crate::model::encoder_cache::EncoderCache;
use crate::model::{Batch, Model};

/// Facts per example, in example order, and the candidates a threshold can re-decide them from.
pub struct Predictions {
    /// Base module alone (iteration 0 of the test loop).
    pub base: Vec<Vec<Fact>>,
    /// The full model after K iterations.
    pub full: Vec<Vec<Fact>>,
    pub base_candidates: Vec<Vec<Candidate>>,
    pub full_candidates: Vec<Vec<Candidate>>,
    /// How much of the test-time loop ran (settled documents are not run again).
    pub work: LoopWork,
}

impl Predictions {
    /// The full model's facts with their scores, per example (`examples` are the predicted ones).
    pub fn full_scored(&self, examples: &[Example]) -> Vec<Vec<Scored>> {
        self.full_candidates.iter().zip(examples).map(|(c, e)| decide_scored(c, &e.pairs, 0.0)).collect()
    }
}

/// Predicts `examples` in batches of at most `batch_size` documents, longest first; a batch also
/// stops growing before its [B, H, L, L] attention would pass the adapter's binding limit. With
/// `cache` (built over these `examples` from this model's frozen encoder) the encoder is not run.
#[cfg(not(target_arch = "wasm32"))]
pub fn predict(model: &Model, examples: &[Example], batch_size: usize, cache: Option<&EncoderCache>) -> Result<Predictions> {
    pollster::block_on(predict_async(model, examples, batch_size, cache))
}

/// `predict` without blocking: the browser's way (its readbacks are futures).
pub async fn predict_async(model: &Model, examples: &[Example], batch_size: usize, cache: Option<&EncoderCache>) -> Result<Predictions> {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(examples[i].ids.len()));
    let classes = model.heads.config.classes;
    let limit = model.gpu.limits().max_storage_buffer_binding_size as usize;
    let heads = model.encoder.config.num_attention_heads;
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    for &i in &order {
        match chunks.last_mut() {
            // Longest first: the chunk's first document sets its padded length.
            Some(c) if c.len() < batch_size.max(1) && (c.len() + 1) * heads * examples[c[0]].ids.len().pow(2) * 4 <= limit => c.push(i),
            _ => chunks.push(vec![i]),
        }
    }
    let mut base = vec![Vec::new(); examples.len()];
    let mut full = vec![Vec::new(); examples.len()];
    let (mut base_candidates, mut full_candidates) = (vec![Vec::new(); examples.len()], vec![Vec::new(); examples.len()]);
    let top_k = model.heads.config.top_k;
    let mut work = LoopWork::default();
    for chunk in &chunks {
        // Documents with fewer than two entities have no pairs to predict.
        let items: Vec<(usize, &Example)> = chunk.iter().map(|&i| (i, &examples[i])).filter(|(_, e)| e.entities() >= 2).collect();
        if items.is_empty() {
            continue;
        }
        let batch = Batch::new(&items);
        // Whatever the device refuses in this batch (in the browser, even a shader it will not
        // compile only shows here) fails the prediction instead of leaving garbage logits.
        let scope = model.gpu.device().push_error_scope(wgpu::ErrorFilter::Validation);
        let mut rec = Recorder::new(&model.gpu);
        profile::phase("encoder forward");
        let e = model.encode(&mut rec, &batch, Pass::eval(), cache)?;
        // The decisions are get_label's at θ = 0, made again on the host from the logits that
        // a tuned threshold needs anyway (tests/train.rs checks they equal the GPU's labels).
        let out = test_loop::run(&model.gpu, &model.heads, rec, &e.heads_batch, &e.hidden, &e.attention).await?;
        work.absorb(out.work);
        let (base_logits, full_logits) = (out.base_logits, out.full_logits);
        if let Some(e) = scope.pop().await {
            return Err(crate::Error::Device(format!("the device refused the prediction of a batch: {e}")));
        }
        let mut row = 0;
        for (i, ex) in &items {
            let n = ex.pairs.len() * classes;
            base_candidates[*i] = candidates(&base_logits[row..row + n], classes, top_k);
            full_candidates[*i] = candidates(&full_logits[row..row + n], classes, top_k);
            base[*i] = decide(&base_candidates[*i], &ex.pairs, 0.0);
            full[*i] = decide(&full_candidates[*i], &ex.pairs, 0.0);
            row += n;
        }
    }
    Ok(Predictions { base, full, base_candidates, full_candidates, work })
}
