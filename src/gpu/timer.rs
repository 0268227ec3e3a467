//! GPU timing for benchmarks: timestamp queries around the recorded work where the adapter
//! offers them, otherwise wall-clock time of submit + device wait.

use web_time::Instant;

use super::device::Gpu;
use super::recorder::{read_u64s, Recorder};
use crate::error::Result;

pub struct GpuTimer {
    set: Option<wgpu::QuerySet>,
    resolve: Option<wgpu::Buffer>,
    readback: Option<wgpu::Buffer>,
}

impl GpuTimer {
    pub fn new(gpu: &Gpu) -> GpuTimer {
        if !gpu.has_timestamps() || crate::settings::wall_clock() {
            return GpuTimer { set: None, resolve: None, readback: None };
        }
        let set = gpu.device().create_query_set(&wgpu::QuerySetDescriptor { label: Some("timer"), ty: wgpu::QueryType::Timestamp, count: 2 });
        let mk = |usage| gpu.device().create_buffer(&wgpu::BufferDescriptor { label: Some("timer"), size: 16, usage, mapped_at_creation: false });
        let resolve = mk(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC);
        let readback = mk(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
        GpuTimer { set: Some(set), resolve: Some(resolve), readback: Some(readback) }
    }

    /// "gpu-timestamps" or "wall-clock".
    pub fn method(&self) -> &'static str {
        if self.set.is_some() { "gpu-timestamps" } else { "wall-clock" }
    }

    /// Seconds the work recorded by `f` takes on the device.
    pub fn time(&self, gpu: &Gpu, f: impl FnOnce(&mut Recorder) -> Result<()>) -> Result<f64> {
        gpu.wait()?;
        let mut rec = Recorder::new(gpu);
        let (Some(set), Some(resolve), Some(readback)) = (&self.set, &self.resolve, &self.readback) else {
            let t0 = Instant::now();
            f(&mut rec)?;
            rec.finish()?;
            return Ok(t0.elapsed().as_secs_f64());
        };
        rec.timestamp(set, 0);
        f(&mut rec)?;
        rec.timestamp(set, 1);
        let enc = rec.encoder_for();
        enc.resolve_query_set(set, 0..2, resolve, 0);
        enc.copy_buffer_to_buffer(resolve, 0, readback, 0, 16);
        rec.finish()?;
        let ticks = read_u64s(gpu, readback, 2)?;
        let period = gpu.queue().get_timestamp_period() as f64;
        Ok(ticks[1].saturating_sub(ticks[0]) as f64 * period * 1e-9)
    }
}
