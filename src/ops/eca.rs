//! Launchers for shaders/eca.wgsl: the ECA attention core (and the dense ablation), forward and
//! backward, over pair lists indexed through an N×N cell map.

use super::dropout::Site;
use super::{launch_flat64, rows_cols};
use crate::error::{shape_err, Error, Result};
use crate::gpu::{grid, Access, AdapterKind, DType, Gpu, Imm, Kernel, Recorder, Shader, Tensor};

static SHADER: Shader = Shader { name: "eca", source: concat!(include_str!("../../shaders/workgroup_reduce.wgsl"), include_str!("../../shaders/counter_rng.wgsl"), include_str!("../../shaders/eca.wgsl")) };
use Access::{Read as R, Write as W};
static FORWARD: Kernel = Kernel { shader: &SHADER, entry: "eca_forward", bindings: &[R, R, R, R, W, W] };
static FORWARD_LANES: Kernel = Kernel { shader: &SHADER, entry: "eca_forward_lanes", bindings: &[R, R, R, R, W, W] };
static TERMS: Kernel = Kernel { shader: &SHADER, entry: "eca_terms", bindings: &[R, R, R, W] };
static BACKWARD_QUERY: Kernel = Kernel { shader: &SHADER, entry: "eca_backward_query", bindings: &[R, R, R, R, R, R, W] };
static BACKWARD_KEY: Kernel = Kernel { shader: &SHADER, entry: "eca_backward_key", bindings: &[R, R, R, R, R, R, W, W] };
// Only built where subgroups exist, hence its own module.
static SG_SHADER: Shader = Shader {
    name: "eca_subgroup",
    source: concat!(include_str!("../../shaders/workgroup_reduce.wgsl"), include_str!("../../shaders/counter_rng.wgsl"), include_str!("../../shaders/eca.wgsl"), include_str!("../../shaders/eca_subgroup.wgsl")),
};
static FORWARD_LINES: Kernel = Kernel { shader: &SG_SHADER, entry: "eca_forward_lines", bindings: &[R, R, R, R, W, W] };
static FORWARD_SG: Kernel = Kernel { shader: &SG_SHADER, entry: "eca_forward_sg", bindings: &[R, R, R, R, W, W] };
static BACKWARD_QUERY_SG: Kernel = Kernel { shader: &SG_SHADER, entry: "eca_backward_query_sg", bindings: &[R, R, R, R, R, R, W] };
static BACKWARD_KEY_SG: Kernel = Kernel { shader: &SG_SHADER, entry: "eca_backward_key_sg", bindings: &[R, R, R, R, R, R, W, W] };

/// Which implementation runs. `Auto` picks by adapter kind; tests name both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EcaKernel {
    Auto,
    /// A workgroup per (pair, head), slots in tiles with workgroup reductions: GPUs.
    Workgroup,
    /// A subgroup per (pair, head), features in registers, no barriers: CPU adapters.
    Subgroup,
    /// Forward: one invocation per (pair, head), for heads of at most 32 features (a multiple
    /// of 4) on CPU adapters; backward as `Auto`.
    Lanes,
    /// Forward of ECA (the dense ablations run `Lanes`): a subgroup per SG queries of one grid
    /// line, sharing the line's keys by shuffles; heads as `Lanes`, on adapters with subgroups;
    /// backward as `Auto`.
    Lines,
}

/// Largest head the lane forward holds in registers (eca.wgsl's `qv`, `acc`: 8 vec4s).
const LANES_MAX_DH: usize = 32;

/// Widest subgroup the line forward serves (shaders/eca_subgroup.wgsl calls `line_slot` for
/// lanes 0 to 15).
const LINES_MAX_SG: u32 = 16;

/// Which register forward runs, if any.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegisterForward {
    Lanes,
    /// With this subgroup size.
    Lines(usize),
}

