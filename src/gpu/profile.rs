//! `DOCRE_PROFILE=1`: GPU time per kernel entry point and per phase of a step.
//!
//! While profiling is on, the recorder runs every dispatch in a compute pass of its own with
//! timestamp writes at its start and end (or, where the adapter has no timestamp queries, times
//! a device wait around each dispatch), and every flush reads the times back. Totals are kept in
//! one process-wide table by entry point and by phase; a phase is a label the step code sets
//! with `phase` on its thread ("encoder forward", "optimizer", ...). Launchers that know their
//! arithmetic attach it with `Recorder::work` so the table can show GFLOP/s or GB/s.
//!
//! Pipelines: the host time to create each one (shader module included the first time), and the
//! time of its first dispatch, where CPU drivers such as lavapipe compile the machine code (they
//! defer it to first use, and keep it in Mesa's disk cache for later processes).
//!
//! Profiling serializes the device (a readback per flush), so its times add up to less than a
//! normal run's wall time: use it to see where a step goes, and the benchmarks to time it.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

/// Arithmetic and memory traffic of one dispatch, where the launcher knows them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Work {
    pub flops: f64,
    pub bytes: f64,
}

impl Work {
    pub fn flops(flops: f64) -> Work {
        Work { flops, bytes: 0.0 }
    }
    pub fn bytes(bytes: f64) -> Work {
        Work { flops: 0.0, bytes }
    }
}

/// Totals of one kernel or phase.
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub calls: u64,
    pub seconds: f64,
    pub flops: f64,
    pub bytes: f64,
}

impl Row {
    fn absorb(&mut self, other: &Row) {
        self.calls += other.calls;
        self.seconds += other.seconds;
        self.flops += other.flops;
        self.bytes += other.bytes;
    }
}

/// Creation and first use of one pipeline.
#[derive(Clone, Debug, Default)]
pub struct PipelineRow {
    pub create_seconds: f64,
    /// The first dispatch's time (None until it ran while profiling).
    pub first_dispatch_seconds: Option<f64>,
}

/// The value under `key` in an insertion-ordered list, added as the default when missing.
fn entry<'a, T: Default>(list: &'a mut Vec<(String, T)>, key: &str) -> &'a mut T {
    let i = match list.iter().position(|(k, _)| k == key) {
        Some(i) => i,
        None => {
            list.push((key.to_string(), T::default()));
            list.len() - 1
        }
    };
    &mut list[i].1
}

/// What profiling has measured since the last `take`.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// By "shader/entry point".
    pub kernels: HashMap<String, Row>,
    /// By phase, in the order phases first ran.
    pub phases: Vec<(String, Row)>,
    /// By pipeline label ("shader/entry K=v ..."), in creation order.
    pub pipelines: Vec<(String, PipelineRow)>,
}

impl Table {
    fn phase_mut(&mut self, phase: &str) -> &mut Row {
        entry(&mut self.phases, phase)
    }

    fn pipeline_mut(&mut self, label: &str) -> &mut PipelineRow {
        entry(&mut self.pipelines, label)
    }

    fn absorb(&mut self, other: &Table) {
        for (label, r) in &other.pipelines {
            let mine = self.pipeline_mut(label);
            mine.create_seconds += r.create_seconds;
            mine.first_dispatch_seconds = mine.first_dispatch_seconds.or(r.first_dispatch_seconds);
        }
        for (k, r) in &other.kernels {
            self.kernels.entry(k.clone()).or_default().absorb(r);
        }
        for (p, r) in &other.phases {
            self.phase_mut(p).absorb(r);
        }
    }

    pub fn total_seconds(&self) -> f64 {
        self.kernels.values().map(|r| r.seconds).sum()
    }

    /// Seconds spent in `phase` (0 when it never ran).
    pub fn phase_seconds(&self, phase: &str) -> f64 {
        self.phases.iter().find(|(p, _)| p == phase).map_or(0.0, |(_, r)| r.seconds)
    }

