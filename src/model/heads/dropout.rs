//! Dropout in DocRE-II's heads (SPEC 2.5, 3.1–3.4), p = `HeadConfig::head_dropout` in training
//! and off in evaluation. Every use draws its own counter-based mask from the pass seed and a
//! site number, so the backward regenerates it and the CPU reference
//! (`heads::reference`) reproduces it exactly.
//!
//! Sites: the base classifier's input (0) and the reduced feature grid F⁰ (1) per step; then
//! each inference-module call (`HeadDropout::call`) numbers its own: per layer l, 7·l + combine
//! (0), feature-unit probabilities (1) and output (2), relation-unit probabilities (3) and
//! output (4), feature FFN (5), relation FFN (6); the head's projection is 7·N_I.

use crate::model::encoder::bert::dropout_seed;
use crate::error::Result;
use crate::gpu::{Recorder, Tensor};
use crate::ops::dropout::{dropout, DropoutRng, Site};

pub const BASE_CLASSIFIER: usize = 0;
pub const REDUCE: usize = 1;
/// Sites per inference layer and their offsets within a layer.
pub const PER_LAYER: usize = 7;
pub const COMBINE: usize = 0;
pub const FEATURE_UNIT: usize = 1;
pub const RELATION_UNIT: usize = 3;
/// Within a unit: its attention probabilities, then its output projection.
pub const UNIT_PROBS: usize = 0;
pub const UNIT_OUTPUT: usize = 1;
pub const FEATURE_FFN: usize = 5;
pub const RELATION_FFN: usize = 6;

/// Dropout of one training pass: probability and seed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeadDropout {
    pub p: f32,
    pub seed: u64,
}

impl HeadDropout {
    /// `Some` when training with p > 0.
    pub fn training(p: f64, seed: u64) -> Option<HeadDropout> {
        (p > 0.0).then_some(HeadDropout { p: p as f32, seed })
    }

    /// The mask stream of site `site`.
    pub fn site(self, site: usize) -> Site {
        Site { p: self.p, rng: DropoutRng { seed: dropout_seed(self.seed, site), offset: 0 } }
    }

    /// The dropout of the `index`-th inference-module call of a step: PyTorch draws fresh masks
    /// on every call, the swapped no-grad passes included.
    pub fn call(self, index: usize) -> HeadDropout {
        HeadDropout { p: self.p, seed: dropout_seed(self.seed, 1 << 20 | index) }
    }
}

/// `x` dropped at `site` (x itself without dropout). The backward is the same call on the
/// gradient.
pub fn apply(rec: &mut Recorder, x: &Tensor, drop: Option<HeadDropout>, site: usize) -> Result<Tensor> {
    match drop {
        Some(d) => {
            let s = d.site(site);
            dropout(rec, x, s.p, s.rng)
        }
        None => Ok(x.clone()),
    }
}

/// The site's mask stream, for kernels that apply dropout themselves (ECA).
pub fn site(drop: Option<HeadDropout>, site: usize) -> Option<Site> {
    drop.map(|d| d.site(site))
}
