//! The inference module (SPEC 0.1, 3.1–3.4): N_I layers of combine → two ECA units → gate →
//! two FFNs with residual + LayerNorm, then the head (proj → LayerNorm → classifier), and the
//! SimSiam predictor. Grids live as pair lists [P, D]; the ECA kernels read grid lines through
//! the batch's cell map.

use super::dropout::{self as hd, HeadDropout};
use super::params::{Grads, ParamSet};
use crate::error::Result;
use crate::gpu::{DType, Recorder, Tensor};
use crate::model::config::HeadConfig;
use crate::ops::eca::{attention_backward, attention_forward, PairIndex};
use crate::ops::elementwise::{accumulate, activation, activation_backward, add, add_scaled, gate_mix, mul, Activation};
use crate::ops::layernorm::{add_layernorm, layernorm, layernorm_backward};
use crate::ops::loss::{batchnorm, batchnorm_backward};
use crate::ops::matmul::{gemm, linear, linear_backward, linear_cat, linear_cat_backward, Gemm, MatmulKernel, View};
use crate::ops::reduce::col_sum;

struct Linear<'a> {
    p: &'a ParamSet,
    name: String,
}

impl Linear<'_> {
    fn w(&self) -> &Tensor {
        self.p.get(&format!("{}.weight", self.name))
    }
    fn b(&self) -> &Tensor {
        self.p.get(&format!("{}.bias", self.name))
    }
    fn forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        linear(rec, x, self.w(), Some(self.b()))
    }
    /// Adds dW and db to `grads`; returns dx.
    fn backward(&self, rec: &mut Recorder, x: &Tensor, dy: &Tensor, grads: &mut Grads) -> Result<Tensor> {
        let g = linear_backward(rec, x, self.w(), dy)?;
        grads.add(rec, self.p.id(&format!("{}.weight", self.name)), g.dw)?;
        grads.add(rec, self.p.id(&format!("{}.bias", self.name)), g.db)?;
        Ok(g.dx)
    }
}

fn lin<'a>(p: &'a ParamSet, name: String) -> Linear<'a> {
    Linear { p, name }
}

/// LayerNorm by parameter prefix; returns (y, stats).
fn norm(rec: &mut Recorder, p: &ParamSet, name: &str, x: &Tensor, eps: f64) -> Result<(Tensor, Tensor)> {
    let o = layernorm(rec, x, p.get(&format!("{name}.weight")), p.get(&format!("{name}.bias")), eps as f32)?;
    Ok((o.y, o.stats))
}

fn norm_backward(rec: &mut Recorder, p: &ParamSet, name: &str, x: &Tensor, stats: &Tensor, dy: &Tensor, grads: &mut Grads) -> Result<Tensor> {
    let g = layernorm_backward(rec, x, p.get(&format!("{name}.weight")), stats, dy)?;
    grads.add(rec, p.id(&format!("{name}.weight")), g.dgamma)?;
    grads.add(rec, p.id(&format!("{name}.bias")), g.dbeta)?;
    Ok(g.dx)
}

fn cat_backward(rec: &mut Recorder, p: &ParamSet, name: &str, xs: &[&Tensor], dy: &Tensor, grads: &mut Grads) -> Result<Vec<Tensor>> {
    let (dxs, dw, db) = linear_cat_backward(rec, xs, p.get(&format!("{name}.weight")), dy)?;
    grads.add(rec, p.id(&format!("{name}.weight")), dw)?;
    grads.add(rec, p.id(&format!("{name}.bias")), db)?;
    Ok(dxs)
}

struct UnitTape {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
    stats: Tensor,
}

/// One ECA unit: queries from `xq`, keys and values from `m`, output projection (dropout on the
/// probabilities and the output at `site` + hd::UNIT_*); no residual.
#[allow(clippy::too_many_arguments)]
fn unit_forward(rec: &mut Recorder, p: &ParamSet, cfg: &HeadConfig, grid: &PairIndex, name: &str, xq: &Tensor, m: &Tensor, drop: Option<HeadDropout>, site: usize) -> Result<(Tensor, UnitTape)> {
    let q = lin(p, format!("{name}.query")).forward(rec, xq)?;
    let k = lin(p, format!("{name}.key")).forward(rec, m)?;
    let v = lin(p, format!("{name}.value")).forward(rec, m)?;
    let (o, stats) = attention_forward(rec, grid, cfg.attention, cfg.eca_heads, &q, &k, &v, hd::site(drop, site + hd::UNIT_PROBS))?;
    let out = lin(p, format!("{name}.output")).forward(rec, &o)?;
    let out = hd::apply(rec, &out, drop, site + hd::UNIT_OUTPUT)?;
    Ok((out, UnitTape { q, k, v, o, stats }))
}

