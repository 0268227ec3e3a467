//! Benchmarks shared by `docre bench ...` and the criterion benches in benches/, so the
//! criterion baselines and the CLI tables measure exactly the same work.

mod eca;
mod encoder;
mod kernels;
mod peak;
mod step;

pub use eca::{eca_vs_dense, EcaBenchConfig, EcaRow, EcaSetup, Outcome, CASES as ECA_CASES};
pub use encoder::encoder_cases;
pub use kernels::kernel_cases;
pub use peak::{measure_peak, peak_cases, Peak};
pub use step::{default_paths as step_default_paths, step_bench, StepBenchConfig, StepCase, StepRow, StepSetup, PHASES as STEP_PHASES};

use crate::error::Result;
use crate::gpu::{Gpu, GpuTimer, Recorder, Tensor};

/// One benchmark case: a kernel on fixed shapes with its work size.
pub struct Case {
    pub kernel: &'static str,
    pub shape: String,
    /// Floating-point operations (matmul), bytes moved (memory-bound kernels) or tokens
    /// (encoder passes) per run.
    pub work: f64,
    pub unit: Unit,
    /// Floating-point operations per run where `work` counts something else.
    pub flop: Option<f64>,
    run: Box<dyn Fn(&mut Recorder) -> Result<()>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Flop,
    Bytes,
    Tokens,
}

/// One measured row, also the JSON record of `docre bench kernels --json`.
#[derive(serde::Serialize, Clone, Debug)]
pub struct Measurement {
    pub kernel: String,
    pub shape: String,
    /// Median of the timed runs.
    pub seconds: f64,
    /// Fastest and slowest timed run.
    pub seconds_min: f64,
    pub seconds_max: f64,
    pub gflops: Option<f64>,
    pub gbps: Option<f64>,
    pub tokens_per_s: Option<f64>,
    /// Most bytes of GPU tensors one run holds at once on top of what existed before it
    /// (weights and the case's inputs are not counted).
    pub peak_bytes: u64,
    /// Rate as a fraction of this adapter's measured peak (`docre bench peak`): FLOP rate
    /// against the FMA probe, bytes against the best streaming probe; set by `bench kernels`.
    pub peak_share: Option<f64>,
}

impl Measurement {
    /// The rate column of the CLI tables.
    pub fn rate(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = self.tokens_per_s {
            parts.push(format!("{t:.1} tokens/s"));
        }
        if let Some(g) = self.gflops {
            parts.push(format!("{g:.2} GFLOP/s"));
        }
        if let Some(b) = self.gbps {
            parts.push(format!("{b:.2} GB/s"));
        }
        parts.join(", ")
    }
}

pub(crate) fn filled(gpu: &Gpu, name: &str, shape: &[usize], seed: u32) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    // Cheap deterministic values in [-1, 1): benchmarks do not need good randomness.
    let data: Vec<f32> = (0..n).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / 8388608.0) - 1.0).collect();
    Tensor::from_f32(gpu, name, shape, &data)
}

impl Case {
    /// Seconds for `iters` back-to-back runs recorded into one submission.
    pub fn time(&self, gpu: &Gpu, timer: &GpuTimer, iters: usize) -> Result<f64> {
        timer.time(gpu, |rec| {
            for _ in 0..iters {
                (self.run)(rec)?;
            }
            Ok(())
        })
    }

    /// Warm up (pipeline compile), then take the median of `samples` timed runs.
    pub fn measure(&self, gpu: &Gpu, timer: &GpuTimer, samples: usize) -> Result<Measurement> {
        self.time(gpu, timer, 1)?;
        let mut t: Vec<f64> = (0..samples.max(1)).map(|_| self.time(gpu, timer, 1)).collect::<Result<_>>()?;
        t.sort_by(|a, b| a.total_cmp(b));
        let seconds = t[t.len() / 2];
        let (seconds_min, seconds_max) = (t[0], t[t.len() - 1]);
        gpu.reset_memory_peak();
        let before = gpu.memory_in_use().0;
        self.time(gpu, timer, 1)?;
        let peak_bytes = gpu.memory_in_use().1 - before;
        let per_s = self.work / seconds;
        let flop = if self.unit == Unit::Flop { Some(self.work) } else { self.flop };
        Ok(Measurement {
            kernel: self.kernel.to_string(),
            shape: self.shape.clone(),
            seconds,
            seconds_min,
            seconds_max,
            gflops: flop.map(|f| f / seconds / 1e9),
            gbps: (self.unit == Unit::Bytes).then_some(per_s / 1e9),
            tokens_per_s: (self.unit == Unit::Tokens).then_some(per_s),
            peak_bytes,
            peak_share: None,
        })
    }
}
