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

use std::time::Duration;

use criterion::Criterion;

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
    match std::env::var("DOCRE_BENCH_SLOWDOWN") {
        Ok(v) if v == name => 2,
        _ => 1,
    }
}
