//! Every `DOCRE_*` environment variable in one place: what it does, its default and allowed
//! values (`VARS`, which the README's Environment table is checked against by tests/docs.rs),
//! and the one function that parses it. A bad value is an error naming the variable; `check`
//! parses every variable that is set, so a command fails on one before it starts work.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// One variable, as `docre info` and the README describe it.
pub struct Var {
    pub name: &'static str,
    /// Allowed values.
    pub values: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

pub const VARS: &[Var] = &[
    Var { name: "DOCRE_ADAPTER", values: "text", default: "the fastest kind of adapter", meaning: "choose the adapter whose name contains this text" },
    Var { name: "DOCRE_ADAPTER_WAIT_S", values: "seconds ≥ 0", default: "7.5", meaning: "how long to keep asking for an adapter when none is enumerated, with the Vulkan loader's and wgpu's messages on (`.ci/run` sets 120)" },
    Var { name: "DOCRE_LIMITS", values: "`adapter`, `webgpu`", default: "`adapter`", meaning: "`webgpu`: open the device with WebGPU's default limits (128 MiB bindings, 256 MiB buffers) instead of the adapter's binding and buffer sizes" },
    Var { name: "DOCRE_PARAMS", values: "`immediates`, `uniform`", default: "`immediates` where the adapter offers 128 bytes of them", meaning: "how kernels receive their scalar parameters: immediate data (push constants), or a uniform buffer as in the browser, where WebGPU has no immediates" },
    Var { name: "DOCRE_MATMUL", values: "`register`, `tiled`, `subgroup`", default: "the tuning's choice", meaning: "the matmul body every GEMM and bilinear product runs instead of the adapter's choice (to compare them with the same benchmarks); recorded with the run like any choice" },
    Var { name: "DOCRE_ENCODER_ATTENTION", values: "`fused`, `unfused`", default: "`fused` where the adapter runs it", meaning: "the encoder's attention in evaluation and prediction: fused (no score tensors; adapters with subgroups of at most 16 lanes) or the training path's GEMMs and softmax; `fused` where it cannot run is an error" },
    Var { name: "DOCRE_TUNE", values: "`rule`, `measure`", default: "`measure` on GPUs, `rule` on CPU adapters", meaning: "how each shape class's matmul and bilinear body is chosen; see docs/platforms.md, \"Variants chosen by measurement\"" },
    Var { name: "DOCRE_TUNING_FILE", values: "path", default: "`tuning.json` in the cache folder", meaning: "where measured choices are kept" },
    Var { name: "DOCRE_CACHE_DIR", values: "path", default: "`$XDG_CACHE_HOME/docre`, else `~/.cache/docre`", meaning: "where the frozen encoder's outputs and the tuning file are kept" },
    Var { name: "DOCRE_PROFILE", values: "`1`", default: "off", meaning: "print GPU time per kernel and per step phase at exit" },
    Var { name: "DOCRE_PIPELINE_LOG", values: "folder", default: "off", meaning: "append every pipeline created (shader, entry point, overrides, bindings) to `<dir>/pipelines.jsonl`, for `tests/translate.rs`" },
    Var { name: "DOCRE_BREAK_KERNEL", values: "entry point", default: "off", meaning: "drop every dispatch of the named kernel entry point (to see `docre selftest` catch it)" },
    Var { name: "DOCRE_NO_POOL", values: "`1`", default: "off", meaning: "free buffers instead of pooling them (debugging)" },
    Var { name: "DOCRE_WALL_CLOCK", values: "`1`", default: "off", meaning: "time benchmarks with the wall clock instead of GPU timestamps" },
    Var { name: "DOCRE_CHUNK_BYTES", values: "bytes ≥ 1", default: "the adapter's binding limit", meaning: "the most bytes one row chunk of the inference module's FFN may bind (tests set it to exercise several chunks on tiny shapes)" },
    Var { name: "DOCRE_FAIL_AT", values: "N ≥ 1", default: "off", meaning: "test hook: fail the Nth file operation of checkpoint and output writes" },
    Var { name: "DOCRE_FAIL_KILL", values: "`1`", default: "off", meaning: "test hook: with `DOCRE_FAIL_AT`, abort the process there instead, as a kill would" },
    Var { name: "DOCRE_FAIL_TRACE", values: "`1`", default: "off", meaning: "test hook: print each file operation with its number, to choose N" },
    Var { name: "DOCRE_SHARED", values: "folder", default: "`../shared`", meaning: "data, models and fixtures for the tests and `docre bench step`" },
    Var { name: "DOCRE_GOLDEN_DIR", values: "folder", default: "`$DOCRE_SHARED/golden`", meaning: "golden fixtures" },
    Var { name: "DOCRE_REQUIRE_FIXTURES", values: "`1`", default: "off", meaning: "a missing fixture fails its test instead of skipping it (`.ci/run` sets it)" },
    Var { name: "DOCRE_BENCH_QUICK", values: "`1`", default: "off", meaning: "`cargo bench --bench kernels`: leave out the 1024³ matmul and the P = 1722 bilinear" },
    Var { name: "DOCRE_BENCH_SLOWDOWN", values: "case name", default: "off", meaning: "criterion benches: run the named case twice per iteration (a deliberate 2× slowdown)" },
    Var { name: "DOCRE_ENCODER", values: "folder", default: "random weights", meaning: "checkpoint directory for `cargo bench --bench encoder`" },
    Var { name: "DOCRE_TOOLS_CACHE", values: "folder", default: "`~/.cache/docre-tools`", meaning: "where `tools/test-lane` unpacks SwiftShader" },
    Var { name: "DOCRE_ECA_N", values: "comma-separated counts", default: "`16,26`", meaning: "entity counts of `cargo bench --bench eca_vs_dense`" },
];

fn raw(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn bad(name: &str, value: &str) -> Error {
    let expected = VARS.iter().find(|v| v.name == name).map_or("", |v| v.values);
    Error::Input(format!("{name}={value:?} is not valid: expected {expected}"))
}

/// On when set to anything but empty or `0`.
fn flag(name: &str) -> bool {
    raw(name).is_some_and(|v| v != "0")
}

fn choice(name: &str, options: &[&'static str]) -> Result<Option<&'static str>> {
    match raw(name) {
        None => Ok(None),
        Some(v) => options.iter().find(|o| **o == v).map(|o| Some(*o)).ok_or_else(|| bad(name, &v)),
    }
}

fn number<T: std::str::FromStr>(name: &str, ok: impl Fn(&T) -> bool) -> Result<Option<T>> {
    match raw(name) {
        None => Ok(None),
        Some(v) => v.trim().parse::<T>().ok().filter(|x| ok(x)).map(Some).ok_or_else(|| bad(name, &v)),
    }
}

fn path(name: &str) -> Option<PathBuf> {
    raw(name).map(PathBuf::from)
}

pub fn adapter() -> Option<String> {
    raw("DOCRE_ADAPTER")
}

pub fn adapter_wait_s() -> Result<f64> {
    Ok(number("DOCRE_ADAPTER_WAIT_S", |s: &f64| s.is_finite() && *s >= 0.0)?.unwrap_or(7.5))
}

/// True for `DOCRE_LIMITS=webgpu`.
pub fn webgpu_limits() -> Result<bool> {
    Ok(choice("DOCRE_LIMITS", &["adapter", "webgpu"])? == Some("webgpu"))
}

pub fn params() -> Result<Option<&'static str>> {
    choice("DOCRE_PARAMS", &["immediates", "uniform"])
}

pub fn matmul() -> Result<Option<&'static str>> {
    choice("DOCRE_MATMUL", &["register", "tiled", "subgroup"])
}

pub fn encoder_attention() -> Result<Option<&'static str>> {
    choice("DOCRE_ENCODER_ATTENTION", &["fused", "unfused"])
}

pub fn tune() -> Result<Option<&'static str>> {
    choice("DOCRE_TUNE", &["rule", "measure"])
}

