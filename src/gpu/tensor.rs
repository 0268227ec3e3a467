//! `Tensor`: a pooled GPU storage buffer with a shape and a 4-byte element type.
//!
//! Tensors are reference-counted views: `reshape` shares the buffer. The buffer goes back to
//! the pool when the last view (including the recorder's keep-alive copies) is dropped, so a
//! buffer is never reused while recorded-but-unsubmitted work still refers to it.

use std::sync::{Arc, Mutex};

use super::device::Gpu;
use super::pool::BufferPool;
use crate::error::{shape_err, Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    U32,
}

struct Storage {
    buffer: Option<wgpu::Buffer>,
    pool: Arc<Mutex<BufferPool>>,
}

impl Drop for Storage {
    fn drop(&mut self) {
        if let Some(b) = self.buffer.take() {
            if let Ok(mut p) = self.pool.lock() {
                p.give(b);
            }
        }
    }
}

#[derive(Clone)]
pub struct Tensor {
    storage: Arc<Storage>,
    shape: Vec<usize>,
    dtype: DType,
    name: Arc<str>,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({} {:?} {:?})", self.name, self.dtype, self.shape)
    }
}

impl Tensor {
    /// A tensor whose contents are unspecified (a reused buffer keeps old data): only for
    /// outputs that a kernel overwrites completely.
    pub fn uninit(gpu: &Gpu, name: &str, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let numel: usize = shape.iter().product();
        let bytes = (numel as u64) * 4;
        let limit = gpu.limits().max_storage_buffer_binding_size as u64;
        if bytes > limit {
            return Err(Error::TooLarge { name: name.to_string(), bytes, limit });
        }
        let buffer = gpu.0.pool.lock().unwrap().take(gpu.device(), bytes, gpu.limits().max_buffer_size, name);
        Ok(Tensor {
            storage: Arc::new(Storage { buffer: Some(buffer), pool: gpu.0.pool.clone() }),
            shape: shape.to_vec(),
            dtype,
            name: name.into(),
        })
    }

    /// A zero-filled f32 tensor.
    pub fn zeros(gpu: &Gpu, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = Self::uninit(gpu, name, shape, DType::F32)?;
        t.clear(gpu);
        Ok(t)
    }

    pub fn from_f32(gpu: &Gpu, name: &str, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        let t = Self::uninit(gpu, name, shape, DType::F32)?;
        t.write_f32(gpu, data)?;
        Ok(t)
    }

    pub fn from_u32(gpu: &Gpu, name: &str, shape: &[usize], data: &[u32]) -> Result<Tensor> {
        let t = Self::uninit(gpu, name, shape, DType::U32)?;
        t.check_len(data.len())?;
        gpu.queue().write_buffer(t.buffer(), 0, bytemuck::cast_slice(data));
        Ok(t)
    }

    fn check_len(&self, n: usize) -> Result<()> {
        if n != self.numel() {
            return shape_err("upload", format!("tensor `{}` has shape {:?} ({} elements) but {} values were given", self.name, self.shape, self.numel(), n));
        }
        Ok(())
    }

    /// Overwrite the contents. The write lands before the next submitted command buffer.
    pub fn write_f32(&self, gpu: &Gpu, data: &[f32]) -> Result<()> {
        self.check_len(data.len())?;
        if !data.is_empty() {
            gpu.queue().write_buffer(self.buffer(), 0, bytemuck::cast_slice(data));
        }
        Ok(())
    }

    /// Zero the whole tensor (its own small submit).
    pub fn clear(&self, gpu: &Gpu) {
        let mut enc = gpu.device().create_command_encoder(&Default::default());
        enc.clear_buffer(self.buffer(), 0, None);
        gpu.queue().submit([enc.finish()]);
    }