/// Returns (dxq, dm) of `unit_forward`.
#[allow(clippy::too_many_arguments)]
fn unit_backward(rec: &mut Recorder, p: &ParamSet, cfg: &HeadConfig, grid: &PairIndex, name: &str, xq: &Tensor, m: &Tensor, t: &UnitTape, dout: &Tensor, grads: &mut Grads, drop: Option<HeadDropout>, site: usize) -> Result<(Tensor, Tensor)> {
    let dout = hd::apply(rec, dout, drop, site + hd::UNIT_OUTPUT)?;
    let d_o = lin(p, format!("{name}.output")).backward(rec, &t.o, &dout, grads)?;
    let (dq, dk, dv) = attention_backward(rec, grid, cfg.attention, cfg.eca_heads, &t.q, &t.k, &t.v, &t.o, &t.stats, &d_o, hd::site(drop, site + hd::UNIT_PROBS))?;
    let dxq = lin(p, format!("{name}.query")).backward(rec, xq, &dq, grads)?;
    let dm = lin(p, format!("{name}.key")).backward(rec, m, &dk, grads)?;
    let dm_v = lin(p, format!("{name}.value")).backward(rec, m, &dv, grads)?;
    accumulate(rec, &dm, &dm_v, 1.0)?;
    Ok((dxq, dm))
}

struct FfnTape {
    /// Per row chunk: (first row, rows, pre-activation, ReLU output) of the inner layer.
    chunks: Vec<(usize, usize, Tensor, Tensor)>,
    /// The LayerNorm's input: x + dropped FFN output.
    res: Tensor,
    stats: Tensor,
}

/// Row ranges whose [rows, width] f32 block fits one storage binding: the FFN's inner
/// activations ([P, 2D]) pass the binding limit long before the [P, D] grids do (N = 256, D = 512
/// on a 128 MiB device), so the FFN runs in row chunks. `DOCRE_CHUNK_BYTES` lowers the chunk size
/// (tests use it to exercise several chunks on tiny shapes).
fn row_chunks(gpu: &crate::gpu::Gpu, rows: usize, width: usize) -> Vec<(usize, usize)> {
    let mut limit = gpu.limits().max_storage_buffer_binding_size as usize;
    // A bad value was refused by settings::check before any work started.
    if let Some(v) = crate::settings::chunk_bytes().ok().flatten() {
        limit = limit.min(v);
    }
    let per = (limit / (4 * width.max(1))).max(1);
    (0..rows).step_by(per).map(|r| (r, per.min(rows - r))).collect()
}

fn rows_view(first: usize, width: usize, trans: bool) -> View {
    View { offset: first * width, ld: width, s1: 0, s2: 0, trans }
}

/// LN(x + Dropout(down(ReLU(up(fused))))) with the `name` weights, dropout at `site`; with
/// `grad`, what the backward needs.
#[allow(clippy::too_many_arguments)]
fn ffn_forward(rec: &mut Recorder, p: &ParamSet, cfg: &HeadConfig, name: &str, x: &Tensor, fused: &Tensor, grad: bool, drop: Option<HeadDropout>, site: usize) -> Result<(Tensor, Option<FfnTape>)> {
    let gpu = rec.gpu().clone();
    let (rows, d) = (x.shape()[0], cfg.width);
    let (wu, bu) = (p.get(&format!("{name}.up.weight")), p.get(&format!("{name}.up.bias")));
    let (wd, bd) = (p.get(&format!("{name}.down.weight")), p.get(&format!("{name}.down.bias")));
    let f = wu.shape()[0];
    let res = Tensor::uninit(&gpu, "ffn_residual", &[rows, d], DType::F32)?;
    let mut chunks = Vec::new();
    for (r0, n) in row_chunks(&gpu, rows, f) {
        let up_pre = Tensor::uninit(&gpu, "ffn_up", &[n, f], DType::F32)?;
        let g = Gemm { m: n, n: f, k: d, batch1: 1, batch2: 1, a: rows_view(r0, d, false), b: View::dense(f, d, true), c: View::dense(n, f, false), alpha: 1.0, accumulate: false };
        gemm(rec, MatmulKernel::Auto, &g, fused, wu, Some(bu), &up_pre)?;
        let up = activation(rec, Activation::Relu, &up_pre)?;
        let g = Gemm { m: n, n: d, k: f, batch1: 1, batch2: 1, a: View::dense(n, f, false), b: View::dense(d, f, true), c: rows_view(r0, d, false), alpha: 1.0, accumulate: false };
        gemm(rec, MatmulKernel::Auto, &g, &up, wd, Some(bd), &res)?;
        chunks.push((r0, n, up_pre, up));
    }
    let down = hd::apply(rec, &res, drop, site)?;
    let (ln, res) = add_layernorm(rec, &down, x, p.get(&format!("{name}.norm.weight")), p.get(&format!("{name}.norm.bias")), cfg.ln_eps as f32, grad)?;
    Ok((ln.y, res.map(|res| FfnTape { chunks, res, stats: ln.stats })))
}