    /// The per-kernel table, longest first, then the per-phase table.
    pub fn render(&self) -> String {
        let total = self.total_seconds().max(1e-12);
        let rate = |r: &Row| {
            if r.flops > 0.0 {
                format!("{:.2} GFLOP/s", r.flops / r.seconds.max(1e-12) / 1e9)
            } else if r.bytes > 0.0 {
                format!("{:.2} GB/s", r.bytes / r.seconds.max(1e-12) / 1e9)
            } else {
                String::new()
            }
        };
        let mut rows: Vec<(&String, &Row)> = self.kernels.iter().collect();
        rows.sort_by(|a, b| b.1.seconds.total_cmp(&a.1.seconds).then(a.0.cmp(b.0)));
        let mut out = format!("{:<44} {:>8} {:>11} {:>7}  {}\n", "kernel", "calls", "total ms", "share", "rate");
        for (name, r) in rows {
            out += &format!("{:<44} {:>8} {:>11.2} {:>6.1}%  {}\n", name, r.calls, r.seconds * 1e3, 100.0 * r.seconds / total, rate(r));
        }
        out += &format!("{:<44} {:>8} {:>11.2}\n", "all kernels", self.kernels.values().map(|r| r.calls).sum::<u64>(), total * 1e3);
        if self.phases.iter().any(|(p, _)| !p.is_empty()) {
            out += &format!("\n{:<44} {:>8} {:>11} {:>7}\n", "phase", "calls", "total ms", "share");
            for (p, r) in &self.phases {
                let name = if p.is_empty() { "(no phase)" } else { p };
                out += &format!("{:<44} {:>8} {:>11.2} {:>6.1}%\n", name, r.calls, r.seconds * 1e3, 100.0 * r.seconds / total);
            }
        }
        if !self.pipelines.is_empty() {
            out += &self.render_pipelines();
        }
        out
    }

    /// Pipelines in creation order: host creation time and first dispatch (where CPU drivers
    /// compile), with totals.
    pub fn render_pipelines(&self) -> String {
        let mut out = format!("\n{:<64} {:>10} {:>15}\n", "pipeline", "create ms", "1st dispatch ms");
        for (label, r) in &self.pipelines {
            let first = r.first_dispatch_seconds.map_or("-".to_string(), |s| format!("{:.1}", s * 1e3));
            out += &format!("{:<64} {:>10.1} {:>15}\n", label, r.create_seconds * 1e3, first);
        }
        let create: f64 = self.pipelines.iter().map(|(_, r)| r.create_seconds).sum();
        let first: f64 = self.pipelines.iter().filter_map(|(_, r)| r.first_dispatch_seconds).sum();
        out += &format!("{:<64} {:>10.1} {:>15.1}\n", format!("all {} pipelines", self.pipelines.len()), create * 1e3, first * 1e3);
        out
    }
}

// 0 = not yet read from the environment, 1 = off, 2 = on.
static ENABLED: AtomicU8 = AtomicU8::new(0);
static TABLE: Mutex<Option<Table>> = Mutex::new(None);

thread_local! {
    static PHASE: Cell<&'static str> = const { Cell::new("") };
}

/// Whether dispatches are being timed (`DOCRE_PROFILE=1`, or `set_enabled`).
pub fn enabled() -> bool {
    match ENABLED.load(Ordering::Relaxed) {
        0 => {
            let on = crate::settings::profile();
            ENABLED.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
        v => v == 2,
    }
}

/// Turn profiling on or off for the whole process (benchmarks use it for phase times).
pub fn set_enabled(on: bool) {
    ENABLED.store(if on { 2 } else { 1 }, Ordering::Relaxed);
}

/// Label the dispatches this thread records from now on.
pub fn phase(name: &'static str) {
    PHASE.with(|p| p.set(name));
}

pub(crate) fn current_phase() -> &'static str {
    PHASE.with(|p| p.get())
}

/// A pipeline was created in `seconds` of host time (kept while profiling).
pub(crate) fn pipeline_created(label: &str, seconds: f64) {
    if !enabled() {
        return;
    }
    let mut guard = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    guard.get_or_insert_with(Table::default).pipeline_mut(label).create_seconds += seconds;
}

/// Add measured dispatches: (kernel name, phase, seconds, work, the pipeline's label if this was
/// its first dispatch).
pub(crate) fn record(samples: impl IntoIterator<Item = (String, &'static str, f64, Work, Option<String>)>) {
    let mut guard = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    let table = guard.get_or_insert_with(Table::default);
    for (kernel, phase, seconds, work, first) in samples {
        if let Some(label) = first {
            table.pipeline_mut(&label).first_dispatch_seconds = Some(seconds);
        }
        let one = Row { calls: 1, seconds, flops: work.flops, bytes: work.bytes };
        table.kernels.entry(kernel).or_default().absorb(&one);
        table.phase_mut(phase).absorb(&one);
    }
}

/// Everything measured so far; the table starts empty again.
pub fn take() -> Table {
    TABLE.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_default()
}

/// Run `f` with profiling on and return what it alone measured. A run that was already
/// profiling (`DOCRE_PROFILE=1`) keeps every total, these included.
pub fn measured<R>(f: impl FnOnce() -> R) -> (R, Table) {
    let was = enabled();
    set_enabled(true);
    let earlier = take();
    let out = f();
    let table = take();
    set_enabled(was);
    if was {
        let mut guard = TABLE.lock().unwrap_or_else(|e| e.into_inner());
        let total = guard.get_or_insert_with(Table::default);
        total.absorb(&earlier);
        total.absorb(&table);
    }
    (out, table)
}
