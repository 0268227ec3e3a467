//! Launchers for shaders/encoder_attention.wgsl: the encoder's self-attention fused for
//! evaluation (no score or probability tensors), and the probabilities of chosen query rows
//! from its statistics. Training keeps the unfused path (bert.rs), whose probabilities the
//! backward reads.

use crate::error::{shape_err, Result};
use crate::gpu::profile::Work;
use crate::gpu::{grid, Access, DType, Gpu, Imm, Kernel, Recorder, Shader, Tensor};

static SHADER: Shader = Shader { name: "encoder_attention", source: include_str!("../../shaders/encoder_attention.wgsl") };
use Access::{Read as R, Write as W};
static LINES: Kernel = Kernel { shader: &SHADER, entry: "attention_lines", bindings: &[R, R, R, R, W, W] };
static ROWS: Kernel = Kernel { shader: &SHADER, entry: "attention_rows", bindings: &[R, R, R, R, R, W] };

/// Widest subgroup `attention_lines` serves (it calls key_score / key_value for lanes 0 to 15).
const MAX_SG: u32 = 16;
/// Largest head it holds in registers (16 vec4s per row).
const MAX_DH: usize = 64;

/// The subgroup size the fused attention runs with on `gpu` for width `d` and heads of `dh`, or
/// why it cannot run there.
pub fn fused_lanes(gpu: &Gpu, d: usize, dh: usize) -> std::result::Result<u32, String> {
    if d % 4 != 0 || dh % 4 != 0 || dh == 0 || dh > MAX_DH {
        return Err(format!("the fused attention needs a width and heads of multiples of 4, heads of at most {MAX_DH} features; got width {d}, heads of {dh}"));
    }
    match gpu.subgroup_size().map_err(|e| e.to_string())? {
        Some(s) if s <= MAX_SG => Ok(s),
        other => Err(format!("the fused attention needs subgroups of at most {MAX_SG} lanes; this adapter has {other:?}")),
    }
}

/// Self-attention over `segments` segments of `w` token rows each: Q, K, V [segments·w, d] with
/// `heads` heads, keys of segment s its first `seg_len[s]` rows. Returns the context
/// [segments·w, d] and the softmax statistics [segments·w, heads, 2] that `attention_rows` reads.
#[allow(clippy::too_many_arguments)]
pub fn fused_attention(rec: &mut Recorder, q: &Tensor, k: &Tensor, v: &Tensor, seg_len: &Tensor, w: usize, heads: usize, scale: f32) -> Result<(Tensor, Tensor)> {
    let (rows, d, segments) = check(q, &[k, v], seg_len, w, heads)?;
    let sg = fused_lanes(rec.gpu(), d, d / heads).or_else(|why| shape_err("fused attention", why))? as usize;
    let out = Tensor::uninit(rec.gpu(), "attention_context", &[rows, d], DType::F32)?;
    let stats = Tensor::uninit(rec.gpu(), "attention_stats", &[rows, heads, 2], DType::F32)?;
    let imm = Imm::new().u(w).u(heads).u(d).u(segments).f(scale);
    let consts = [("SG", sg as f64), ("DH", (d / heads) as f64)];
    let g = grid(rec.gpu(), segments * heads * w.div_ceil(sg));
    rec.dispatch(&LINES, &consts, &[q, k, v, seg_len, &out, &stats], &imm, g)?;
    rec.work(Work::flops(4.0 * (segments * heads * w * w * (d / heads)) as f64));
    Ok((out, stats))
}

/// Probabilities of query rows `rows` (token rows of `fused_attention`'s layout, a u32 tensor)
/// from its Q, K and statistics: [rows · heads, w], row r·heads + h for rows[r] and head h.
#[allow(clippy::too_many_arguments)]
pub fn attention_rows(rec: &mut Recorder, q: &Tensor, k: &Tensor, stats: &Tensor, seg_len: &Tensor, rows: &Tensor, w: usize, heads: usize, scale: f32) -> Result<Tensor> {
    let (tokens, d, _) = check(q, &[k], seg_len, w, heads)?;
    stats.expect_shape("attention rows", &[tokens, heads, 2])?;
    if rows.dtype() != DType::U32 || rows.shape().len() != 1 {
        return shape_err("attention rows", format!("the row list `{}` must be a u32 vector, not {:?} {:?}", rows.name(), rows.dtype(), rows.shape()));
    }
    let r = rows.numel();
    let probs = Tensor::uninit(rec.gpu(), "attention_rows", &[r * heads, w], DType::F32)?;
    let imm = Imm::new().u(w).u(heads).u(d).u(r).f(scale);
    // The module holds subgroup operations, so it compiles only where attention_lines runs.
    fused_lanes(rec.gpu(), d, d / heads).or_else(|why| shape_err("attention rows", why))?;
    let g = grid(rec.gpu(), (r * heads).div_ceil(64));
    rec.dispatch(&ROWS, &[("DH", (d / heads) as f64)], &[q, k, stats, seg_len, rows, &probs], &imm, g)?;
    Ok(probs)
}

/// (token rows, width, segments) after checking the shared inputs.
fn check(q: &Tensor, others: &[&Tensor], seg_len: &Tensor, w: usize, heads: usize) -> Result<(usize, usize, usize)> {
    let (rows, d) = match q.shape() {
        [rows, d] => (*rows, *d),
        s => return shape_err("fused attention", format!("Q must be [tokens, width], not {s:?}")),
    };
    for t in others {
        t.expect_shape("fused attention", &[rows, d])?;
    }
    if w == 0 || rows % w != 0 || heads == 0 || d % heads != 0 {
        return shape_err("fused attention", format!("{rows} token rows of width {d} do not split into segments of {w} rows and {heads} heads"));
    }
    let segments = rows / w;
    seg_len.expect_shape("fused attention (segment lengths)", &[segments])?;
    if seg_len.dtype() != DType::U32 {
        return shape_err("fused attention", format!("segment lengths `{}` must be u32", seg_len.name()));
    }
    Ok((rows, d, segments))
}
