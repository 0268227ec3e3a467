//! The ATLOP-style base module (SPEC 0.1, 2): mentions → logsumexp entities and mean entity
//! attention → localized context per pair → z_s, z_o → fused grouped bilinear → ReLU → F →
//! LayerNorm → base logits; and its backward down to the encoder outputs X and A.

use super::batch::HeadBatch;
use super::dropout::{self as hd, HeadDropout};
use super::params::{Grads, ParamSet};
use crate::error::Result;
use crate::gpu::{DType, Recorder, Tensor};
use crate::model::config::HeadConfig;
use crate::ops::elementwise::{accumulate, activation, activation_backward, fill, Activation};
use crate::ops::embedding::{gather_rows, scatter_add_rows, RowScatter};
use crate::ops::layernorm::{layernorm, layernorm_backward};
use crate::ops::matmul::{gemm, linear, linear_backward, linear_block_backward, linear_block_into, matmul, Gemm, MatmulKernel, View};
use crate::ops::pair::{bilinear, bilinear_backward, bilinear_input_grads, bilinear_weight_grad_sq, context_weights, context_weights_backward};
use crate::ops::reduce::col_sum;
use crate::ops::softmax::{lse_pool, lse_pool_backward};

pub struct BaseOut {
    /// Base logits [P, C].
    pub logits: Tensor,
    /// Pair features F [P, E] (the ReLU output, before the classifier's LayerNorm).
    pub features: Tensor,
}

/// What the backward needs from one forward pass.
pub struct BaseTape {
    x: Tensor,
    a_shape: Vec<usize>,
    mention_x: Tensor,
    entities: Tensor,
    entity_att: Tensor,
    weights: Tensor,
    context: Tensor,
    cls: Tensor,
    zs_pre: Tensor,
    zo_pre: Tensor,
    zs: Tensor,
    zo: Tensor,
    bilinear_pre: Tensor,
    /// The classifier's LayerNorm input: F after the classifier's dropout.
    classifier_in: Tensor,
    drop: Option<HeadDropout>,
    norm_y: Tensor,
    norm_stats: Tensor,
}

impl BaseTape {
    /// The bilinear layer's output [P, E] (before the ReLU), which a frozen base head on a frozen
    /// encoder's outputs reproduces exactly, so callers may keep it per document.
    pub fn bilinear_output(&self) -> &Tensor {
        &self.bilinear_pre
    }
    /// Intermediates for inspection (tests compare them with the fixtures' `aux.*`).
    pub fn entities(&self) -> &Tensor {
        &self.entities
    }
    pub fn entity_attention(&self) -> &Tensor {
        &self.entity_att
    }
    pub fn context(&self) -> &Tensor {
        &self.context
    }
    pub fn z(&self) -> (&Tensor, &Tensor) {
        (&self.zs, &self.zo)
    }
}

/// c[p] = Σ_l w[p, l] X[doc(p), l] (SPEC 2.3), one GEMM per document.
fn context(rec: &mut Recorder, hb: &HeadBatch, w: &Tensor, x: &Tensor, d: usize) -> Result<Tensor> {
    let l = hb.len;
    let c = Tensor::uninit(rec.gpu(), "context", &[hb.pairs, d], DType::F32)?;
    for (b, &(first, count)) in hb.grid.doc_ranges.iter().enumerate() {
        let g = Gemm {
            m: count,
            n: d,
            k: l,
            batch1: 1,
            batch2: 1,
            a: View { offset: first * l, ld: l, s1: 0, s2: 0, trans: false },
            b: View { offset: b * l * d, ld: d, s1: 0, s2: 0, trans: false },
            c: View { offset: first * d, ld: d, s1: 0, s2: 0, trans: false },
            alpha: 1.0,
            accumulate: false,
        };
        gemm(rec, MatmulKernel::Auto, &g, w, x, None, &c)?;
    }
    Ok(c)
}

