//! Recorder: many dispatches in one command encoder and one compute pass, submitted once.
//!
//! Launchers call `dispatch`; the caller decides when to `submit`. The recorder keeps every
//! bound tensor alive until submission, so pooled buffers are not handed out again while
//! recorded work still refers to them. After `FLUSH_EVERY` dispatches the encoder is submitted
//! and a new one opened, which keeps command buffers bounded on long recordings.
//!
//! With profiling on (`profile::enabled`), each dispatch gets a compute pass of its own with
//! timestamp writes, and every flush reads the times back into the profile table.
//!
//! Scalar arguments go as immediates, or under `Params::Uniform` into a slot of the recorder's
//! parameter arena (gpu::params), uploaded just before each submission.

use web_time::Instant;

use super::device::Gpu;
use super::params::Arena;
use super::pipeline::{Kernel, Params, IMMEDIATE_BYTES};
use super::profile::{self, Work};
use super::tensor::Tensor;
use crate::error::{shape_err, Error, Result};

const FLUSH_EVERY: usize = 512;
/// Dispatches per flush while profiling: two timestamps each must fit one query set.
const PROFILE_FLUSH_EVERY: usize = 256;

/// Scalar arguments of one dispatch, packed as 4-byte words in declaration order.
#[derive(Default, Clone)]
pub struct Imm {
    words: Vec<u32>,
}

impl Imm {
    pub fn new() -> Imm {
        Imm::default()
    }
    pub fn u(mut self, v: usize) -> Imm {
        self.words.push(u32::try_from(v).expect("immediate value exceeds u32"));
        self
    }
    pub fn f(mut self, v: f32) -> Imm {
        self.words.push(v.to_bits());
        self
    }
}

pub struct Recorder {
    gpu: Gpu,
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    keep: Vec<Tensor>,
    pending: usize,
    probe: Option<Probe>,
    /// Under `Params::Uniform`: where this recorder's dispatches take their parameters from.
    arena: Option<Arena>,
}

/// Profiling state of one recorder: the query set of its unflushed dispatches and what each was.
struct Probe {
    /// None where the adapter has no timestamp queries: dispatches are then timed one by one
    /// around a device wait.
    queries: Option<(wgpu::QuerySet, wgpu::Buffer, wgpu::Buffer)>,
    /// (kernel, phase, work, seconds when already measured, the pipeline's label when this is
    /// its first dispatch).
    samples: Vec<(String, &'static str, Work, Option<f64>, Option<String>)>,
}

impl Recorder {
    pub fn new(gpu: &Gpu) -> Recorder {
        Recorder { gpu: gpu.clone(), encoder: None, pass: None, keep: Vec::new(), pending: 0, probe: None, arena: None }
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        open_encoder(&mut self.encoder, &self.gpu)
    }

    fn end_pass(&mut self) {
        self.pass = None;
    }