/// Returns (dx, dfused) of `ffn_forward`.
#[allow(clippy::too_many_arguments)]
fn ffn_backward(rec: &mut Recorder, p: &ParamSet, name: &str, fused: &Tensor, t: &FfnTape, dy: &Tensor, grads: &mut Grads, drop: Option<HeadDropout>, site: usize) -> Result<(Tensor, Tensor)> {
    let gpu = rec.gpu().clone();
    let dres = norm_backward(rec, p, &format!("{name}.norm"), &t.res, &t.stats, dy, grads)?;
    // The residual takes dres as it is; the FFN branch through its dropout mask.
    let ddown = hd::apply(rec, &dres, drop, site)?;
    let (wu, wd) = (p.get(&format!("{name}.up.weight")), p.get(&format!("{name}.down.weight")));
    let (f, d) = (wu.shape()[0], wu.shape()[1]);
    let dwu = Tensor::uninit(&gpu, "ffn_up_dw", wu.shape(), DType::F32)?;
    let dwd = Tensor::uninit(&gpu, "ffn_down_dw", wd.shape(), DType::F32)?;
    let dbu = Tensor::uninit(&gpu, "ffn_up_db", &[f], DType::F32)?;
    let dfused = Tensor::uninit(&gpu, "ffn_fused_grad", fused.shape(), DType::F32)?;
    for (i, (r0, n, up_pre, up)) in t.chunks.iter().enumerate() {
        let (r0, n, acc) = (*r0, *n, i > 0);
        let g = Gemm { m: n, n: f, k: d, batch1: 1, batch2: 1, a: rows_view(r0, d, false), b: View::dense(d, f, false), c: View::dense(n, f, false), alpha: 1.0, accumulate: false };
        let dup = Tensor::uninit(&gpu, "ffn_up_grad", &[n, f], DType::F32)?;
        gemm(rec, MatmulKernel::Auto, &g, &ddown, wd, None, &dup)?;
        let g = Gemm { m: d, n: f, k: n, batch1: 1, batch2: 1, a: rows_view(r0, d, true), b: View::dense(n, f, false), c: View::dense(d, f, false), alpha: 1.0, accumulate: acc };
        gemm(rec, MatmulKernel::Auto, &g, &ddown, up, None, &dwd)?;
        let dup_pre = activation_backward(rec, Activation::Relu, up_pre, &dup)?;
        let g = Gemm { m: n, n: d, k: f, batch1: 1, batch2: 1, a: View::dense(n, f, false), b: View::dense(f, d, false), c: rows_view(r0, d, false), alpha: 1.0, accumulate: false };
        gemm(rec, MatmulKernel::Auto, &g, &dup_pre, wu, None, &dfused)?;
        let g = Gemm { m: f, n: d, k: n, batch1: 1, batch2: 1, a: View::dense(n, f, true), b: rows_view(r0, d, false), c: View::dense(f, d, false), alpha: 1.0, accumulate: acc };
        gemm(rec, MatmulKernel::Auto, &g, &dup_pre, fused, None, &dwu)?;
        let db = col_sum(rec, &dup_pre)?;
        if acc {
            accumulate(rec, &dbu, &db, 1.0)?;
        } else {
            rec.copy(&db, &dbu)?;
        }
    }
    grads.add(rec, p.id(&format!("{name}.down.weight")), dwd)?;
    let dbd = col_sum(rec, &ddown)?;
    grads.add(rec, p.id(&format!("{name}.down.bias")), dbd)?;
    grads.add(rec, p.id(&format!("{name}.up.weight")), dwu)?;
    grads.add(rec, p.id(&format!("{name}.up.bias")), dbu)?;
    Ok((dres, dfused))
}

