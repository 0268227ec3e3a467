//! Metal and DX12, which no machine here has: every pipeline translated with naga's MSL and HLSL
//! (shader model 6.0) back ends, from the final WGSL with the override values actually used and
//! the resource and immediate-data bindings wgpu's Metal and DX12 back ends assign (wgpu-hal 30:
//! metal/device.rs create_pipeline_layout, dx12/device.rs create_pipeline_layout). This catches
//! what naga refuses for those targets; it cannot run the Metal or DXC compilers.
//!
//! The pipelines are those of `docre selftest` run in this process (every kernel variant this
//! adapter can run, and a tiny model's training), plus, with `DOCRE_PIPELINE_LOG=<dir>`, every
//! pipeline logged there by earlier test runs (`.ci/run` logs all of its lanes, so their
//! different subgroup widths and fallbacks, and both ways of passing parameters, are covered).

mod common;

use std::collections::{BTreeMap, HashMap};

use common::gpu;
use docre::gpu::{Params, PipelineSpec};
use naga::back::{hlsl, msl};

/// Parsed and validated modules by shader name.
type Modules = HashMap<String, (naga::Module, naga::valid::ModuleInfo)>;

fn module<'a>(modules: &'a mut Modules, name: &str, wgsl: &str) -> Result<&'a (naga::Module, naga::valid::ModuleInfo), String> {
    if !modules.contains_key(name) {
        let m = naga::front::wgsl::parse_str(wgsl).map_err(|e| format!("{name}: WGSL parse: {}", e.emit_to_string(wgsl)))?;
        let caps = naga::valid::Capabilities::IMMEDIATES | naga::valid::Capabilities::SUBGROUP | naga::valid::Capabilities::SHADER_FLOAT16;
        let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
            .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
            .subgroup_operations(naga::valid::SubgroupOperationSet::all())
            .validate(&m)
            .map_err(|e| format!("{name}: validation: {}", e.emit_to_string(wgsl)))?;
        modules.insert(name.to_string(), (m, info));
    }
    Ok(&modules[name])
}

/// MSL as wgpu-hal's Metal back end writes it: immediates in buffer 0 (where parameters are
/// immediates), then one buffer per binding in order, group 0 then group 1 (the parameter slot),
/// then the buffer-sizes buffer.
fn to_msl(m: &naga::Module, info: &naga::valid::ModuleInfo, spec: &PipelineSpec) -> Result<(), String> {
    let mut resources = msl::BindingMap::default();
    let mut next = match spec.params {
        Params::Immediates => 1,
        Params::Uniform => 0,
    };
    for (i, ro) in spec.read_only.iter().enumerate() {
        let target = msl::BindTarget { buffer: Some(next), mutable: !ro, ..Default::default() };
        resources.insert(naga::ResourceBinding { group: 0, binding: i as u32 }, target);
        next += 1;
    }
    // Left out with the storage bindings by the harness check in the test below.
    if spec.params == Params::Uniform && !spec.read_only.is_empty() {
        resources.insert(naga::ResourceBinding { group: 1, binding: 0 }, msl::BindTarget { buffer: Some(next), ..Default::default() });
        next += 1;
    }
    let immediates_buffer = (spec.params == Params::Immediates).then_some(0);
    let ep = msl::EntryPointResources { resources, immediates_buffer, sizes_buffer: Some(next) };
    let options = msl::Options {
        lang_version: (2, 4),
        per_entry_point_map: msl::EntryPointResourceMap::from([(spec.entry.clone(), ep)]),
        fake_missing_bindings: false,
        zero_initialize_workgroup_memory: false,
        ..Default::default()
    };
    let pipeline = msl::PipelineOptions { entry_point: Some((naga::ShaderStage::Compute, spec.entry.clone())), ..Default::default() };
    let (_, translation) = msl::write_string(m, info, &options, &pipeline).map_err(|e| format!("MSL: {e:?}"))?;
    // The writer reports a per-entry-point failure (a missing bind target) here, not as an error;
    // wgpu's Metal back end refuses the pipeline on it.
    match translation.entry_point_names.iter().find(|r| r.is_err()) {
        Some(Err(e)) => Err(format!("MSL entry point: {e:?}")),
        _ => Ok(()),
    }
}