    /// Record one dispatch of `kernel` with `bindings` in the kernel's binding order.
    pub fn dispatch(
        &mut self,
        kernel: &Kernel,
        constants: &[(&'static str, f64)],
        bindings: &[&Tensor],
        imm: &Imm,
        groups: [u32; 3],
    ) -> Result<()> {
        if bindings.len() != kernel.bindings.len() {
            return shape_err("dispatch", format!("{} takes {} buffers, got {}", kernel.entry, kernel.bindings.len(), bindings.len()));
        }
        if imm.words.len() * 4 > IMMEDIATE_BYTES as usize {
            return shape_err("dispatch", format!("{}: too many scalar arguments", kernel.entry));
        }
        let max = self.gpu.limits().max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > max) {
            return shape_err("dispatch", format!("{}: grid {:?} exceeds {max} workgroups per dimension", kernel.entry, groups));
        }
        if groups.contains(&0) || broken(kernel.entry) {
            return Ok(());
        }
        let cached = self.gpu.pipeline(kernel, constants)?;
        let entries: Vec<wgpu::BindGroupEntry> = bindings
            .iter()
            .enumerate()
            .map(|(i, t)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: t.buffer(),
                    offset: 0,
                    // An empty tensor still binds 4 bytes: a zero-size binding is invalid.
                    size: std::num::NonZeroU64::new(t.bytes().max(4)),
                }),
            })
            .collect();
        let bind_group = self.gpu.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.entry),
            layout: &cached.layout,
            entries: &entries,
        });
        if profile::enabled() {
            return self.dispatch_profiled(kernel, &cached, &bind_group, bindings, imm, groups);
        }
        if self.pass.is_none() {
            let pass = self.encoder().begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("docre"), timestamp_writes: None });
            self.pass = Some(pass.forget_lifetime());
        }
        let pass = self.pass.as_mut().unwrap();
        pass.set_pipeline(&cached.pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        set_params(pass, &self.gpu, &mut self.arena, imm);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        self.keep.extend(bindings.iter().map(|t| (*t).clone()));
        self.pending += 1;
        if self.pending >= FLUSH_EVERY {
            self.flush();
        }
        Ok(())
    }

    /// A dispatch in a pass of its own, timed for the profile.
    fn dispatch_profiled(
        &mut self,
        kernel: &Kernel,
        cached: &super::pipeline::Cached,
        bind_group: &wgpu::BindGroup,
        bindings: &[&Tensor],
        imm: &Imm,
        groups: [u32; 3],
    ) -> Result<()> {
        self.end_pass();
        let mut probe = self.probe.take().unwrap_or_else(|| Probe::new(&self.gpu));
        let index = probe.samples.len() as u32;
        let wall = probe.queries.is_none();
        if wall {
            // Time this dispatch alone: everything before it finishes first.
            self.flush();
            self.gpu.wait()?;
        }
        let started = Instant::now();
        {
            let timestamp_writes = probe.queries.as_ref().map(|(set, _, _)| wgpu::ComputePassTimestampWrites {
                query_set: set,
                beginning_of_pass_write_index: Some(2 * index),
                end_of_pass_write_index: Some(2 * index + 1),
            });
            let mut pass = open_encoder(&mut self.encoder, &self.gpu).begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(kernel.entry), timestamp_writes });
            pass.set_pipeline(&cached.pipeline);
            pass.set_bind_group(0, bind_group, &[]);
            set_params(&mut pass, &self.gpu, &mut self.arena, imm);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        }
        self.keep.extend(bindings.iter().map(|t| (*t).clone()));
        self.pending += 1;
        let seconds = if wall {
            self.submit();
            self.gpu.wait()?;
            Some(started.elapsed().as_secs_f64())
        } else {
            None
        };
        let first = !cached.used.swap(true, std::sync::atomic::Ordering::Relaxed);
        probe.samples.push((format!("{}/{}", kernel.shader.name, kernel.entry), profile::current_phase(), Work::default(), seconds, first.then(|| cached.label.clone())));
        let full = probe.samples.len() >= PROFILE_FLUSH_EVERY;
        self.probe = Some(probe);
        if full {
            self.flush();
        }
        Ok(())
    }

    /// Attach the arithmetic of the dispatch just recorded (shown as a rate by the profile).
    pub fn work(&mut self, work: Work) {
        if let Some(last) = self.probe.as_mut().and_then(|p| p.samples.last_mut()) {
            last.2 = work;
        }
    }

    /// Copy all of `src` into `dst` (same byte size).
    pub fn copy(&mut self, src: &Tensor, dst: &Tensor) -> Result<()> {
        if src.bytes() != dst.bytes() {
            return shape_err("copy", format!("`{}` and `{}` differ in size", src.name(), dst.name()));
        }
        self.copy_bytes(src, 0, dst, 0, src.bytes());
        Ok(())
    }

    /// Copy `rows` rows of `src` from its row `from` into `dst` at its row `to`: both row-major
    /// with the same row length (their last dimension).
    pub fn copy_rows(&mut self, src: &Tensor, from: usize, dst: &Tensor, to: usize, rows: usize) -> Result<()> {
        let cols = |t: &Tensor| t.shape().last().copied().unwrap_or(1);
        if cols(src) != cols(dst) {
            return shape_err("copy_rows", format!("`{}` {:?} and `{}` {:?} differ in row length", src.name(), src.shape(), dst.name(), dst.shape()));
        }
        let width = cols(src);
        if (from + rows) * width > src.numel() || (to + rows) * width > dst.numel() {
            return shape_err("copy_rows", format!("rows {from}..{} of `{}` {:?} into rows {to}..{} of `{}` {:?} reach past a tensor", from + rows, src.name(), src.shape(), to + rows, dst.name(), dst.shape()));
        }
        let row_bytes = 4 * width as u64;
        self.copy_bytes(src, from as u64 * row_bytes, dst, to as u64 * row_bytes, rows as u64 * row_bytes);
        Ok(())
    }

    /// `bytes` bytes of `src` from byte `from` into `dst` at byte `to` (checked by the callers).
    fn copy_bytes(&mut self, src: &Tensor, from: u64, dst: &Tensor, to: u64, bytes: u64) {
        self.end_pass();
        if bytes > 0 {
            self.encoder().copy_buffer_to_buffer(src.buffer(), from, dst.buffer(), to, bytes);
        }
        self.keep.push(src.clone());
        self.keep.push(dst.clone());
    }

    /// Write a timestamp into `set[index]` after all work recorded so far (used by GpuTimer).
    pub(crate) fn timestamp(&mut self, set: &wgpu::QuerySet, index: u32) {
        self.end_pass();
        let enc = self.encoder();
        let pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("timestamp"),
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set: set,
                beginning_of_pass_write_index: None,
                end_of_pass_write_index: Some(index),
            }),
        });
        drop(pass);
    }

    pub(crate) fn encoder_for(&mut self) -> &mut wgpu::CommandEncoder {
        self.end_pass();
        self.encoder()
    }

    /// Submit what is recorded so far and keep recording.
    pub fn flush(&mut self) {
        self.end_pass();
        let probe = self.probe.take();
        let timed = probe.as_ref().and_then(|p| p.queries.as_ref().filter(|_| !p.samples.is_empty()).map(|q| (q, p.samples.len() as u32)));
        if let Some(((set, resolve, readback), n)) = timed {
            let enc = self.encoder();
            enc.resolve_query_set(set, 0..2 * n, resolve, 0);
            enc.copy_buffer_to_buffer(resolve, 0, readback, 0, 16 * n as u64);
        }
        self.submit();
        self.keep.clear();
        self.pending = 0;
        if let Some(mut p) = probe {
            p.report(&self.gpu);
            self.probe = Some(p);
        }
    }

    /// Submit the open encoder, if any, after its dispatches' parameters.
    fn submit(&mut self) {
        if let Some(enc) = self.encoder.take() {
            if let Some(arena) = self.arena.as_mut() {
                arena.upload(&self.gpu);
            }
            self.gpu.queue().submit([enc.finish()]);
        }
    }

    /// Submit and wait for completion.
    pub fn finish(mut self) -> Result<()> {
        self.flush();
        self.gpu.wait()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // Recorded work is never silently discarded.
        self.flush();
        if let Some(arena) = self.arena.take() {
            self.gpu.0.arenas.lock().unwrap().push(arena);
        }
    }
}