/// Whether the forward runs `eca_forward_lanes` or `eca_forward_lines`: named, or `Auto` on
/// CPU adapters for heads they fit (lavapipe, demo checkpoint, dh = 16: the lane forward ran at
/// 3.5x the subgroup kernel's speed, and the line forward loads each key once per SG queries).
pub(crate) fn register_forward(gpu: &Gpu, kernel: EcaKernel, kind: Attention, d: usize, dh: usize) -> Result<Option<RegisterForward>> {
    let fits = d % 4 == 0 && dh % 4 == 0 && dh <= LANES_MAX_DH;
    let sg = gpu.subgroup_size()?.filter(|&s| s <= LINES_MAX_SG);
    // Lines serve ECA only; the dense ablations run the lane forward.
    let register = match (kind, sg) {
        (Attention::Eca, Some(s)) => RegisterForward::Lines(s as usize),
        _ => RegisterForward::Lanes,
    };
    match kernel {
        EcaKernel::Lanes | EcaKernel::Lines if !fits => shape_err("eca", format!("the register forwards need heads of a multiple of 4 and at most {LANES_MAX_DH} features and a width divisible by 4; got width {d}, heads of {dh}")),
        EcaKernel::Lines if sg.is_none() => shape_err("eca", format!("the line forward needs subgroups of at most {LINES_MAX_SG} lanes; this adapter has {:?}", gpu.subgroup_size()?)),
        EcaKernel::Lanes => Ok(Some(RegisterForward::Lanes)),
        EcaKernel::Lines => Ok(Some(register)),
        EcaKernel::Auto if fits && gpu.kind() == AdapterKind::Cpu => Ok(Some(register)),
        _ => Ok(None),
    }
}

/// The kernels and specialization constants for one launch: [forward, backward query, backward
/// key], the constants, and how many (pair, head) tasks one workgroup covers.
pub(crate) fn select(gpu: &Gpu, kernel: EcaKernel, kind: Attention, dh: usize) -> Result<([&'static Kernel; 3], Vec<(&'static str, f64)>, usize)> {
    let sg = super::subgroup_lanes(gpu).ok();
    let fits = |s: usize| dh % s == 0 && dh / s <= 64;
    let use_sg = match kernel {
        EcaKernel::Auto | EcaKernel::Lanes | EcaKernel::Lines => gpu.kind() == AdapterKind::Cpu && sg.is_some_and(fits),
        EcaKernel::Workgroup => false,
        EcaKernel::Subgroup => {
            if !sg.is_some_and(fits) {
                return shape_err("eca", format!("the subgroup kernel needs a subgroup size dividing 64 and {dh} (at most 64 features per lane); this adapter has {:?}", gpu.subgroup_size()?));
            }
            true
        }
    };
    if use_sg {
        let s = sg.expect("checked above");
        Ok(([&FORWARD_SG, &BACKWARD_QUERY_SG, &BACKWARD_KEY_SG], vec![("MODE", kind.mode()), ("FPL", (dh / s) as f64)], 64 / s))
    } else {
        Ok(([&FORWARD, &BACKWARD_QUERY, &BACKWARD_KEY], vec![("MODE", kind.mode()), ("WG", workgroup(gpu, dh) as f64)], 1))
    }
}

const NONE: u32 = u32::MAX;

/// Which pairs each pair attends to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attention {
    /// Extended Cross Attention: itself plus the four grid lines of its head (SPEC 3.3).
    Eca,
    /// Every valid pair of its document (the paper's "w/o ECA" ablation).
    Dense,
    /// `Dense` with a mask that keeps exactly ECA's key sets: equals `Eca` (a test of both).
    DenseEcaMask,
}

impl Attention {
    fn mode(self) -> f64 {
        match self {
            Attention::Eca => 0.0,
            Attention::Dense => 1.0,
            Attention::DenseEcaMask => 2.0,
        }
    }
}

/// Where every pair sits: its document and (head, tail) entity indices local to the document,
/// with documents' pairs contiguous and in batch order. Uploaded once per batch.
pub struct PairIndex {
    pub pairs: usize,
    pub docs: usize,
    /// Grid size N = max entities of a document.
    pub n: usize,
    /// Pairs of each document: (first row, count).
    pub doc_ranges: Vec<(usize, usize)>,
    /// Entities of each document (N_b).
    pub entity_counts: Vec<usize>,
    /// (doc, s, o) per pair row.
    pub coords: Vec<(u32, u32, u32)>,
    /// tab [P, 4] = (doc, s, o, 0), then docs [B, 2] = (first row, count) at `docs_at`, then the
    /// cell map [B, N, N] at `cell_at` (shaders/eca.wgsl's `index`).
    index: Tensor,
    docs_at: usize,
    cell_at: usize,
}