/// HLSL as wgpu-hal's DX12 back end writes it: read-only storage as SRVs t0.., read-write
/// storage as UAVs u0.., in binding order; with immediates, those as root constants at b0 space 0
/// and the special constants (num_workgroups) at b1 space 1; with the uniform parameter slot,
/// that as the CBV b0 space 0 and the special constants at b1 space 0.
fn to_hlsl(m: &naga::Module, info: &naga::valid::ModuleInfo, spec: &PipelineSpec) -> Result<(), String> {
    let mut binding_map = hlsl::BindingMap::default();
    let (mut srv, mut uav) = (0u32, 0u32);
    for (i, ro) in spec.read_only.iter().enumerate() {
        let register = if *ro { &mut srv } else { &mut uav };
        binding_map.insert(naga::ResourceBinding { group: 0, binding: i as u32 }, hlsl::BindTarget { space: 0, register: *register, ..Default::default() });
        *register += 1;
    }
    let (immediates_target, special_space) = match spec.params {
        Params::Immediates => (Some(hlsl::BindTarget { space: 0, register: 0, ..Default::default() }), 1),
        Params::Uniform => {
            if !spec.read_only.is_empty() {
                binding_map.insert(naga::ResourceBinding { group: 1, binding: 0 }, hlsl::BindTarget { space: 0, register: 0, ..Default::default() });
            }
            (None, 0)
        }
    };
    let options = hlsl::Options {
        shader_model: hlsl::ShaderModel::V6_0,
        binding_map,
        fake_missing_bindings: false,
        immediates_target,
        special_constants_binding: Some(hlsl::BindTarget { space: special_space, register: 1, ..Default::default() }),
        zero_initialize_workgroup_memory: false,
        ..Default::default()
    };
    let pipeline = hlsl::PipelineOptions { entry_point: Some((naga::ShaderStage::Compute, spec.entry.clone())) };
    let mut out = String::new();
    let reflection = hlsl::Writer::new(&mut out, &options, &pipeline).write(m, info, None).map_err(|e| format!("HLSL: {e:?}"))?;
    match reflection.entry_point_names.iter().find(|r| r.is_err()) {
        Some(Err(e)) => Err(format!("HLSL entry point: {e:?}")),
        _ => Ok(()),
    }
}

fn key(s: &PipelineSpec) -> String {
    format!("{}::{} {:?} {}", s.shader, s.entry, s.constants, s.params.name())
}

/// The module's name: one per shader and parameter path.
fn module_name(s: &PipelineSpec) -> String {
    format!("{}{}", s.shader, s.params.module_suffix())
}

/// (spec, final WGSL) of every logged pipeline in `dir`.
fn logged(dir: &std::path::Path) -> Vec<(PipelineSpec, String)> {
    let Ok(text) = std::fs::read_to_string(dir.join("pipelines.jsonl")) else { return Vec::new() };
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let spec: PipelineSpec = serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", dir.display()));
            let wgsl = std::fs::read_to_string(dir.join(format!("{}.wgsl", module_name(&spec)))).unwrap_or_else(|e| panic!("{}: {e}", module_name(&spec)));
            (spec, wgsl)
        })
        .collect()
}

#[test]
fn every_pipeline_translates_to_msl_and_hlsl() {
    let gpu = gpu();
    let failed_checks: Vec<String> = docre::selftest::run(&gpu, None, |_| {})
        .into_iter()
        .filter_map(|r| match r.outcome {
            docre::selftest::Outcome::Fail(m) => Some(format!("{} {}: {m}", r.family, r.variant)),
            _ => None,
        })
        .collect();
    assert!(failed_checks.is_empty(), "{failed_checks:?}");
    let mut all: BTreeMap<String, (PipelineSpec, String)> = BTreeMap::new();
    for (spec, source) in gpu.pipeline_specs() {
        let wgsl = PipelineSpec::wgsl(&spec.shader, source, spec.params).expect("the module was built from this text");
        all.insert(key(&spec), (spec, wgsl));
    }
    let here = all.len();
    if let Some(dir) = docre::settings::pipeline_log() {
        for (spec, wgsl) in logged(std::path::Path::new(&dir)) {
            all.entry(key(&spec)).or_insert((spec, wgsl));
        }
    }
    let mut modules = Modules::new();
    let mut failures = Vec::new();
    for (k, (spec, wgsl)) in &all {
        let result = module(&mut modules, &module_name(spec), wgsl).and_then(|(m, info)| {
            let constants: naga::back::PipelineConstants = spec.constants.iter().cloned().collect();
            let (m, info) = naga::back::pipeline_constants::process_overrides(m, info, Some((naga::ShaderStage::Compute, &spec.entry)), &constants).map_err(|e| format!("overrides: {e:?}"))?;
            to_msl(&m, &info, spec)?;
            to_hlsl(&m, &info, spec)
        });
        if let Err(e) = result {
            failures.push(format!("{k}: {e}"));
        }
    }
    // The harness can fail: without its bindings in the maps, a pipeline must not translate.
    let (_, (spec, wgsl)) = all.iter().next().expect("at least one pipeline");
    let (m, info) = module(&mut modules, &module_name(spec), wgsl).expect("translated above");
    let constants: naga::back::PipelineConstants = spec.constants.iter().cloned().collect();
    let (m, info) = naga::back::pipeline_constants::process_overrides(m, info, Some((naga::ShaderStage::Compute, &spec.entry)), &constants).unwrap();
    let unbound = PipelineSpec { read_only: Vec::new(), ..spec.clone() };
    assert!(to_msl(&m, &info, &unbound).is_err() && to_hlsl(&m, &info, &unbound).is_err(), "{}: translated without its bindings", key(spec));
    eprintln!("translated {} pipelines ({here} created in this process, {} from the log) from {} modules to MSL 2.4 and HLSL SM 6.0", all.len(), all.len() - here, modules.len());
    assert!(failures.is_empty(), "{} of {} pipelines failed to translate:\n{}", failures.len(), all.len(), failures.join("\n"));
}