/// The recorder's open command encoder, opened on first use. A function of the two fields, not
/// of the recorder, so that a pass on the encoder can be recorded while the arena is borrowed.
fn open_encoder<'a>(slot: &'a mut Option<wgpu::CommandEncoder>, gpu: &Gpu) -> &'a mut wgpu::CommandEncoder {
    slot.get_or_insert_with(|| gpu.device().create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("docre") }))
}

/// Hand `imm` to the dispatch about to be recorded in `pass`: as immediates, or in the next slot
/// of the recorder's arena (taken from the device's spare arenas, or made, on first use).
fn set_params(pass: &mut wgpu::ComputePass, gpu: &Gpu, arena: &mut Option<Arena>, imm: &Imm) {
    match gpu.params() {
        Params::Immediates => {
            if !imm.words.is_empty() {
                pass.set_immediates(0, bytemuck::cast_slice(&imm.words));
            }
        }
        Params::Uniform => {
            let arena = arena.get_or_insert_with(|| gpu.0.arenas.lock().unwrap().pop().unwrap_or_else(|| Arena::new(gpu, FLUSH_EVERY as u32)));
            let (group, offset) = arena.push(&imm.words);
            pass.set_bind_group(1, group, &[offset]);
        }
    }
}

/// Split a 1-D count of workgroups into an x/y grid within the per-dimension limit; kernels
/// recover the linear index with `group_index` from the prelude.
pub fn grid(gpu: &Gpu, groups: usize) -> [u32; 3] {
    let max = gpu.limits().max_compute_workgroups_per_dimension as usize;
    if groups <= max {
        return [groups as u32, 1, 1];
    }
    let y = groups.div_ceil(max);
    let x = groups.div_ceil(y);
    [x as u32, y as u32, 1]
}

