//! `docre selftest`: checks this adapter before anyone trusts it. Every kernel variant the
//! adapter can run, forward and backward, against the f64 reference (ops::reference) on small
//! random shapes, then a few steps of a tiny model trained twice, which must agree bit for bit.
//! tests/kernels.rs runs the same kernel checks, so the command and the suite cannot drift.
//! Needs no files.

mod harness;
mod kernels;
// Training reads losses back synchronously, and is native-only.
#[cfg(not(target_arch = "wasm32"))]
mod training;

pub use harness::{close, Check, Outcome, Verdict};

use crate::gpu::Gpu;

/// Every check, kernel families first, in a fixed order (the browser has no training check).
pub fn checks() -> Vec<Check> {
    #[allow(unused_mut)]
    let mut v = kernels::checks();
    #[cfg(not(target_arch = "wasm32"))]
    v.push(training::check());
    v
}

fn selected(only: Option<&str>) -> impl Iterator<Item = Check> + '_ {
    checks().into_iter().filter(move |c| only.is_none_or(|o| c.family.contains(o) || c.variant.contains(o)))
}

/// One check's result, for the report.
pub struct Row {
    pub family: &'static str,
    pub variant: String,
    pub outcome: Outcome,
    pub seconds: f64,
}

/// Runs the checks whose family or variant contains `only` (all when None), calling `each` as
/// each finishes.
#[cfg(not(target_arch = "wasm32"))]
pub fn run(gpu: &Gpu, only: Option<&str>, mut each: impl FnMut(&Row)) -> Vec<Row> {
    let mut rows = Vec::new();
    for c in selected(only) {
        let t = web_time::Instant::now();
        let outcome = c.run(gpu);
        let row = Row { family: c.family, variant: c.variant.clone(), outcome, seconds: t.elapsed().as_secs_f64() };
        each(&row);
        rows.push(row);
    }
    rows
}

/// `run` without blocking, for the browser.
pub async fn run_async(gpu: &Gpu, only: Option<&str>, mut each: impl FnMut(&Row)) -> Vec<Row> {
    let mut rows = Vec::new();
    for c in selected(only) {
        let t = web_time::Instant::now();
        let outcome = c.run_async(gpu).await;
        let row = Row { family: c.family, variant: c.variant.clone(), outcome, seconds: t.elapsed().as_secs_f64() };
        each(&row);
        rows.push(row);
    }
    rows
}