impl PairIndex {
    /// `entity_counts[b]` = N_b; `pairs` = (doc, s, o) rows grouped by document in batch order.
    pub fn new(gpu: &Gpu, entity_counts: &[usize], pairs: &[(u32, u32, u32)]) -> Result<PairIndex> {
        let b = entity_counts.len();
        let n = entity_counts.iter().copied().max().unwrap_or(0);
        let mut cell = vec![NONE; b * n * n];
        let mut ranges = vec![(0usize, 0usize); b];
        let mut last_doc = 0u32;
        for (i, &(d, s, o)) in pairs.iter().enumerate() {
            let (du, su, ou) = (d as usize, s as usize, o as usize);
            if du >= b || su >= entity_counts[du] || ou >= entity_counts[du] || s == o {
                return Err(Error::Input(format!("pair {i} = (doc {d}, {s}, {o}) is not a valid pair of distinct entities of its document")));
            }
            if d < last_doc {
                return Err(Error::Input(format!("pair {i}: pairs must be grouped by document in batch order")));
            }
            if ranges[du].1 == 0 {
                ranges[du].0 = i;
            }
            ranges[du].1 += 1;
            last_doc = d;
            let c = &mut cell[(du * n + su) * n + ou];
            if *c != NONE {
                return Err(Error::Input(format!("pair {i} = (doc {d}, {s}, {o}) occurs twice")));
            }
            *c = i as u32;
        }
        let mut index: Vec<u32> = pairs.iter().flat_map(|&(d, s, o)| [d, s, o, 0]).collect();
        let docs_at = index.len();
        index.extend(ranges.iter().flat_map(|&(a, c)| [a as u32, c as u32]));
        let cell_at = index.len();
        index.extend(cell);
        if index.is_empty() {
            index.push(NONE);
        }
        Ok(PairIndex {
            pairs: pairs.len(),
            docs: b,
            n,
            doc_ranges: ranges,
            entity_counts: entity_counts.to_vec(),
            coords: pairs.to_vec(),
            index: Tensor::from_u32(gpu, "pair_index", &[index.len()], &index)?,
            docs_at,
            cell_at,
        })
    }

    /// The grid of documents `docs` of this one (indices in batch order, increasing), as a batch
    /// of their own: their pairs keep their order, and each document its rows' relative order.
    pub fn subset(&self, gpu: &Gpu, docs: &[usize]) -> Result<PairIndex> {
        if let Some(w) = docs.windows(2).find(|w| w[0] >= w[1]) {
            return Err(Error::Input(format!("grid subset: documents must be increasing, got {} before {}", w[0], w[1])));
        }
        if let Some(&d) = docs.iter().find(|&&d| d >= self.docs) {
            return Err(Error::Input(format!("grid subset: document {d} is not in this grid of {} documents", self.docs)));
        }
        let counts: Vec<usize> = docs.iter().map(|&d| self.entity_counts[d]).collect();
        let pairs: Vec<(u32, u32, u32)> = docs
            .iter()
            .enumerate()
            .flat_map(|(j, &d)| {
                let (first, count) = self.doc_ranges[d];
                self.coords[first..first + count].iter().map(move |&(_, s, o)| (j as u32, s, o))
            })
            .collect();
        PairIndex::new(gpu, &counts, &pairs)
    }
}

/// Invocations per workgroup: also the slot tile. Each invocation owns up to 4 features of a
/// head, so dh ≤ 4·WG; CPU adapters get the smallest tile (fewer wasted lanes per barrier).
fn workgroup(gpu: &Gpu, dh: usize) -> usize {
    let floor = match gpu.kind() {
        AdapterKind::Cpu => 8,
        AdapterKind::Gpu => 64,
    };
    floor.max(dh.div_ceil(4).next_power_of_two())
}

fn check(idx: &PairIndex, heads: usize, ts: &[&Tensor]) -> Result<(usize, usize)> {
    let (p, d) = rows_cols(ts[0]);
    for t in ts {
        if rows_cols(t) != (p, d) || p != idx.pairs {
            return shape_err("eca", format!("`{}` {:?} is not [{} pairs, {d}]", t.name(), t.shape(), idx.pairs));
        }
    }
    if heads == 0 || d % heads != 0 || d / heads > 512 {
        return shape_err("eca", format!("width {d} does not split into {heads} heads of at most 512"));
    }
    Ok((p, d))
}

fn imm(idx: &PairIndex, d: usize, heads: usize, drop: Option<Site>) -> Result<Imm> {
    let im = Imm::new().u(idx.pairs).u(d).u(heads).u(idx.n).f(1.0 / ((d / heads) as f32).sqrt()).u(idx.docs_at).u(idx.cell_at);
    let im = match drop {
        Some(site) => {
            site.check("eca attention dropout")?;
            im.u((site.rng.seed & 0xffff_ffff) as usize).u((site.rng.seed >> 32) as usize).u(site.rng.offset as usize).f(site.p).f(1.0 / (1.0 - site.p))
        }
        None => im.u(0).u(0).u(0).f(0.0).f(1.0),
    };
    Ok(im.u(idx.docs))
}

