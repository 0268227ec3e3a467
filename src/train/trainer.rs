//! One optimizer step of either training stage (SPEC 4.2–4.4): encoder forward (dropout on, or
//! frozen), heads objective and backward, encoder backward, global-norm clipping and AdamW with
//! per-group learning rates and the warm-up / linear-decay schedule.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gpu::{profile, Gpu, Recorder, Tensor};
use crate::model::heads::base::BaseNeeds;
use crate::model::heads::{is_buffer, objective, Stage2Input};
use crate::model::encoder_cache::EncoderCache;
use crate::model::{Batch, Encoded, Model, Pass};
use crate::ops::adamw::{adamw_step, AdamW};
use crate::ops::elementwise::accumulate;
use crate::ops::reduce::sum_squares;
use crate::rng::Rng;
use crate::train::sampling::Noise;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Stage {
    /// Base module only (ATLoss on all pairs).
    One,
    /// Whole model (SPEC 4.3); the base head is frozen.
    Two,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
// A misspelt key in a config's [stage1] or [stage2] must not train with the preset's value.
#[serde(deny_unknown_fields)]
pub struct Hyper {
    pub encoder_lr: f64,
    pub head_lr: f64,
    pub weight_decay: f64,
    pub max_norm: f64,
    /// Fraction of the steps spent warming up.
    pub warmup: f64,
    pub adam_eps: f64,
}

/// AdamW state and the schedule of one training stage.
pub struct Trainer {
    pub stage: Stage,
    pub hyper: Hyper,
    pub freeze_encoder: bool,
    pub total_steps: u32,
    pub step: u32,
    moments: HashMap<String, (Tensor, Tensor)>,
    /// Stage 2 on an `EncoderCache`: each example's base-module bilinear output [pairs, E],
    /// kept from its first step. With the encoder and the base head both frozen it cannot change,
    /// so later epochs skip the layer (bit-identical; None turns the reuse off).
    pub base_cache: Option<HashMap<usize, Vec<f32>>>,
    /// Stage 2's relation input.
    pub noise: Noise,
}

/// slot += alpha · g (slot starts as alpha · g; as g itself when alpha is 1).
fn add_scaled_into(rec: &mut Recorder, slot: &mut Option<Tensor>, g: &Tensor, alpha: f32) -> Result<()> {
    match slot {
        Some(acc) => accumulate(rec, acc, g, alpha),
        None => {
            *slot = Some(if alpha == 1.0 { g.clone() } else { crate::ops::elementwise::scale(rec, g, alpha)? });
            Ok(())
        }
    }
}

/// DocRE-II's weight-decay rule: everything but biases and HF LayerNorm weights.
fn decays(name: &str) -> bool {
    !(name.contains("bias") || name.contains("LayerNorm.weight"))
}

impl Trainer {
    pub fn new(stage: Stage, hyper: Hyper, freeze_encoder: bool, total_steps: u32) -> Trainer {
        Trainer { stage, hyper, freeze_encoder, total_steps: total_steps.max(1), step: 0, moments: HashMap::new(), base_cache: Some(HashMap::new()), noise: Noise::Gold }
    }

    /// Learning-rate factor of 1-based step `s`: linear warm-up, then linear decay to 0.
    pub fn schedule(&self, s: u32) -> f64 {
        let warm = ((self.hyper.warmup * self.total_steps as f64).round() as u32).max(1);
        if s < warm {
            s as f64 / warm as f64
        } else {
            ((self.total_steps.saturating_sub(s)) as f64 / (self.total_steps - warm).max(1) as f64).max(0.0)
        }
    }

    /// The optimizer's moments by parameter name (for checkpoints).
    pub fn moments(&self) -> &HashMap<String, (Tensor, Tensor)> {
        &self.moments
    }

    pub fn set_moments(&mut self, m: HashMap<String, (Tensor, Tensor)>) {
        self.moments = m;
    }

    /// One optimizer step on `batch`; returns the loss terms (name, value). `seed` drives the
    /// dropout masks, `rng` the stage-2 sampling. A non-finite loss is an error naming the step
    /// (the parameters are not updated then).
    /// One optimizer step on one batch (see `train_steps`).
    pub fn train_step(&mut self, model: &Model, batch: &Batch, seed: u64, rng: &mut Rng, cache: Option<&EncoderCache>) -> Result<Vec<(&'static str, f64)>> {
        self.train_steps(model, &[batch], seed, rng, cache)
    }

    /// One optimizer step over `batches` (gradient accumulation: the step uses the mean of their
    /// gradients); returns the mean loss terms. `seed` drives the dropout masks (batch i uses
    /// seed + i), `rng` the stage-2 sampling; with `cache`, the encoder outputs come from it and
    /// the encoder stays frozen. A non-finite loss is an error naming the step, and nothing is
    /// updated then.
    pub fn train_steps(&mut self, model: &Model, batches: &[&Batch], seed: u64, rng: &mut Rng, cache: Option<&EncoderCache>) -> Result<Vec<(&'static str, f64)>> {
        let g = model.gpu.clone();
        let n = self.step + 1;
        let scale = 1.0 / batches.len() as f32;
        let mut losses: Vec<(&'static str, f64)> = Vec::new();
        let mut head_grads: Vec<Option<Tensor>> = vec![None; model.heads.params.names().len()];
        let mut enc_grads: Option<Vec<Option<Tensor>>> = None;
        let mut norm_sq: Vec<Tensor> = Vec::new();
        // A frozen gradient seen only through its norm must come from one batch: the norm of
        // a mean of several gradients is not formed from their norms.
        let norm_only = batches.len() == 1;
        for (bi, batch) in batches.iter().enumerate() {
            let (step, enc) = self.gradients(model, batch, seed.wrapping_add(bi as u64), rng, cache, norm_only)?;
            // One readback per micro-batch: the objective is derived from the terms.
            let terms = step.losses.read(&g)?;
            let total = objective(&terms);
            if !total.is_finite() {
                return Err(Error::Training(format!("training stopped at step {n}: the loss is {total} ({terms:?}); the update of step {n} was not applied and the last checkpoint on disk is the last good one")));
            }
            for (k, (name, v)) in terms.into_iter().enumerate() {
                match losses.get_mut(k) {
                    Some(l) => l.1 += v / batches.len() as f64,
                    None => losses.push((name, v / batches.len() as f64)),
                }
            }
            let mut rec = Recorder::new(&g);
            for (i, slot) in head_grads.iter_mut().enumerate() {
                if let Some(gr) = step.grads.get(i) {
                    add_scaled_into(&mut rec, slot, gr, scale)?;
                }
            }
            norm_sq.extend(step.grads.norm_sq().iter().cloned());
            if let Some(eg) = enc {
                let acc = enc_grads.get_or_insert_with(|| vec![None; eg.len()]);
                for (slot, gr) in acc.iter_mut().zip(&eg) {
                    add_scaled_into(&mut rec, slot, gr, scale)?;
                }
            }
            rec.finish()?;
        }
        // Clip by the norm of every gradient computed (the frozen base head's included, as the
        // reference does), then update the trained parameters.
        let mut updates: Vec<(&String, &Tensor, &Tensor, f64)> = Vec::new();
        for (i, name) in model.heads.params.names().iter().enumerate() {
            if let Some(gr) = &head_grads[i] {
                if is_buffer(name) {
                    continue;
                }
                let trained = !(self.stage == Stage::Two && name.starts_with("base."));
                updates.push((name, &model.heads.params.tensors()[i], gr, if trained { self.hyper.head_lr } else { 0.0 }));
            }
        }
        if let Some(eg) = &enc_grads {
            for ((name, p), gr) in model.encoder.names().iter().zip(model.encoder.params()).zip(eg) {
                updates.push((name, p, gr.as_ref().expect("every encoder parameter has a gradient"), self.hyper.encoder_lr));
            }
        }
        self.apply(&g, updates, &norm_sq, n)?;
        profile::phase("");
        self.step = n;
        Ok(losses)
    }

    /// Forward and backward of one batch: the heads' step and the encoder's gradients (None when
    /// the encoder is frozen).
    /// With `norm_only`, gradients of frozen parameters that only feed the clipping norm may
    /// come back as squared norms (`Grads::norm_sq`) instead of tensors.
    fn gradients(&mut self, model: &Model, batch: &Batch, seed: u64, rng: &mut Rng, cache: Option<&EncoderCache>, norm_only: bool) -> Result<(crate::model::heads::Step, Option<Vec<Tensor>>)> {
        let g = model.gpu.clone();
        let mut rec = Recorder::new(&g);
        profile::phase("encoder forward");
        let pass = if self.freeze_encoder { Pass::eval() } else { Pass::train(seed) };
        let Encoded { hidden: x, attention: a, tape, heads_batch: hb } = model.encode(&mut rec, batch, pass, cache)?;
        // The encoder's backward is the only reader of the X and A gradients.
        let inputs = tape.is_some();
        let drop = model.heads.dropout(seed);
        let step = match self.stage {
            Stage::One => model.heads.stage1_with(&mut rec, &hb, &x, &a, &batch.gold, inputs, drop)?,
            Stage::Two => {
                let s2 = Stage2Input::sample(&batch.gold, model.heads.config.classes, self.noise, rng);
                let kept = match (cache, &self.base_cache) {
                    (Some(_), Some(kept)) => kept_bilinear(&g, kept, batch, model.heads.config.emb)?,
                    _ => None,
                };
                let step = model.heads.stage2_with(&mut rec, &hb, &x, &a, &s2, BaseNeeds { inputs, bilinear_norm_only: norm_only }, kept.as_ref(), drop)?;
                if let (Some(_), Some(kept_map), None, Some(out)) = (cache, &mut self.base_cache, &kept, &step.bilinear_output) {
                    rec.flush();
                    keep_bilinear(&g, kept_map, batch, out)?;
                }
                step
            }
        };
        profile::phase("encoder backward");
        let enc = match (tape, &step.dx, &step.da) {
            (Some(t), Some(dx), Some(da)) => Some(model.encoder.backward(&mut rec, t, dx, Some(da))?),
            _ => None,
        };
        rec.finish()?;
        profile::phase("optimizer");
        Ok((step, enc))
    }

    /// Clips by the global norm and applies AdamW to every parameter with a learning rate.
    /// `norm_sq`: squared norms of gradients that were not formed (frozen parameters), added to
    /// the clipping norm.
    fn apply(&mut self, g: &Gpu, updates: Vec<(&String, &Tensor, &Tensor, f64)>, norm_sq: &[Tensor], n: u32) -> Result<()> {
        let mut rec = Recorder::new(g);
        let grads: Vec<&Tensor> = updates.iter().map(|u| u.2).collect();
        let normsq = sum_squares(&mut rec, &grads)?;
        for sq in norm_sq {
            accumulate(&mut rec, &normsq, sq, 1.0)?;
        }
        let scale = self.schedule(n);
        for (name, param, grad, lr) in updates {
            if lr == 0.0 {
                continue;
            }
            let (m, v) = self.moments.entry(name.clone()).or_insert_with(|| {
                let z = |s: &str| Tensor::zeros(&g, s, param.shape()).expect("moment buffers fit where the parameter fits");
                (z("adam_m"), z("adam_v"))
            });
            let hp = AdamW {
                lr: (lr * scale) as f32,
                beta1: 0.9,
                beta2: 0.999,
                eps: self.hyper.adam_eps as f32,
                weight_decay: if decays(name) { self.hyper.weight_decay as f32 } else { 0.0 },
                max_norm: self.hyper.max_norm as f32,
            };
            adamw_step(&mut rec, &hp, n, param, grad, m, v, &normsq)?;
        }
        rec.finish()
    }
}

/// The batch's bilinear output from `kept`, when every one of its examples is there.
fn kept_bilinear(g: &Gpu, kept: &HashMap<usize, Vec<f32>>, batch: &Batch, emb: usize) -> Result<Option<Tensor>> {
    let mut all = Vec::new();
    for i in &batch.examples {
        match kept.get(i) {
            Some(v) => all.extend_from_slice(v),
            None => return Ok(None),
        }
    }
    Ok(Some(Tensor::from_f32(g, "kept_bilinear_output", &[all.len() / emb.max(1), emb], &all)?))
}

/// Splits a batch's bilinear output [pairs, E] into its examples' rows and keeps them.
fn keep_bilinear(g: &Gpu, kept: &mut HashMap<usize, Vec<f32>>, batch: &Batch, out: &Tensor) -> Result<()> {
    let emb = out.shape()[1];
    let values = out.read_f32(g)?;
    let mut first = 0;
    for (b, &i) in batch.examples.iter().enumerate() {
        let pairs = batch.input.pairs.iter().filter(|p| p.0 == b).count();
        kept.insert(i, values[first * emb..(first + pairs) * emb].to_vec());
        first += pairs;
    }
    Ok(())
}
