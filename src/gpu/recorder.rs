//! Recorder: many dispatches in one command encoder and one compute pass, submitted once.
//!
//! Launchers call `dispatch`; the caller decides when to `submit`. The recorder keeps every
//! bound tensor alive until submission, so pooled buffers are not handed out again while
//! recorded work still refers to them. After `FLUSH_EVERY` dispatches the encoder is submitted
//! and a new one opened, which keeps command buffers bounded on long recordings.

use super::device::{Gpu, IMMEDIATE_BYTES};
use super::pipeline::Kernel;
use super::tensor::Tensor;
use crate::error::{shape_err, Error, Result};

const FLUSH_EVERY: usize = 512;

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
}

impl Recorder {
    pub fn new(gpu: &Gpu) -> Recorder {
        Recorder { gpu: gpu.clone(), encoder: None, pass: None, keep: Vec::new(), pending: 0 }
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        if self.encoder.is_none() {
            self.encoder = Some(self.gpu.device().create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("docre") }));
        }
        self.encoder.as_mut().unwrap()
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
        if groups.contains(&0) {
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
        if self.pass.is_none() {
            let pass = self.encoder().begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("docre"), timestamp_writes: None });
            self.pass = Some(pass.forget_lifetime());
        }
        let pass = self.pass.as_mut().unwrap();
        pass.set_pipeline(&cached.pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        if !imm.words.is_empty() {
            pass.set_immediates(0, bytemuck::cast_slice(&imm.words));
        }
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        self.keep.extend(bindings.iter().map(|t| (*t).clone()));
        self.pending += 1;
        if self.pending >= FLUSH_EVERY {
            self.flush();
        }
        Ok(())
    }

    /// Copy all of `src` into `dst` (same byte size).
    pub fn copy(&mut self, src: &Tensor, dst: &Tensor) -> Result<()> {
        if src.bytes() != dst.bytes() {
            return shape_err("copy", format!("`{}` and `{}` differ in size", src.name(), dst.name()));
        }
        self.end_pass();
        if src.bytes() > 0 {
            self.encoder().copy_buffer_to_buffer(src.buffer(), 0, dst.buffer(), 0, src.bytes());
        }
        self.keep.push(src.clone());
        self.keep.push(dst.clone());
        Ok(())
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
        if let Some(enc) = self.encoder.take() {
            self.gpu.queue().submit([enc.finish()]);
        }
        self.keep.clear();
        self.pending = 0;
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

pub(crate) fn device_err(e: impl std::fmt::Display) -> Error {
    Error::Device(e.to_string())
}