/// out = per head, softmax over the attended pairs of (q·k/√dh + [self] 1) times v, the
/// probabilities dropped at `drop` when training; also the per-(pair, head) softmax max and sum
/// the backward needs.
#[allow(clippy::too_many_arguments)]
pub fn attention_forward(rec: &mut Recorder, idx: &PairIndex, kind: Attention, heads: usize, q: &Tensor, k: &Tensor, v: &Tensor, drop: Option<Site>) -> Result<(Tensor, Tensor)> {
    attention_forward_using(rec, EcaKernel::Auto, idx, kind, heads, q, k, v, drop)
}

#[allow(clippy::too_many_arguments)]
pub fn attention_forward_using(rec: &mut Recorder, kernel: EcaKernel, idx: &PairIndex, kind: Attention, heads: usize, q: &Tensor, k: &Tensor, v: &Tensor, drop: Option<Site>) -> Result<(Tensor, Tensor)> {
    let (p, d) = check(idx, heads, &[q, k, v])?;
    let out = Tensor::uninit(rec.gpu(), "eca_out", &[p, d], DType::F32)?;
    let stats = Tensor::uninit(rec.gpu(), "eca_stats", &[p, heads, 2], DType::F32)?;
    let bindings = [&idx.index, q, k, v, &out, &stats];
    let im = imm(idx, d, heads, drop)?;
    // WG sizes eca.wgsl's workgroup arrays, which the register forwards do not use.
    let consts = [("MODE", kind.mode()), ("DH", (d / heads) as f64), ("WG", workgroup(rec.gpu(), d / heads) as f64)];
    match register_forward(rec.gpu(), kernel, kind, d, d / heads)? {
        Some(RegisterForward::Lanes) => {
            let g = grid(rec.gpu(), (p * heads).div_ceil(64));
            rec.dispatch(&FORWARD_LANES, &consts, &bindings, &im, g)?;
            return Ok((out, stats));
        }
        Some(RegisterForward::Lines(sg)) => {
            let consts = [consts[0], consts[1], consts[2], ("SG", sg as f64)];
            let g = grid(rec.gpu(), heads * idx.docs * idx.n * idx.n.div_ceil(sg));
            rec.dispatch(&FORWARD_LINES, &consts, &bindings, &im, g)?;
            return Ok((out, stats));
        }
        None => {}
    }
    let (kernels, consts, per_group) = select(rec.gpu(), kernel, kind, d / heads)?;
    let g = grid(rec.gpu(), (p * heads).div_ceil(per_group));
    rec.dispatch(kernels[0], &consts, &bindings, &im, g)?;
    Ok((out, stats))
}

/// (dq, dk, dv) of `attention_forward` given its output, statistics and the output gradient,
/// with the forward's `drop`.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(rec: &mut Recorder, idx: &PairIndex, kind: Attention, heads: usize, q: &Tensor, k: &Tensor, v: &Tensor, out: &Tensor, stats: &Tensor, dout: &Tensor, drop: Option<Site>) -> Result<(Tensor, Tensor, Tensor)> {
    attention_backward_using(rec, EcaKernel::Auto, idx, kind, heads, q, k, v, out, stats, dout, drop)
}

#[allow(clippy::too_many_arguments)]
pub fn attention_backward_using(rec: &mut Recorder, kernel: EcaKernel, idx: &PairIndex, kind: Attention, heads: usize, q: &Tensor, k: &Tensor, v: &Tensor, out: &Tensor, stats: &Tensor, dout: &Tensor, drop: Option<Site>) -> Result<(Tensor, Tensor, Tensor)> {
    let (p, d) = check(idx, heads, &[q, k, v, out, dout])?;
    stats.expect_shape("eca backward", &[p, heads, 2])?;
    let gpu = rec.gpu().clone();
    let terms = Tensor::uninit(&gpu, "eca_terms", &[p, heads, 2], DType::F32)?;
    let im = imm(idx, d, heads, drop)?;
    launch_flat64(rec, &TERMS, &[out, dout, stats, &terms], &im, p * heads)?;
    let (kernels, consts, per_group) = select(&gpu, kernel, kind, d / heads)?;
    let g = grid(&gpu, (p * heads).div_ceil(per_group));
    let dq = Tensor::uninit(&gpu, "eca_dq", &[p, d], DType::F32)?;
    rec.dispatch(kernels[1], &consts, &[&idx.index, q, k, v, dout, &terms, &dq], &im, g)?;
    let dk = Tensor::uninit(&gpu, "eca_dk", &[p, d], DType::F32)?;
    let dv = Tensor::uninit(&gpu, "eca_dv", &[p, d], DType::F32)?;
    rec.dispatch(kernels[2], &consts, &[&idx.index, q, k, v, dout, &terms, &dk, &dv], &im, g)?;
    Ok((dq, dk, dv))
}
