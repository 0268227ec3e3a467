//! `docre bench peak`: the adapter's own roofline, measured with the probe kernels of
//! shaders/peak.wgsl: FMA throughput and streaming read and copy bandwidth. `docre bench kernels`
//! divides every case's rate by the matching peak, so the same table says how far each kernel
//! is from what this adapter can do, on lavapipe and on a GPU alike.

use super::{filled, Case, Measurement, Unit};
use crate::error::Result;
use crate::gpu::{grid, Access, AdapterKind, Gpu, GpuTimer, Imm, Kernel, Shader};

static SHADER: Shader = Shader { name: "peak", source: include_str!("../../shaders/peak.wgsl") };
const BINDINGS: &[Access] = &[Access::Read, Access::Write];
static FMA: Kernel = Kernel { shader: &SHADER, entry: "fma_probe", bindings: BINDINGS };
static COPY: Kernel = Kernel { shader: &SHADER, entry: "stream_copy", bindings: BINDINGS };
static READ: Kernel = Kernel { shader: &SHADER, entry: "stream_read", bindings: BINDINGS };

/// Probe sizes: a few tens of milliseconds on a CPU adapter, enough work to fill a large GPU.
struct Sizes {
    /// Workgroups of 64 invocations for the FMA probe and stream_read.
    groups: usize,
    /// FMA probe loop trips (below llvmpipe's 65535-trip loop limit).
    iters: usize,
    /// vec4 elements streamed (16 bytes each; 64 or 128 MiB, within WebGPU's binding limit).
    vec4s: usize,
    /// vec4s one invocation streams (the shader's CHUNK).
    chunk: usize,
}

fn sizes(gpu: &Gpu) -> Sizes {
    match gpu.kind() {
        AdapterKind::Cpu => Sizes { groups: 256, iters: 512, vec4s: 1 << 22, chunk: 64 },
        AdapterKind::Gpu => Sizes { groups: 8192, iters: 2048, vec4s: 1 << 23, chunk: 1 },
    }
}

/// The three probe cases: "peak fma" (FLOP), "peak stream read" and "peak stream copy" (bytes).
pub fn peak_cases(gpu: &Gpu) -> Result<Vec<Case>> {
    let s = sizes(gpu);
    let threads = s.groups * 64;
    // Multiplier just below 1 and a small addend keep the chains finite and normal.
    let coef = crate::gpu::Tensor::from_f32(gpu, "fma_coef", &[4], &[0.999_9, 1e-3, 0.0, 0.0])?;
    let fma_out = crate::gpu::Tensor::zeros(gpu, "fma_out", &[threads * 4])?;
    let src = filled(gpu, "stream_src", &[s.vec4s * 4], 1)?;
    let dst = crate::gpu::Tensor::zeros(gpu, "stream_dst", &[s.vec4s * 4])?;
    let runs = s.vec4s / s.chunk;
    let sums = crate::gpu::Tensor::zeros(gpu, "stream_sums", &[runs * 4])?;
    let bytes = (s.vec4s * 16) as f64;
    let fma_grid = grid(gpu, s.groups);
    let stream_grid = grid(gpu, runs.div_ceil(64));
    let chunk = [("CHUNK", s.chunk as f64)];
    let src2 = src.clone();
    Ok(vec![
        Case {
            kernel: "peak fma",
            shape: format!("{threads} lanes x {} FMA", s.iters * 64 * 4),
            work: (threads * s.iters * 64 * 4 * 2) as f64,
            unit: Unit::Flop,
            flop: None,
            run: Box::new(move |rec| rec.dispatch(&FMA, &[], &[&coef, &fma_out], &Imm::new().u(0).u(s.iters).u(threads), fma_grid)),
        },
        Case {
            kernel: "peak stream read",
            shape: format!("{} MiB, runs of {}", s.vec4s * 16 >> 20, s.chunk * 16),
            work: bytes,
            unit: Unit::Bytes,
            flop: None,
            run: Box::new(move |rec| rec.dispatch(&READ, &chunk, &[&src2, &sums], &Imm::new().u(s.vec4s).u(0).u(runs), stream_grid)),
        },
        Case {
            kernel: "peak stream copy",
            shape: format!("{} MiB, runs of {}", s.vec4s * 16 >> 20, s.chunk * 16),
            work: 2.0 * bytes,
            unit: Unit::Bytes,
            flop: None,
            run: Box::new(move |rec| rec.dispatch(&COPY, &chunk, &[&src, &dst], &Imm::new().u(s.vec4s).u(0).u(runs), stream_grid)),
        },
    ])
}

/// What the probes measured: the best FMA rate and the best streaming rate.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Peak {
    pub gflops: f64,
    pub gbps: f64,
}

impl Peak {
    /// From measured probe rows (`peak_cases`): the fastest run of the best probe, since a peak
    /// is what the adapter can do at best (medians of shared cores sit below it).
    pub fn from_rows(rows: &[Measurement]) -> Peak {
        let best = |f: fn(&Measurement) -> Option<f64>| rows.iter().filter_map(|m| f(m).map(|r| r * m.seconds / m.seconds_min)).fold(0.0, f64::max);
        Peak { gflops: best(|m| m.gflops), gbps: best(|m| m.gbps) }
    }

    /// Share of the relevant peak: FLOP rate against the FMA peak, else bytes against bandwidth.
    pub fn share(&self, m: &Measurement) -> Option<f64> {
        match (m.gflops, m.gbps) {
            (Some(g), _) if self.gflops > 0.0 => Some(g / self.gflops),
            (None, Some(b)) if self.gbps > 0.0 => Some(b / self.gbps),
            _ => None,
        }
    }
}

/// Measure the probes and take their peak.
pub fn measure_peak(gpu: &Gpu, timer: &GpuTimer, samples: usize) -> Result<Peak> {
    let rows = peak_cases(gpu)?.iter().map(|c| c.measure(gpu, timer, samples)).collect::<Result<Vec<_>>>()?;
    Ok(Peak::from_rows(&rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(gflops: Option<f64>, gbps: Option<f64>, seconds: f64, seconds_min: f64) -> Measurement {
        Measurement { kernel: "k".into(), shape: String::new(), seconds, seconds_min, seconds_max: seconds, gflops, gbps, tokens_per_s: None, peak_bytes: 0, peak_share: None }
    }

    #[test]
    fn peak_is_the_fastest_run_of_the_best_probe_and_shares_divide_by_it() {
        // FMA probe: 10 GFLOP/s at the median, whose fastest run took half as long.
        let peak = Peak::from_rows(&[row(Some(10.0), None, 2.0, 1.0), row(None, Some(3.0), 1.0, 1.0), row(None, Some(4.0), 1.0, 0.5)]);
        assert_eq!((peak.gflops, peak.gbps), (20.0, 8.0));
        assert_eq!(peak.share(&row(Some(5.0), None, 1.0, 1.0)), Some(0.25));
        assert_eq!(peak.share(&row(None, Some(2.0), 1.0, 1.0)), Some(0.25));
        assert_eq!(peak.share(&row(None, None, 1.0, 1.0)), None);
    }
}
