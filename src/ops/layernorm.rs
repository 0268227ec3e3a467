//! Launchers for shaders/layernorm.wgsl.

use super::{launch_rows, row_wg, rows_cols};
use crate::error::{shape_err, Result};
use crate::gpu::profile::Work;
use crate::gpu::{grid, Access, DType, Imm, Kernel, Recorder, Shader, Tensor};

static SHADER: Shader = Shader { name: "layernorm", source: concat!(include_str!("../../shaders/workgroup_reduce.wgsl"), include_str!("../../shaders/layernorm.wgsl")) };
static FORWARD: Kernel = Kernel { shader: &SHADER, entry: "layernorm_forward", bindings: &[Access::Read, Access::Read, Access::Read, Access::Write, Access::Write] };
static BACKWARD_INPUT: Kernel = Kernel {
    shader: &SHADER,
    entry: "layernorm_backward_input",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::Read, Access::Write],
};
static BACKWARD_PARAMS: Kernel = Kernel { shader: &SHADER, entry: "layernorm_backward_params", bindings: &[Access::Read, Access::Read, Access::Read, Access::Write, Access::Write] };

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

pub fn layernorm(rec: &mut Recorder, x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f32) -> Result<LayerNormOut> {
    let (rows, cols) = check("layernorm", x, gamma)?;
    check("layernorm", x, beta)?;
    let y = Tensor::uninit(rec.gpu(), "layernorm", x.shape(), DType::F32)?;
    let stats = Tensor::uninit(rec.gpu(), "layernorm_stats", &[rows, 2], DType::F32)?;
    let imm = Imm::new().u(rows).u(cols).f(eps);
    launch_rows(rec, &FORWARD, &[("WG", row_wg(rec.gpu()))], &[x, gamma, beta, &y, &stats], &imm, rows)?;
    rec.work(Work::bytes(8.0 * x.numel() as f64));
    Ok(LayerNormOut { y, stats })
}

pub struct LayerNormGrads {
    pub dx: Tensor,
    pub dgamma: Tensor,
    pub dbeta: Tensor,
}

pub fn layernorm_backward(rec: &mut Recorder, x: &Tensor, gamma: &Tensor, stats: &Tensor, dy: &Tensor) -> Result<LayerNormGrads> {
    let (rows, cols) = check("layernorm_backward", x, gamma)?;
    if dy.shape() != x.shape() || stats.shape() != [rows, 2] {
        return shape_err("layernorm_backward", format!("x {:?}, dy {:?}, stats {:?} do not fit", x.shape(), dy.shape(), stats.shape()));
    }
    let dx = Tensor::uninit(rec.gpu(), "layernorm_dx", x.shape(), DType::F32)?;
    let imm = Imm::new().u(rows).u(cols).f(0.0);
    launch_rows(rec, &BACKWARD_INPUT, &[("WG", row_wg(rec.gpu()))], &[x, gamma, dy, stats, &dx], &imm, rows)?;
    rec.work(Work::bytes(12.0 * x.numel() as f64));
    let dgamma = Tensor::uninit(rec.gpu(), "layernorm_dgamma", gamma.shape(), DType::F32)?;
    let dbeta = Tensor::uninit(rec.gpu(), "layernorm_dbeta", gamma.shape(), DType::F32)?;
    let g = grid(rec.gpu(), cols.div_ceil(64));
    rec.dispatch(&BACKWARD_PARAMS, &[], &[x, dy, stats, &dgamma, &dbeta], &imm, g)?;
    rec.work(Work::bytes(8.0 * x.numel() as f64));
    Ok(LayerNormGrads { dx, dgamma, dbeta })
}