pub struct LayerTape {
    f: Tensor,
    r: Tensor,
    /// combine's LayerNorm input (after its dropout).
    m_pre: Tensor,
    m: Tensor,
    m_stats: Tensor,
    feature: (Tensor, UnitTape),
    relation: (Tensor, UnitTape),
    gate_pre: Tensor,
    gate: Tensor,
    fused: Tensor,
    f_ffn: FfnTape,
    r_ffn: FfnTape,
}

/// Per-layer values, for tests that compare against reference intermediates.
pub struct LayerValues {
    pub m: Tensor,
    pub feature_eca: Tensor,
    pub relation_eca: Tensor,
    pub gate: Tensor,
    pub fused: Tensor,
    pub f: Tensor,
    pub r: Tensor,
}

pub struct ModuleOut {
    pub logits: Tensor,
    /// The head LayerNorm output Z [P, D] (the SimSiam representation).
    pub z: Tensor,
    pub layers: Vec<LayerValues>,
}

pub struct ModuleTape {
    drop: Option<HeadDropout>,
    layers: Vec<LayerTape>,
    f: Tensor,
    r: Tensor,
    z_pre: Tensor,
    z_stats: Tensor,
    z: Tensor,
}

/// Inference layer `l` (SPEC 3.2) on grids F, R [P, D]: returns its values (F', R' among them)
/// and, with `grad`, what its backward needs. `drop`: the module call's dropout (training).
#[allow(clippy::too_many_arguments)]
pub fn layer_forward(rec: &mut Recorder, p: &ParamSet, cfg: &HeadConfig, grid: &PairIndex, l: usize, f: &Tensor, r: &Tensor, grad: bool, drop: Option<HeadDropout>) -> Result<(LayerValues, Option<LayerTape>)> {
    let pre = format!("infer.layers.{l}");
    let site = l * hd::PER_LAYER;
    let m_pre = linear_cat(rec, &[f, r], p.get(&format!("{pre}.combine.weight")), Some(p.get(&format!("{pre}.combine.bias"))))?;
    let m_pre = hd::apply(rec, &m_pre, drop, site + hd::COMBINE)?;
    let (m, m_stats) = norm(rec, p, &format!("{pre}.combine_norm"), &m_pre, cfg.ln_eps)?;
    let feature = unit_forward(rec, p, cfg, grid, &format!("{pre}.feature_eca"), f, &m, drop, site + hd::FEATURE_UNIT)?;
    let relation = unit_forward(rec, p, cfg, grid, &format!("{pre}.relation_eca"), r, &m, drop, site + hd::RELATION_UNIT)?;
    let (ft, rt) = (&feature.0, &relation.0);
    let (gate_pre, gate, fused) = if cfg.fusion {
        let gate_pre = linear_cat(rec, &[ft, rt], p.get(&format!("{pre}.gate.weight")), Some(p.get(&format!("{pre}.gate.bias"))))?;
        let gate = activation(rec, Activation::Sigmoid, &gate_pre)?;
        // s⊙F̃ + (1 − s)⊙R̃ = R̃ + s⊙(F̃ − R̃)
        let fused = gate_mix(rec, &gate, ft, rt)?;
        (gate_pre, gate, fused)
    } else {
        (ft.clone(), ft.clone(), add(rec, ft, rt)?)
    };
    let (f_next, f_ffn) = ffn_forward(rec, p, cfg, &format!("{pre}.feature_ffn"), f, &fused, grad, drop, site + hd::FEATURE_FFN)?;
    let (r_next, r_ffn) = ffn_forward(rec, p, cfg, &format!("{pre}.relation_ffn"), r, &fused, grad, drop, site + hd::RELATION_FFN)?;
    let values = LayerValues { m: m.clone(), feature_eca: ft.clone(), relation_eca: rt.clone(), gate: gate.clone(), fused: fused.clone(), f: f_next, r: r_next };
    let tape = match (f_ffn, r_ffn) {
        (Some(f_ffn), Some(r_ffn)) => Some(LayerTape { f: f.clone(), r: r.clone(), m_pre, m, m_stats, feature, relation, gate_pre, gate, fused, f_ffn, r_ffn }),
        _ => None,
    };
    Ok((values, tape))
}

