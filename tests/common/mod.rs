//! Shared test helpers: the device, a seeded RNG, and tolerance checks that report the worst
//! element.
#![allow(dead_code)]

pub mod tiny;

use docre::gpu::{Gpu, Tensor};

/// The test device, shared by all tests of a binary so pipelines compile once. No adapter is a
/// hard failure with docre's own message: CI must never pass silently without a device.
pub fn gpu() -> Gpu {
    let mut shared = GPU.lock().unwrap_or_else(|e| e.into_inner());
    shared
        .get_or_insert_with(|| {
            if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
                // lavapipe warns on every device open without it; keep test logs readable.
                let dir = std::env::temp_dir().join("docre-xdg");
                let _ = std::fs::create_dir_all(&dir);
                std::env::set_var("XDG_RUNTIME_DIR", dir);
            }
            let gpu = Gpu::new().unwrap_or_else(|e| panic!("no GPU adapter for the tests: {e}"));
            // Registered after the driver library was loaded, so it runs before the driver's own
            // exit handlers: SwiftShader crashed (SIGSEGV) tearing down its statics under a device
            // that was never destroyed, after every test had passed.
            unsafe { atexit(release_gpu) };
            gpu
        })
        .clone()
}

static GPU: std::sync::Mutex<Option<Gpu>> = std::sync::Mutex::new(None);

extern "C" {
    fn atexit(f: extern "C" fn()) -> std::ffi::c_int;
}

/// Destroys the shared device (waiting for its queue) while the driver is still whole.
extern "C" fn release_gpu() {
    let gpu = GPU.lock().unwrap_or_else(|e| e.into_inner()).take();
    drop(gpu);
}

/// A per-process scratch path under cargo's per-target tmp dir (`target/tmp`), so test files
/// never pile up in the system's /tmp.
pub fn scratch(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("docre-{name}-{}", std::process::id()))
}

/// SplitMix64: small, seeded, good enough for test inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
    /// n values uniform in [-1, 1), rounded to f32 so GPU and reference see the same inputs.
    pub fn vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.uniform(-1.0, 1.0) as f32 as f64).collect()
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

pub fn upload(gpu: &Gpu, name: &str, shape: &[usize], data: &[f64]) -> Tensor {
    let v: Vec<f32> = data.iter().map(|&x| x as f32).collect();
    Tensor::from_f32(gpu, name, shape, &v).unwrap()
}

pub fn download(gpu: &Gpu, t: &Tensor) -> Vec<f64> {
    t.read_f32(gpu).unwrap().into_iter().map(|x| x as f64).collect()
}

/// |got − want| ≤ atol + rtol·|want| for every element; panics naming the worst one (the
/// comparison `docre selftest` uses).
pub fn assert_close(what: &str, got: &[f64], want: &[f64], atol: f64, rtol: f64) {
    if let Err(docre::selftest::Verdict::Fail(m) | docre::selftest::Verdict::Skip(m)) = docre::selftest::close(what, got, want, atol, rtol) {
        panic!("{m}");
    }
}

/// `$DOCRE_SHARED`, default `../shared` next to the crate: data, models and golden fixtures.
pub fn shared_dir() -> std::path::PathBuf {
    docre::settings::shared().unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

/// Whether a missing fixture is a failure (`DOCRE_REQUIRE_FIXTURES=1`, as CI sets) or a skip.
pub fn require_fixtures() -> bool {
    docre::settings::require_fixtures()
}

/// Returns false (after saying so) when `path` is absent and fixtures are optional; panics when
/// they are required.
pub fn fixture_present(path: &std::path::Path, test: &str) -> bool {
    if path.exists() {
        return true;
    }
    if require_fixtures() {
        panic!("{test}: {} is missing and DOCRE_REQUIRE_FIXTURES=1", path.display());
    }
    eprintln!("{test}: skipped, {} is missing (set DOCRE_SHARED or DOCRE_REQUIRE_FIXTURES=1)", path.display());
    false
}

/// Hidden entries of an output folder beyond the current set (on Unix the `.docre.set` link and
/// the folder it names hold the set; anything else is left over).
pub fn output_strays(dir: &std::path::Path) -> Vec<String> {
    let current = std::fs::read_link(dir.join(".docre.set")).ok().map(|t| t.to_string_lossy().into_owned());
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n != ".docre.set" && Some(n) != current.as_ref())
        .collect()
}