    /// Same buffer, new shape (same element count).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if n != self.numel() {
            return shape_err("reshape", format!("`{}` {:?} cannot become {:?}", self.name, self.shape, shape));
        }
        Ok(Tensor { shape: shape.to_vec(), ..self.clone() })
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn bytes(&self) -> u64 {
        self.numel() as u64 * 4
    }
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.storage.buffer.as_ref().expect("tensor storage is only taken on drop")
    }

    /// Copy the contents back to the host (waits for all submitted work). Native only: the
    /// browser cannot wait, and reads with `read_f32_async`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_f32(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        pollster::block_on(self.read_f32_async(gpu))
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_u32(&self, gpu: &Gpu) -> Result<Vec<u32>> {
        pollster::block_on(self.read_u32_async(gpu))
    }

    /// Copy the contents back once all submitted work has finished, without blocking.
    pub async fn read_f32_async(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        Ok(bytemuck::cast_slice(&self.read_bytes(gpu).await?).to_vec())
    }

    pub async fn read_u32_async(&self, gpu: &Gpu) -> Result<Vec<u32>> {
        Ok(bytemuck::cast_slice(&self.read_bytes(gpu).await?).to_vec())
    }

    async fn read_bytes(&self, gpu: &Gpu) -> Result<Vec<u8>> {
        let bytes = self.bytes();
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = take_readback(gpu, bytes);
        let mut enc = gpu.device().create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(self.buffer(), 0, &staging, 0, bytes);
        gpu.queue().submit([enc.finish()]);
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.slice(..bytes).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        // Native drivers run the callback inside a device poll; the browser from its event loop,
        // while this future waits.
        #[cfg(not(target_arch = "wasm32"))]
        gpu.wait()?;
        rx.await
            .map_err(|_| Error::Device("readback callback never ran".into()))?
            .map_err(|e| Error::Device(format!("mapping `{}` for readback failed: {e}", self.name)))?;
        let view = staging
            .slice(..bytes)
            .get_mapped_range()
            .map_err(|e| Error::Device(format!("reading `{}` back failed: {e:?}", self.name)))?;
        let out = view.to_vec();
        drop(view);
        staging.unmap();
        give_readback(gpu, staging);
        Ok(out)
    }

    /// Require a given shape (launcher argument checks).
    pub fn expect_shape(&self, op: &'static str, shape: &[usize]) -> Result<()> {
        if self.shape != shape {
            return shape_err(op, format!("`{}` has shape {:?}, expected {:?}", self.name, self.shape, shape));
        }
        Ok(())
    }

    pub fn expect_dtype(&self, op: &'static str, dtype: DType) -> Result<()> {
        if self.dtype != dtype {
            return shape_err(op, format!("`{}` is {:?}, expected {:?}", self.name, self.dtype, dtype));
        }
        Ok(())
    }
}

/// Mappable buffers kept for readbacks: at most this many, the largest kept.
const READBACK_KEEP: usize = 4;

/// A mappable buffer of at least `bytes` (its size class): a kept one, the smallest that fits,
/// or a new one. Prediction reads labels back after every pass, four or five reads a batch in
/// ever-different sizes, which made and freed as many buffers. (Keeping them did not by itself
/// remove the step in the resident set over a corpus; the pool's eviction order did: see
/// docs/benchmarks.md, "Memory with the settled-document loop".)
fn take_readback(gpu: &Gpu, bytes: u64) -> wgpu::Buffer {
    let mut kept = gpu.0.readback.lock().unwrap();
    let fit = kept.iter().enumerate().filter(|(_, b)| b.size() >= bytes).min_by_key(|(_, b)| b.size()).map(|(i, _)| i);
    if let Some(i) = fit {
        return kept.swap_remove(i);
    }
    drop(kept);
    gpu.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size: super::pool::size_class(bytes),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

fn give_readback(gpu: &Gpu, buffer: wgpu::Buffer) {
    let mut kept = gpu.0.readback.lock().unwrap();
    kept.push(buffer);
    if kept.len() > READBACK_KEEP {
        let smallest = kept.iter().enumerate().min_by_key(|(_, b)| b.size()).map(|(i, _)| i).expect("not empty");
        kept.swap_remove(smallest).destroy();
    }
}
