//! DocRE-II's heads as one model: parameter list (SPEC 0.3), the stage-1 and stage-2
//! objectives with their backward passes, and the test-time K-iteration loop. The base and
//! inference modules, their batch layout, dropout masks and f64 CPU reference live beside it.

pub mod base;
pub mod batch;
pub mod dropout;
pub mod inference;
pub mod params;
pub mod reference;

use self::base::{BaseNeeds, BaseOut, BaseTape};
use self::batch::HeadBatch;
use self::dropout::{self as hd, HeadDropout};
use self::inference::ModuleOut;
use self::params::{Grads, ParamSet};
use super::config::{HeadConfig, TestOutput};
use crate::error::{Error, Result};
use crate::gpu::{profile, Gpu, Recorder, Tensor};
use crate::ops::elementwise::{accumulate, add};
use crate::ops::loss::{atloss_backward, atloss_sum, corrupt_labels, cosine_backward, cosine_sum, get_label};
use crate::ops::eca::PairIndex;
use crate::ops::matmul::{linear, linear_backward, matmul};

/// Every head parameter's SPEC 0.3 name and shape, in checkpoint order.
pub fn param_specs(c: &HeadConfig) -> Vec<(String, Vec<usize>)> {
    let (d, e, k, cl, w, f) = (c.hidden, c.emb, c.block, c.classes, c.width, c.ffn_inner);
    let mut v: Vec<(String, Vec<usize>)> = Vec::new();
    let mut lin = |name: &str, out: usize, inp: usize, bias: bool| {
        v.push((format!("{name}.weight"), vec![out, inp]));
        if bias {
            v.push((format!("{name}.bias"), vec![out]));
        }
    };
    lin("base.head_proj", e, 3 * d, true);
    lin("base.tail_proj", e, 3 * d, true);
    lin("base.bilinear", e, e * k, true);
    lin("base.classifier", cl, e, false);
    lin("infer.reduce", w, e, false);
    for l in 0..c.layers {
        let p = format!("infer.layers.{l}");
        lin(&format!("{p}.combine"), w, 2 * w, true);
        for unit in ["feature_eca", "relation_eca"] {
            for part in ["query", "key", "value", "output"] {
                lin(&format!("{p}.{unit}.{part}"), w, w, true);
            }
        }
        lin(&format!("{p}.gate"), w, 2 * w, true);
        for ffn in ["feature_ffn", "relation_ffn"] {
            lin(&format!("{p}.{ffn}.up"), f, w, true);
            lin(&format!("{p}.{ffn}.down"), w, f, true);
        }
    }
    lin("infer.head.proj", w, 2 * w, true);
    lin("infer.head.classifier", cl, w, true);
    lin("infer.predictor.up", w, w, true);
    lin("infer.predictor.down", w, w, true);
    let mut norms = vec!["base.classifier.norm".to_string(), "infer.head.norm".to_string(), "infer.predictor.bn".to_string()];
    for l in 0..c.layers {
        norms.push(format!("infer.layers.{l}.combine_norm"));
        norms.push(format!("infer.layers.{l}.feature_ffn.norm"));
        norms.push(format!("infer.layers.{l}.relation_ffn.norm"));
    }
    for n in norms {
        let width = if n.starts_with("base") { e } else { w };
        v.push((format!("{n}.weight"), vec![width]));
        v.push((format!("{n}.bias"), vec![width]));
    }
    v.push(("infer.relation_embedding".into(), vec![cl, w]));
    v.push(("infer.predictor.bn.running_mean".into(), vec![w]));
    v.push(("infer.predictor.bn.running_var".into(), vec![w]));
    v
}

