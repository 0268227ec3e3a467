//! Launchers for shaders/pair.wgsl (localized-context weights) and shaders/bilinear.wgsl (the
//! fused grouped bilinear layer of the base module), with their backward passes.

use super::matmul::{self, gemm, Gemm, MatmulKernel, View};
use super::{launch_flat64, rows_cols};
use crate::error::{shape_err, Error, Result};
use crate::gpu::profile::Work;
use crate::gpu::{Access, DType, Gpu, Imm, Kernel, Recorder, Shader, Tensor};

static SHADER: Shader = Shader { name: "pair", source: include_str!("../../shaders/pair.wgsl") };
use Access::{Read as R, Write as W};
static CONTEXT: Kernel = Kernel { shader: &SHADER, entry: "context_weights", bindings: &[R, R, W] };
static CONTEXT_BACK: Kernel = Kernel { shader: &SHADER, entry: "context_weights_back", bindings: &[R, R, R, W] };
static ENTITY_GRAD: Kernel = Kernel { shader: &SHADER, entry: "entity_attention_grad", bindings: &[R, R, R, R, W] };

// The bilinear layer is the matmul bodies with operands formed on the fly (shaders/bilinear.wgsl).
static BILINEAR_SHADER: Shader = Shader { name: "bilinear", source: concat!(include_str!("../../shaders/bilinear.wgsl"), include_str!("../../shaders/matmul.wgsl")) };
// Separate modules: they only compile on devices with subgroup operations. The subgroup body
// with 16-byte operand loads where the block is a multiple of 4, else with scalar ones.
static BILINEAR_SUBGROUP_SHADER: Shader = Shader {
    name: "bilinear_subgroup",
    source: concat!(include_str!("../../shaders/bilinear.wgsl"), include_str!("../../shaders/bilinear_vec4.wgsl"), include_str!("../../shaders/matmul_store_scalar.wgsl"), include_str!("../../shaders/matmul_subgroup.wgsl")),
};
static BILINEAR_STRIDED_SHADER: Shader = Shader {
    name: "bilinear_subgroup_strided",
    source: concat!(include_str!("../../shaders/bilinear.wgsl"), include_str!("../../shaders/matmul_operands_scalar.wgsl"), include_str!("../../shaders/matmul_store_scalar.wgsl"), include_str!("../../shaders/matmul_subgroup.wgsl")),
};
const BILINEAR_BINDINGS: &[Access] = &[R, R, R, R, W];
static BILINEAR_REG: Kernel = Kernel { shader: &BILINEAR_SHADER, entry: "matmul_reg", bindings: BILINEAR_BINDINGS };
static BILINEAR_TILED: Kernel = Kernel { shader: &BILINEAR_SHADER, entry: "matmul_tiled", bindings: BILINEAR_BINDINGS };
static BILINEAR_SUBGROUP: Kernel = Kernel { shader: &BILINEAR_SUBGROUP_SHADER, entry: "matmul_subgroup", bindings: BILINEAR_BINDINGS };
static BILINEAR_STRIDED: Kernel = Kernel { shader: &BILINEAR_STRIDED_SHADER, entry: "matmul_subgroup", bindings: BILINEAR_BINDINGS };


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
    launch_flat64(rec, &CONTEXT, &[ea, &pe.pe, &w], &Imm::new().u(pe.pairs).u(h).u(l), pe.pairs)?;
    Ok(w)
}

/// dea [Ne, H, L] from dw [P, L].
pub fn context_weights_backward(rec: &mut Recorder, ea: &Tensor, pe: &PairEntities, dw: &Tensor) -> Result<Tensor> {
    let (ne, h, l) = three(ea, "context_weights_backward")?;
    dw.expect_shape("context_weights_backward", &[pe.pairs, l])?;
    let dr = Tensor::uninit(rec.gpu(), "context_raw_grad", &[pe.pairs, l], DType::F32)?;
    launch_flat64(rec, &CONTEXT_BACK, &[ea, &pe.pe, dw, &dr], &Imm::new().u(pe.pairs).u(h).u(l), pe.pairs)?;
    let dea = Tensor::uninit(rec.gpu(), "entity_attention_grad", ea.shape(), DType::F32)?;
    let n = ne * h * l;
    launch_flat64(rec, &ENTITY_GRAD, &[&dr, ea, &pe.epairs, &pe.elist, &dea], &Imm::new().u(n).u(h).u(l), n)?;
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
    let o = w.shape()[0];
    // The shader's f32 index division is exact below 2^22.
    if (e * block).max(o * block) >= 1 << 22 {
        return shape_err("bilinear", format!("E·K = {} and O·K = {} must stay below 2^22", e * block, o * block));
    }
    Ok((p, e, o))
}

