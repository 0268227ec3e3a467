//! Launchers for shaders/pair.wgsl: localized-context weights and the fused grouped bilinear
//! layer of the base module, with their backward passes.

use super::{launch_flat64, rows_cols};
use crate::error::{shape_err, Error, Result};
use crate::gpu::{Access, DType, Gpu, Imm, Kernel, Recorder, Shader, Tensor};

static SHADER: Shader = Shader { name: "pair", source: include_str!("../../shaders/pair.wgsl") };
use Access::{Read as R, Write as W};
static CONTEXT: Kernel = Kernel { shader: &SHADER, entry: "context_weights", bindings: &[R, R, W] };
static CONTEXT_BACK: Kernel = Kernel { shader: &SHADER, entry: "context_weights_back", bindings: &[R, R, R, W] };
static ENTITY_GRAD: Kernel = Kernel { shader: &SHADER, entry: "entity_attention_grad", bindings: &[R, R, R, R, W] };
static BILINEAR: Kernel = Kernel { shader: &SHADER, entry: "bilinear_forward", bindings: &[R, R, R, R, W] };
static BILINEAR_W: Kernel = Kernel { shader: &SHADER, entry: "bilinear_backward_w", bindings: &[R, R, R, W] };
static BILINEAR_Z: Kernel = Kernel { shader: &SHADER, entry: "bilinear_backward_z", bindings: &[R, R, R, R, W, W] };


/// Pair → (global head entity, global tail entity, document), and each entity's pairs, uploaded
/// once per batch.
pub struct PairEntities {
    pub pairs: usize,
    pub entities: usize,
    pe: Tensor,
    epairs: Tensor,
    elist: Tensor,
}

impl PairEntities {
    /// `pairs[i]` = (global head entity, global tail entity, document).
    pub fn new(gpu: &Gpu, entities: usize, pairs: &[(u32, u32, u32)]) -> Result<PairEntities> {
        let mut lists: Vec<Vec<(u32, u32)>> = vec![Vec::new(); entities];
        for (row, &(s, o, _)) in pairs.iter().enumerate() {
            if s as usize >= entities || o as usize >= entities {
                return Err(Error::Input(format!("pair {row} names entity {} but there are {entities}", s.max(o))));
            }
            lists[s as usize].push((row as u32, o));
            lists[o as usize].push((row as u32, s));
        }
        let mut epairs = Vec::new();
        let mut elist = Vec::new();
        for l in &lists {
            epairs.extend([(elist.len() / 2) as u32, l.len() as u32]);
            elist.extend(l.iter().flat_map(|&(r, o)| [r, o]));
        }
        let pe: Vec<u32> = pairs.iter().flat_map(|&(s, o, b)| [s, o, b]).collect();
        let up = |name: &str, v: &[u32]| if v.is_empty() { Tensor::from_u32(gpu, name, &[1], &[0]) } else { Tensor::from_u32(gpu, name, &[v.len()], v) };
        Ok(PairEntities { pairs: pairs.len(), entities, pe: up("pair_entities", &pe)?, epairs: up("entity_pairs", &epairs)?, elist: up("entity_pair_list", &elist)? })
    }
}

/// w [P, L]: each pair's normalized attention product over positions (SPEC 2.3), from entity
/// attention `ea` [Ne, H, L].
pub fn context_weights(rec: &mut Recorder, ea: &Tensor, pe: &PairEntities) -> Result<Tensor> {
    let (ne, h, l) = three(ea, "context_weights")?;
    if ne != pe.entities {
        return shape_err("context_weights", format!("entity attention has {ne} entities, the pairs index {}", pe.entities));
    }
    let w = Tensor::uninit(rec.gpu(), "context_weights", &[pe.pairs, l], DType::F32)?;
    launch_flat64(rec, &CONTEXT, &[ea, &pe.pe, &w], &Imm::new().u(pe.pairs).u(h).u(l).u(0).u(0), pe.pairs)?;
    Ok(w)
}

