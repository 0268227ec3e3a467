//! Criterion settings shared by the benches, chosen so that comparing a run against a saved
//! baseline (`--save-baseline` / `--baseline`) does not report changes that are only noise on a
//! CPU adapter sharing two cores with other work, yet flags a real 2x slowdown of one case.
//!
//! * Times are GPU timestamps (`GpuTimer`), not wall time: scheduling jitter on the host stays
//!   out of the samples.
//! * A change must exceed NOISE (30 %) to be reported, at 1 % significance: two runs of
//!   unchanged code on this machine differ by up to about 20 % per case.
//! * `DOCRE_BENCH_SLOWDOWN="<case name>"` runs that case twice per iteration, a deliberate 2x
//!   slowdown to check that a comparison flags it.
//!
//! Each bench includes this module as its own copy, and not every bench uses every helper.
#![allow(dead_code)]

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use docre::bench::{Case, Unit};
use docre::gpu::{Gpu, GpuTimer};

pub const NOISE: f64 = 0.30;

pub fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .noise_threshold(NOISE)
        .significance_level(0.01)
        .configure_from_args()
}

/// How many times a case runs per timed iteration: 2 for the case named by
/// DOCRE_BENCH_SLOWDOWN, else 1.
pub fn repeat(name: &str) -> usize {
    if docre::settings::bench_slowdown().as_deref() == Some(name) { 2 } else { 1 }
}

/// Registers each case in `group`, timed by GPU timestamps: one untimed run first (pipeline
/// creation and first-touch allocation stay out of the samples), then `repeat` runs per iteration.
pub fn bench_cases(group: &mut BenchmarkGroup<'_, WallTime>, gpu: &Gpu, timer: &GpuTimer, cases: Vec<Case>) {
    for case in cases {
        group.throughput(match case.unit {
            Unit::Flop | Unit::Tokens => Throughput::Elements(case.work as u64),
            Unit::Bytes => Throughput::Bytes(case.work as u64),
        });
        case.time(gpu, timer, 1).unwrap_or_else(|e| panic!("{e}"));
        let name = format!("{} {}", case.kernel, case.shape);
        let repeat = repeat(&name);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let s = case.time(gpu, timer, repeat * iters as usize).unwrap_or_else(|e| panic!("{e}"));
                Duration::from_secs_f64(s)
            })
        });
    }
}
