//! Launchers for shaders/layernorm.wgsl.

use super::{launch_rows, row_wg, rows_cols};
use super::elementwise::add;
use crate::error::{shape_err, Result};
use crate::gpu::profile::Work;
use super::softmax::RowKernel;
use crate::gpu::{grid, Access, AdapterKind, DType, Gpu, Imm, Kernel, Recorder, Shader, Tensor};

static SHADER: Shader = Shader { name: "layernorm", source: concat!(include_str!("../../shaders/workgroup_reduce.wgsl"), include_str!("../../shaders/layernorm.wgsl")) };
static FORWARD: Kernel = Kernel { shader: &SHADER, entry: "layernorm_forward", bindings: &[Access::Read, Access::Read, Access::Read, Access::Write, Access::Write] };
static BACKWARD_INPUT: Kernel = Kernel {
    shader: &SHADER,
    entry: "layernorm_backward_input",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::Read, Access::Write],
};
static FORWARD_ROWS: Kernel = Kernel { shader: &SHADER, entry: "layernorm_forward_rows", bindings: &[Access::Read, Access::Read, Access::Read, Access::Write, Access::Write] };
static RESIDUAL_ROWS: Kernel = Kernel {
    shader: &SHADER,
    entry: "layernorm_residual_rows",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::Write, Access::Write, Access::Read, Access::Write],
};
/// Widest row `layernorm_residual_rows` holds in registers, in vec4s (the shader's `Row`).
const RESIDUAL_MAX_COLS4: usize = 32;
static BACKWARD_INPUT_ROWS: Kernel = Kernel {
    shader: &SHADER,
    entry: "layernorm_backward_input_rows",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::Read, Access::Write],
};
static BACKWARD_PARAMS: Kernel = Kernel { shader: &SHADER, entry: "layernorm_backward_params", bindings: &[Access::Read, Access::Read, Access::Read, Access::Write, Access::Write] };
static BACKWARD_PARAMS4: Kernel = Kernel { shader: &SHADER, entry: "layernorm_backward_params4", bindings: &[Access::Read, Access::Read, Access::Read, Access::Write, Access::Write] };

/// Output and the per-row (mean, rstd) the backward needs.
pub struct LayerNormOut {
    pub y: Tensor,
    pub stats: Tensor,
}

fn check(op: &'static str, x: &Tensor, gamma: &Tensor) -> Result<(usize, usize)> {
    let (rows, cols) = rows_cols(x);
    if gamma.numel() != cols {
        return shape_err(op, format!("`{}` has {} elements, rows of `{}` {:?} have {cols}", gamma.name(), gamma.numel(), x.name(), x.shape()));
    }
    Ok((rows, cols))
}

/// Which row kernel runs: `Workgroup` (GPUs), `Rows` (CPU adapters, a multiple of 4
/// columns), `Auto` to choose by adapter kind and shape. There is no subgroup variant.
pub(crate) fn row_kernel(gpu: &Gpu, kernel: RowKernel, cols: usize) -> Result<RowKernel> {
    match kernel {
        RowKernel::Auto if gpu.kind() == AdapterKind::Cpu && cols % 4 == 0 => Ok(RowKernel::Rows),
        RowKernel::Auto | RowKernel::Workgroup => Ok(RowKernel::Workgroup),
        RowKernel::Rows if cols % 4 == 0 => Ok(RowKernel::Rows),
        RowKernel::Rows => shape_err("layernorm", format!("the row-per-invocation layernorm needs a multiple of 4 columns, not {cols}")),
        RowKernel::Subgroup => shape_err("layernorm", "layernorm has no subgroup variant"),
    }
}

fn launch(rec: &mut Recorder, kernel: RowKernel, [wg, per_row]: [&Kernel; 2], bindings: &[&Tensor], imm: &Imm, rows: usize) -> Result<()> {
    match kernel {
        RowKernel::Rows => rec.dispatch(per_row, &[], bindings, imm, grid(rec.gpu(), rows.div_ceil(64))),
        _ => launch_rows(rec, wg, &[("WG", row_wg(rec.gpu()))], bindings, imm, rows),
    }
}

pub fn layernorm(rec: &mut Recorder, x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f32) -> Result<LayerNormOut> {
    layernorm_using(rec, RowKernel::Auto, x, gamma, beta, eps)
}

/// `layernorm` with a chosen row kernel (tests run each).
pub fn layernorm_using(rec: &mut Recorder, kernel: RowKernel, x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f32) -> Result<LayerNormOut> {
    let (rows, cols) = check("layernorm", x, gamma)?;
    let kernel = row_kernel(rec.gpu(), kernel, cols)?;
    check("layernorm", x, beta)?;
    let y = Tensor::uninit(rec.gpu(), "layernorm", x.shape(), DType::F32)?;
    let stats = Tensor::uninit(rec.gpu(), "layernorm_stats", &[rows, 2], DType::F32)?;
    let imm = Imm::new().u(rows).u(cols).f(eps);
    match kernel {
        RowKernel::Rows => rec.dispatch(&FORWARD_ROWS, &[("COLS4", (cols / 4) as f64)], &[x, gamma, beta, &y, &stats], &imm, grid(rec.gpu(), rows.div_ceil(64)))?,
        _ => launch_rows(rec, &FORWARD, &[("WG", row_wg(rec.gpu()))], &[x, gamma, beta, &y, &stats], &imm, rows)?,
    }
    rec.work(Work::bytes(8.0 * x.numel() as f64));
    Ok(LayerNormOut { y, stats })
}