/// dea [Ne, H, L] from dw [P, L].
pub fn context_weights_backward(rec: &mut Recorder, ea: &Tensor, pe: &PairEntities, dw: &Tensor) -> Result<Tensor> {
    let (ne, h, l) = three(ea, "context_weights_backward")?;
    dw.expect_shape("context_weights_backward", &[pe.pairs, l])?;
    let dr = Tensor::uninit(rec.gpu(), "context_raw_grad", &[pe.pairs, l], DType::F32)?;
    launch_flat64(rec, &CONTEXT_BACK, &[ea, &pe.pe, dw, &dr], &Imm::new().u(pe.pairs).u(h).u(l).u(0).u(0), pe.pairs)?;
    let dea = Tensor::uninit(rec.gpu(), "entity_attention_grad", ea.shape(), DType::F32)?;
    let n = ne * h * l;
    launch_flat64(rec, &ENTITY_GRAD, &[&dr, ea, &pe.epairs, &pe.elist, &dea], &Imm::new().u(n).u(h).u(l).u(0).u(0), n)?;
    Ok(dea)
}

fn three(t: &Tensor, op: &'static str) -> Result<(usize, usize, usize)> {
    match *t.shape() {
        [a, b, c] => Ok((a, b, c)),
        _ => shape_err(op, format!("`{}` {:?} must be [entities, heads, L]", t.name(), t.shape())),
    }
}

fn bilinear_dims(zs: &Tensor, zo: &Tensor, w: &Tensor, block: usize) -> Result<(usize, usize, usize)> {
    let (p, e) = rows_cols(zs);
    if zo.shape() != zs.shape() || block == 0 || e % block != 0 || w.shape().len() != 2 || w.shape()[1] != e * block {
        return shape_err("bilinear", format!("zs {:?}, zo {:?}, W {:?} do not fit groups of {block}", zs.shape(), zo.shape(), w.shape()));
    }
    Ok((p, e, w.shape()[0]))
}

/// y [P, O] = bias + W · (zs ⊗ zo grouped in blocks of `block`), without forming the outer product.
pub fn bilinear(rec: &mut Recorder, zs: &Tensor, zo: &Tensor, w: &Tensor, bias: &Tensor, block: usize) -> Result<Tensor> {
    let (p, e, o) = bilinear_dims(zs, zo, w, block)?;
    bias.expect_shape("bilinear", &[o])?;
    let y = Tensor::uninit(rec.gpu(), "bilinear", &[p, o], DType::F32)?;
    launch_flat64(rec, &BILINEAR, &[zs, zo, w, bias, &y], &Imm::new().u(p).u(e).u(o).u(0).u(block), p * o)?;
    Ok(y)
}

/// (dzs, dzo, dW, dbias) of `bilinear`.
pub fn bilinear_backward(rec: &mut Recorder, zs: &Tensor, zo: &Tensor, w: &Tensor, dy: &Tensor, block: usize) -> Result<(Tensor, Tensor, Tensor, Tensor)> {
    let (p, e, o) = bilinear_dims(zs, zo, w, block)?;
    dy.expect_shape("bilinear_backward", &[p, o])?;
    let gpu = rec.gpu().clone();
    let dw = Tensor::uninit(&gpu, "bilinear_dw", w.shape(), DType::F32)?;
    launch_flat64(rec, &BILINEAR_W, &[zs, zo, dy, &dw], &Imm::new().u(p).u(e).u(o).u(0).u(block), w.numel())?;
    let dzs = Tensor::uninit(&gpu, "bilinear_dzs", zs.shape(), DType::F32)?;
    let dzo = Tensor::uninit(&gpu, "bilinear_dzo", zo.shape(), DType::F32)?;
    launch_flat64(rec, &BILINEAR_Z, &[zs, zo, w, dy, &dzs, &dzo], &Imm::new().u(p).u(e).u(o).u(0).u(block), p * e)?;
    let db = super::reduce::col_sum(rec, dy)?;
    Ok((dzs, dzo, dw, db))
}