/// One mode of shaders/bilinear.wgsl: C (m x n, `batch` groups) from x0..x3 into `out`.
#[allow(clippy::too_many_arguments)]
fn bilinear_gemm(rec: &mut Recorder, kernel: MatmulKernel, mode: u32, [m, n, k, batch]: [usize; 4], (e, o, block): (usize, usize, usize), inputs: [&Tensor; 4], out: &Tensor) -> Result<()> {
    // The vec4 operands step k by 4 inside one block, so they take K % 4 == 0, and read x0..x2
    // through vec4 views, which cannot reach a buffer's last elements unless it holds whole vec4s.
    let fits = block % 4 == 0 && inputs[..3].iter().all(|t| t.numel() % 4 == 0);
    let shape = [m, n, k, batch];
    let body = if kernel == MatmulKernel::Auto {
        let class = format!("bilinear mode{mode} {} K{block}{}", matmul::class_dims(m, n, k, batch), if fits { " v4" } else { "" });
        let mut scratch = None;
        matmul::tuned_body(rec.gpu(), class, |r, body| {
            let [x0, x1, x2, x3, out] = match &scratch {
                Some(s) => s,
                None => scratch.insert(matmul::zeros_like(r.gpu(), [inputs[0], inputs[1], inputs[2], inputs[3], out])?),
            };
            dispatch_bilinear(r, body, fits, mode, shape, (e, o, block), [x0, x1, x2, x3], out)
        })?
    } else {
        matmul::body(rec.gpu(), kernel)?
    };
    dispatch_bilinear(rec, &body, fits, mode, shape, (e, o, block), inputs, out)
}

#[allow(clippy::too_many_arguments)]
fn dispatch_bilinear(rec: &mut Recorder, body: &matmul::Body, fits: bool, mode: u32, [m, n, k, batch]: [usize; 4], (e, o, block): (usize, usize, usize), inputs: [&Tensor; 4], out: &Tensor) -> Result<()> {
    let entry = match body.kernel {
        MatmulKernel::Subgroup if fits => &BILINEAR_SUBGROUP,
        MatmulKernel::Subgroup | MatmulKernel::SubgroupStrided => &BILINEAR_STRIDED,
        MatmulKernel::Register => &BILINEAR_REG,
        _ => &BILINEAR_TILED,
    };
    let mut consts = vec![("MODE", mode as f64)];
    consts.extend(body.constants.iter().copied());
    let groups = body.groups(m, n, batch);
    let [x0, x1, x2, x3] = inputs;
    for (k0, kc) in matmul::k_chunks(k) {
        let imm = Imm::new().u(m).u(n).u(kc).u(e).u(o).u(k0).u(block).f(1.0 / block as f32).f(1.0 / (block * block) as f32);
        rec.dispatch(entry, &consts, &[x0, x1, x2, x3, out], &imm, groups)?;
        rec.work(Work::flops(2.0 * (m * n * kc * batch) as f64));
    }
    Ok(())
}

/// y [P, O] = bias + W · (zs ⊗ zo grouped in blocks of `block`), without forming the outer product.
pub fn bilinear(rec: &mut Recorder, zs: &Tensor, zo: &Tensor, w: &Tensor, bias: &Tensor, block: usize) -> Result<Tensor> {
    bilinear_using(rec, MatmulKernel::Auto, zs, zo, w, bias, block)
}

/// `bilinear` with a chosen matmul body (tests run each one).
pub fn bilinear_using(rec: &mut Recorder, kernel: MatmulKernel, zs: &Tensor, zo: &Tensor, w: &Tensor, bias: &Tensor, block: usize) -> Result<Tensor> {
    let (p, e, o) = bilinear_dims(zs, zo, w, block)?;
    bias.expect_shape("bilinear", &[o])?;
    let y = Tensor::uninit(rec.gpu(), "bilinear", &[p, o], DType::F32)?;
    bilinear_gemm(rec, kernel, 0, [p, o, e * block, 1], (e, o, block), [zs, zo, w, bias], &y)?;
    Ok(y)
}

/// (dzs, dzo, dW, dbias) of `bilinear`.
pub fn bilinear_backward(rec: &mut Recorder, zs: &Tensor, zo: &Tensor, w: &Tensor, dy: &Tensor, block: usize) -> Result<(Tensor, Tensor, Tensor, Tensor)> {
    bilinear_backward_using(rec, MatmulKernel::Auto, zs, zo, w, dy, block)
}

