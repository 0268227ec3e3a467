//! Kernel benchmarks shared by `docre bench kernels` and benches/kernels.rs, so the criterion
//! baselines and the CLI table measure exactly the same work.

use crate::error::Result;
use crate::gpu::{Gpu, GpuTimer, Recorder, Tensor};
use crate::ops::{layernorm, matmul, softmax};

/// One benchmark case: a kernel on fixed shapes with its work size.
pub struct Case {
    pub kernel: &'static str,
    pub shape: String,
    /// Floating-point operations (matmul) or bytes moved (memory-bound kernels) per run.
    pub work: f64,
    pub unit: Unit,
    run: Box<dyn Fn(&mut Recorder) -> Result<()>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Flop,
    Bytes,
}

/// One measured row, also the JSON record of `docre bench kernels --json`.
#[derive(serde::Serialize, Clone, Debug)]
pub struct Measurement {
    pub kernel: String,
    pub shape: String,
    pub seconds: f64,
    pub gflops: Option<f64>,
    pub gbps: Option<f64>,
}

fn filled(gpu: &Gpu, name: &str, shape: &[usize], seed: u32) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    // Cheap deterministic values in [-1, 1): benchmarks do not need good randomness.
    let data: Vec<f32> = (0..n).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / 8388608.0) - 1.0).collect();
    Tensor::from_f32(gpu, name, shape, &data)
}

fn matmul_case(gpu: &Gpu, name: &'static str, m: usize, k: usize, n: usize, trans_b: bool) -> Result<Case> {
    let a = filled(gpu, "a", &[m, k], 1)?;
    let b = if trans_b { filled(gpu, "b", &[n, k], 2)? } else { filled(gpu, "b", &[k, n], 2)? };
    Ok(Case {
        kernel: name,
        shape: format!("{m}x{k}x{n}{}", if trans_b { " (Bᵀ)" } else { "" }),
        work: 2.0 * (m * n * k) as f64,
        unit: Unit::Flop,
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
    {
        let dy = filled(gpu, "dy", &[t, f], 3)?;
        let x = filled(gpu, "x", &[t, h], 4)?;
        cases.push(Case {
            kernel: "linear ffn-up dW",
            shape: format!("{f}x{t}x{h} (Aᵀ)"),
            work: 2.0 * (t * h * f) as f64,
            unit: Unit::Flop,
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
            run: Box::new(move |rec| softmax::softmax(rec, &s, None, 1.0).map(|_| ())),
        });
    }
    {
        let x = filled(gpu, "x", &[t, h], 6)?;
        let g = filled(gpu, "gamma", &[h], 7)?;
        let b = filled(gpu, "beta", &[h], 8)?;
        cases.push(Case {
            kernel: "layernorm",
            shape: format!("{t}x{h}"),
            work: 2.0 * (t * h * 4) as f64,
            unit: Unit::Bytes,
            run: Box::new(move |rec| layernorm::layernorm(rec, &x, &g, &b, 1e-12).map(|_| ())),
        });
    }
    Ok(cases)
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
        let rate = self.work / seconds / 1e9;
        Ok(Measurement {
            kernel: self.kernel.to_string(),
            shape: self.shape.clone(),
            seconds,
            gflops: (self.unit == Unit::Flop).then_some(rate),
            gbps: (self.unit == Unit::Bytes).then_some(rate),
        })
    }
}