/// z_pre = W[h_e; c; g]ᵀ + b for the pair's entity e (head or tail side), computed as three
/// block products: per entity, per pair, per document, then gathered to pairs.
#[allow(clippy::too_many_arguments)]
fn project(rec: &mut Recorder, w: &Tensor, bias: &Tensor, ent: &Tensor, ctx: &Tensor, cls: &Tensor, ids: &Tensor, hb: &HeadBatch, d: usize) -> Result<Tensor> {
    let e = w.shape()[0];
    let gpu = rec.gpu().clone();
    let y = Tensor::uninit(&gpu, "z_pre", &[hb.pairs, e], DType::F32)?;
    linear_block_into(rec, ctx, w, d, Some(bias), &y, false)?;
    let per_entity = Tensor::uninit(&gpu, "z_entity", &[hb.entities, e], DType::F32)?;
    linear_block_into(rec, ent, w, 0, None, &per_entity, false)?;
    let gathered = gather_rows(rec, &per_entity, ids)?;
    accumulate(rec, &y, &gathered, 1.0)?;
    let per_doc = Tensor::uninit(&gpu, "z_doc", &[hb.docs, e], DType::F32)?;
    linear_block_into(rec, cls, w, 2 * d, None, &per_doc, false)?;
    let gathered = gather_rows(rec, &per_doc, &hb.doc_ids)?;
    accumulate(rec, &y, &gathered, 1.0)?;
    Ok(y)
}

/// Backward of `project`: returns (dW, db) and, with `dents`, adds into dent, dctx, dcls
/// (written when `first`, added otherwise).
#[allow(clippy::too_many_arguments)]
fn project_backward(rec: &mut Recorder, w: &Tensor, tape: &BaseTape, scatter: &RowScatter, hb: &HeadBatch, dz: &Tensor, d: usize, dents: Option<[&Tensor; 3]>, first: bool) -> Result<(Tensor, Tensor)> {
    let e = w.shape()[0];
    let gpu = rec.gpu().clone();
    let into = |i: usize| dents.map(|t| (t[i], !first));
    let dw = Tensor::uninit(&gpu, "z_dw", w.shape(), DType::F32)?;
    linear_block_backward(rec, &tape.context, w, d, dz, &dw, into(1))?;
    let du = Tensor::uninit(&gpu, "z_entity_grad", &[hb.entities, e], DType::F32)?;
    fill(rec, &du, 0.0)?;
    scatter_add_rows(rec, dz, scatter, &du)?;
    linear_block_backward(rec, &tape.entities, w, 0, &du, &dw, into(0))?;
    let dg = Tensor::uninit(&gpu, "z_doc_grad", &[hb.docs, e], DType::F32)?;
    fill(rec, &dg, 0.0)?;
    scatter_add_rows(rec, dz, &hb.doc_scatter, &dg)?;
    linear_block_backward(rec, &tape.cls, w, 2 * d, &dg, &dw, into(2))?;
    Ok((dw, col_sum(rec, dz)?))
}

/// Base module forward on encoder outputs X [B, L, d] and A [B, H, L, L]. `cached_pre` is the
/// bilinear layer's output [P, E] from an earlier pass over the same inputs and weights (stage 2
/// with a frozen encoder, where the base head is frozen too): the layer then is not run again.
/// `drop`: the step's dropout when training (the classifier's input; F itself is undropped).
#[allow(clippy::too_many_arguments)]
pub fn forward(rec: &mut Recorder, p: &ParamSet, cfg: &HeadConfig, hb: &HeadBatch, x: &Tensor, a: &Tensor, cached_pre: Option<&Tensor>, drop: Option<HeadDropout>) -> Result<(BaseOut, BaseTape)> {
    let (b, l, h, d) = (hb.docs, hb.len, hb.heads, cfg.hidden);
    x.expect_shape("base module", &[b, l, d])?;
    let ms = hb.input.mention_start.len();
    let a_rows = if hb.compact_attention { ms * h } else { b * h * l };
    if hb.compact_attention {
        a.expect_shape("base module (mention attention rows)", &[ms * h, l])?;
    } else {
        a.expect_shape("base module", &[b, h, l, l])?;
    }
    let x2 = x.reshape(&[b * l, d])?;
    let mention_x = gather_rows(rec, &x2, &hb.mention_x)?;
    let entities = lse_pool(rec, &mention_x, &hb.entity_mentions)?;
    let mention_a = gather_rows(rec, &a.reshape(&[a_rows, l])?, &hb.mention_a)?;
    let entity_att = matmul(rec, &hb.entity_mean, &mention_a.reshape(&[ms, h * l])?, false, false)?.reshape(&[hb.entities, h, l])?;
    let weights = context_weights(rec, &entity_att, &hb.pair_entities)?;
    let ctx = context(rec, hb, &weights, x, d)?;
    let cls = gather_rows(rec, &x2, &hb.cls)?;
    let zs_pre = project(rec, p.get("base.head_proj.weight"), p.get("base.head_proj.bias"), &entities, &ctx, &cls, &hb.head_ids, hb, d)?;
    let zo_pre = project(rec, p.get("base.tail_proj.weight"), p.get("base.tail_proj.bias"), &entities, &ctx, &cls, &hb.tail_ids, hb, d)?;
    let zs = activation(rec, Activation::Tanh, &zs_pre)?;
    let zo = activation(rec, Activation::Tanh, &zo_pre)?;
    let pre = match cached_pre {
        Some(t) => {
            t.expect_shape("cached bilinear output", &[hb.pairs, cfg.emb])?;
            t.clone()
        }
        None => bilinear(rec, &zs, &zo, p.get("base.bilinear.weight"), p.get("base.bilinear.bias"), cfg.block)?,
    };
    let features = activation(rec, Activation::Relu, &pre)?;
    let classifier_in = hd::apply(rec, &features, drop, hd::BASE_CLASSIFIER)?;
    let norm = layernorm(rec, &classifier_in, p.get("base.classifier.norm.weight"), p.get("base.classifier.norm.bias"), cfg.ln_eps as f32)?;
    let logits = linear(rec, &norm.y, p.get("base.classifier.weight"), None)?;
    let tape = BaseTape {
        x: x.clone(),
        a_shape: a.shape().to_vec(),
        mention_x,
        entities,
        entity_att,
        weights,
        context: ctx,
        cls,
        zs_pre,
        zo_pre,
        zs,
        zo,
        bilinear_pre: pre,
        classifier_in,
        drop,
        norm_y: norm.y,
        norm_stats: norm.stats,
    };
    Ok((BaseOut { logits, features }, tape))
}

