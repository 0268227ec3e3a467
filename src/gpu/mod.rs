//! The GPU runtime: adapter and device, tensors, buffer pool, pipeline cache, recorder, timer,
//! and the per-device record of kernel variants chosen by measurement.

mod device;
mod params;
mod pipeline;
mod pool;
pub mod profile;
mod recorder;
mod subgroup;
mod tensor;
mod timer;
pub mod tuning;

pub use device::{AdapterKind, AdapterReport, Gpu};
pub use pipeline::{Access, Kernel, Params, PipelineSpec, Shader};
pub use recorder::{grid, Imm, Recorder};
pub use tensor::{DType, Tensor};
pub use timer::GpuTimer;
