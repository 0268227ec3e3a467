//! Typed launchers, one module per shader family, and `reference`: plain f64 CPU versions of
//! every op (forward and backward) that the tests hold the GPU kernels to.
//!
//! Launchers record into a `Recorder` and return new tensors (or write into the one given);
//! they check shapes and return `Error::Shape` instead of reading out of bounds.

pub mod adamw;
pub mod attention;
pub mod dropout;
pub mod eca;
pub mod elementwise;
pub mod embedding;
pub mod layernorm;
pub mod loss;
pub mod matmul;
pub mod pair;
pub mod reduce;
pub mod reference;
pub mod softmax;

use crate::gpu::{grid, AdapterKind, Gpu, Imm, Kernel, Recorder, Tensor};
use crate::error::Result;

/// Invocations per workgroup for the row-reduction kernels (softmax, layernorm, reduce).
/// llvmpipe runs a workgroup's invocations as SIMD loops and makes every barrier a coroutine
/// switch, so CPU adapters get narrow workgroups; GPUs get enough lanes to hide latency.
pub(crate) fn row_wg(gpu: &Gpu) -> f64 {
    match gpu.kind() {
        AdapterKind::Cpu => 16.0,
        AdapterKind::Gpu => 128.0,
    }
}

/// Record a kernel that runs one invocation per element over `count` elements in
/// workgroups of 256 (the elementwise convention in the shader headers).
pub(crate) fn launch_flat(
    rec: &mut Recorder,
    kernel: &Kernel,
    constants: &[(&'static str, f64)],
    bindings: &[&Tensor],
    imm: &Imm,
    count: usize,
) -> Result<()> {
    let g = grid(rec.gpu(), count.div_ceil(256));
    rec.dispatch(kernel, constants, bindings, imm, g)
}

/// Record a kernel that runs one invocation per item over `count` items in workgroups of 64
/// (the per-row kernels of pair.wgsl and loss.wgsl, whose items each loop over a row).
pub(crate) fn launch_flat64(rec: &mut Recorder, kernel: &Kernel, bindings: &[&Tensor], imm: &Imm, count: usize) -> Result<()> {
    let g = grid(rec.gpu(), count.div_ceil(64));
    rec.dispatch(kernel, &[], bindings, imm, g)
}

/// Record a kernel that runs one workgroup per row.
pub(crate) fn launch_rows(
    rec: &mut Recorder,
    kernel: &Kernel,
    constants: &[(&'static str, f64)],
    bindings: &[&Tensor],
    imm: &Imm,
    rows: usize,
) -> Result<()> {
    let g = grid(rec.gpu(), rows);
    rec.dispatch(kernel, constants, bindings, imm, g)
}

/// The variant `Auto` picks for each kernel family on this adapter, for `docre info`: at a
/// BERT-base width (768 columns, heads of 64) and, where a shape can change it, at an odd one.
pub fn chosen_variants(gpu: &Gpu) -> Result<Vec<(&'static str, String)>> {
    use matmul::MatmulKernel as M;
    let sg = gpu.subgroup_size()?;
    let body = matmul::body(gpu, M::Auto)?;
    let mm = match body.kernel {
        M::Subgroup | M::SubgroupStrided => format!("subgroup, {} lanes, k by 4 (16-byte loads where rows are 4-aligned, 16-byte stores where C is too)", sg.unwrap_or(0)),
        M::Register => "register".into(),
        _ => "tiled".into(),
    };
    let rows = |k: softmax::RowKernel| format!("{k:?}").to_lowercase();
    let (sm, _) = softmax::RowKernel::Auto.resolve(gpu, 768)?;
    let (sm_odd, _) = softmax::RowKernel::Auto.resolve(gpu, 767)?;
    let ln = layernorm::row_kernel(gpu, softmax::RowKernel::Auto, 768)?;
    let ln_odd = layernorm::row_kernel(gpu, softmax::RowKernel::Auto, 767)?;
    let (_, eca_consts, per_group) = eca::select(gpu, eca::EcaKernel::Auto, eca::Attention::Eca, 64)?;
    let mut eca = if per_group > 1 { format!("subgroup, {} lanes ({} features per lane at dh = 64)", 64 / per_group, eca_consts.iter().find(|c| c.0 == "FPL").map_or(0.0, |c| c.1)) } else { "workgroup".into() };
    match eca::register_forward(gpu, eca::EcaKernel::Auto, eca::Attention::Eca, 64, 16)? {
        Some(eca::RegisterForward::Lanes) => eca.push_str("; forward with heads of up to 32 features: one invocation per (pair, head)"),
        Some(eca::RegisterForward::Lines(s)) => eca.push_str(&format!("; ECA forward with heads of up to 32 features: a subgroup per {s} queries of one grid line, sharing its keys by shuffles (the dense ablation: one invocation per (pair, head))")),
        None => {}
    }
    Ok(vec![
        ("matmul", mm.clone()),
        ("bilinear", match body.kernel {
            M::Subgroup | M::SubgroupStrided => format!("subgroup, {} lanes, k by 4 (16-byte loads where the block is a multiple of 4), operands formed on the fly", sg.unwrap_or(0)),
            _ => format!("{mm}, operands formed on the fly"),
        }),
        ("softmax", format!("{} ({} with a column count not a multiple of 4)", rows(sm), rows(sm_odd))),
        ("layernorm", format!("{} ({} with a column count not a multiple of 4)", rows(ln), rows(ln_odd))),
        ("eca", eca),
        ("tuning", {
            let t = gpu.tuning_settings();
            match t.policy {
                crate::gpu::tuning::Policy::Rule => "the rule above (DOCRE_TUNE=measure measures each shape class once)".to_string(),
                crate::gpu::tuning::Policy::Measure => format!("measured once per shape class, kept in {}", t.file.display()),
            }
        }),
    ])
}

/// The subgroup size the one-subgroup-per-task kernels (softmax, ECA) run with: workgroups of
/// 64 invocations hold 64 / SG tasks, so SG must divide 64.
pub fn subgroup_lanes(gpu: &Gpu) -> Result<usize> {
    match gpu.subgroup_size()? {
        Some(s) if 64 % s == 0 => Ok(s as usize),
        None => crate::error::shape_err("subgroup kernels", "this adapter has no subgroup operations"),
        Some(s) => crate::error::shape_err("subgroup kernels", format!("subgroups of {s} lanes do not divide a workgroup of 64")),
    }
}

/// Rows and columns of a tensor viewed as [prod(leading dims), last dim].
pub(crate) fn rows_cols(t: &Tensor) -> (usize, usize) {
    let cols = *t.shape().last().unwrap_or(&1);
    let rows = if cols == 0 { 0 } else { t.numel() / cols };
    (rows, cols)
}