/// What a backward pass through the base module must produce beyond the parameter gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaseNeeds {
    /// Gradients of X and A, for the encoder's backward (not needed while it is frozen).
    pub inputs: bool,
    /// Only the squared norm of the bilinear weight's gradient (`Grads::add_norm_sq`): the
    /// weight is frozen and its gradient feeds nothing but the clipping norm, so the [O, E·K]
    /// tensor and the GEMM that forms it are skipped.
    pub bilinear_norm_only: bool,
}

impl BaseNeeds {
    /// Everything: gradients of every parameter, X and A.
    pub const ALL: BaseNeeds = BaseNeeds { inputs: true, bilinear_norm_only: false };
}

/// Gradients of the base parameters (added to `grads`) and, when `needs.inputs`, of X and A,
/// from gradients of the base logits and/or of the pair features (the inference module's input).
#[allow(clippy::too_many_arguments)]
pub fn backward(rec: &mut Recorder, p: &ParamSet, cfg: &HeadConfig, hb: &HeadBatch, tape: &BaseTape, dlogits: Option<&Tensor>, dfeatures: Option<&Tensor>, grads: &mut Grads, needs: BaseNeeds) -> Result<Option<(Tensor, Tensor)>> {
    let (b, l, h, d) = (hb.docs, hb.len, hb.heads, cfg.hidden);
    let gpu = rec.gpu().clone();
    let mut df = dfeatures.cloned();
    if let Some(dl) = dlogits {
        let wr = p.get("base.classifier.weight");
        let g = linear_backward(rec, &tape.norm_y, wr, dl)?;
        grads.add(rec, p.id("base.classifier.weight"), g.dw)?;
        let ln = layernorm_backward(rec, &tape.classifier_in, p.get("base.classifier.norm.weight"), &tape.norm_stats, &g.dx)?;
        grads.add(rec, p.id("base.classifier.norm.weight"), ln.dgamma)?;
        grads.add(rec, p.id("base.classifier.norm.bias"), ln.dbeta)?;
        let dfeat = hd::apply(rec, &ln.dx, tape.drop, hd::BASE_CLASSIFIER)?;
        if let Some(f) = &df {
            accumulate(rec, &dfeat, f, 1.0)?;
        }
        df = Some(dfeat);
    }
    let df = df.expect("base backward needs a logit or a feature gradient");
    let dpre = activation_backward(rec, Activation::Relu, &tape.bilinear_pre, &df)?;
    let wb = p.get("base.bilinear.weight");
    let (dzs, dzo) = if needs.bilinear_norm_only {
        grads.add_norm_sq(bilinear_weight_grad_sq(rec, &tape.zs, &tape.zo, &dpre, cfg.block)?);
        let dbb = col_sum(rec, &dpre)?;
        grads.add(rec, p.id("base.bilinear.bias"), dbb)?;
        bilinear_input_grads(rec, MatmulKernel::Auto, &tape.zs, &tape.zo, wb, &dpre, cfg.block)?
    } else {
        let (dzs, dzo, dwb, dbb) = bilinear_backward(rec, &tape.zs, &tape.zo, wb, &dpre, cfg.block)?;
        grads.add(rec, p.id("base.bilinear.weight"), dwb)?;
        grads.add(rec, p.id("base.bilinear.bias"), dbb)?;
        (dzs, dzo)
    };
    let dzs_pre = activation_backward(rec, Activation::Tanh, &tape.zs_pre, &dzs)?;
    let dzo_pre = activation_backward(rec, Activation::Tanh, &tape.zo_pre, &dzo)?;
    let dinputs = match needs.inputs {
        true => Some([
            Tensor::uninit(&gpu, "entity_grad", tape.entities.shape(), DType::F32)?,
            Tensor::uninit(&gpu, "context_grad", tape.context.shape(), DType::F32)?,
            Tensor::uninit(&gpu, "cls_grad", tape.cls.shape(), DType::F32)?,
        ]),
        false => None,
    };
    let outs = dinputs.as_ref().map(|[e, c, g]| [e, c, g]);
    let (dw, db) = project_backward(rec, p.get("base.head_proj.weight"), tape, &hb.head_scatter, hb, &dzs_pre, d, outs, true)?;
    grads.add(rec, p.id("base.head_proj.weight"), dw)?;
    grads.add(rec, p.id("base.head_proj.bias"), db)?;
    let (dw, db) = project_backward(rec, p.get("base.tail_proj.weight"), tape, &hb.tail_scatter, hb, &dzo_pre, d, outs, false)?;
    grads.add(rec, p.id("base.tail_proj.weight"), dw)?;
    grads.add(rec, p.id("base.tail_proj.bias"), db)?;
    let Some([dent, dctx, dcls]) = dinputs else {
        return Ok(None);
    };

    // Context: dw[p] = X_b dctx[p]; dX_b += wᵀ dctx.
    let dx = Tensor::uninit(&gpu, "x_grad", &[b * l, d], DType::F32)?;
    fill(rec, &dx, 0.0)?;
    let dweights = Tensor::uninit(&gpu, "context_weights_grad", &[hb.pairs, l], DType::F32)?;
    for (doc, &(first, count)) in hb.grid.doc_ranges.iter().enumerate() {
        let v = |offset: usize, ld: usize, trans: bool| View { offset, ld, s1: 0, s2: 0, trans };
        let g = Gemm { m: count, n: l, k: d, batch1: 1, batch2: 1, a: v(first * d, d, false), b: v(doc * l * d, d, true), c: v(first * l, l, false), alpha: 1.0, accumulate: false };
        gemm(rec, MatmulKernel::Auto, &g, &dctx, &tape.x, None, &dweights)?;
        let g = Gemm { m: l, n: d, k: count, batch1: 1, batch2: 1, a: v(first * l, l, true), b: v(first * d, d, false), c: v(doc * l * d, d, false), alpha: 1.0, accumulate: true };
        gemm(rec, MatmulKernel::Auto, &g, &tape.weights, &dctx, None, &dx)?;
    }
    let dea = context_weights_backward(rec, &tape.entity_att, &hb.pair_entities, &dweights)?;
    let ms = hb.input.mention_start.len();
    let dma = matmul(rec, &hb.entity_mean, &dea.reshape(&[hb.entities, h * l])?, true, false)?;
    let a_rows = tape.a_shape.iter().product::<usize>() / l;
    let da = Tensor::uninit(&gpu, "a_grad", &[a_rows, l], DType::F32)?;
    fill(rec, &da, 0.0)?;
    scatter_add_rows(rec, &dma.reshape(&[ms * h, l])?, &hb.mention_a_scatter, &da)?;

    let dmx = lse_pool_backward(rec, &tape.mention_x, &hb.entity_mentions, &tape.entities, &dent)?;
    scatter_add_rows(rec, &dmx, &hb.mention_x_scatter, &dx)?;
    scatter_add_rows(rec, &dcls, &hb.cls_scatter, &dx)?;
    Ok(Some((dx.reshape(&[b, l, d])?, da.reshape(&tape.a_shape)?)))
}