/// Backward of `layer_forward` (with the forward's `drop`): (dF, dR) of the layer's inputs from
/// (dF', dR').
#[allow(clippy::too_many_arguments)]
pub fn layer_backward(rec: &mut Recorder, p: &ParamSet, cfg: &HeadConfig, grid: &PairIndex, l: usize, t: &LayerTape, df: &Tensor, dr: &Tensor, grads: &mut Grads, drop: Option<HeadDropout>) -> Result<(Tensor, Tensor)> {
    let pre = format!("infer.layers.{l}");
    let site = l * hd::PER_LAYER;
    let (df_res, dfused) = ffn_backward(rec, p, &format!("{pre}.feature_ffn"), &t.fused, &t.f_ffn, df, grads, drop, site + hd::FEATURE_FFN)?;
    let (dr_res, dfused_r) = ffn_backward(rec, p, &format!("{pre}.relation_ffn"), &t.fused, &t.r_ffn, dr, grads, drop, site + hd::RELATION_FFN)?;
    accumulate(rec, &dfused, &dfused_r, 1.0)?;
    let (ft, rt) = (&t.feature.0, &t.relation.0);
    let (dft, drt) = if cfg.fusion {
        // fused = R̃ + s⊙(F̃ − R̃): dF̃ = s⊙g, dR̃ = g − dF̃, ds = g⊙(F̃ − R̃).
        let dft = mul(rec, &t.gate, &dfused)?;
        let drt = add_scaled(rec, &dfused, &dft, 1.0, -1.0)?;
        let diff = add_scaled(rec, ft, rt, 1.0, -1.0)?;
        let ds = mul(rec, &dfused, &diff)?;
        let dgate_pre = activation_backward(rec, Activation::Sigmoid, &t.gate_pre, &ds)?;
        let dcat = cat_backward(rec, p, &format!("{pre}.gate"), &[ft, rt], &dgate_pre, grads)?;
        accumulate(rec, &dft, &dcat[0], 1.0)?;
        accumulate(rec, &drt, &dcat[1], 1.0)?;
        (dft, drt)
    } else {
        (dfused.clone(), dfused)
    };
    let (df_q, dm) = unit_backward(rec, p, cfg, grid, &format!("{pre}.feature_eca"), &t.f, &t.m, &t.feature.1, &dft, grads, drop, site + hd::FEATURE_UNIT)?;
    let (dr_q, dm_r) = unit_backward(rec, p, cfg, grid, &format!("{pre}.relation_eca"), &t.r, &t.m, &t.relation.1, &drt, grads, drop, site + hd::RELATION_UNIT)?;
    accumulate(rec, &dm, &dm_r, 1.0)?;
    let dm_pre = norm_backward(rec, p, &format!("{pre}.combine_norm"), &t.m_pre, &t.m_stats, &dm, grads)?;
    let dm_pre = hd::apply(rec, &dm_pre, drop, site + hd::COMBINE)?;
    let dcat = cat_backward(rec, p, &format!("{pre}.combine"), &[&t.f, &t.r], &dm_pre, grads)?;
    // F_l feeds the residual, the feature queries and combine; R_l likewise.
    accumulate(rec, &df_res, &df_q, 1.0)?;
    accumulate(rec, &df_res, &dcat[0], 1.0)?;
    accumulate(rec, &dr_res, &dr_q, 1.0)?;
    accumulate(rec, &dr_res, &dcat[1], 1.0)?;
    Ok((df_res, dr_res))
}

/// One pass of the inference module on feature grid `f0` and relation grid `r0` ([P, D] each);
/// `drop` is this call's dropout when training (`HeadDropout::call`).
#[allow(clippy::too_many_arguments)]
pub fn forward(rec: &mut Recorder, p: &ParamSet, cfg: &HeadConfig, grid: &PairIndex, f0: &Tensor, r0: &Tensor, grad: bool, drop: Option<HeadDropout>) -> Result<(ModuleOut, Option<ModuleTape>)> {
    let (mut f, mut r) = (f0.clone(), r0.clone());
    let mut tapes = Vec::new();
    let mut values = Vec::new();
    for l in 0..cfg.layers {
        let (v, tape) = layer_forward(rec, p, cfg, grid, l, &f, &r, grad, drop)?;
        f = v.f.clone();
        r = v.r.clone();
        values.push(v);
        tapes.extend(tape);
    }
    let z_pre = linear_cat(rec, &[&f, &r], p.get("infer.head.proj.weight"), Some(p.get("infer.head.proj.bias")))?;
    let z_pre = hd::apply(rec, &z_pre, drop, cfg.layers * hd::PER_LAYER)?;
    let (z, z_stats) = norm(rec, p, "infer.head.norm", &z_pre, cfg.ln_eps)?;
    let logits = lin(p, "infer.head.classifier".into()).forward(rec, &z)?;
    let tape = grad.then(|| ModuleTape { drop, layers: tapes, f, r, z_pre, z_stats, z: z.clone() });
    Ok((ModuleOut { logits, z, layers: values }, tape))
}