pub fn tuning_file() -> Option<PathBuf> {
    path("DOCRE_TUNING_FILE")
}

pub fn cache_dir() -> Option<PathBuf> {
    path("DOCRE_CACHE_DIR")
}

pub fn profile() -> bool {
    flag("DOCRE_PROFILE")
}

pub fn pipeline_log() -> Option<PathBuf> {
    path("DOCRE_PIPELINE_LOG")
}

pub fn break_kernel() -> Option<String> {
    raw("DOCRE_BREAK_KERNEL")
}

pub fn no_pool() -> bool {
    flag("DOCRE_NO_POOL")
}

pub fn wall_clock() -> bool {
    flag("DOCRE_WALL_CLOCK")
}

pub fn chunk_bytes() -> Result<Option<usize>> {
    number("DOCRE_CHUNK_BYTES", |b: &usize| *b >= 1)
}

pub fn fail_at() -> Result<Option<u64>> {
    number("DOCRE_FAIL_AT", |n: &u64| *n >= 1)
}

pub fn fail_kill() -> bool {
    flag("DOCRE_FAIL_KILL")
}

pub fn fail_trace() -> bool {
    flag("DOCRE_FAIL_TRACE")
}

/// `DOCRE_SHARED`; callers default to the `shared` folder beside the repository.
pub fn shared() -> Option<PathBuf> {
    path("DOCRE_SHARED")
}

/// `DOCRE_GOLDEN_DIR`; callers default to `golden` in the shared folder.
pub fn golden_dir() -> Option<PathBuf> {
    path("DOCRE_GOLDEN_DIR")
}

pub fn require_fixtures() -> bool {
    flag("DOCRE_REQUIRE_FIXTURES")
}

pub fn bench_quick() -> bool {
    flag("DOCRE_BENCH_QUICK")
}

pub fn bench_slowdown() -> Option<String> {
    raw("DOCRE_BENCH_SLOWDOWN")
}

pub fn bench_encoder() -> Option<PathBuf> {
    path("DOCRE_ENCODER")
}

pub fn eca_n() -> Result<Option<Vec<usize>>> {
    match raw("DOCRE_ECA_N") {
        None => Ok(None),
        Some(v) => v.split(',').map(|x| x.trim().parse::<usize>().ok().filter(|n| *n >= 2)).collect::<Option<Vec<_>>>().map(Some).ok_or_else(|| bad("DOCRE_ECA_N", &v)),
    }
}

/// The variables that are set, with their values (`docre info`).
pub fn set() -> Vec<(&'static str, String)> {
    VARS.iter().filter_map(|v| std::env::var(v.name).ok().map(|x| (v.name, x))).collect()
}

/// Parses every variable that takes a checked value, so that a bad one fails before any work.
pub fn check() -> Result<()> {
    adapter_wait_s()?;
    webgpu_limits()?;
    params()?;
    matmul()?;
    encoder_attention()?;
    tune()?;
    chunk_bytes()?;
    fail_at()?;
    eca_n()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_the_variable_and_what_it_takes() {
        let e = bad("DOCRE_TUNE", "sometimes").to_string();
        assert!(e.contains("DOCRE_TUNE=\"sometimes\"") && e.contains("`rule`, `measure`"), "{e}");
        let names: std::collections::HashSet<&str> = VARS.iter().map(|v| v.name).collect();
        assert_eq!(names.len(), VARS.len(), "a variable is listed twice");
    }
}
