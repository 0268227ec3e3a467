//! Adapter choice and the `Gpu` handle every launcher works through.
//!
//! Order of preference: discrete GPU, integrated GPU, virtual GPU, then a CPU adapter (Mesa
//! lavapipe). `WGPU_BACKEND` (vulkan, metal, dx12, gl) restricts the backends and
//! `DOCRE_ADAPTER` picks the first adapter whose name contains the given substring.
//! The device asks for WebGPU's default limits (8 storage buffers per stage, 256 invocations and
//! 16 KiB of workgroup memory per workgroup), which every kernel fits, raised for the 128 bytes of
//! immediate data WebGPU lacks (where kernel parameters travel as immediates; see
//! `pipeline::Params`), and by default for the adapter's own binding and buffer sizes:
//! lavapipe and most GPUs allow far larger storage bindings than the 128 MiB / 256 MiB defaults.
//! `DOCRE_LIMITS=webgpu` keeps those at the defaults too (see `requested_limits`).

use std::sync::{Arc, Mutex, OnceLock};

use super::params::Arena;
use super::pipeline::{Cached, Kernel, Params, PipelineCache, PipelineSpec, IMMEDIATE_BYTES};
use super::pool::BufferPool;
use crate::error::{Error, Result};


/// Broad class of the adapter; kernels pick tile sizes by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdapterKind {
    /// A real GPU (discrete, integrated or virtual).
    Gpu,
    /// A CPU implementation such as lavapipe: no fast workgroup memory, SIMD across invocations.
    Cpu,
}

/// What was chosen, for `docre info` and benchmark reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterReport {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroups_per_dimension: u32,
    pub max_immediate_size: u32,
    /// How kernels receive their scalars: "immediates" or "uniform".
    pub params: String,
    /// "adapter" or "webgpu": whether binding and buffer sizes are the adapter's own.
    pub limits: String,
    pub max_storage_buffers_per_shader_stage: u32,
    pub shader_f16: bool,
    pub timestamp_query: bool,
    pub subgroups: bool,
}

pub(crate) struct GpuInner {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub kind: AdapterKind,
    pub report: AdapterReport,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pub pipelines: PipelineCache,
    pub pool: Arc<Mutex<BufferPool>>,
    /// Measured lazily by ops::matmul (None: no subgroup support).
    pub subgroup_size: OnceLock<Option<u32>>,
    pub tuning: Mutex<super::tuning::Tuning>,
    /// Parameter arenas of finished recorders, for the next ones (`Params::Uniform`).
    pub arenas: Mutex<Vec<Arena>>,
    /// Mappable buffers of finished readbacks, for the next ones (`Tensor::read_f32`).
    pub readback: Mutex<Vec<wgpu::Buffer>>,
}

/// Cheap-to-clone handle to the device, queue, pipeline cache and buffer pool.
#[derive(Clone)]
pub struct Gpu(pub(crate) Arc<GpuInner>);

#[cfg(not(target_arch = "wasm32"))]
fn rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

#[cfg(not(target_arch = "wasm32"))]
const NO_ADAPTER_HELP: &str = "docre needs a GPU driver with Vulkan, Metal or DX12. On a machine \
without a GPU, install a CPU Vulkan device: `apt-get install mesa-vulkan-drivers libvulkan1` \
(Debian/Ubuntu). Check with `docre info`.";

/// Prints wgpu's warnings and notes to stderr.
#[cfg(not(target_arch = "wasm32"))]
struct StderrLog;

#[cfg(not(target_arch = "wasm32"))]
impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Info && m.target().starts_with("wgpu")
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            eprintln!("{} [{}] {}", r.target(), r.level(), r.args());
        }
    }
    fn flush(&self) {}
}

/// The Vulkan loader's messages (unless VK_LOADER_DEBUG is already set) and wgpu's, on stderr
/// from the next instance on: what a failure to find any adapter needs to be explained.
#[cfg(not(target_arch = "wasm32"))]
fn diagnostics_on() {
    if std::env::var_os("VK_LOADER_DEBUG").is_none() {
        std::env::set_var("VK_LOADER_DEBUG", "error,warn,info");
    }
    static LOG: StderrLog = StderrLog;
    if log::set_logger(&LOG).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

/// `DOCRE_LIMITS` (settings): "adapter" (default) or "webgpu".
fn limits_mode() -> Result<&'static str> {
    Ok(if crate::settings::webgpu_limits()? { "webgpu" } else { "adapter" })
}

