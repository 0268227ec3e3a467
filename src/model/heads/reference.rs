//! DocRE-II's heads in plain f64 on the CPU, built from `ops::reference`: the truth the GPU heads
//! are tested against (outputs directly, gradients through finite differences of the losses).

use std::collections::HashMap;

use super::batch::HeadInput;
use super::dropout::{self as hd, HeadDropout};
use super::{BranchLabels, Stage2Input};
use crate::model::config::HeadConfig;
use crate::ops::elementwise::Activation;
use crate::ops::reference as r;

/// Parameters by SPEC 0.3 name.
pub type Params = HashMap<String, Vec<f64>>;

fn lin(p: &Params, name: &str, x: &[f64], inp: usize, bias: bool) -> Vec<f64> {
    let w = &p[&format!("{name}.weight")];
    let out = w.len() / inp;
    let b = bias.then(|| p[&format!("{name}.bias")].as_slice());
    r::linear(x, w, b, x.len() / inp, inp, out)
}

fn ln(p: &Params, name: &str, x: &[f64], eps: f64) -> Vec<f64> {
    r::layernorm(x, &p[&format!("{name}.weight")], &p[&format!("{name}.bias")], eps).0
}

/// `x` dropped at `site` exactly as `head_dropout::apply` drops it on the GPU.
fn drop_at(x: &[f64], drop: Option<HeadDropout>, site: usize) -> Vec<f64> {
    match drop {
        Some(d) => {
            let s = d.site(site);
            r::dropout(x, s.p as f64, s.rng.seed, s.rng.offset)
        }
        None => x.to_vec(),
    }
}

/// Row-wise concatenation [a; b] of two [rows, w] matrices.
fn cat(a: &[f64], b: &[f64], wa: usize, wb: usize) -> Vec<f64> {
    let rows = a.len() / wa;
    (0..rows).flat_map(|i| a[i * wa..(i + 1) * wa].iter().chain(&b[i * wb..(i + 1) * wb]).copied().collect::<Vec<_>>()).collect()
}

/// Base logits [P, C] and pair features F [P, E] (SPEC 2), with the step's dropout `drop`.
#[allow(clippy::too_many_arguments)]
pub fn base(p: &Params, c: &HeadConfig, input: &HeadInput, x: &[f64], a: &[f64], heads: usize, len: usize, drop: Option<HeadDropout>) -> (Vec<f64>, Vec<f64>) {
    let d = c.hidden;
    let edoc = input.entity_doc();
    let eoff = input.entity_offsets();
    let ne = input.entities();
    let mut ent = vec![0.0; ne * d];
    let mut ea = vec![0.0; ne * heads * len];
    for e in 0..ne {
        let ms: Vec<usize> = (0..input.mention_entity.len()).filter(|&m| input.mention_entity[m] == e).collect();
        let b = edoc[e];
        let rows: Vec<u32> = ms.iter().map(|&m| (b * len + input.mention_start[m]) as u32).collect();
        ent[e * d..(e + 1) * d].copy_from_slice(&r::lse_pool(x, d, &[rows]));
        for &m in &ms {
            for h in 0..heads {
                for l in 0..len {
                    ea[(e * heads + h) * len + l] += a[((b * heads + h) * len + input.mention_start[m]) * len + l] / ms.len() as f64;
                }
            }
        }
    }
    let pairs: Vec<(u32, u32, u32)> = input.pairs.iter().map(|&(b, s, o)| ((eoff[b] + s) as u32, (eoff[b] + o) as u32, b as u32)).collect();
    let w = r::context_weights(&ea, heads, len, &pairs);
    let np = pairs.len();
    let mut zin_s = Vec::new();
    let mut zin_o = Vec::new();
    for (i, &(s, o, b)) in pairs.iter().enumerate() {
        let b = b as usize;
        let ctx: Vec<f64> = (0..d).map(|k| (0..len).map(|l| w[i * len + l] * x[(b * len + l) * d + k]).sum()).collect();
        let cls = &x[b * len * d..(b * len + 1) * d];
        for (dst, e) in [(&mut zin_s, s as usize), (&mut zin_o, o as usize)] {
            dst.extend_from_slice(&ent[e * d..(e + 1) * d]);
            dst.extend_from_slice(&ctx);
            dst.extend_from_slice(cls);
        }
    }
    let zs = r::activation(Activation::Tanh, &lin(p, "base.head_proj", &zin_s, 3 * d, true));
    let zo = r::activation(Activation::Tanh, &lin(p, "base.tail_proj", &zin_o, 3 * d, true));
    let f = r::activation(Activation::Relu, &r::bilinear(&zs, &zo, &p["base.bilinear.weight"], &p["base.bilinear.bias"], c.emb, c.block));
    let logits = lin(p, "base.classifier", &ln(p, "base.classifier.norm", &drop_at(&f, drop, hd::BASE_CLASSIFIER), c.ln_eps), c.emb, false);
    assert_eq!(logits.len(), np * c.classes);
    (logits, f)
}

