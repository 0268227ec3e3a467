//! The kernel set: matmuls (square and all-MiniLM-L6-v2 layer shapes), softmax and layernorm
//! (forward and backward), the FFN's element-wise passes, and the base module's fused grouped
//! bilinear layer.

use super::{filled, Case, Unit};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::ops::elementwise::{self as ew, Activation};
use crate::ops::{layernorm, matmul, pair, softmax};

fn matmul_case(gpu: &Gpu, name: &'static str, m: usize, k: usize, n: usize, trans_b: bool) -> Result<Case> {
    let a = filled(gpu, "a", &[m, k], 1)?;
    let b = if trans_b { filled(gpu, "b", &[n, k], 2)? } else { filled(gpu, "b", &[k, n], 2)? };
    Ok(Case {
        kernel: name,
        shape: format!("{m}x{k}x{n}{}", if trans_b { " (Bᵀ)" } else { "" }),
        work: 2.0 * (m * n * k) as f64,
        unit: Unit::Flop,
        flop: None,
        run: Box::new(move |rec| matmul::matmul(rec, &a, &b, false, trans_b).map(|_| ())),
    })
}

/// The standard set. `quick` drops the 1024³ matmul (about half a second a run on lavapipe).
pub fn kernel_cases(gpu: &Gpu, quick: bool) -> Result<Vec<Case>> {
    let mut cases = vec![matmul_case(gpu, "matmul", 256, 256, 256, false)?, matmul_case(gpu, "matmul", 512, 512, 512, false)?];
    if !quick {
        cases.push(matmul_case(gpu, "matmul", 1024, 1024, 1024, false)?);
    }
    // One BERT layer of all-MiniLM-L6-v2 at 512 tokens: QKV, attention output, FFN up / down
    // (weights are [out, in], hence Bᵀ), and the weight gradient of FFN up (tokens as K).
    let (t, h, f) = (512, 384, 1536);
    cases.push(matmul_case(gpu, "linear qkv", t, h, 3 * h, true)?);
    cases.push(matmul_case(gpu, "linear attn-out", t, h, h, true)?);
    cases.push(matmul_case(gpu, "linear ffn-up", t, h, f, true)?);
    cases.push(matmul_case(gpu, "linear ffn-down", t, f, h, true)?);
    // The heads' linear layers at the demo's width 64 over the pairs of a 42-entity document:
    // k = 64, where the epilogue costs as much as the k loop.
    let p = 42 * 41;
    cases.push(matmul_case(gpu, "linear heads", p, 64, 64, true)?);
    cases.push(matmul_case(gpu, "linear heads ffn-up", p, 64, 128, true)?);
    {
        let dy = filled(gpu, "dy", &[t, f], 3)?;
        let x = filled(gpu, "x", &[t, h], 4)?;
        cases.push(Case {
            kernel: "linear ffn-up dW",
            shape: format!("{f}x{t}x{h} (Aᵀ)"),
            work: 2.0 * (t * h * f) as f64,
            unit: Unit::Flop,
            flop: None,
            run: Box::new(move |rec| matmul::matmul(rec, &dy, &x, true, false).map(|_| ())),
        });
    }
    {
        // 12 heads of 32 (MiniLM: 384 / 12), scores then softmax over 512 keys.
        let heads = 12;
        let s = filled(gpu, "scores", &[heads, t, t], 5)?;
        let bytes = 2.0 * (heads * t * t * 4) as f64;
        cases.push(Case {
            kernel: "softmax",
            shape: format!("{heads}x{t}x{t}"),
            work: bytes,
            unit: Unit::Bytes,
            flop: None,
            run: Box::new(move |rec| softmax::softmax(rec, &s, None, 1.0).map(|_| ())),
        });
        // A document of 423 tokens: rows that are not whole vec4s take the subgroup kernel on
        // CPU adapters.
        let odd = 423;
        let s = filled(gpu, "scores", &[heads, odd, odd], 5)?;
        cases.push(Case {
            kernel: "softmax",
            shape: format!("{heads}x{odd}x{odd}"),
            work: 2.0 * (heads * odd * odd * 4) as f64,
            unit: Unit::Bytes,
            flop: None,
            run: Box::new(move |rec| softmax::softmax(rec, &s, None, 1.0).map(|_| ())),
        });
        let y = filled(gpu, "probs", &[heads, t, t], 9)?;
        let dy = filled(gpu, "d_probs", &[heads, t, t], 10)?;
        cases.push(Case {
            kernel: "softmax bwd",
            shape: format!("{heads}x{t}x{t}"),
            work: 1.5 * bytes,
            unit: Unit::Bytes,
            flop: None,
            run: Box::new(move |rec| softmax::softmax_backward(rec, &y, &dy, 1.0).map(|_| ())),
        });
    }
    {
        let x = filled(gpu, "x", &[t, h], 6)?;
        let x2 = x.clone();
        let g = filled(gpu, "gamma", &[h], 7)?;
        let b = filled(gpu, "beta", &[h], 8)?;
        cases.push(Case {
            kernel: "layernorm",
            shape: format!("{t}x{h}"),
            work: 2.0 * (t * h * 4) as f64,
            unit: Unit::Bytes,
            flop: None,
            run: Box::new(move |rec| layernorm::layernorm(rec, &x2, &g, &b, 1e-12).map(|_| ())),
        });
        let dy = filled(gpu, "dy", &[t, h], 11)?;
        let stats = layernorm_stats(gpu, t)?;
        let g = filled(gpu, "gamma", &[h], 7)?;
        cases.push(Case {
            kernel: "layernorm bwd",
            shape: format!("{t}x{h}"),
            // Input gradient (x, dy read, dx written) and parameter gradients (x, dy read).
            work: 5.0 * (t * h * 4) as f64,
            unit: Unit::Bytes,
            flop: None,
            run: Box::new(move |rec| layernorm::layernorm_backward(rec, &x, &g, &stats, &dy).map(|_| ())),
        });
    }
    {
        // The element-wise passes of the FFN at 512 tokens: residual add, GELU and its backward.
        let n = t * f;
        let x = filled(gpu, "x", &[t, f], 17)?;
        let y = filled(gpu, "y", &[t, f], 18)?;
        let (x2, y2, x3) = (x.clone(), y.clone(), x.clone());
        let bytes = (n * 4) as f64;
        cases.push(Case { kernel: "add", shape: format!("{t}x{f}"), work: 3.0 * bytes, unit: Unit::Bytes, flop: None, run: Box::new(move |rec| ew::add(rec, &x, &y).map(|_| ())) });
        cases.push(Case { kernel: "gelu", shape: format!("{t}x{f}"), work: 2.0 * bytes, unit: Unit::Bytes, flop: None, run: Box::new(move |rec| ew::activation(rec, Activation::Gelu, &x2).map(|_| ())) });
        cases.push(Case {
            kernel: "gelu bwd",
            shape: format!("{t}x{f}"),
            work: 3.0 * bytes,
            unit: Unit::Bytes,
            flop: None,
            run: Box::new(move |rec| ew::activation_backward(rec, Activation::Gelu, &x3, &y2).map(|_| ())),
        });
    }
    // The base module's grouped bilinear layer at emb 384, block 64: a 19-entity document
    // (P = 342, Re-DocRED dev document 8) and, unless quick, a 42-entity one (P = 1722).
    let pairs: &[usize] = if quick { &[342] } else { &[342, 1722] };
    for &p in pairs {
        let (e, k) = (384, 64);
        let zs = filled(gpu, "zs", &[p, e], 12)?;
        let zo = filled(gpu, "zo", &[p, e], 13)?;
        let w = filled(gpu, "w", &[e, e * k], 14)?;
        let bias = filled(gpu, "bias", &[e], 15)?;
        let dy = filled(gpu, "dy", &[p, e], 16)?;
        let flop = 2.0 * (p * e * e * k) as f64;
        let (zs2, zo2, w2) = (zs.clone(), zo.clone(), w.clone());
        cases.push(Case {
            kernel: "bilinear",
            shape: format!("P={p} E={e} K={k}"),
            work: flop,
            unit: Unit::Flop,
            flop: None,
            run: Box::new(move |rec| pair::bilinear(rec, &zs2, &zo2, &w2, &bias, k).map(|_| ())),
        });
        cases.push(Case {
            kernel: "bilinear bwd",
            shape: format!("P={p} E={e} K={k}"),
            // dW, dzs and dzo: each as much arithmetic as the forward.
            work: 3.0 * flop,
            unit: Unit::Flop,
            flop: None,
            run: Box::new(move |rec| pair::bilinear_backward(rec, &zs, &zo, &w, &dy, k).map(|_| ())),
        });
    }
    Ok(cases)
}


/// LayerNorm statistics (mean, 1/std) rows of a plausible layer: mean 0, 1/std 1.
fn layernorm_stats(gpu: &Gpu, rows: usize) -> Result<crate::gpu::Tensor> {
    let data: Vec<f32> = (0..rows).flat_map(|_| [0.0, 1.0]).collect();
    crate::gpu::Tensor::from_f32(gpu, "stats", &[rows, 2], &data)
}