impl Probe {
    fn new(gpu: &Gpu) -> Probe {
        let queries = gpu.has_timestamps().then(|| {
            let n = 2 * PROFILE_FLUSH_EVERY as u32;
            let set = gpu.device().create_query_set(&wgpu::QuerySetDescriptor { label: Some("profile"), ty: wgpu::QueryType::Timestamp, count: n });
            let mk = |usage| gpu.device().create_buffer(&wgpu::BufferDescriptor { label: Some("profile"), size: 8 * n as u64, usage, mapped_at_creation: false });
            (set, mk(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC), mk(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST))
        });
        Probe { queries, samples: Vec::new() }
    }

    /// Move the flushed samples into the profile table (reading their timestamps back).
    fn report(&mut self, gpu: &Gpu) {
        if self.samples.is_empty() {
            return;
        }
        let samples = std::mem::take(&mut self.samples);
        let ticks = match &self.queries {
            Some((_, _, readback)) => match read_u64s(gpu, readback, 2 * samples.len()) {
                Ok(t) => Some(t),
                // A failed readback loses these samples, not the run.
                Err(_) => return,
            },
            None => None,
        };
        let period = gpu.queue().get_timestamp_period() as f64 * 1e-9;
        profile::record(samples.into_iter().enumerate().map(|(i, (kernel, phase, work, seconds, first))| {
            let s = seconds.unwrap_or_else(|| ticks.as_ref().map_or(0.0, |t| t[2 * i + 1].saturating_sub(t[2 * i]) as f64 * period));
            (kernel, phase, s, work, first)
        }));
    }
}

/// Map `buffer` (MAP_READ) after the submitted work and read its first `n` u64 values.
pub(crate) fn read_u64s(gpu: &Gpu, buffer: &wgpu::Buffer, n: usize) -> Result<Vec<u64>> {
    let slice = buffer.slice(..8 * n as u64);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    gpu.wait()?;
    rx.recv().map_err(device_err)?.map_err(device_err)?;
    let values = {
        let view = slice.get_mapped_range().map_err(|e| device_err(format!("{e:?}")))?;
        bytemuck::cast_slice::<u8, u64>(&view).to_vec()
    };
    buffer.unmap();
    Ok(values)
}

pub(crate) fn device_err(e: impl std::fmt::Display) -> Error {
    Error::Device(e.to_string())
}

/// `DOCRE_BREAK_KERNEL=<entry point>` drops every dispatch of that kernel, leaving its outputs
/// unwritten: a deliberately broken kernel, with which the tests show that `docre selftest`
/// catches and names one.
fn broken(entry: &str) -> bool {
    static BROKEN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BROKEN.get_or_init(crate::settings::break_kernel).as_deref() == Some(entry)
}