/// Buffers that are state, not trained parameters.
pub fn is_buffer(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

pub struct Heads {
    pub config: HeadConfig,
    pub params: ParamSet,
}

/// A stage-2 branch's relation labels (SPEC 4.3 and the `noise` switch of SPEC 0.1).
#[derive(Clone, Debug, PartialEq)]
pub enum BranchLabels {
    /// Corrupted gold labels [P, C] (DocRE-II's code: teacher forcing).
    Gold(Vec<f32>),
    /// The base module's predicted labels with pair p corrupted to a one-hot wrong class where
    /// picks[p] = u ∈ [0, 1), kept where picks[p] < 0 (the paper; `ops::loss::corrupt_labels`).
    Predicted(Vec<f32>),
}

/// Stage-2 inputs: gold labels, the two branches' relation labels and the three pair selections
/// (SPEC 4.3), all [P, C] / [P] in pair order.
pub struct Stage2Input {
    pub gold: Vec<f32>,
    pub labels_a: BranchLabels,
    pub labels_b: BranchLabels,
    pub mask_base: Vec<f32>,
    pub mask_a: Vec<f32>,
    pub mask_b: Vec<f32>,
}

/// Loss terms on the GPU as raw sums, with the host-side factors that turn them into losses.
pub struct LossTerms {
    // Read back only by training, which the browser build leaves out.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    terms: Vec<(&'static str, Tensor, f64)>,
}

#[cfg(not(target_arch = "wasm32"))]
impl LossTerms {
    /// Reads the terms back (after the recording is submitted): (name, value) pairs.
    pub fn read(&self, gpu: &Gpu) -> Result<Vec<(&'static str, f64)>> {
        self.terms.iter().map(|(n, t, f)| Ok((*n, t.read_f32(gpu)?[0] as f64 * f))).collect()
    }

    /// The objective (see `objective`), read back.
    pub fn total(&self, gpu: &Gpu) -> Result<f64> {
        Ok(objective(&self.read(gpu)?))
    }
}

/// The objective from read-back terms: the single stage-1 term, or ½ × the sum of the stage-2
/// terms (three AT terms, and the contrastive one when it is on).
pub fn objective(terms: &[(&'static str, f64)]) -> f64 {
    let sum: f64 = terms.iter().map(|(_, x)| x).sum();
    if terms.len() == 1 { sum } else { 0.5 * sum }
}

/// A stage-2 branch's values, for inspection: its logits, and with the contrastive term its
/// predictor output and the swapped pass's Z.
pub struct BranchValues {
    pub logits: Tensor,
    pub predictor: Option<Tensor>,
    pub swapped: Option<Tensor>,
}

/// Everything one training step produces.
pub struct Step {
    pub losses: LossTerms,
    pub grads: Grads,
    /// Gradients of the encoder outputs X [B, L, d] and A [B, H, L, L] (None when the step was
    /// asked not to form them: a frozen encoder).
    pub dx: Option<Tensor>,
    pub da: Option<Tensor>,
    pub base_logits: Tensor,
    /// Stage 2 only: branches A and B.
    pub branches: Vec<BranchValues>,
    /// Stage 2 only: the base module's bilinear output [P, E], for `stage2_with` to reuse.
    pub bilinear_output: Option<Tensor>,
}

/// Test-loop outputs: the final logits and labels, and every iteration's (logits, labels).
pub struct Prediction {
    pub logits: Tensor,
    pub labels: Tensor,
    pub iterations: Vec<(Tensor, Tensor)>,
}

fn selected(mask: &[f32]) -> f64 {
    mask.iter().map(|&m| m as f64).sum::<f64>().max(1.0)
}

impl Heads {
    pub fn new(config: HeadConfig, params: ParamSet) -> Result<Heads> {
        config.validate()?;
        for (name, shape) in param_specs(&config) {
            let t = params.tensors().get(params.names().iter().position(|n| *n == name).ok_or_else(|| Error::Input(format!("head parameter `{name}` {shape:?} is missing")))?).unwrap();
            if t.shape() != shape.as_slice() {
                return Err(Error::Input(format!("head parameter `{name}` has shape {:?}, expected {shape:?}", t.shape())));
            }
        }
        Ok(Heads { config, params })
    }

    /// Randomly initialized heads as PyTorch initializes them: Linear weights and biases
    /// U(±1/√fan_in), LayerNorm and BatchNorm (1, 0), running statistics (0, 1), the relation
    /// embedding Xavier-uniform.
    pub fn random(gpu: &Gpu, config: HeadConfig, seed: u64) -> Result<Heads> {
        config.validate()?;
        let specs = param_specs(&config);
        let fan_in: std::collections::HashMap<String, usize> = specs.iter().filter(|(n, s)| n.ends_with(".weight") && s.len() == 2).map(|(n, s)| (n.trim_end_matches(".weight").to_string(), s[1])).collect();
        let mut rng = crate::rng::Rng::new(seed);
        let mut uniform = |n: usize, bound: f64| -> Vec<f32> { (0..n).map(|_| ((2.0 * rng.uniform() - 1.0) * bound) as f32).collect() };
        let params = specs
            .iter()
            .map(|(name, shape)| {
                let n: usize = shape.iter().product();
                let module = name.rsplit_once('.').map(|(m, _)| m).unwrap_or(name);
                let data = if name == "infer.relation_embedding" {
                    uniform(n, (6.0 / (shape[0] + shape[1]) as f64).sqrt())
                } else if name.ends_with("running_var") || (shape.len() == 1 && name.ends_with(".weight")) {
                    vec![1.0; n]
                } else if name.ends_with("running_mean") || (shape.len() == 1 && !fan_in.contains_key(module)) {
                    vec![0.0; n]
                } else {
                    uniform(n, 1.0 / (fan_in[module] as f64).sqrt())
                };
                (name.clone(), shape.clone(), data)
            })
            .collect();
        Heads::new(config, ParamSet::new(gpu, params)?)
    }

    /// These heads' base module beside the inference module exactly as `random(seed)`
    /// initialised it: the control that shows what training the inference module added (stage 1
    /// never changes it, so this is also the model every stage-1 evaluation scores).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_untrained_inference(&self, gpu: &Gpu, seed: u64) -> Result<Heads> {
        let fresh = Heads::random(gpu, self.config.clone(), seed)?;
        let mut params = Vec::new();
        for (name, trained) in self.params.names().iter().zip(self.params.tensors()) {
            let t = if name.starts_with("infer.") { fresh.params.get(name) } else { trained };
            params.push((name.clone(), t.shape().to_vec(), t.read_f32(gpu)?));
        }
        Heads::new(self.config.clone(), ParamSet::new(gpu, params)?)
    }

    /// Base module forward in evaluation mode.
    pub fn base_forward(&self, rec: &mut Recorder, hb: &HeadBatch, x: &Tensor, a: &Tensor) -> Result<(BaseOut, BaseTape)> {
        base::forward(rec, &self.params, &self.config, hb, x, a, None, None)
    }

    fn reduce(&self, rec: &mut Recorder, features: &Tensor) -> Result<Tensor> {
        linear(rec, features, self.params.get("infer.reduce.weight"), None)
    }

    fn relation_grid(&self, rec: &mut Recorder, labels: &Tensor) -> Result<Tensor> {
        matmul(rec, labels, self.params.get("infer.relation_embedding"), false, false)
    }

    /// The heads' dropout in a training step with seed `seed` (the encoder's masks come from the
    /// same seed, at other sites); None when `head_dropout` is 0.
    pub fn dropout(&self, seed: u64) -> Option<HeadDropout> {
        HeadDropout::training(self.config.head_dropout, crate::model::encoder::bert::dropout_seed(seed, 1 << 30))
    }

    /// One evaluation pass of the inference module with relation labels Ŷ [P, C].
    pub fn inference_pass(&self, rec: &mut Recorder, hb: &HeadBatch, features: &Tensor, labels: &Tensor) -> Result<ModuleOut> {
        let f0 = self.reduce(rec, features)?;
        let r0 = self.relation_grid(rec, labels)?;
        Ok(inference::forward(rec, &self.params, &self.config, &hb.grid, &f0, &r0, false, None)?.0)
    }

    /// Stage 1 without dropout (as the golden fixtures): see `stage1_with`.
    pub fn stage1(&self, rec: &mut Recorder, hb: &HeadBatch, x: &Tensor, a: &Tensor, gold: &[f32]) -> Result<Step> {
        self.stage1_with(rec, hb, x, a, gold, true, None)
    }

    /// Stage 1: ATLoss over all pairs on the base logits (×100, mean), and its gradients,
    /// forming the gradients of X and A only when `input_grads`; `drop` is the step's dropout.
    #[allow(clippy::too_many_arguments)]
    pub fn stage1_with(&self, rec: &mut Recorder, hb: &HeadBatch, x: &Tensor, a: &Tensor, gold: &[f32], input_grads: bool, drop: Option<HeadDropout>) -> Result<Step> {
        let gpu = rec.gpu().clone();
        profile::phase("heads forward");
        let (out, tape) = base::forward(rec, &self.params, &self.config, hb, x, a, None, drop)?;
        profile::phase("losses");
        let gold = Tensor::from_f32(&gpu, "gold", &[hb.pairs, self.config.classes], gold)?;
        let all = Tensor::from_f32(&gpu, "all_pairs", &[hb.pairs], &vec![1.0; hb.pairs])?;
        let coef = 100.0 / hb.pairs as f64;
        let sum = atloss_sum(rec, &out.logits, &gold, &all)?;
        let dlogits = atloss_backward(rec, &out.logits, &gold, &all, coef as f32)?;
        profile::phase("heads backward");
        let mut grads = Grads::default();
        let needs = BaseNeeds { inputs: input_grads, bilinear_norm_only: false };
        let (dx, da) = base::backward(rec, &self.params, &self.config, hb, &tape, Some(&dlogits), None, &mut grads, needs)?.unzip();
        Ok(Step { losses: LossTerms { terms: vec![("stage1", sum, coef)] }, grads, dx, da, base_logits: out.logits, branches: Vec::new(), bilinear_output: None })
    }

    /// Stage 2 without dropout (as the golden fixtures): see `stage2_with`.
    pub fn stage2(&self, rec: &mut Recorder, hb: &HeadBatch, x: &Tensor, a: &Tensor, input: &Stage2Input) -> Result<Step> {
        self.stage2_with(rec, hb, x, a, input, BaseNeeds::ALL, None, None)
    }

    /// Stage 2 (SPEC 4.3): base ATLoss on mask_base, branch A and B ATLoss on their masks (each
    /// /10), with `contrastive` the SimSiam term against the swapped passes (held constant),
    /// total ½·sum; and the gradients of the total. `needs`: what the frozen base head's backward
    /// must produce; `cached_bilinear`: the base module's bilinear output when an earlier step on
    /// the same batch left it (`Step::bilinear_output`; valid while the encoder and the base head
    /// stay frozen; dropout comes after it); `drop`: the step's dropout.
    #[allow(clippy::too_many_arguments)]
    pub fn stage2_with(&self, rec: &mut Recorder, hb: &HeadBatch, x: &Tensor, a: &Tensor, input: &Stage2Input, needs: BaseNeeds, cached_bilinear: Option<&Tensor>, drop: Option<HeadDropout>) -> Result<Step> {
        let gpu = rec.gpu().clone();
        let (p, c) = (hb.pairs, self.config.classes);
        let contrastive = self.config.contrastive;
        let up = |name: &str, v: &[f32], shape: &[usize]| Tensor::from_f32(&gpu, name, shape, v);
        let gold = up("gold", &input.gold, &[p, c])?;
        profile::phase("heads forward");
        let (base_out, base_tape) = base::forward(rec, &self.params, &self.config, hb, x, a, cached_bilinear, drop)?;
        let f0 = self.reduce(rec, &base_out.features)?;
        let f0 = hd::apply(rec, &f0, drop, hd::REDUCE)?;
        let mut predicted = None;
        let mut branches = Vec::new();
        for (i, labels) in [&input.labels_a, &input.labels_b].into_iter().enumerate() {
            let lab = match labels {
                BranchLabels::Gold(v) => up("corrupted_labels", v, &[p, c])?,
                BranchLabels::Predicted(picks) => {
                    if predicted.is_none() {
                        predicted = Some(get_label(rec, &base_out.logits, self.config.top_k)?);
                    }
                    let picks = up("label_noise_picks", picks, &[p])?;
                    corrupt_labels(rec, predicted.as_ref().expect("set above"), &picks)?
                }
            };
            let r0 = self.relation_grid(rec, &lab)?;
            let call = |k: usize| drop.map(|d| d.call(k));
            let (out, tape) = inference::forward(rec, &self.params, &self.config, &hb.grid, &f0, &r0, true, call(2 * i))?;
            let simsiam = match contrastive {
                true => {
                    let (pred, ptape) = inference::predictor_forward(rec, &self.params, &self.config, &out.z)?;
                    // The swapped pass is a constant: no tape, no gradient.
                    let swapped = inference::forward(rec, &self.params, &self.config, &hb.grid, &r0, &f0, false, call(2 * i + 1))?.0.z;
                    Some((pred, ptape, swapped))
                }
                false => None,
            };
            branches.push((lab, out, tape.expect("training pass keeps its tape"), simsiam));
        }
        profile::phase("losses");
        let masks = [&input.mask_base, &input.mask_a, &input.mask_b];
        let mask_t: Vec<Tensor> = masks.iter().map(|m| up("mask", m, &[p])).collect::<Result<_>>()?;
        // Each AT term: 100 × mean over its selected pairs, / 10; the total halves everything.
        let coefs: Vec<f64> = masks.iter().map(|m| 10.0 / selected(m)).collect();
        let logits = [&base_out.logits, &branches[0].1.logits, &branches[1].1.logits];
        let mut terms = Vec::new();
        for (i, name) in ["base", "a", "b"].into_iter().enumerate() {
            terms.push((name, atloss_sum(rec, logits[i], &gold, &mask_t[i])?, coefs[i]));
        }
        if let (Some(sa), Some(sb)) = (&branches[0].3, &branches[1].3) {
            let cos_a = cosine_sum(rec, &sa.0, &sb.2)?;
            let cos_b = cosine_sum(rec, &sb.0, &sa.2)?;
            let cos = add(rec, &cos_a, &cos_b)?;
            terms.push(("contrastive", cos, 1.0 / p as f64));
        }

        let mut grads = Grads::default();
        let mut df0: Option<Tensor> = None;
        let mut drel: Option<Tensor> = None;
        for (i, (lab, _out, tape, simsiam)) in branches.iter().enumerate() {
            profile::phase("losses");
            let dlogits = atloss_backward(rec, logits[i + 1], &gold, &mask_t[i + 1], (0.5 * coefs[i + 1]) as f32)?;
            let dz = match (simsiam, &branches[1 - i].3) {
                (Some((pred, ptape, _)), Some((_, _, other_swapped))) => {
                    let dpred = cosine_backward(rec, pred, other_swapped, (0.5 / p as f64) as f32)?;
                    profile::phase("heads backward");
                    Some(inference::predictor_backward(rec, &self.params, ptape, &dpred, &mut grads)?)
                }
                _ => None,
            };
            profile::phase("heads backward");
            let (df, dr) = inference::backward(rec, &self.params, &self.config, &hb.grid, tape, Some(&dlogits), dz.as_ref(), &mut grads)?;
            let de = matmul(rec, lab, &dr, true, false)?;
            match &drel {
                Some(acc) => accumulate(rec, acc, &de, 1.0)?,
                None => drel = Some(de),
            }
            match &df0 {
                Some(acc) => accumulate(rec, acc, &df, 1.0)?,
                None => df0 = Some(df),
            }
        }
        grads.add(rec, self.params.id("infer.relation_embedding"), drel.expect("two branches"))?;
        let df0 = hd::apply(rec, df0.as_ref().expect("two branches"), drop, hd::REDUCE)?;
        let g = linear_backward(rec, &base_out.features, self.params.get("infer.reduce.weight"), &df0)?;
        grads.add(rec, self.params.id("infer.reduce.weight"), g.dw)?;
        profile::phase("losses");
        let dbase = atloss_backward(rec, &base_out.logits, &gold, &mask_t[0], (0.5 * coefs[0]) as f32)?;
        profile::phase("heads backward");
        let (dx, da) = base::backward(rec, &self.params, &self.config, hb, &base_tape, Some(&dbase), Some(&g.dx), &mut grads, needs)?.unzip();
        let branch_values = branches
            .into_iter()
            .map(|(_, out, _, simsiam)| {
                let (predictor, swapped) = simsiam.map(|(pred, _, sw)| (pred, sw)).unzip();
                BranchValues { logits: out.logits, predictor, swapped }
            })
            .collect();
        let bilinear_output = Some(base_tape.bilinear_output().clone());
        Ok(Step { losses: LossTerms { terms }, grads, dx, da, base_logits: base_out.logits, branches: branch_values, bilinear_output })
    }

    /// The test-time loop (SPEC 3.5): base logits, then K inference passes over every pair with
    /// the relation grid re-derived from the running decision after every pass.
    /// (`eval::test_loop` runs the same loop without re-running settled documents.)
    pub fn predict(&self, rec: &mut Recorder, hb: &HeadBatch, x: &Tensor, a: &Tensor) -> Result<Prediction> {
        let (mut s, mut labels, f0) = self.predict_start(rec, hb, x, a)?;
        let mut iterations = vec![(s.clone(), labels.clone())];
        for _ in 0..self.config.iterations {
            let out = self.predict_pass(rec, &hb.grid, &f0, &labels)?;
            s = self.predict_update(rec, &s, out)?;
            labels = self.predict_labels(rec, &s)?;
            iterations.push((s.clone(), labels.clone()));
        }
        Ok(Prediction { logits: s, labels, iterations })
    }

    /// The test-time loop's start: the base logits S⁰, their labels, and the inference module's
    /// feature grid F⁰, which every pass reads unchanged.
    pub fn predict_start(&self, rec: &mut Recorder, hb: &HeadBatch, x: &Tensor, a: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (base_out, _) = self.base_forward(rec, hb, x, a)?;
        let f0 = self.reduce(rec, &base_out.features)?;
        let labels = self.predict_labels(rec, &base_out.logits)?;
        Ok((base_out.logits, labels, f0))
    }

    /// One inference pass over the pairs of `grid`, from their feature grid `f0` and the labels
    /// the relation grid is derived from: the pass's logits.
    pub fn predict_pass(&self, rec: &mut Recorder, grid: &PairIndex, f0: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let r0 = self.relation_grid(rec, labels)?;
        Ok(inference::forward(rec, &self.params, &self.config, grid, f0, &r0, false, None)?.0.logits)
    }

    /// The running logits after a pass with logits `out`: their sum with `s`, or `out` itself,
    /// by `test_output`.
    pub fn predict_update(&self, rec: &mut Recorder, s: &Tensor, out: Tensor) -> Result<Tensor> {
        Ok(match self.config.test_output {
            TestOutput::Sum => add(rec, s, &out)?,
            TestOutput::Last => out,
        })
    }

    /// The decision the next pass's relation grid is derived from: get_label of the running
    /// logits `s` at the threshold class.
    pub fn predict_labels(&self, rec: &mut Recorder, s: &Tensor) -> Result<Tensor> {
        get_label(rec, s, self.config.top_k)
    }
}
