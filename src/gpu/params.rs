//! Kernel parameters through a uniform buffer (`Params::Uniform`): WebGPU has no immediate
//! data, and `DOCRE_PARAMS=uniform` runs the same path on native drivers so that every test can
//! check it.
//!
//! A recorder gives each dispatch its own slot of an arena buffer: the words go to a host copy,
//! the pass binds the arena at group 1 with the slot's offset as its dynamic offset, and right
//! before submitting, the recorder writes the host copy with `queue.write_buffer`. wgpu runs such
//! a write after every earlier submission and before the next one, so the arena is reused from
//! one submission to the next without waiting, and a recorder never needs more slots than it
//! records dispatches between two submissions (`Recorder`'s flush bound).

use super::device::Gpu;
use super::pipeline::IMMEDIATE_BYTES;

pub(crate) struct Arena {
    buffer: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    /// Bytes from one slot to the next: the adapter's uniform offset alignment, at least
    /// IMMEDIATE_BYTES.
    stride: u64,
    slots: u32,
    host: Vec<u8>,
    used: u32,
}

impl Arena {
    pub fn new(gpu: &Gpu, slots: u32) -> Arena {
        let align = gpu.limits().min_uniform_buffer_offset_alignment as u64;
        let stride = (IMMEDIATE_BYTES as u64).div_ceil(align) * align;
        let buffer = gpu.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("docre params"),
            size: stride * slots as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let bind_group = gpu.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("docre params"),
            layout: gpu.params_layout(),
            entries: &[wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &buffer,
                    offset: 0,
                    size: std::num::NonZeroU64::new(IMMEDIATE_BYTES as u64),
                }),
            }],
        });
        Arena { buffer, bind_group, stride, slots, host: Vec::new(), used: 0 }
    }

    /// Stage `words` in the next slot; returns the bind group and its dynamic offset.
    pub fn push(&mut self, words: &[u32]) -> (&wgpu::BindGroup, u32) {
        assert!(self.used < self.slots, "params arena overflow: the recorder submits before its slots run out");
        let offset = self.used as u64 * self.stride;
        self.host.resize((offset + self.stride) as usize, 0);
        let bytes: &[u8] = bytemuck::cast_slice(words);
        self.host[offset as usize..offset as usize + bytes.len()].copy_from_slice(bytes);
        self.used += 1;
        (&self.bind_group, offset as u32)
    }

    /// Queue the staged slots for the coming submission and start over.
    pub fn upload(&mut self, gpu: &Gpu) {
        if self.used > 0 {
            gpu.queue().write_buffer(&self.buffer, 0, &self.host);
            self.host.clear();
            self.used = 0;
        }
    }
}