/// LayerNorm of a + b (a residual sum): its output, and with `keep_sum` the sum, which training
/// keeps for the backward. One pass where the row kernel runs and rows have at most 128 columns
/// (`layernorm_residual_rows`); otherwise an add and the LayerNorm.
pub fn add_layernorm(rec: &mut Recorder, a: &Tensor, b: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f32, keep_sum: bool) -> Result<(LayerNormOut, Option<Tensor>)> {
    add_layernorm_using(rec, RowKernel::Auto, a, b, gamma, beta, eps, keep_sum)
}

/// `add_layernorm` with a chosen row kernel (tests run each).
#[allow(clippy::too_many_arguments)]
pub fn add_layernorm_using(rec: &mut Recorder, kernel: RowKernel, a: &Tensor, b: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f32, keep_sum: bool) -> Result<(LayerNormOut, Option<Tensor>)> {
    let (rows, cols) = check("add_layernorm", a, gamma)?;
    check("add_layernorm", a, beta)?;
    if b.shape() != a.shape() {
        return shape_err("add_layernorm", format!("`{}` {:?} and `{}` {:?} differ", a.name(), a.shape(), b.name(), b.shape()));
    }
    if row_kernel(rec.gpu(), kernel, cols)? != RowKernel::Rows || cols / 4 > RESIDUAL_MAX_COLS4 {
        let sum = add(rec, a, b)?;
        let out = layernorm_using(rec, kernel, &sum, gamma, beta, eps)?;
        return Ok((out, keep_sum.then_some(sum)));
    }
    let y = Tensor::uninit(rec.gpu(), "layernorm", a.shape(), DType::F32)?;
    let stats = Tensor::uninit(rec.gpu(), "layernorm_stats", &[rows, 2], DType::F32)?;
    // The sum's binding is always there; without keep_sum nothing writes it.
    let sum = Tensor::uninit(rec.gpu(), "residual_sum", if keep_sum { a.shape() } else { &[4] }, DType::F32)?;
    let imm = Imm::new().u(rows).u(cols).f(eps);
    let consts = [("COLS4", (cols / 4) as f64), ("KEEP_SUM", keep_sum as u32 as f64)];
    rec.dispatch(&RESIDUAL_ROWS, &consts, &[a, gamma, beta, &y, &stats, b, &sum], &imm, grid(rec.gpu(), rows.div_ceil(64)))?;
    rec.work(Work::bytes((12.0 + 4.0 * keep_sum as u32 as f64) * a.numel() as f64));
    Ok((LayerNormOut { y, stats }, keep_sum.then_some(sum)))
}

pub struct LayerNormGrads {
    pub dx: Tensor,
    pub dgamma: Tensor,
    pub dbeta: Tensor,
}

pub fn layernorm_backward(rec: &mut Recorder, x: &Tensor, gamma: &Tensor, stats: &Tensor, dy: &Tensor) -> Result<LayerNormGrads> {
    layernorm_backward_using(rec, RowKernel::Auto, x, gamma, stats, dy)
}

/// `layernorm_backward` with a chosen row kernel for the input gradient.
pub fn layernorm_backward_using(rec: &mut Recorder, kernel: RowKernel, x: &Tensor, gamma: &Tensor, stats: &Tensor, dy: &Tensor) -> Result<LayerNormGrads> {
    let (rows, cols) = check("layernorm_backward", x, gamma)?;
    let kernel = row_kernel(rec.gpu(), kernel, cols)?;
    if dy.shape() != x.shape() || stats.shape() != [rows, 2] {
        return shape_err("layernorm_backward", format!("x {:?}, dy {:?}, stats {:?} do not fit", x.shape(), dy.shape(), stats.shape()));
    }
    let dx = Tensor::uninit(rec.gpu(), "layernorm_dx", x.shape(), DType::F32)?;
    let imm = Imm::new().u(rows).u(cols).f(0.0);
    launch(rec, kernel, [&BACKWARD_INPUT, &BACKWARD_INPUT_ROWS], &[x, gamma, dy, stats, &dx], &imm, rows)?;
    rec.work(Work::bytes(12.0 * x.numel() as f64));
    let dgamma = Tensor::uninit(rec.gpu(), "layernorm_dgamma", gamma.shape(), DType::F32)?;
    let dbeta = Tensor::uninit(rec.gpu(), "layernorm_dbeta", gamma.shape(), DType::F32)?;
    let (entry, per) = if kernel == RowKernel::Rows { (&BACKWARD_PARAMS4, 4) } else { (&BACKWARD_PARAMS, 1) };
    rec.dispatch(entry, &[], &[x, dy, stats, &dgamma, &dbeta], &imm, grid(rec.gpu(), cols.div_ceil(64 * per)))?;
    rec.work(Work::bytes(8.0 * x.numel() as f64));
    Ok(LayerNormGrads { dx, dgamma, dbeta })
}
