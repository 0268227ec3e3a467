//! Encoder benchmarks: one document of L tokens (batch 1) through the whole encoder, forward
//! in evaluation mode and forward + backward in training mode (dropout on, gradients of both
//! outputs, as DocRE-II training uses them).

use std::sync::Arc;

use super::{filled, Case, Unit};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::model::{Bert, BertConfig, Pass, TokenBatch};

/// Forward FLOPs of one pass over `l` tokens (multiply-adds counted twice; SPEC 9.1 for
/// FFN = 4·hidden is 24·L·d² + 4·L²·d per layer).
fn forward_flop(c: &BertConfig, l: usize) -> f64 {
    let (l, d, f) = (l as f64, c.hidden_size as f64, c.intermediate_size as f64);
    c.num_hidden_layers as f64 * (2.0 * l * (4.0 * d * d + 2.0 * d * f) + 4.0 * l * l * d)
}

fn doc(c: &BertConfig, l: usize) -> TokenBatch {
    let mut rng = crate::rng::Rng::new(l as u64);
    let mut ids: Vec<u32> = (0..l).map(|_| 1000 + rng.below(c.vocab_size.saturating_sub(1000).max(1)) as u32 % c.vocab_size as u32).collect();
    ids[0] = 101 % c.vocab_size as u32;
    ids[l - 1] = 102 % c.vocab_size as u32;
    TokenBatch { docs: vec![ids] }
}

/// Forward and forward+backward at each length. Lengths above one window run the two-window
/// scheme (two passes of 512).
pub fn encoder_cases(gpu: &Gpu, model: &Arc<Bert>, lengths: &[usize]) -> Result<Vec<Case>> {
    let c = model.config.clone();
    let mut cases = Vec::new();
    for &l in lengths {
        let batch = Arc::new(doc(&c, l));
        // Windows cost what they run: two passes of `window` tokens.
        let run_tokens = if l > c.window() { 2 * c.window() } else { l };
        let flop = forward_flop(&c, run_tokens);
        let bert = model.clone();
        let b = batch.clone();
        cases.push(Case {
            kernel: "encoder forward",
            shape: format!("L={l}"),
            work: l as f64,
            unit: Unit::Tokens,
            flop: Some(flop),
            run: Box::new(move |rec| bert.forward(rec, &b, Pass::eval()).map(|_| ())),
        });
        let bert = model.clone();
        let heads = c.num_attention_heads;
        let dh = filled(gpu, "d_hidden", &[1, l, c.hidden_size], 11)?;
        let da = filled(gpu, "d_attention", &[1, heads, l, l], 12)?;
        cases.push(Case {
            kernel: "encoder fwd+bwd",
            shape: format!("L={l}"),
            work: l as f64,
            unit: Unit::Tokens,
            // The backward is two GEMMs per forward GEMM.
            flop: Some(3.0 * flop),
            run: Box::new(move |rec| {
                let (_, tape) = bert.forward(rec, &batch, Pass::train(1))?;
                bert.backward(rec, tape.expect("training pass keeps its tape"), &dh, Some(&da)).map(|_| ())
            }),
        });
    }
    Ok(cases)
}
