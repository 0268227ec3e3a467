//! Launchers for shaders/softmax.wgsl: masked softmax and log-sum-exp pooling over row sets.

use super::embedding::{scatter_add_rows, RowScatter};
use super::{launch_flat, launch_rows, row_wg, rows_cols, subgroup_lanes};
use crate::error::{shape_err, Error, Result};
use crate::gpu::profile::Work;
use crate::gpu::{grid, Access, AdapterKind, DType, Gpu, Imm, Kernel, Recorder, Shader, Tensor};

static SHADER: Shader = Shader { name: "softmax", source: concat!(include_str!("../../shaders/workgroup_reduce.wgsl"), include_str!("../../shaders/softmax.wgsl")) };
const ROWS: &[Access] = &[Access::Read, Access::Read, Access::Write];
static FORWARD: Kernel = Kernel { shader: &SHADER, entry: "softmax_forward", bindings: ROWS };
static BACKWARD: Kernel = Kernel { shader: &SHADER, entry: "softmax_backward", bindings: ROWS };
static FORWARD_ROWS: Kernel = Kernel { shader: &SHADER, entry: "softmax_forward_rows", bindings: ROWS };
static BACKWARD_ROWS: Kernel = Kernel { shader: &SHADER, entry: "softmax_backward_rows", bindings: ROWS };
// Only built where subgroups exist, hence its own module.
static SUBGROUP_SHADER: Shader = Shader {
    name: "softmax_subgroup",
    source: concat!(include_str!("../../shaders/workgroup_reduce.wgsl"), include_str!("../../shaders/softmax.wgsl"), include_str!("../../shaders/softmax_subgroup.wgsl")),
};
static FORWARD_SUBGROUP: Kernel = Kernel { shader: &SUBGROUP_SHADER, entry: "softmax_forward_subgroup", bindings: ROWS };
static BACKWARD_SUBGROUP: Kernel = Kernel { shader: &SUBGROUP_SHADER, entry: "softmax_backward_subgroup", bindings: ROWS };

/// How a row kernel spreads a row over invocations. `Auto` picks by adapter kind; tests name
/// both so each is checked on every device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowKernel {
    Auto,
    /// One workgroup per row with a tree reduction: GPUs.
    Workgroup,
    /// One subgroup per row with subgroup reductions and no barriers: CPU adapters, where
    /// every barrier is a coroutine switch per invocation (2x the workgroup kernel on lavapipe).
    Subgroup,
    /// One invocation per row, vec4 loads, no reduction across invocations, an online max/sum:
    /// CPU adapters (2-3x the subgroup kernel on lavapipe). Needs a multiple of 4 columns.
    Rows,
}

impl RowKernel {
    pub(crate) fn resolve(self, gpu: &Gpu, cols: usize) -> Result<(RowKernel, u32)> {
        let sg = subgroup_lanes(gpu);
        let vec4 = cols % 4 == 0;
        Ok(match (self, gpu.kind(), sg) {
            (RowKernel::Auto, AdapterKind::Cpu, _) if vec4 => (RowKernel::Rows, 0),
            (RowKernel::Auto, AdapterKind::Cpu, Ok(sg)) => (RowKernel::Subgroup, sg as u32),
            (RowKernel::Auto, _, _) => (RowKernel::Workgroup, 0),
            (RowKernel::Subgroup, _, sg) => (RowKernel::Subgroup, sg? as u32),
            (RowKernel::Rows, _, _) if !vec4 => return shape_err("softmax", format!("the row-per-invocation softmax needs a multiple of 4 columns, not {cols}")),
            (k, _, _) => (k, 0),
        })
    }
}

/// The implementations of one row kernel: [workgroup, subgroup, one invocation per row].
fn launch(rec: &mut Recorder, kernel: RowKernel, kernels: [&Kernel; 3], bindings: &[&Tensor], imm: &Imm, (rows, cols): (usize, usize)) -> Result<()> {
    match kernel.resolve(rec.gpu(), cols)? {
        (RowKernel::Subgroup, sg) => rec.dispatch(kernels[1], &[], bindings, imm, grid(rec.gpu(), rows.div_ceil(64 / sg as usize))),
        (RowKernel::Rows, _) => rec.dispatch(kernels[2], &[], bindings, imm, grid(rec.gpu(), rows.div_ceil(64))),
        _ => launch_rows(rec, kernels[0], &[("WG", row_wg(rec.gpu()))], bindings, imm, rows),
    }
}
static LSE_FORWARD: Kernel = Kernel { shader: &SHADER, entry: "lse_pool_forward", bindings: &[Access::Read, Access::Read, Access::Read, Access::Write] };
static LSE_BACKWARD: Kernel = Kernel {
    shader: &SHADER,
    entry: "lse_pool_backward",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::Read, Access::Read, Access::Write],
};

/// An additive mask of shape [mask_rows, cols]; score row r uses mask row (r / div) % mask_rows.
pub struct Mask<'a> {
    pub mask: &'a Tensor,
    pub div: usize,
}

/// y = softmax(scale * x + mask) over the last dimension.
pub fn softmax(rec: &mut Recorder, x: &Tensor, mask: Option<Mask>, scale: f32) -> Result<Tensor> {
    softmax_using(rec, RowKernel::Auto, x, mask, scale)
}

