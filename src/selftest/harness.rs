//! What a check is and the helpers checks are written with: seeded inputs, uploads, and the
//! tolerance comparison that names the worst element.

use crate::gpu::{Gpu, Tensor};

/// How a check ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Pass,
    Fail(String),
    /// The adapter cannot run this variant (no subgroups, an unsupported width, ...).
    Skip(String),
}

/// Why a check stopped early; `?` on a docre error is a failure.
#[derive(Debug)]
pub enum Verdict {
    Fail(String),
    Skip(String),
}

impl From<crate::Error> for Verdict {
    fn from(e: crate::Error) -> Verdict {
        Verdict::Fail(e.to_string())
    }
}

pub type Checked = std::result::Result<(), Verdict>;

/// A check's future: checks read their results back, which the browser can only await.
pub(crate) type CheckFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Checked> + 'a>>;

type CheckFn = Box<dyn for<'a> Fn(&'a Gpu) -> CheckFuture<'a> + Send + Sync>;

/// One kernel family and variant, checked as one unit.
pub struct Check {
    pub family: &'static str,
    pub variant: String,
    f: CheckFn,
}

impl Check {
    pub(crate) fn new(family: &'static str, variant: impl Into<String>, f: impl for<'a> Fn(&'a Gpu) -> CheckFuture<'a> + Send + Sync + 'static) -> Check {
        Check { family, variant: variant.into(), f: Box::new(f) }
    }

    /// Runs the check; a panic inside it (a bug in the check, or in a launcher) is a failure,
    /// not an abort of the whole self-test.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run(&self, gpu: &Gpu) -> Outcome {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pollster::block_on((self.f)(gpu)))) {
            Ok(r) => outcome(r),
            Err(p) => Outcome::Fail(format!("panicked: {}", p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default())),
        }
    }

    /// Runs the check without blocking (the browser's way; a panic there stops the module).
    pub async fn run_async(&self, gpu: &Gpu) -> Outcome {
        outcome((self.f)(gpu).await)
    }
}

fn outcome(r: Checked) -> Outcome {
    match r {
        Ok(()) => Outcome::Pass,
        Err(Verdict::Fail(m)) => Outcome::Fail(m),
        Err(Verdict::Skip(m)) => Outcome::Skip(m),
    }
}

/// Skip (with the launcher's reason) when the adapter cannot run a variant.
pub(crate) fn available<T>(r: crate::Result<T>) -> Checked {
    r.map(|_| ()).map_err(|e| Verdict::Skip(e.to_string()))
}

pub(crate) fn ensure(cond: bool, what: impl FnOnce() -> String) -> Checked {
    if cond { Ok(()) } else { Err(Verdict::Fail(what())) }
}

/// Seeded inputs: uniform in [-1, 1), rounded to f32 so the GPU and the reference see the same
/// values.
pub(crate) struct Rng(crate::rng::Rng);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(crate::rng::Rng::new(seed))
    }
    pub fn vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| (2.0 * self.0.uniform() - 1.0) as f32 as f64).collect()
    }
    pub fn below(&mut self, n: usize) -> usize {
        self.0.below(n)
    }
}

pub(crate) fn upload(gpu: &Gpu, name: &str, shape: &[usize], data: &[f64]) -> crate::Result<Tensor> {
    let v: Vec<f32> = data.iter().map(|&x| x as f32).collect();
    Tensor::from_f32(gpu, name, shape, &v)
}

pub(crate) async fn download(gpu: &Gpu, t: &Tensor) -> crate::Result<Vec<f64>> {
    Ok(t.read_f32_async(gpu).await?.into_iter().map(|x| x as f64).collect())
}

/// |got − want| ≤ atol + rtol·|want| for every element; the failure names the worst one.
pub fn close(what: &str, got: &[f64], want: &[f64], atol: f64, rtol: f64) -> Checked {
    if got.len() != want.len() {
        return Err(Verdict::Fail(format!("{what}: length {} vs {}", got.len(), want.len())));
    }
    let mut worst = (0usize, 0.0f64);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let excess = (g - w).abs() - (atol + rtol * w.abs());
        if !(excess <= worst.1) || g.is_nan() {
            worst = (i, if g.is_nan() { f64::INFINITY } else { excess });
        }
    }
    if worst.1 > 0.0 {
        let i = worst.0;
        return Err(Verdict::Fail(format!("{what}: element {i} is {} but the reference is {} (|diff| {:e} > atol {atol:e} + rtol {rtol:e}·|ref|)", got[i], want[i], (got[i] - want[i]).abs())));
    }
    Ok(())
}
