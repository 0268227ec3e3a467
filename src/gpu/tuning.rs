//! Choosing a kernel variant by measurement where no fixed rule picks the best one.
//!
//! A kernel family (the GEMM bodies, say) names its shape classes and its variants; this module
//! resolves each class once per process and remembers the answer on the device:
//!
//! 1. a choice already made in this process, or pinned from a checkpoint (`pin`), stands;
//! 2. under the `Rule` policy the family's own rule decides;
//! 3. under `Measure`, the tuning file's entry for this adapter and driver decides; without one,
//!    every variant runs on scratch buffers (one untimed run, which also compiles it, then
//!    `RUNS` timed ones), the fastest median wins, and the file gains the entry.
//!
//! The tuning file is a cache of measurements shared by runs on one machine; what a run executed
//! is recorded with the run (checkpoints carry `choices()`), so the same checkpoint, data and
//! recorded choices give the same bits on any machine where those variants exist.
//!
//! `DOCRE_TUNE` = `rule` | `measure` sets the policy (default: measure on GPUs, where no rule
//! written without one can be trusted, and the rule on CPU adapters, where it was measured:
//! see shaders/matmul.wgsl). `DOCRE_TUNING_FILE` moves the file (default: `tuning.json` in the
//! cache root).

use std::collections::BTreeMap;
use std::path::PathBuf;
use web_time::Instant;

use super::{AdapterKind, Gpu};
use crate::error::{Error, Result};

/// Timed runs per variant; the median decides.
const RUNS: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// The family's rule picks; nothing runs twice.
    Rule,
    /// The tuning file, else a measurement, picks.
    Measure,
}

/// What a device's tuning uses: set from the environment when the device opens, replaceable
/// (tests give each device its own file).
#[derive(Clone, Debug)]
pub struct Settings {
    pub policy: Policy,
    pub file: PathBuf,
}

impl Settings {
    pub(crate) fn from_env(kind: AdapterKind) -> Result<Settings> {
        let policy = match crate::settings::tune()? {
            Some("rule") => Policy::Rule,
            Some(_) => Policy::Measure,
            // A measurement waits for the device, which the browser cannot do.
            None if cfg!(target_arch = "wasm32") => Policy::Rule,
            None => if kind == AdapterKind::Cpu { Policy::Rule } else { Policy::Measure },
        };
        // The browser has no cache folder and never measures (above), so never reads the file.
        let file = match crate::settings::tuning_file() {
            Some(f) => f,
            None if cfg!(target_arch = "wasm32") => PathBuf::new(),
            None => crate::fsutil::cache_root().join("tuning.json"),
        };
        Ok(Settings { policy, file })
    }
}

/// The device's tuning state: its settings and every class resolved so far.
#[derive(Debug)]
pub(crate) struct Tuning {
    pub settings: Settings,
    pub chosen: BTreeMap<String, String>,
}

/// One measured class in the tuning file: the winner and each variant's median.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Entry {
    variant: String,
    median_ms: BTreeMap<String, f64>,
}

/// The tuning file: entries by adapter (name, backend, driver), then by class.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct TuningFile {
    adapters: BTreeMap<String, BTreeMap<String, Entry>>,
}

fn adapter_key(gpu: &Gpu) -> String {
    let r = gpu.report();
    format!("{} | {} | {} {}", r.name, r.backend, r.driver, r.driver_info)
}

/// Reads the tuning file; a missing one is empty, and an unreadable one is reported and then
/// treated as empty (it is a cache: measuring again is always correct).
fn read_file(path: &std::path::Path) -> TuningFile {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
            eprintln!("docre: ignoring the tuning file {}: {e}; its classes will be measured again", path.display());
            TuningFile::default()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => TuningFile::default(),
        Err(e) => {
            eprintln!("docre: cannot read the tuning file {}: {e}; its classes will be measured again", path.display());
            TuningFile::default()
        }
    }
}

