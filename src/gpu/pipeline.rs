//! Shader modules and compute pipelines, cached by (shader, entry point, override constants).
//!
//! Every kernel uses one bind group: storage buffers at bindings 0.., in the order its
//! `Kernel::bindings` lists them. Its scalars, up to `IMMEDIATE_BYTES`, are immediate data, or
//! with `Params::Uniform` (WebGPU has no immediates) a uniform buffer at group 1, binding 0,
//! with a dynamic offset: the module's one `var<immediate>` is rewritten to that declaration, so
//! both paths run the same kernel source (see gpu::params).
//! Pipeline creation runs inside an error scope so a WGSL mistake becomes an `Error::Shader`
//! naming the kernel instead of a panic in wgpu's default error handler.
//!
//! Every pipeline created is also kept as a `PipelineSpec` (final WGSL, entry point, override
//! values, bindings), and with `DOCRE_PIPELINE_LOG=<dir>` appended to `<dir>/pipelines.jsonl`
//! with its module in `<dir>/<shader>.wgsl` (`<shader>.uniform.wgsl` for the uniform path): tests/translate.rs translates them with naga's
//! Metal and HLSL back ends, the only check of those paths possible without such machines.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// Read-only or read-write storage binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    Write,
}

/// A WGSL source file; `PRELUDE` is prepended to every one.
pub struct Shader {
    pub name: &'static str,
    pub source: &'static str,
}

/// One entry point of a shader with its binding list.
pub struct Kernel {
    pub shader: &'static Shader,
    pub entry: &'static str,
    pub bindings: &'static [Access],
}

const PRELUDE: &str = include_str!("../../shaders/prelude.wgsl");

pub struct Cached {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    /// "shader/entry K=v ...": the profile's name for this pipeline.
    pub label: String,
    /// Set by the first dispatch: CPU drivers (lavapipe) compile a pipeline's machine code only
    /// when it first runs, so the profile reports that dispatch beside the creation time.
    pub used: std::sync::atomic::AtomicBool,
}

type Key = (&'static str, &'static str, Vec<(&'static str, u64)>);

/// What one pipeline was built from.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct PipelineSpec {
    pub shader: String,
    pub entry: String,
    pub constants: Vec<(String, f64)>,
    /// Per binding, whether it is read-only storage.
    pub read_only: Vec<bool>,
    #[serde(default)]
    pub params: Params,
}

/// How kernels receive their scalar parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Params {
    /// Immediate data (push constants): no buffer, no binding.
    #[default]
    Immediates,
    /// A uniform buffer at group 1, binding 0, with a dynamic offset per dispatch.
    Uniform,
}

impl Params {
    pub fn name(self) -> &'static str {
        match self {
            Params::Immediates => "immediates",
            Params::Uniform => "uniform",
        }
    }

    /// The logged module file of a shader is `<shader><suffix>.wgsl`, so that both parameter
    /// paths can be logged into one folder.
    pub fn module_suffix(self) -> &'static str {
        match self {
            Params::Immediates => "",
            Params::Uniform => ".uniform",
        }
    }
}

/// The declaration that replaces `var<immediate>` under `Params::Uniform`.
const UNIFORM_DECL: &str = "@group(1) @binding(0) var<uniform>";

impl PipelineSpec {
    /// The WGSL the module was built from: the prelude, then the shader's source, its parameter
    /// block declared for `params`. A module declares at most one block (an entry point can
    /// have only one immediate variable), so the rewrite cannot make two variables share a slot.
    /// `shader` names the module in that error.
    pub fn wgsl(shader: &str, source: &str, params: Params) -> Result<String> {
        let all = format!("{PRELUDE}\n{source}");
        match params {
            Params::Immediates => Ok(all),
            Params::Uniform => {
                let n = all.matches("var<immediate>").count();
                if n > 1 {
                    return Err(Error::Shader(shader.to_string(), format!("the module declares {n} immediate variables; a uniform rewrite needs at most one")));
                }
                Ok(all.replace("var<immediate>", UNIFORM_DECL))
            }
        }
    }
}

pub struct PipelineCache {
    params: Params,
    /// Group 1's layout under `Params::Uniform`, created with the first pipeline.
    params_layout: std::sync::OnceLock<wgpu::BindGroupLayout>,
    modules: Mutex<HashMap<&'static str, Arc<wgpu::ShaderModule>>>,
    pipelines: Mutex<HashMap<Key, Arc<Cached>>>,
    /// (spec, shader source) of every pipeline created, in order.
    specs: Mutex<Vec<(PipelineSpec, &'static str)>>,
}

/// Bytes of immediate data every pipeline layout declares (the kernels' scalar parameters).
pub const IMMEDIATE_BYTES: u32 = 128;

impl PipelineCache {
    pub fn new(params: Params) -> PipelineCache {
        PipelineCache { params, params_layout: Default::default(), modules: Default::default(), pipelines: Default::default(), specs: Default::default() }
    }

    pub fn params(&self) -> Params {
        self.params
    }

