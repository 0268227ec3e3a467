//! Launchers for shaders/reduce.wgsl: row sums, column sums (bias gradients) and the global
//! squared gradient norm.

use super::{launch_flat, launch_rows, row_wg, rows_cols};
use crate::error::Result;
use crate::gpu::{grid, Access, DType, Imm, Kernel, Recorder, Shader, Tensor};

static SHADER: Shader = Shader { name: "reduce", source: concat!(include_str!("../../shaders/workgroup_reduce.wgsl"), include_str!("../../shaders/reduce.wgsl")) };
const BINDINGS: &[Access] = &[Access::Read, Access::Write];
static ROW_SUM: Kernel = Kernel { shader: &SHADER, entry: "row_sum", bindings: BINDINGS };
static COL_SUM: Kernel = Kernel { shader: &SHADER, entry: "col_sum", bindings: BINDINGS };
static SUMSQ: Kernel = Kernel { shader: &SHADER, entry: "sumsq", bindings: BINDINGS };

/// Rows summed per col_sum pass; long enough to amortize, short enough to spread over the GPU.
const CHUNK: usize = 64;
/// Elements per sumsq workgroup = WG * PER (PER = 16 in the shader).
fn sumsq_span(wg: f64) -> usize {
    wg as usize * 16
}

/// out[r] = sum of row r of x viewed as [rows, last dim].
pub fn row_sum(rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
    let (rows, cols) = rows_cols(x);
    let out = Tensor::uninit(rec.gpu(), "row_sum", &[rows], DType::F32)?;
    let imm = Imm::new().u(rows).u(cols).u(1).u(0);
    launch_rows(rec, &ROW_SUM, &[("WG", row_wg(rec.gpu()))], &[x, &out], &imm, rows)?;
    Ok(out)
}

/// out[c] = sum over rows of x[r, c] (x viewed as [rows, last dim]).
pub fn col_sum(rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
    let (mut rows, cols) = rows_cols(x);
    let mut cur = x.clone();
    loop {
        let chunks = rows.div_ceil(CHUNK).max(1);
        let out = Tensor::uninit(rec.gpu(), "col_sum", &[chunks, cols], DType::F32)?;
        let imm = Imm::new().u(rows).u(cols).u(CHUNK).u(0);
        launch_flat(rec, &COL_SUM, &[], &[&cur, &out], &imm, chunks * cols)?;
        cur = out;
        rows = chunks;
        if rows == 1 {
            return cur.reshape(&[cols]);
        }
    }
}

/// Sum of squares of all elements of all `tensors` (the squared global gradient norm), as a
/// [1] tensor that stays on the device: AdamW reads it for clipping.
pub fn sum_squares(rec: &mut Recorder, tensors: &[&Tensor]) -> Result<Tensor> {
    let wg = row_wg(rec.gpu());
    let span = sumsq_span(wg);
    let slots: Vec<usize> = tensors.iter().map(|t| t.numel().div_ceil(span)).collect();
    let total: usize = slots.iter().sum();
    let partial = Tensor::uninit(rec.gpu(), "sumsq_partial", &[1, total.max(1)], DType::F32)?;
    // Zeroed inside the recording, so a training step does not submit on its own.
    super::elementwise::fill(rec, &partial, 0.0)?;
    let mut offset = 0;
    for (t, &s) in tensors.iter().zip(&slots) {
        let imm = Imm::new().u(t.numel()).u(1).u(1).u(offset);
        let g = grid(rec.gpu(), s);
        rec.dispatch(&SUMSQ, &[("WG", wg)], &[t, &partial], &imm, g)?;
        offset += s;
    }
    row_sum(rec, &partial)
}