/// Adds one entry to the tuning file. Failing to write it only costs a later measurement, so it
/// is reported, not fatal.
fn record(gpu: &Gpu, path: &std::path::Path, class: &str, entry: Entry) {
    let mut file = read_file(path);
    file.adapters.entry(adapter_key(gpu)).or_default().insert(class.to_string(), entry);
    let json = serde_json::to_string_pretty(&file).expect("tuning file serializes");
    let written = path.parent().map_or(Ok(()), std::fs::create_dir_all).map_err(|source| Error::Io { context: format!("cannot create the folder of {}", path.display()), source });
    if let Err(e) = written.and_then(|_| crate::fsutil::write_atomic(path, json.as_bytes())) {
        eprintln!("docre: the measured choice for `{class}` is not kept: {e}");
    }
}

/// One kernel family's question for one shape class.
pub struct Question<'a> {
    /// The shape class, family name first (`matmul m256 n1024 ...`): what choices are keyed by.
    pub class: String,
    /// The variants this adapter can run, by name.
    pub variants: &'a [&'static str],
    /// The variant the family's rule picks.
    pub rule: &'static str,
}

/// The variant for `q`: see the module docs. `run` dispatches one run of a variant on scratch
/// buffers (its outputs are thrown away) and is called only when measuring.
pub fn choose(gpu: &Gpu, q: &Question, mut run: impl FnMut(&'static str) -> Result<()>) -> Result<&'static str> {
    let known = |name: &str| q.variants.iter().copied().find(|v| *v == name);
    // Every GEMM asks: the answer of a class already resolved costs one lookup, no copies.
    let settings = {
        let t = gpu.0.tuning.lock().unwrap();
        if let Some(name) = t.chosen.get(&q.class) {
            match known(name) {
                Some(v) => return Ok(v),
                None => eprintln!("docre: `{name}` was recorded for `{}` but this adapter cannot run it; choosing again (results may differ in the last bits from the recorded run)", q.class),
            }
        }
        t.settings.clone()
    };
    let chosen = match settings.policy {
        Policy::Rule => q.rule,
        Policy::Measure => {
            let stored = read_file(&settings.file).adapters.get(&adapter_key(gpu)).and_then(|a| a.get(&q.class)).and_then(|e| known(&e.variant));
            match stored {
                Some(v) => v,
                None => {
                    let entry = measure(gpu, q, &mut run)?;
                    let v = known(&entry.variant).expect("the winner is one of the variants");
                    record(gpu, &settings.file, &q.class, entry);
                    v
                }
            }
        }
    };
    gpu.0.tuning.lock().unwrap().chosen.insert(q.class.clone(), chosen.to_string());
    Ok(chosen)
}

fn measure(gpu: &Gpu, q: &Question, run: &mut impl FnMut(&'static str) -> Result<()>) -> Result<Entry> {
    // Work already submitted by the caller must not be timed as the first variant's.
    gpu.wait()?;
    let mut median_ms = BTreeMap::new();
    for &v in q.variants {
        run(v)?;
        gpu.wait()?;
        let mut times: Vec<f64> = (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                run(v)?;
                gpu.wait()?;
                Ok(t.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<Result<_>>()?;
        times.sort_by(f64::total_cmp);
        median_ms.insert(v.to_string(), times[RUNS / 2]);
    }
    // On a tie the variant listed first wins.
    let best = q.variants.iter().copied().min_by(|a, b| median_ms[*a].total_cmp(&median_ms[*b])).expect("at least one variant");
    Ok(Entry { variant: best.to_string(), median_ms })
}

impl Gpu {
    /// Every class resolved on this device so far, with its variant: what a run records.
    pub fn choices(&self) -> BTreeMap<String, String> {
        self.0.tuning.lock().unwrap().chosen.clone()
    }

    /// Makes recorded choices stand for this process (a resumed run, a prediction from a
    /// checkpoint), ahead of the policy; `DOCRE_*` variables that force one variant still win.
    pub fn pin(&self, choices: &BTreeMap<String, String>) {
        self.0.tuning.lock().unwrap().chosen.extend(choices.iter().map(|(k, v)| (k.clone(), v.clone())));
    }

    pub fn tuning_settings(&self) -> Settings {
        self.0.tuning.lock().unwrap().settings.clone()
    }

    /// Replaces the policy and file (tests; tools that tune ahead of a run).
    pub fn set_tuning_settings(&self, settings: Settings) {
        self.0.tuning.lock().unwrap().settings = settings;
    }
}