/// `bilinear_backward` with a chosen matmul body.
pub fn bilinear_backward_using(rec: &mut Recorder, kernel: MatmulKernel, zs: &Tensor, zo: &Tensor, w: &Tensor, dy: &Tensor, block: usize) -> Result<(Tensor, Tensor, Tensor, Tensor)> {
    let (p, e, o) = bilinear_dims(zs, zo, w, block)?;
    dy.expect_shape("bilinear_backward", &[p, o])?;
    let dw = Tensor::uninit(rec.gpu(), "bilinear_dw", w.shape(), DType::F32)?;
    bilinear_gemm(rec, kernel, 1, [o, e * block, p, 1], (e, o, block), [zs, zo, dy, dy], &dw)?;
    let (dzs, dzo) = bilinear_input_grads(rec, kernel, zs, zo, w, dy, block)?;
    let db = super::reduce::col_sum(rec, dy)?;
    Ok((dzs, dzo, dw, db))
}

/// (dzs, dzo) of `bilinear`: the part of its backward that a frozen weight still needs.
pub fn bilinear_input_grads(rec: &mut Recorder, kernel: MatmulKernel, zs: &Tensor, zo: &Tensor, w: &Tensor, dy: &Tensor, block: usize) -> Result<(Tensor, Tensor)> {
    let (p, e, o) = bilinear_dims(zs, zo, w, block)?;
    dy.expect_shape("bilinear_backward", &[p, o])?;
    let dzs = Tensor::uninit(rec.gpu(), "bilinear_dzs", zs.shape(), DType::F32)?;
    let dzo = Tensor::uninit(rec.gpu(), "bilinear_dzo", zo.shape(), DType::F32)?;
    let per_group = [p, block, o * block, e / block];
    bilinear_gemm(rec, kernel, 2, per_group, (e, o, block), [zo, w, dy, dy], &dzs)?;
    bilinear_gemm(rec, kernel, 3, per_group, (e, o, block), [zs, w, dy, dy], &dzo)?;
    Ok((dzs, dzo))
}

/// ‖dW‖² of `bilinear` without forming dW [O, E·K]: with A the grouped outer product,
/// dW = dyᵀA, so ‖dW‖² = Σ_{p,q} (dy_p·dy_q)(A_p·A_q) and A_p·A_q = Σ_g (zs_pg·zs_qg)(zo_pg·zo_qg).
/// That is 2·P²·(2E + O) FLOPs against dW's 2·P·O·E·K: the cheaper way while P < E·K/3. Where
/// the weight is frozen and its gradient only feeds the clipping norm, this is all that is
/// needed. Rows of the [P, P] Gram matrices are taken in chunks that fit one binding.
pub fn bilinear_weight_grad_sq(rec: &mut Recorder, zs: &Tensor, zo: &Tensor, dy: &Tensor, block: usize) -> Result<Tensor> {
    use super::elementwise::{accumulate, fill, mul};
    let (p, e) = rows_cols(zs);
    let (_, o) = rows_cols(dy);
    if zo.shape() != zs.shape() || dy.shape() != [p, o] || block == 0 || e % block != 0 {
        return shape_err("bilinear_weight_grad_sq", format!("zs {:?}, zo {:?}, dy {:?} do not fit groups of {block}", zs.shape(), zo.shape(), dy.shape()));
    }
    let gpu = rec.gpu().clone();
    let total = Tensor::uninit(&gpu, "bilinear_dw_sq", &[1], DType::F32)?;
    fill(rec, &total, 0.0)?;
    let limit = (gpu.limits().max_storage_buffer_binding_size as usize / 4).min(1 << 24);
    let rows = (limit / p.max(1)).clamp(1, p.max(1));
    let v = |offset: usize, ld: usize, trans: bool| View { offset, ld, s1: 0, s2: 0, trans };
    let mut r0 = 0;
    while r0 < p {
        let r = rows.min(p - r0);
        let gram = |rec: &mut Recorder, x: &Tensor, col: usize, width: usize, ld: usize| -> Result<Tensor> {
            let out = Tensor::uninit(&gpu, "bilinear_gram", &[r, p], DType::F32)?;
            let g = Gemm { m: r, n: p, k: width, batch1: 1, batch2: 1, a: v(r0 * ld + col, ld, false), b: v(col, ld, true), c: v(0, p, false), alpha: 1.0, accumulate: false };
            gemm(rec, MatmulKernel::Auto, &g, x, x, None, &out)?;
            Ok(out)
        };
        let s = Tensor::uninit(&gpu, "bilinear_outer_gram", &[r, p], DType::F32)?;
        fill(rec, &s, 0.0)?;
        for g in 0..e / block {
            let gs = gram(rec, zs, g * block, block, e)?;
            let go = gram(rec, zo, g * block, block, e)?;
            let both = mul(rec, &gs, &go)?;
            accumulate(rec, &s, &both, 1.0)?;
        }
        let d = gram(rec, dy, 0, o, o)?;
        let prod = mul(rec, &s, &d)?;
        let part = super::reduce::row_sum(rec, &prod.reshape(&[1, r * p])?)?;
        accumulate(rec, &total, &part, 1.0)?;
        r0 += r;
    }
    Ok(total)
}