    /// The layout of group 1 (the parameter slot) under `Params::Uniform`.
    pub fn params_layout(&self, device: &wgpu::Device) -> &wgpu::BindGroupLayout {
        self.params_layout.get_or_init(|| {
            device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some("docre params"),
                entries: &[wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: true,
                        min_binding_size: std::num::NonZeroU64::new(IMMEDIATE_BYTES as u64),
                    },
                    count: None,
                }],
            })
        })
    }

    fn module(&self, device: &wgpu::Device, shader: &'static Shader) -> Result<Arc<wgpu::ShaderModule>> {
        let cache = self;
        if let Some(m) = cache.modules.lock().unwrap().get(shader.name) {
            return Ok(m.clone());
        }
        let source = PipelineSpec::wgsl(shader.name, shader.source, self.params)?;
        let (module, error) = checked(device, || {
            device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(shader.name),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            })
        });
        if let Some(e) = error {
            return Err(Error::Shader(shader.name.to_string(), e));
        }
        let m = Arc::new(module);
        cache.modules.lock().unwrap().insert(shader.name, m.clone());
        Ok(m)
    }

    /// The pipeline for `kernel` specialized with `constants` (WGSL `override` values), created
    /// on `device` the first time it is asked for.
    pub fn pipeline(&self, device: &wgpu::Device, kernel: &Kernel, constants: &[(&'static str, f64)]) -> Result<Arc<Cached>> {
        let key: Key = (
            kernel.shader.name,
            kernel.entry,
            constants.iter().map(|(k, v)| (*k, v.to_bits())).collect(),
        );
        if let Some(p) = self.pipelines.lock().unwrap().get(&key) {
            return Ok(p.clone());
        }
        let started = web_time::Instant::now();
        let module = self.module(device, kernel.shader)?;
        let entries: Vec<wgpu::BindGroupLayoutEntry> = kernel
            .bindings
            .iter()
            .enumerate()
            .map(|(i, a)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: *a == Access::Read },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let (created, error) = checked(device, || {
            let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(kernel.entry),
                entries: &entries,
            });
            let (groups, immediate_size) = match self.params {
                Params::Immediates => (vec![Some(&layout)], IMMEDIATE_BYTES),
                Params::Uniform => (vec![Some(&layout), Some(self.params_layout(device))], 0),
            };
            let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(kernel.entry),
                bind_group_layouts: &groups,
                immediate_size,
            });
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.entry),
                layout: Some(&pl),
                module: &module,
                entry_point: Some(kernel.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    // Kernels never read workgroup memory before writing it.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
            (layout, pipeline)
        });
        if let Some(e) = error {
            return Err(Error::Shader(format!("{}::{}", kernel.shader.name, kernel.entry), e));
        }
        let (layout, pipeline) = created;
        let mut label = format!("{}/{}", kernel.shader.name, kernel.entry);
        for (k, v) in constants {
            label += &format!(" {k}={v}");
        }
        super::profile::pipeline_created(&label, started.elapsed().as_secs_f64());
        let c = Arc::new(Cached { pipeline, layout, label, used: std::sync::atomic::AtomicBool::new(false) });
        self.pipelines.lock().unwrap().insert(key, c.clone());
        let spec = PipelineSpec {
            shader: kernel.shader.name.to_string(),
            entry: kernel.entry.to_string(),
            constants: constants.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            read_only: kernel.bindings.iter().map(|a| *a == Access::Read).collect(),
            params: self.params,
        };
        log_pipeline(&spec, kernel.shader.source)?;
        self.specs.lock().unwrap().push((spec, kernel.shader.source));
        Ok(c)
    }

    /// Every pipeline created so far, with its shader's source (without the prelude).
    pub fn specs(&self) -> Vec<(PipelineSpec, &'static str)> {
        self.specs.lock().unwrap().clone()
    }
}

/// What `create` makes, and the validation error it raised: caught in an error scope on native;
/// in the browser, where a scope can only be read asynchronously, such errors reach the device's
/// uncaptured-error handler instead.
fn checked<T>(device: &wgpu::Device, create: impl FnOnce() -> T) -> (T, Option<String>) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let made = create();
        (made, pollster::block_on(scope.pop()).map(|e| e.to_string()))
    }
    #[cfg(target_arch = "wasm32")]
    {
        let _ = device;
        (create(), None)
    }
}

/// Appends `spec` to `$DOCRE_PIPELINE_LOG/pipelines.jsonl` and writes its module's WGSL beside
/// it once. Lines are appended whole (one write of one line), so test processes running one after
/// another, or threads of one, do not interleave.
fn log_pipeline(spec: &PipelineSpec, source: &str) -> Result<()> {
    use std::io::Write;
    let Some(dir) = crate::settings::pipeline_log() else {
        return Ok(());
    };
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap();
    let io = |e: std::io::Error| Error::Io { context: format!("DOCRE_PIPELINE_LOG {}", dir.display()), source: e };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let module = dir.join(format!("{}{}.wgsl", spec.shader, spec.params.module_suffix()));
    if !module.exists() {
        crate::fsutil::write_atomic(&module, PipelineSpec::wgsl(&spec.shader, source, spec.params)?.as_bytes())?;
    }
    let mut line = serde_json::to_string(spec).expect("a pipeline spec serializes");
    line.push('\n');
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("pipelines.jsonl")).map_err(io)?;
    f.write_all(line.as_bytes()).map_err(io)
}