/// Pair coordinates (doc, s, o) for the attention reference.
pub fn coords(input: &HeadInput) -> Vec<(u32, u32, u32)> {
    input.pairs.iter().map(|&(b, s, o)| (b as u32, s as u32, o as u32)).collect()
}

/// Inference module (SPEC 3.2–3.4): (logits, Z), with the call's dropout `drop`.
pub fn module(p: &Params, c: &HeadConfig, coords: &[(u32, u32, u32)], f0: &[f64], r0: &[f64], drop: Option<HeadDropout>) -> (Vec<f64>, Vec<f64>) {
    let dw = c.width;
    let (mut f, mut rr) = (f0.to_vec(), r0.to_vec());
    for l in 0..c.layers {
        let pre = format!("infer.layers.{l}");
        let site = l * hd::PER_LAYER;
        let m_pre = lin(p, &format!("{pre}.combine"), &cat(&f, &rr, dw, dw), 2 * dw, true);
        let m = ln(p, &format!("{pre}.combine_norm"), &drop_at(&m_pre, drop, site + hd::COMBINE), c.ln_eps);
        let unit = |name: &str, xq: &[f64], unit_site: usize| {
            let q = lin(p, &format!("{name}.query"), xq, dw, true);
            let k = lin(p, &format!("{name}.key"), &m, dw, true);
            let v = lin(p, &format!("{name}.value"), &m, dw, true);
            let o = r::attention(coords, c.attention, c.eca_heads, dw, &q, &k, &v, hd::site(drop, unit_site + hd::UNIT_PROBS));
            drop_at(&lin(p, &format!("{name}.output"), &o, dw, true), drop, unit_site + hd::UNIT_OUTPUT)
        };
        let ft = unit(&format!("{pre}.feature_eca"), &f, site + hd::FEATURE_UNIT);
        let rt = unit(&format!("{pre}.relation_eca"), &rr, site + hd::RELATION_UNIT);
        let fused: Vec<f64> = if c.fusion {
            let s = r::activation(Activation::Sigmoid, &lin(p, &format!("{pre}.gate"), &cat(&ft, &rt, dw, dw), 2 * dw, true));
            (0..ft.len()).map(|i| s[i] * ft[i] + (1.0 - s[i]) * rt[i]).collect()
        } else {
            ft.iter().zip(&rt).map(|(a, b)| a + b).collect()
        };
        let ffn = |name: &str, x: &[f64], ffn_site: usize| {
            let up = r::activation(Activation::Relu, &lin(p, &format!("{name}.up"), &fused, dw, true));
            let down = drop_at(&lin(p, &format!("{name}.down"), &up, c.ffn_inner, true), drop, ffn_site);
            ln(p, &format!("{name}.norm"), &r::add_scaled(x, &down, 1.0, 1.0), c.ln_eps)
        };
        let f_next = ffn(&format!("{pre}.feature_ffn"), &f, site + hd::FEATURE_FFN);
        let r_next = ffn(&format!("{pre}.relation_ffn"), &rr, site + hd::RELATION_FFN);
        f = f_next;
        rr = r_next;
    }
    let z_pre = lin(p, "infer.head.proj", &cat(&f, &rr, dw, dw), 2 * dw, true);
    let z = ln(p, "infer.head.norm", &drop_at(&z_pre, drop, c.layers * hd::PER_LAYER), c.ln_eps);
    (lin(p, "infer.head.classifier", &z, dw, true), z)
}

/// The SimSiam predictor in training mode (batch statistics).
pub fn predictor(p: &Params, c: &HeadConfig, z: &[f64]) -> Vec<f64> {
    let up = lin(p, "infer.predictor.up", z, c.width, true);
    let bn = r::batchnorm(&up, &p["infer.predictor.bn.weight"], &p["infer.predictor.bn.bias"], c.bn_eps).0;
    lin(p, "infer.predictor.down", &r::activation(Activation::Relu, &bn), c.width, true)
}

fn atloss(logits: &[f64], labels: &[f64], mask: &[f64], classes: usize) -> f64 {
    let n = mask.iter().sum::<f64>().max(1.0);
    100.0 / n * (0..mask.len()).map(|i| mask[i] * r::atloss_pair(&logits[i * classes..(i + 1) * classes], &labels[i * classes..(i + 1) * classes])).sum::<f64>()
}

fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

#[allow(clippy::too_many_arguments)]
pub fn stage1_loss(p: &Params, c: &HeadConfig, input: &HeadInput, x: &[f64], a: &[f64], heads: usize, len: usize, gold: &[f32], drop: Option<HeadDropout>) -> f64 {
    let (logits, _) = base(p, c, input, x, a, heads, len, drop);
    atloss(&logits, &to64(gold), &vec![1.0; input.pairs.len()], c.classes)
}

fn relation_grid(p: &Params, labels: &[f64], c: &HeadConfig) -> Vec<f64> {
    r::matmul(labels, &p["infer.relation_embedding"], labels.len() / c.classes, c.classes, c.width)
}

/// A branch's relation labels [P, C]: the given corrupted gold labels, or the base module's
/// decisions on `logits` with `corrupt_labels`'s noise.
fn branch_labels(labels: &BranchLabels, logits: &[f64], c: &HeadConfig) -> Vec<f64> {
    match labels {
        BranchLabels::Gold(v) => to64(v),
        BranchLabels::Predicted(picks) => {
            let decided: Vec<f64> = logits.chunks(c.classes).flat_map(|row| r::get_label(row, c.top_k)).collect();
            r::corrupt_labels(&decided, &to64(picks), c.classes)
        }
    }
}

/// The stage-2 pieces shared by `swapped` and `stage2_loss`: base logits, F⁰ and both branches'
/// relation grids.
#[allow(clippy::too_many_arguments)]
fn stage2_inputs(p: &Params, c: &HeadConfig, input: &HeadInput, x: &[f64], a: &[f64], heads: usize, len: usize, s2: &Stage2Input, drop: Option<HeadDropout>) -> (Vec<f64>, Vec<f64>, [Vec<f64>; 2]) {
    let (logits, f) = base(p, c, input, x, a, heads, len, drop);
    let f0 = drop_at(&lin(p, "infer.reduce", &f, c.emb, false), drop, hd::REDUCE);
    let grids = [&s2.labels_a, &s2.labels_b].map(|lab| relation_grid(p, &branch_labels(lab, &logits, c), c));
    (logits, f0, grids)
}

/// The swapped passes' Z for branches A and B: constants of the stage-2 loss.
#[allow(clippy::too_many_arguments)]
pub fn swapped(p: &Params, c: &HeadConfig, input: &HeadInput, x: &[f64], a: &[f64], heads: usize, len: usize, s2: &Stage2Input, drop: Option<HeadDropout>) -> [Vec<f64>; 2] {
    let (_, f0, grids) = stage2_inputs(p, c, input, x, a, heads, len, s2, drop);
    let cs = coords(input);
    let [ra, rb] = grids;
    // Calls 1 and 3 of the step (GPU order: A, A swapped, B, B swapped).
    [module(p, c, &cs, &ra, &f0, drop.map(|d| d.call(1))).1, module(p, c, &cs, &rb, &f0, drop.map(|d| d.call(3))).1]
}

/// The stage-2 objective with the swapped representations held at `zswap` (unused without the
/// contrastive term).
#[allow(clippy::too_many_arguments)]
pub fn stage2_loss(p: &Params, c: &HeadConfig, input: &HeadInput, x: &[f64], a: &[f64], heads: usize, len: usize, s2: &Stage2Input, zswap: &[Vec<f64>; 2], drop: Option<HeadDropout>) -> f64 {
    let (logits, f0, grids) = stage2_inputs(p, c, input, x, a, heads, len, s2, drop);
    let gold = to64(&s2.gold);
    let cs = coords(input);
    let np = input.pairs.len();
    let mut total = atloss(&logits, &gold, &to64(&s2.mask_base), c.classes) / 10.0;
    let mut preds = Vec::new();
    for (i, (r0, mask)) in grids.iter().zip([&s2.mask_a, &s2.mask_b]).enumerate() {
        let (lg, z) = module(p, c, &cs, &f0, r0, drop.map(|d| d.call(2 * i)));
        total += atloss(&lg, &gold, &to64(mask), c.classes) / 10.0;
        if c.contrastive {
            preds.push(predictor(p, c, &z));
        }
    }
    if !c.contrastive {
        return 0.5 * total;
    }
    let w = c.width;
    let cos: f64 = (0..np).map(|i| r::cosine_loss(&preds[0][i * w..(i + 1) * w], &zswap[1][i * w..(i + 1) * w]) + r::cosine_loss(&preds[1][i * w..(i + 1) * w], &zswap[0][i * w..(i + 1) * w])).sum();
    0.5 * (total + cos / np as f64)
}
