//! Launchers for shaders/embedding.wgsl: row gather and the deterministic row scatter-add.

use super::{launch_flat, rows_cols};
use crate::error::{shape_err, Error, Result};
use crate::gpu::{Access, DType, Gpu, Imm, Kernel, Recorder, Shader, Tensor};

static SHADER: Shader = Shader { name: "embedding", source: include_str!("../../shaders/embedding.wgsl") };
static GATHER: Kernel = Kernel { shader: &SHADER, entry: "gather_rows", bindings: &[Access::Read, Access::Read, Access::Write] };
static SCATTER: Kernel = Kernel {
    shader: &SHADER,
    entry: "scatter_add_rows",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::Read, Access::Write],
};

/// out[i] = table[ids[i]] for a [rows, dim] table and u32 ids; ids must be < rows (checked on
/// the host where they are made, see `RowScatter::new`).
pub fn gather_rows(rec: &mut Recorder, table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    ids.expect_dtype("gather_rows", DType::U32)?;
    let (rows, dim) = rows_cols(table);
    if rows == 0 {
        return shape_err("gather_rows", format!("table `{}` is empty", table.name()));
    }
    let out = Tensor::uninit(rec.gpu(), "gather", &[ids.numel(), dim], DType::F32)?;
    let imm = Imm::new().u(ids.numel()).u(dim).u(rows);
    launch_flat(rec, &GATHER, &[], &[table, ids, &out], &imm, ids.numel() * dim)?;
    Ok(out)
}

/// The inverse of a gather by `index`: source row j goes to destination row index[j]. Built on
/// the host as CSR (distinct targets, each with its source rows in ascending order), so the
/// GPU sums every destination row in a fixed order.
pub struct RowScatter {
    pub dst_rows: usize,
    pub sources: usize,
    offsets: Tensor,
    source_ids: Tensor,
    targets: Tensor,
}

impl RowScatter {
    pub fn new(gpu: &Gpu, index: &[u32], dst_rows: usize) -> Result<RowScatter> {
        let mut order: Vec<u32> = (0..index.len() as u32).collect();
        for (j, &t) in index.iter().enumerate() {
            if t as usize >= dst_rows {
                return Err(Error::Input(format!("index {j} is {t}, outside the {dst_rows} destination rows")));
            }
        }
        order.sort_by_key(|&j| (index[j as usize], j));
        let mut offsets = vec![0u32];
        let mut targets = Vec::new();
        for (pos, &j) in order.iter().enumerate() {
            let t = index[j as usize];
            if targets.last() != Some(&t) {
                if !targets.is_empty() {
                    offsets.push(pos as u32);
                }
                targets.push(t);
            }
        }
        if !targets.is_empty() {
            offsets.push(order.len() as u32);
        }
        Ok(RowScatter {
            dst_rows,
            sources: index.len(),
            offsets: Tensor::from_u32(gpu, "scatter_offsets", &[offsets.len()], &offsets)?,
            source_ids: Tensor::from_u32(gpu, "scatter_sources", &[order.len()], &order)?,
            targets: Tensor::from_u32(gpu, "scatter_targets", &[targets.len()], &targets)?,
        })
    }
}

/// dst[index[j]] += src[j] for every j (dst is [dst_rows, dim]). This is the embedding
/// backward (index = token ids, src = output gradient, dst = table gradient).
pub fn scatter_add_rows(rec: &mut Recorder, src: &Tensor, scatter: &RowScatter, dst: &Tensor) -> Result<()> {
    let (rows, dim) = rows_cols(src);
    let (drows, ddim) = rows_cols(dst);
    if rows != scatter.sources || drows != scatter.dst_rows || dim != ddim {
        return shape_err("scatter_add_rows", format!("src {:?} / dst {:?} do not fit a scatter of {} rows into {}", src.shape(), dst.shape(), scatter.sources, scatter.dst_rows));
    }
    let targets = scatter.targets.numel();
    let imm = Imm::new().u(targets).u(dim).u(drows);
    launch_flat(rec, &SCATTER, &[], &[src, &scatter.offsets, &scatter.source_ids, &scatter.targets, dst], &imm, targets * dim)
}