pub fn softmax_using(rec: &mut Recorder, kernel: RowKernel, x: &Tensor, mask: Option<Mask>, scale: f32) -> Result<Tensor> {
    let (rows, cols) = rows_cols(x);
    let (mask_t, mask_rows, div) = match &mask {
        Some(m) => {
            let (mr, mc) = rows_cols(m.mask);
            if mc != cols || mr == 0 || m.div == 0 {
                return shape_err("softmax", format!("mask `{}` {:?} does not fit scores {:?}", m.mask.name(), m.mask.shape(), x.shape()));
            }
            (m.mask, mr, m.div)
        }
        None => (x, 1, 1),
    };
    let y = Tensor::uninit(rec.gpu(), "softmax", x.shape(), DType::F32)?;
    let imm = Imm::new().u(rows).u(cols).u(mask_rows).u(div).f(scale).u(mask.is_some() as usize);
    launch(rec, kernel, [&FORWARD, &FORWARD_SUBGROUP, &FORWARD_ROWS], &[x, mask_t, &y], &imm, (rows, cols))?;
    rec.work(Work::bytes(8.0 * x.numel() as f64));
    Ok(y)
}

/// dx = scale * y * (dy - sum(dy * y)), from the softmax output y.
pub fn softmax_backward(rec: &mut Recorder, y: &Tensor, dy: &Tensor, scale: f32) -> Result<Tensor> {
    softmax_backward_using(rec, RowKernel::Auto, y, dy, scale)
}

pub fn softmax_backward_using(rec: &mut Recorder, kernel: RowKernel, y: &Tensor, dy: &Tensor, scale: f32) -> Result<Tensor> {
    if y.shape() != dy.shape() {
        return shape_err("softmax_backward", format!("y {:?} and dy {:?} differ", y.shape(), dy.shape()));
    }
    let (rows, cols) = rows_cols(y);
    let dx = Tensor::uninit(rec.gpu(), "softmax_grad", y.shape(), DType::F32)?;
    let imm = Imm::new().u(rows).u(cols).u(1).u(1).f(scale).u(0);
    launch(rec, kernel, [&BACKWARD, &BACKWARD_SUBGROUP, &BACKWARD_ROWS], &[y, dy, &dx], &imm, (rows, cols))?;
    rec.work(Work::bytes(12.0 * y.numel() as f64));
    Ok(dx)
}

/// Variable-size sets of row indices into a [rows, dim] tensor (e.g. each entity's mention
/// rows), uploaded once and reused by forward and backward.
pub struct RowSets {
    pub sets: usize,
    pub rows: usize,
    offsets: Tensor,
    members: Tensor,
    member_set: Tensor,
    scatter: RowScatter,
}

impl RowSets {
    pub fn new(gpu: &Gpu, sets: &[Vec<u32>], rows: usize) -> Result<RowSets> {
        let mut offsets = vec![0u32];
        let mut members = Vec::new();
        let mut member_set = Vec::new();
        for (s, set) in sets.iter().enumerate() {
            for &r in set {
                if r as usize >= rows {
                    return Err(Error::Input(format!("row set {s} names row {r}, but there are only {rows} rows")));
                }
                members.push(r);
                member_set.push(s as u32);
            }
            offsets.push(members.len() as u32);
        }
        Ok(RowSets {
            sets: sets.len(),
            rows,
            offsets: Tensor::from_u32(gpu, "set_offsets", &[offsets.len()], &offsets)?,
            members: Tensor::from_u32(gpu, "set_members", &[members.len()], &members)?,
            member_set: Tensor::from_u32(gpu, "member_set", &[member_set.len()], &member_set)?,
            scatter: RowScatter::new(gpu, &members, rows)?,
        })
    }

    pub fn members(&self) -> usize {
        self.members.numel()
    }
}

/// pooled[s] = log sum over rows r of set s of exp(x[r]), element-wise; empty sets give 0.
pub fn lse_pool(rec: &mut Recorder, x: &Tensor, sets: &RowSets) -> Result<Tensor> {
    let (rows, dim) = rows_cols(x);
    if rows != sets.rows {
        return shape_err("lse_pool", format!("`{}` has {rows} rows, the row sets index {} rows", x.name(), sets.rows));
    }
    let out = Tensor::uninit(rec.gpu(), "lse_pool", &[sets.sets, dim], DType::F32)?;
    let imm = Imm::new().u(sets.sets).u(dim).u(sets.members());
    launch_flat(rec, &LSE_FORWARD, &[], &[x, &sets.offsets, &sets.members, &out], &imm, sets.sets * dim)?;
    Ok(out)
}

/// dx [rows, dim] of `lse_pool`, given its output `pooled` and upstream gradient `dpooled`.
pub fn lse_pool_backward(rec: &mut Recorder, x: &Tensor, sets: &RowSets, pooled: &Tensor, dpooled: &Tensor) -> Result<Tensor> {
    let (rows, dim) = rows_cols(x);
    if rows != sets.rows || pooled.shape() != [sets.sets, dim] || dpooled.shape() != pooled.shape() {
        return shape_err("lse_pool_backward", format!("x {:?}, pooled {:?}, dpooled {:?} do not fit {} sets", x.shape(), pooled.shape(), dpooled.shape(), sets.sets));
    }
    let dmember = Tensor::uninit(rec.gpu(), "lse_member_grad", &[sets.members(), dim], DType::F32)?;
    let imm = Imm::new().u(sets.sets).u(dim).u(sets.members());
    launch_flat(rec, &LSE_BACKWARD, &[], &[x, &sets.member_set, &sets.members, pooled, dpooled, &dmember], &imm, sets.members() * dim)?;
    // Zeroed inside the recording (not with Tensor::zeros, which submits on its own).
    let dx = Tensor::uninit(rec.gpu(), "lse_pool_grad", x.shape(), DType::F32)?;
    super::elementwise::fill(rec, &dx, 0.0)?;
    scatter_add_rows(rec, &dmember, &sets.scatter, &dx)?;
    Ok(dx)
}
