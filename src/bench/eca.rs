//! ECA against dense attention (SPEC 9.2): one document with N entities (P = N(N−1) pairs),
//! width D, 4 heads. Four cases per N: the attention core alone (given q, k, v) forward and
//! forward+backward, and one whole inference layer forward and forward+backward, each with ECA
//! and with dense attention over every pair of the document (same kernels, same weights).

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTimer, Recorder, Tensor};
use crate::model::config::{HeadConfig, TestOutput};
use crate::model::heads::Heads;
use crate::model::heads::inference::{layer_backward, layer_forward};
use crate::model::heads::params::Grads;
use crate::ops::eca::{attention_backward, attention_forward, Attention, PairIndex};

use super::filled;

/// How one side of a comparison went.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Measured { seconds: f64, peak_extra_bytes: u64 },
    /// Not run: the estimate from the previous N's throughput exceeds the time budget.
    OverBudget { estimated_seconds: f64 },
    /// Ran into a device limit (binding size, memory).
    Failed { reason: String },
}

impl Outcome {
    pub fn seconds(&self) -> Option<f64> {
        match self {
            Outcome::Measured { seconds, .. } => Some(*seconds),
            _ => None,
        }
    }
    pub fn peak_mib(&self) -> Option<f64> {
        match self {
            Outcome::Measured { peak_extra_bytes, .. } => Some(*peak_extra_bytes as f64 / (1 << 20) as f64),
            _ => None,
        }
    }
    /// Table cell for time.
    pub fn time_cell(&self) -> String {
        match self {
            Outcome::Measured { seconds, .. } => format!("{:.2}", seconds * 1e3),
            Outcome::OverBudget { estimated_seconds } => format!("> budget (~{estimated_seconds:.0} s)"),
            Outcome::Failed { .. } => "failed".into(),
        }
    }
    /// Table cell for extra memory.
    pub fn memory_cell(&self) -> String {
        match self {
            Outcome::Measured { .. } => format!("{:.2}", self.peak_mib().unwrap_or_default()),
            Outcome::Failed { reason } => reason.clone(),
            Outcome::OverBudget { .. } => "-".into(),
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
pub struct EcaRow {
    pub n: usize,
    pub pairs: usize,
    pub case: String,
    pub eca: Outcome,
    pub dense: Outcome,
    /// Dense FLOPs / ECA FLOPs for this case.
    pub flop_ratio: f64,
    /// Measured dense time / ECA time, when both ran.
    pub speedup: Option<f64>,
}

pub struct EcaBenchConfig {
    pub ns: Vec<usize>,
    /// Only cases whose name contains this text (e.g. `layer fwd+bwd`).
    pub only: Option<String>,
    pub width: usize,
    pub samples: usize,
    pub max_seconds: f64,
}

/// FLOPs of one case. The core does 4·S·D per pair and direction (scores and weighted values
/// over S slots), the backward 2.5× that (scores recomputed); a layer adds 40·P·D² of
/// projections (Q/K/V/O of two units, combine, gate, two FFNs of inner width 2D) and two cores.
fn flop(case: usize, n: usize, d: usize, kind: Attention) -> f64 {
    let p = (n * (n - 1)) as f64;
    let slots = if kind == Attention::Eca { n as f64 + 1.0 } else { p };
    let core = 4.0 * p * slots * d as f64;
    let proj = 40.0 * p * (d * d) as f64;
    match case {
        0 => core,
        1 => 3.5 * core,
        2 => proj + 2.0 * core,
        _ => 3.0 * proj + 7.0 * core,
    }
}

fn head_config(width: usize, kind: Attention) -> HeadConfig {
    HeadConfig {
        hidden: 8,
        emb: 8,
        block: 8,
        classes: 2,
        width,
        layers: 1,
        eca_heads: 4,
        ffn_inner: 2 * width,
        iterations: 0,
        top_k: 1,
        attention: kind,
        fusion: true,
        test_output: TestOutput::Sum,
        ln_eps: 1e-12,
        bn_eps: 1e-5,
        bn_momentum: 0.1,
        head_dropout: 0.0,
        contrastive: true,
    }
}

/// One document of N entities with random q, k, v (used as F and R by the layer cases) and
/// output gradients, plus one inference layer's random weights per attention kind.
pub struct EcaSetup {
    pub n: usize,
    grid: PairIndex,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    dout: Tensor,
    heads: [Heads; 2],
}

impl EcaSetup {
    pub fn new(gpu: &Gpu, n: usize, width: usize) -> Result<EcaSetup> {
        if n < 2 || width % 4 != 0 {
            return Err(Error::Input(format!("N = {n} (at least 2) and width {width} (a multiple of 4) are out of range")));
        }
        let p = n * (n - 1);
        let pairs: Vec<(u32, u32, u32)> = (0..n as u32).flat_map(|s| (0..n as u32).filter(move |&o| o != s).map(move |o| (0, s, o))).collect();
        Ok(EcaSetup {
            n,
            grid: PairIndex::new(gpu, &[n], &pairs)?,
            q: filled(gpu, "q", &[p, width], 1)?,
            k: filled(gpu, "k", &[p, width], 2)?,
            v: filled(gpu, "v", &[p, width], 3)?,
            dout: filled(gpu, "dout", &[p, width], 4)?,
            heads: [Heads::random(gpu, head_config(width, Attention::Eca), 7)?, Heads::random(gpu, head_config(width, Attention::Dense), 7)?],
        })
    }

    /// Records case `case` (index into `CASES`) with `kind` attention.
    pub fn run(&self, rec: &mut Recorder, case: usize, kind: Attention) -> Result<()> {
        let heads = &self.heads[(kind != Attention::Eca) as usize];
        run_case(rec, case, kind, self, heads)
    }
}

/// The cases, in the order `EcaSetup::run` numbers them.
pub const CASES: [&str; 4] = ["core forward", "core fwd+bwd", "layer forward", "layer fwd+bwd"];

fn run_case(rec: &mut Recorder, case: usize, kind: Attention, s: &EcaSetup, heads: &Heads) -> Result<()> {
    match case {
        0 => attention_forward(rec, &s.grid, kind, 4, &s.q, &s.k, &s.v, None).map(|_| ()),
        1 => {
            let (out, stats) = attention_forward(rec, &s.grid, kind, 4, &s.q, &s.k, &s.v, None)?;
            attention_backward(rec, &s.grid, kind, 4, &s.q, &s.k, &s.v, &out, &stats, &s.dout, None).map(|_| ())
        }
        _ => {
            let grad = case == 3;
            let (values, tape) = layer_forward(rec, &heads.params, &heads.config, &s.grid, 0, &s.q, &s.k, grad, None)?;
            if let Some(t) = tape {
                let mut grads = Grads::default();
                layer_backward(rec, &heads.params, &heads.config, &s.grid, 0, &t, &s.dout, &s.dout, &mut grads, None)?;
            }
            drop(values);
            Ok(())
        }
    }
}

/// Runs the comparison; `report` receives each row as soon as it is measured.
pub fn eca_vs_dense(gpu: &Gpu, cfg: &EcaBenchConfig, mut report: impl FnMut(&EcaRow)) -> Result<Vec<EcaRow>> {
    if cfg.width % 4 != 0 {
        return Err(Error::Input(format!("--width {} must be a multiple of 4 (four ECA heads)", cfg.width)));
    }
    let timer = GpuTimer::new(gpu);
    // Throughput (FLOP/s) last measured per (case, kind), to estimate the next N.
    let mut rate: HashMap<(usize, bool), f64> = HashMap::new();
    let mut warmed: HashMap<(usize, bool), bool> = HashMap::new();
    let mut rows = Vec::new();
    for &n in &cfg.ns {
        if n < 2 {
            return Err(Error::Input(format!("--n {n}: a document needs at least 2 entities")));
        }
        let p = n * (n - 1);
        let setup = match EcaSetup::new(gpu, n, cfg.width) {
            Ok(s) => Some(s),
            Err(e @ Error::TooLarge { .. }) => {
                for (case, name) in CASES.iter().enumerate() {
                    let fail = Outcome::Failed { reason: e.to_string() };
                    let row = EcaRow { n, pairs: p, case: name.to_string(), eca: fail.clone(), dense: fail, flop_ratio: flop(case, n, cfg.width, Attention::Dense) / flop(case, n, cfg.width, Attention::Eca), speedup: None };
                    report(&row);
                    rows.push(row);
                }
                None
            }
            Err(e) => return Err(e),
        };
        let Some(setup) = setup else { continue };
        for (case, name) in CASES.iter().enumerate() {
            if cfg.only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
                continue;
            }
            let mut outcomes = Vec::new();
            for (ki, kind) in [Attention::Eca, Attention::Dense].into_iter().enumerate() {
                let f = flop(case, n, cfg.width, kind);
                let key = (case, ki == 1);
                // Dense runs the same kernels as ECA: before its first measurement, ECA's
                // throughput on this case stands in for it.
                if let Some(r) = rate.get(&key).or_else(|| rate.get(&(case, false))) {
                    let est = f / r;
                    if est > cfg.max_seconds {
                        outcomes.push(Outcome::OverBudget { estimated_seconds: est });
                        continue;
                    }
                }
                let measured = (|| -> Result<Outcome> {
                    // Pipelines compile on first use; past 10 GFLOP a run dwarfs that, so it is
                    // not worth running twice.
                    if !warmed.contains_key(&key) && f < 1e10 {
                        timer.time(gpu, |rec| setup.run(rec, case, kind))?;
                        warmed.insert(key, true);
                    }
                    let mut times = Vec::new();
                    let mut peak = 0;
                    for i in 0..cfg.samples.max(1) {
                        gpu.reset_memory_peak();
                        let before = gpu.memory_in_use().0;
                        let t = timer.time(gpu, |rec| setup.run(rec, case, kind))?;
                        peak = peak.max(gpu.memory_in_use().1 - before);
                        times.push(t);
                        // Long runs: one sample says enough.
                        if i == 0 && t > cfg.max_seconds / 4.0 {
                            break;
                        }
                    }
                    times.sort_by(|a, b| a.total_cmp(b));
                    Ok(Outcome::Measured { seconds: times[times.len() / 2], peak_extra_bytes: peak })
                })();
                let outcome = match measured {
                    Ok(o) => o,
                    Err(e @ (Error::TooLarge { .. } | Error::Device(_))) => Outcome::Failed { reason: e.to_string() },
                    Err(e) => return Err(e),
                };
                if let Some(s) = outcome.seconds() {
                    rate.insert(key, f / s);
                }
                outcomes.push(outcome);
            }
            let dense = outcomes.pop().expect("two outcomes");
            let eca = outcomes.pop().expect("two outcomes");
            let speedup = match (eca.seconds(), dense.seconds()) {
                (Some(e), Some(d)) => Some(d / e),
                _ => None,
            };
            let row = EcaRow { n, pairs: p, case: name.to_string(), eca, dense, flop_ratio: flop(case, n, cfg.width, Attention::Dense) / flop(case, n, cfg.width, Attention::Eca), speedup };
            report(&row);
            rows.push(row);
        }
    }
    Ok(rows)
}
