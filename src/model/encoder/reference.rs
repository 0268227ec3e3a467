//! The whole encoder in plain f64 on the CPU: the truth the GPU encoder is tested against
//! (forward directly, backward through finite differences of this forward). It shares only the
//! host-side window plan and the dropout seeding with `bert.rs`; every kernel is replaced by the
//! `ops::reference` version.

use super::bert::{dropout_seed, layer_param, slot, TokenBatch};
use crate::model::config::BertConfig;
use super::windows::WindowPlan;
use crate::error::Result;
use crate::ops::elementwise::Activation;
use crate::ops::reference as r;

/// Hidden states [B*L*hidden] and last-layer attention [B*heads*L*L], as `Bert::forward`.
pub fn encoder_forward(c: &BertConfig, params: &[Vec<f64>], batch: &TokenBatch, dropout: Option<u64>) -> Result<(Vec<f64>, Vec<f64>)> {
    let plan = WindowPlan::new(&batch.docs, c.window(), c.window_end_tokens())?;
    let (d, heads, dh, w, s) = (c.hidden_size, c.num_attention_heads, c.head_dim(), plan.win, plan.segments());
    let rows = s * w;
    let drop = |x: Vec<f64>, p: f64, site: usize| -> Vec<f64> {
        match dropout {
            Some(seed) if p > 0.0 => r::dropout(&x, p as f32 as f64, dropout_seed(seed, site), 0),
            _ => x,
        }
    };
    let pos = super::bert::position_ids(c, rows, w);
    let emb: Vec<f64> = r::gather_rows(&params[slot::WORD], d, &plan.seg_ids)
        .iter()
        .zip(r::gather_rows(&params[slot::POSITION], d, &pos))
        .zip(r::gather_rows(&params[slot::TOKEN_TYPE], d, &vec![0; rows]))
        .map(|((a, b), t)| a + b + t)
        .collect();
    let eps = c.layer_norm_eps;
    let mut x = drop(r::layernorm(&emb, &params[slot::EMB_LN_W], &params[slot::EMB_LN_B], eps).0, c.hidden_dropout_prob, 0);
    let mut probs_last = Vec::new();
    for l in 0..c.num_hidden_layers {
        let p = |f: usize| &params[layer_param(l, f)];
        let q = r::linear(&x, p(slot::Q_W), Some(p(slot::Q_B)), rows, d, d);
        let k = r::linear(&x, p(slot::K_W), Some(p(slot::K_B)), rows, d, d);
        let v = r::linear(&x, p(slot::V_W), Some(p(slot::V_B)), rows, d, d);
        let probs = r::attention_probs(&q, &k, d, w, heads, &plan.seg_lens, 1.0 / (dh as f64).sqrt());
        let probs = drop(probs, c.attention_probs_dropout_prob, 1 + 3 * l);
        let ctx = r::attention_context(&probs, &v, d, w, heads);
        let ao = drop(r::linear(&ctx, p(slot::AO_W), Some(p(slot::AO_B)), rows, d, d), c.hidden_dropout_prob, 2 + 3 * l);
        let h1 = r::layernorm(&r::add_scaled(&ao, &x, 1.0, 1.0), p(slot::LN1_W), p(slot::LN1_B), eps).0;
        let f = c.intermediate_size;
        let act = r::activation(Activation::Gelu, &r::linear(&h1, p(slot::I_W), Some(p(slot::I_B)), rows, d, f));
        let o = drop(r::linear(&act, p(slot::O_W), Some(p(slot::O_B)), rows, f, d), c.hidden_dropout_prob, 3 + 3 * l);
        x = r::layernorm(&r::add_scaled(&o, &h1, 1.0, 1.0), p(slot::LN2_W), p(slot::LN2_B), eps).0;
        probs_last = probs;
    }
    if !plan.windowed {
        return Ok((x, probs_last));
    }
    Ok((merge_hidden(&plan, &x, d), merge_attention(&plan, &probs_last, heads)))
}

/// Rows each output position receives: (segment, row) pairs from the plan's tables.
fn sources(plan: &WindowPlan, bp: usize) -> Vec<(usize, usize)> {
    plan.pos_src[2 * bp..2 * bp + 2].iter().filter(|&&v| v != u32::MAX).map(|&v| (v as usize / plan.win, v as usize % plan.win)).collect()
}

fn merge_hidden(plan: &WindowPlan, x: &[f64], d: usize) -> Vec<f64> {
    let mut out = vec![0.0; plan.batch * plan.len * d];
    for bp in 0..plan.batch * plan.len {
        let src = sources(plan, bp);
        for e in 0..d {
            let sum: f64 = src.iter().map(|&(s, row)| x[(s * plan.win + row) * d + e]).sum();
            out[bp * d + e] = sum / (src.len() as f64 + 1e-10);
        }
    }
    out
}

fn merge_attention(plan: &WindowPlan, a: &[f64], heads: usize) -> Vec<f64> {
    let (c, w) = (plan.len, plan.win);
    let mut out = vec![0.0; plan.batch * heads * c * c];
    for b in 0..plan.batch {
        for h in 0..heads {
            for p in 0..c {
                let sp = sources(plan, b * c + p);
                let mut raw = vec![0.0; c];
                for (q, slot) in raw.iter_mut().enumerate() {
                    let sq = sources(plan, b * c + q);
                    for &(s, rp) in &sp {
                        if let Some(&(_, rq)) = sq.iter().find(|&&(s2, _)| s2 == s) {
                            *slot += a[((s * heads + h) * w + rp) * w + rq];
                        }
                    }
                }
                let z = if plan.renorm[b] != 0 { raw.iter().sum::<f64>() + 1e-10 } else { 1.0 };
                for q in 0..c {
                    out[((b * heads + h) * c + p) * c + q] = raw[q] / z;
                }
            }
        }
    }
    out
}