/// How parameters travel on this adapter: as `chosen`, else `DOCRE_PARAMS`, else immediates
/// where the adapter offers IMMEDIATE_BYTES of them, else a uniform buffer.
fn params_mode(name: &str, features: wgpu::Features, limits: &wgpu::Limits, chosen: Option<Params>) -> Result<Params> {
    let offers = features.contains(wgpu::Features::IMMEDIATES) && limits.max_immediate_size >= IMMEDIATE_BYTES;
    let wanted = match chosen {
        Some(p) => Some(p),
        None => crate::settings::params()?.map(|v| if v == "uniform" { Params::Uniform } else { Params::Immediates }),
    };
    match wanted {
        Some(Params::Immediates) if !offers => Err(Error::NoAdapter(format!(
            "parameters as immediates (DOCRE_PARAMS=immediates) were asked for, but adapter {name} offers {} bytes of immediate data{}; docre needs {IMMEDIATE_BYTES}. \
             Unset DOCRE_PARAMS to pass parameters in a uniform buffer instead.",
            limits.max_immediate_size,
            if features.contains(wgpu::Features::IMMEDIATES) { "" } else { " (no immediates feature)" }
        ))),
        Some(p) => Ok(p),
        None if offers => Ok(Params::Immediates),
        None => Ok(Params::Uniform),
    }
}

/// What the device asks for: WebGPU's defaults (lowered where the adapter offers less, so a weak
/// adapter still opens and its pipelines fail with a clear error), immediates raised to
/// IMMEDIATE_BYTES where parameters travel that way, and unless DOCRE_LIMITS=webgpu the
/// adapter's binding and buffer sizes.
fn requested_limits(adapter: &wgpu::Limits, params: Params) -> Result<wgpu::Limits> {
    let mut l = wgpu::Limits::default().or_worse_values_from(adapter);
    if params == Params::Immediates {
        l.max_immediate_size = IMMEDIATE_BYTES;
    }
    if limits_mode()? == "adapter" {
        l.max_storage_buffer_binding_size = adapter.max_storage_buffer_binding_size;
        l.max_buffer_size = adapter.max_buffer_size;
    }
    Ok(l)
}

/// The adapter as the module docs describe, asking again for a while when none is enumerated.
#[cfg(not(target_arch = "wasm32"))]
async fn find_adapter() -> Result<wgpu::Adapter> {
    let descriptor = || {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        // Compute only: the GL backend cannot run our storage-heavy kernels well and would
        // only add a confusing second software adapter; it stays reachable through
        // WGPU_BACKEND=gl.
        if std::env::var_os("WGPU_BACKEND").is_none() {
            desc.backends = wgpu::Backends::PRIMARY;
        }
        desc
    };
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
    // lavapipe has now and then enumerated nothing, in a long test run and at the start of
    // a CI lane, and found itself again later; fresh instances, backing off, tell a
    // transient failure from a machine without a driver. The first empty answer turns on
    // the Vulkan loader's and wgpu's own messages, so that a lasting failure says why.
    let wait_s = crate::settings::adapter_wait_s()?;
    let mut instance = wgpu::Instance::new(descriptor());
    let mut adapters = instance.enumerate_adapters(backends).await;
    let (mut waited, mut delay) = (0.0, 0.5);
    while adapters.is_empty() && waited < wait_s {
        if waited == 0.0 {
            eprintln!("docre: no graphics adapter enumerated; asking again for up to {wait_s} s, with the Vulkan loader's and wgpu's messages on");
            diagnostics_on();
        }
        let pause = f64::min(delay, wait_s - waited);
        std::thread::sleep(std::time::Duration::from_secs_f64(pause));
        (waited, delay) = (waited + pause, f64::min(delay * 2.0, 4.0));
        // A new instance loads the Vulkan loader again once the old one is dropped, which
        // is when it reads VK_LOADER_DEBUG.
        drop(instance);
        instance = wgpu::Instance::new(descriptor());
        adapters = instance.enumerate_adapters(backends).await;
    }
    if adapters.is_empty() {
        return Err(Error::NoAdapter(format!("no graphics adapter was found (asked for {wait_s} s; DOCRE_ADAPTER_WAIT_S sets how long). {NO_ADAPTER_HELP}")));
    }
    if waited > 0.0 {
        eprintln!("docre: an adapter appeared after {waited:.1} s");
    }
    let wanted = crate::settings::adapter();
    if let Some(w) = &wanted {
        let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        adapters.retain(|a| a.get_info().name.to_lowercase().contains(&w.to_lowercase()));
        if adapters.is_empty() {
            return Err(Error::NoAdapter(format!(
                "DOCRE_ADAPTER={w:?} matches none of the adapters found ({}). Unset it or \
                 give a substring of one of those names.",
                names.join(", ")
            )));
        }
    }
    adapters.sort_by_key(|a| rank(a.get_info().device_type));
    let adapter = adapters.swap_remove(0);
    Ok(adapter)
}

/// The browser offers one adapter, through `requestAdapter`.
#[cfg(target_arch = "wasm32")]
async fn find_adapter() -> Result<wgpu::Adapter> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor { backends: wgpu::Backends::BROWSER_WEBGPU, ..wgpu::InstanceDescriptor::new_without_display_handle() });
    instance
        .request_adapter(&wgpu::RequestAdapterOptions { power_preference: wgpu::PowerPreference::HighPerformance, ..Default::default() })
        .await
        .map_err(|e| Error::NoAdapter(format!("this browser offers no WebGPU adapter ({e}). WebGPU needs a recent Chrome, Edge or Safari, or Firefox with WebGPU enabled.")))
}