/// Gradients of the module's parameters (added to `grads`) and (df0, dr0), from gradients of the
/// logits and/or of Z.
pub fn backward(rec: &mut Recorder, p: &ParamSet, cfg: &HeadConfig, grid: &PairIndex, tape: &ModuleTape, dlogits: Option<&Tensor>, dz: Option<&Tensor>, grads: &mut Grads) -> Result<(Tensor, Tensor)> {
    let mut dz_total = dz.cloned();
    if let Some(dl) = dlogits {
        let d = lin(p, "infer.head.classifier".into()).backward(rec, &tape.z, dl, grads)?;
        if let Some(extra) = &dz_total {
            accumulate(rec, &d, extra, 1.0)?;
        }
        dz_total = Some(d);
    }
    let dz = dz_total.expect("inference backward needs a logit or a Z gradient");
    let dz_pre = norm_backward(rec, p, "infer.head.norm", &tape.z_pre, &tape.z_stats, &dz, grads)?;
    let dz_pre = hd::apply(rec, &dz_pre, tape.drop, cfg.layers * hd::PER_LAYER)?;
    let mut d = cat_backward(rec, p, "infer.head.proj", &[&tape.f, &tape.r], &dz_pre, grads)?;
    let (mut df, mut dr) = (d.remove(0), d.remove(0));
    for (l, t) in tape.layers.iter().enumerate().rev() {
        (df, dr) = layer_backward(rec, p, cfg, grid, l, t, &df, &dr, grads, tape.drop)?;
    }
    Ok((df, dr))
}

pub struct PredictorTape {
    z: Tensor,
    up: Tensor,
    bn_stats: Tensor,
    bn: Tensor,
    act: Tensor,
}

/// The SimSiam predictor: up → BatchNorm1d (batch statistics over the pairs; updates the
/// running buffers in place) → ReLU → down.
pub fn predictor_forward(rec: &mut Recorder, p: &ParamSet, cfg: &HeadConfig, z: &Tensor) -> Result<(Tensor, PredictorTape)> {
    let up = lin(p, "infer.predictor.up".into()).forward(rec, z)?;
    let (g, b) = (p.get("infer.predictor.bn.weight"), p.get("infer.predictor.bn.bias"));
    let (rm, rv) = (p.get("infer.predictor.bn.running_mean"), p.get("infer.predictor.bn.running_var"));
    let (bn, bn_stats) = batchnorm(rec, &up, g, b, rm, rv, cfg.bn_eps as f32, cfg.bn_momentum as f32)?;
    let act = activation(rec, Activation::Relu, &bn)?;
    let out = lin(p, "infer.predictor.down".into()).forward(rec, &act)?;
    Ok((out, PredictorTape { z: z.clone(), up, bn_stats, bn, act }))
}

/// dZ of `predictor_forward`.
pub fn predictor_backward(rec: &mut Recorder, p: &ParamSet, t: &PredictorTape, dout: &Tensor, grads: &mut Grads) -> Result<Tensor> {
    let dact = lin(p, "infer.predictor.down".into()).backward(rec, &t.act, dout, grads)?;
    let dbn = activation_backward(rec, Activation::Relu, &t.bn, &dact)?;
    let (dup, dg, db) = batchnorm_backward(rec, &t.up, p.get("infer.predictor.bn.weight"), &t.bn_stats, &dbn)?;
    grads.add(rec, p.id("infer.predictor.bn.weight"), dg)?;
    grads.add(rec, p.id("infer.predictor.bn.bias"), db)?;
    lin(p, "infer.predictor.up".into()).backward(rec, &t.z, &dup, grads)
}
