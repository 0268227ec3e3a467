//! Typed launchers, one module per shader family, and `reference`: plain f64 CPU versions of
//! every op (forward and backward) that the tests hold the GPU kernels to.
//!
//! Launchers record into a `Recorder` and return new tensors (or write into the one given);
//! they check shapes and return `Error::Shape` instead of reading out of bounds.

pub mod adamw;
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

/// The subgroup size the one-subgroup-per-task kernels (softmax, ECA) run with: workgroups of
/// 64 invocations hold 64 / SG tasks, so SG must divide 64.
pub fn subgroup_lanes(gpu: &Gpu) -> Result<usize> {
    match matmul::subgroup_size(gpu)? {
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