impl Gpu {
    /// Pick an adapter as described in the module docs and open a device on it.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new() -> Result<Gpu> {
        pollster::block_on(Self::open(None))
    }

    /// As `new`, with the way parameters travel chosen here instead of by `DOCRE_PARAMS` (tests
    /// compare the two on one adapter).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_params(params: Params) -> Result<Gpu> {
        pollster::block_on(Self::open(Some(params)))
    }

    /// Open the device without blocking: the browser's way (where `new` cannot wait), and what
    /// `new` runs on native.
    pub async fn open(params: Option<Params>) -> Result<Gpu> {
        let adapter = find_adapter().await?;
        let info = adapter.get_info();
        let offered = adapter.features();
        let params = params_mode(&info.name, offered, &adapter.limits(), params)?;
        let limits = requested_limits(&adapter.limits(), params)?;
        let mut wanted_features = offered & (wgpu::Features::SHADER_F16 | wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP);
        if params == Params::Immediates {
            wanted_features |= wgpu::Features::IMMEDIATES;
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("docre"),
                required_features: wanted_features,
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| Error::NoAdapter(format!("could not open a device on {}: {e}", info.name)))?;
        let kind = if info.device_type == wgpu::DeviceType::Cpu { AdapterKind::Cpu } else { AdapterKind::Gpu };
        let report = AdapterReport {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size as u64,
            max_buffer_size: limits.max_buffer_size,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            max_immediate_size: limits.max_immediate_size,
            params: params.name().to_string(),
            limits: limits_mode()?.to_string(),
            max_storage_buffers_per_shader_stage: limits.max_storage_buffers_per_shader_stage,
            shader_f16: wanted_features.contains(wgpu::Features::SHADER_F16),
            timestamp_query: wanted_features.contains(wgpu::Features::TIMESTAMP_QUERY),
            subgroups: wanted_features.contains(wgpu::Features::SUBGROUP),
        };
        let gpu = Gpu(Arc::new(GpuInner {
            device,
            queue,
            kind,
            report,
            limits,
            features: wanted_features,
            pipelines: PipelineCache::new(params),
            pool: Arc::new(Mutex::new(BufferPool::default())),
            subgroup_size: OnceLock::new(),
            tuning: Mutex::new(super::tuning::Tuning { settings: super::tuning::Settings::from_env(kind)?, chosen: Default::default() }),
            arenas: Mutex::new(Vec::new()),
            readback: Mutex::new(Vec::new()),
        }));
        gpu.probe_subgroup_size().await?;
        Ok(gpu)
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.0.device
    }
    pub fn queue(&self) -> &wgpu::Queue {
        &self.0.queue
    }
    pub fn kind(&self) -> AdapterKind {
        self.0.kind
    }
    pub fn report(&self) -> &AdapterReport {
        &self.0.report
    }
    pub fn limits(&self) -> &wgpu::Limits {
        &self.0.limits
    }
    pub fn has_timestamps(&self) -> bool {
        self.0.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Block until all submitted work has finished.
    pub fn wait(&self) -> Result<()> {
        self.0
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Device(format!("waiting for the device failed: {e}")))?;
        Ok(())
    }

    /// Bytes of live tensors now, and the high-water mark since `reset_memory_peak`.
    pub fn memory_in_use(&self) -> (u64, u64) {
        self.0.pool.lock().unwrap().in_use_bytes()
    }

    /// Bytes of freed buffers the pool keeps for reuse.
    pub fn memory_idle(&self) -> u64 {
        self.0.pool.lock().unwrap().idle_bytes()
    }

    pub fn reset_memory_peak(&self) {
        self.0.pool.lock().unwrap().reset_peak();
    }
}

impl Gpu {
    /// The pipeline for `kernel` specialized with `constants` (WGSL `override` values), created
    /// once per device.
    pub fn pipeline(&self, kernel: &Kernel, constants: &[(&'static str, f64)]) -> Result<Arc<Cached>> {
        self.0.pipelines.pipeline(&self.0.device, kernel, constants)
    }

    /// How kernels receive their scalar parameters on this device.
    pub fn params(&self) -> Params {
        self.0.pipelines.params()
    }

    /// Group 1's layout under `Params::Uniform`.
    pub(crate) fn params_layout(&self) -> &wgpu::BindGroupLayout {
        self.0.pipelines.params_layout(&self.0.device)
    }

    /// Every pipeline this device has created, with its shader's source (without the prelude).
    pub fn pipeline_specs(&self) -> Vec<(PipelineSpec, &'static str)> {
        self.0.pipelines.specs()
    }
}
