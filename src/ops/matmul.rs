//! Launchers for shaders/matmul.wgsl: the strided batched GEMM and the linear-layer helpers
//! built on it (forward, input gradient, weight gradient all reduce to one GEMM each).

use super::reduce;
use crate::error::{shape_err, Result};
use crate::gpu::profile::Work;
use crate::gpu::{tuning, Access, AdapterKind, DType, Gpu, Imm, Kernel, Recorder, Shader, Tensor};

static SHADER: Shader = Shader { name: "matmul", source: concat!(include_str!("../../shaders/matmul_common.wgsl"), include_str!("../../shaders/matmul.wgsl")) };
// Separate modules: they only compile on devices with subgroup operations. The subgroup body
// with 16-byte operand loads, one pipeline per layout (TRANS_A, TRANS_B), storing a 4-aligned C
// with 16-byte stores ...
static SUBGROUP_VEC4_C_SHADER: Shader = Shader {
    name: "matmul_subgroup_vec4_c",
    source: concat!(
        include_str!("../../shaders/matmul_common.wgsl"),
        include_str!("../../shaders/matmul_operands_vec4.wgsl"),
        include_str!("../../shaders/matmul_store_vec4.wgsl"),
        include_str!("../../shaders/matmul_subgroup.wgsl")
    ),
};
// ... or any C element by element ...
static SUBGROUP_SHADER: Shader = Shader {
    name: "matmul_subgroup",
    source: concat!(
        include_str!("../../shaders/matmul_common.wgsl"),
        include_str!("../../shaders/matmul_operands_vec4.wgsl"),
        include_str!("../../shaders/matmul_store_scalar.wgsl"),
        include_str!("../../shaders/matmul_subgroup.wgsl")
    ),
};
// ... and with scalar loads, one pipeline for every layout and alignment.
static STRIDED_SHADER: Shader = Shader {
    name: "matmul_subgroup_strided",
    source: concat!(
        include_str!("../../shaders/matmul_common.wgsl"),
        include_str!("../../shaders/matmul_operands_scalar.wgsl"),
        include_str!("../../shaders/matmul_store_scalar.wgsl"),
        include_str!("../../shaders/matmul_subgroup.wgsl")
    ),
};
const BINDINGS: &[Access] = &[Access::Read, Access::Read, Access::Read, Access::Write];
static REG: Kernel = Kernel { shader: &SHADER, entry: "matmul_reg", bindings: BINDINGS };
static TILED: Kernel = Kernel { shader: &SHADER, entry: "matmul_tiled", bindings: BINDINGS };
static SUBGROUP: Kernel = Kernel { shader: &SUBGROUP_SHADER, entry: "matmul_subgroup", bindings: BINDINGS };
static SUBGROUP_VEC4_C: Kernel = Kernel { shader: &SUBGROUP_VEC4_C_SHADER, entry: "matmul_subgroup", bindings: BINDINGS };
static STRIDED: Kernel = Kernel { shader: &STRIDED_SHADER, entry: "matmul_subgroup", bindings: BINDINGS };

/// Which matmul entry point runs. `Auto` picks by adapter kind; tests name one explicitly so
/// both are checked on every device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulKernel {
    Auto,
    /// Register-blocked, no workgroup memory: what CPU adapters (lavapipe) run fastest.
    Register,
    /// Workgroup-memory tiles: what GPUs run fastest.
    Tiled,
    /// One subgroup per workgroup sharing loaded A values by shuffles, k by 4 (CPU adapters
    /// with subgroups): 16-byte loads where the operands are 4-aligned (`vec4_fits`), else the
    /// scalar loads of `SubgroupStrided`.
    Subgroup,
    /// The subgroup body with scalar operand loads, whatever the alignment (one pipeline for
    /// every layout); tests name it to check it on aligned shapes too.
    SubgroupStrided,
}

/// Whether `g` on tensors of `a_len` and `b_len` elements suits the subgroup body's 16-byte
/// loads: every vec4 the kernel loads starts on a multiple of 4 elements, and each operand's
/// binding holds whole vec4s (a vec4 view cannot reach a partial one). Any k works.
pub fn vec4_fits(g: &Gemm, a_len: usize, b_len: usize) -> bool {
    a_len % 4 == 0 && b_len % 4 == 0 && (g.a.trans || aligned(&g.a)) && aligned(&g.b) && (g.b.trans || g.n % 4 == 0)
}

/// Whether the subgroup body may also store C (of `c_len` elements) in 16-byte pieces and read
/// the bias (n elements, or A's binding when there is none) as vec4s: every C row piece of 4
/// starts on a multiple of 4 and n is one, so a piece is all inside C or all outside.
fn vec4_c_fits(g: &Gemm, c_len: usize) -> bool {
    c_len % 4 == 0 && g.n % 4 == 0 && aligned(&g.c)
}

/// Whether every row and batch of view `v` starts on a multiple of 4 elements.
fn aligned(v: &View) -> bool {
    v.ld % 4 == 0 && v.offset % 4 == 0 && v.s1 % 4 == 0 && v.s2 % 4 == 0
}

/// A strided matrix view inside a flat buffer: element (r, c) of batch (b1, b2) is at
/// `offset + b1*s1 + b2*s2 + r*ld + c`, or `... + c*ld + r` when `trans`.
#[derive(Clone, Copy, Debug)]
pub struct View {
    pub offset: usize,
    pub ld: usize,
    pub s1: usize,
    pub s2: usize,
    pub trans: bool,
}

impl View {
    /// A dense row-major matrix stored as [rows, cols] per batch, batches `rows*cols` apart;
    /// with `trans` the GEMM reads its transpose.
    pub fn dense(rows: usize, cols: usize, trans: bool) -> View {
        View { offset: 0, ld: cols, s1: rows * cols, s2: 0, trans }
    }
}

/// C = alpha * op(A) * op(B) (+ bias) (+ C if accumulate), over batch1 x batch2 batches.
#[derive(Clone, Copy, Debug)]
pub struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batch1: usize,
    pub batch2: usize,
    pub a: View,
    pub b: View,
    /// `trans` is ignored for C.
    pub c: View,
    pub alpha: f32,
    pub accumulate: bool,
}

/// Largest flat index a view touches for a rows x cols operand (+1), or 0 when empty.
fn extent(v: &View, rows: usize, cols: usize, b1: usize, b2: usize) -> usize {
    if rows == 0 || cols == 0 || b1 == 0 || b2 == 0 {
        return 0;
    }
    let (r, c) = (rows - 1, cols - 1);
    let inner = if v.trans { c * v.ld + r } else { r * v.ld + c };
    v.offset + (b1 - 1) * v.s1 + (b2 - 1) * v.s2 + inner + 1
}

/// The general launcher: every linear layer, its gradients and batched attention products.
pub fn gemm(rec: &mut Recorder, kernel: MatmulKernel, g: &Gemm, a: &Tensor, b: &Tensor, bias: Option<&Tensor>, c: &Tensor) -> Result<()> {
    for t in [a, b, c] {
        t.expect_dtype("gemm", DType::F32)?;
    }
    let checks = [
        ("A", a, extent(&g.a, g.m, g.k, g.batch1, g.batch2)),
        ("B", b, extent(&g.b, g.k, g.n, g.batch1, g.batch2)),
        ("C", c, extent(&View { trans: false, ..g.c }, g.m, g.n, g.batch1, g.batch2)),
    ];
    for (role, t, need) in checks {
        if need > t.numel() {
            return shape_err("gemm", format!("{role} = `{}` {:?} has {} elements but the view reaches element {} (m={} n={} k={} batch={}x{})", t.name(), t.shape(), t.numel(), need, g.m, g.n, g.k, g.batch1, g.batch2));
        }
    }
    if g.a.trans && g.a.ld < g.m || !g.a.trans && g.a.ld < g.k || g.b.trans && g.b.ld < g.k || !g.b.trans && g.b.ld < g.n || g.c.ld < g.n {
        return shape_err("gemm", format!("a leading dimension is smaller than its row length: {g:?}"));
    }
    if let Some(bias) = bias {
        if bias.numel() != g.n {
            return shape_err("gemm", format!("bias `{}` has {} elements, expected n = {}", bias.name(), bias.numel(), g.n));
        }
    }
    if g.m == 0 || g.n == 0 || g.batch1 * g.batch2 == 0 {
        return Ok(());
    }
    let has_bias = bias.is_some();
    let body = if kernel == MatmulKernel::Auto {
        let class = format!("matmul {} {}{}{}", class_dims(g.m, g.n, g.k, g.batch1 * g.batch2), layout(g.a.trans), layout(g.b.trans), if vec4_fits(g, a.numel(), b.numel()) { " v4" } else { "" });
        let mut scratch = None;
        tuned_body(rec.gpu(), class, |r, body| {
            let [a, b, bias, c] = match &scratch {
                Some(s) => s,
                None => scratch.insert(zeros_like(r.gpu(), [a, b, bias.unwrap_or(a), c])?),
            };
            dispatch_gemm(r, body, g, a, b, has_bias.then_some(bias), c)
        })?
    } else {
        body(rec.gpu(), kernel)?
    };
    dispatch_gemm(rec, &body, g, a, b, bias, c)
}

fn dispatch_gemm(rec: &mut Recorder, body: &Body, g: &Gemm, a: &Tensor, b: &Tensor, bias: Option<&Tensor>, c: &Tensor) -> Result<()> {
    let has_bias = bias.is_some();
    let bias = bias.unwrap_or(a);
    let buffers = [a, b, bias, c];
    let groups = body.groups(g.m, g.n, g.batch1 * g.batch2);
    let mut consts = body.constants.clone();
    let entry = match body.kernel {
        MatmulKernel::Subgroup if vec4_fits(g, a.numel(), b.numel()) => {
            consts.extend([("TRANS_A", g.a.trans as u32 as f64), ("TRANS_B", g.b.trans as u32 as f64)]);
            if vec4_c_fits(g, c.numel()) {
                &SUBGROUP_VEC4_C
            } else {
                &SUBGROUP
            }
        }
        MatmulKernel::Subgroup | MatmulKernel::SubgroupStrided => &STRIDED,
        MatmulKernel::Register => &REG,
        _ => &TILED,
    };
    // Long contractions run as several dispatches that accumulate into C (see K_PER_DISPATCH);
    // the pieces start at multiples of 4096, which keeps 4-aligned views aligned.
    for (k0, kc) in k_chunks(g.k) {
        let step = |v: View, along_rows: bool| View { offset: v.offset + k0 * if v.trans == along_rows { 1 } else { v.ld }, ..v };
        let part = Gemm { k: kc, a: step(g.a, false), b: step(g.b, true), accumulate: g.accumulate || k0 > 0, ..*g };
        rec.dispatch(entry, &consts, &buffers, &imm(&part, has_bias && k0 == 0), groups)?;
        rec.work(Work::flops(2.0 * (g.m * g.n * kc * g.batch1 * g.batch2) as f64));
    }
    Ok(())
}

/// Zero-filled tensors of the same sizes, for timing a variant without touching real data
/// (zeros also keep CPU adapters off slow denormal paths).
pub(crate) fn zeros_like<const N: usize>(gpu: &Gpu, ts: [&Tensor; N]) -> Result<[Tensor; N]> {
    let v: Vec<Tensor> = ts.iter().map(|t| Tensor::zeros(gpu, "tuning scratch", &[t.numel().max(1)])).collect::<Result<_>>()?;
    Ok(v.try_into().unwrap_or_else(|_| unreachable!("one tensor per input")))
}

/// A shape class's sizes: each rounded up to a power of 4 (at least 16), so one measurement
/// serves every shape of about the same size and a run meets only a few classes.
pub(crate) fn class_dims(m: usize, n: usize, k: usize, batch: usize) -> String {
    let up = |x: usize| {
        let mut b = 16;
        while b < x {
            b *= 4;
        }
        b
    };
    format!("m{} n{} k{} x{}", up(m), up(n), up(k), if batch > 1 { up(batch) } else { 1 })
}

fn layout(trans: bool) -> char {
    if trans {
        'T'
    } else {
        'N'
    }
}

/// (first k, length) of each dispatch of a contraction over `k`: pieces of K_PER_DISPATCH, and
/// one empty piece when k = 0 (the dispatch still writes bias and accumulation). Shared by the
/// GEMM and the bilinear layer.
pub(crate) fn k_chunks(k: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..k.max(1)).step_by(K_PER_DISPATCH).map(move |k0| (k0, K_PER_DISPATCH.min(k - k0)))
}

/// Longest contraction one matmul dispatch runs. llvmpipe (lavapipe, and Mesa's GL on the CPU)
/// silently ends any shader loop after 65535 iterations (its loop limiter), which returns wrong
/// sums from loops over k of more than a few thousand; 4096 stays clear of it everywhere and
/// costs one extra dispatch per 4096 of k.
pub(crate) const K_PER_DISPATCH: usize = 4096;

/// Rows and columns of C that one workgroup of matmul_reg (WY*RM x WX*RN) and matmul_tiled
/// (BM x BN) computes; the generated subgroup body covers SUBGROUP_ROWS x SUBGROUP_COLS_PER_LANE*SG
/// (tools/gen_matmul_subgroup.py's ROWS and COLS4).
const TILE: usize = 64;
const SUBGROUP_ROWS: usize = 32;
const SUBGROUP_COLS_PER_LANE: usize = 4;

/// Subgroup widths the generated subgroup kernels are written for (powers of two: every row of
/// the tile is one lane's value, and a lane loads at most SUBGROUP_ROWS / 4 of them).
pub(crate) fn subgroup_width_supported(sg: u32) -> bool {
    sg.is_power_of_two() && (4..=SUBGROUP_ROWS as u32).contains(&sg)
}

/// A matmul body resolved for this adapter: which kernel, its override constants, and the
/// columns of C one workgroup covers.
pub(crate) struct Body {
    pub kernel: MatmulKernel,
    pub constants: Vec<(&'static str, f64)>,
    tile_m: usize,
    tile_n: usize,
}

impl Body {
    /// Workgroups over (n, m, batch) for an m x n result.
    pub fn groups(&self, m: usize, n: usize, batch: usize) -> [u32; 3] {
        [n.div_ceil(self.tile_n) as u32, m.div_ceil(self.tile_m) as u32, batch as u32]
    }
}

/// `DOCRE_MATMUL` (register, tiled, subgroup): the body `Auto` takes, to compare bodies on one
/// adapter with the same benchmarks.
fn forced() -> Result<Option<MatmulKernel>> {
    Ok(match crate::settings::matmul()? {
        Some("register") => Some(MatmulKernel::Register),
        Some("tiled") => Some(MatmulKernel::Tiled),
        Some("subgroup") => Some(MatmulKernel::Subgroup),
        _ => None,
    })
}

/// The body `kernel` names on this adapter. `Auto` takes the subgroup body on CPU adapters whose
/// subgroup width it supports (measured, not assumed), the register-blocked one on other CPU
/// adapters, and the tiled one on GPUs, unless `DOCRE_MATMUL` names one.
pub(crate) fn body(gpu: &Gpu, kernel: MatmulKernel) -> Result<Body> {
    let sg = gpu.subgroup_size()?.filter(|&s| subgroup_width_supported(s));
    let kernel = match (kernel, forced()?) {
        (MatmulKernel::Auto, Some(k)) => k,
        (k, _) => k,
    };
    let kernel = match kernel {
        MatmulKernel::Auto if gpu.kind() == AdapterKind::Cpu => if sg.is_some() { MatmulKernel::Subgroup } else { MatmulKernel::Register },
        MatmulKernel::Auto => MatmulKernel::Tiled,
        MatmulKernel::Subgroup | MatmulKernel::SubgroupStrided if sg.is_none() => {
            return shape_err("gemm", format!("the subgroup matmul needs subgroups of 4 to 64 lanes (a power of two); this adapter has {:?}", gpu.subgroup_size()?));
        }
        k => k,
    };
    let (constants, tile_m, tile_n) = match kernel {
        MatmulKernel::Register => (vec![("WX", 8.0), ("WY", 8.0)], TILE, TILE),
        MatmulKernel::Subgroup | MatmulKernel::SubgroupStrided => {
            let sg = sg.expect("checked above");
            (vec![("SG", sg as f64)], SUBGROUP_ROWS, SUBGROUP_COLS_PER_LANE * sg as usize)
        }
        MatmulKernel::Tiled | MatmulKernel::Auto => (vec![("BM", TILE as f64), ("BN", TILE as f64), ("BK", 16.0)], TILE, TILE),
    };
    Ok(Body { kernel, constants, tile_m, tile_n })
}

/// The body `Auto` runs for one shape class: the one `DOCRE_MATMUL` forces, else the tuning's
/// choice (gpu::tuning) among the bodies this adapter can run, with `body`'s rule as the rule.
/// `run` dispatches one run of a body on scratch buffers, for measuring.
pub(crate) fn tuned_body(gpu: &Gpu, class: String, mut run: impl FnMut(&mut Recorder, &Body) -> Result<()>) -> Result<Body> {
    let rule = body(gpu, MatmulKernel::Auto)?;
    let name = |k: MatmulKernel| match k {
        MatmulKernel::Register => "register",
        MatmulKernel::Subgroup | MatmulKernel::SubgroupStrided => "subgroup",
        _ => "tiled",
    };
    if forced()?.is_some() {
        // Recorded too, so a resumed run gets the same body without the variable.
        gpu.pin(&[(class, name(rule.kernel).to_string())].into());
        return Ok(rule);
    }
    let mut variants = vec!["register", "tiled"];
    if gpu.subgroup_size()?.is_some_and(subgroup_width_supported) {
        variants.insert(0, "subgroup");
    }
    let by_name = |v: &str| match v {
        "register" => MatmulKernel::Register,
        "subgroup" => MatmulKernel::Subgroup,
        _ => MatmulKernel::Tiled,
    };
    let question = tuning::Question { class, variants: &variants, rule: name(rule.kernel) };
    let chosen = tuning::choose(gpu, &question, |v| {
        let mut rec = Recorder::new(gpu);
        run(&mut rec, &body(gpu, by_name(v))?)?;
        rec.finish()
    })?;
    body(gpu, by_name(chosen))
}

/// The names the tuning records for matmul bodies, for checking recorded choices.
pub const BODY_NAMES: [&str; 3] = ["subgroup", "register", "tiled"];

/// The shader's `Mm` immediates for `g`.
fn imm(g: &Gemm, has_bias: bool) -> Imm {
    let flags = has_bias as usize | ((g.accumulate as usize) << 1) | ((g.a.trans as usize) << 2) | ((g.b.trans as usize) << 3);
    Imm::new()
        .u(g.m).u(g.n).u(g.k).u(g.batch2)
        .u(g.a.ld).u(g.b.ld).u(g.c.ld).u(flags)
        .u(g.a.offset).u(g.a.s1).u(g.a.s2)
        .u(g.b.offset).u(g.b.s1).u(g.b.s2)
        .u(g.c.offset).u(g.c.s1).u(g.c.s2)
        .f(g.alpha)
}

/// op(A) * op(B) for dense [.., rows, cols] tensors with equal leading (batch) dims, or a 2-D B
/// shared by every batch of A.
pub fn matmul(rec: &mut Recorder, a: &Tensor, b: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor> {
    if a.shape().len() < 2 || b.shape().len() < 2 {
        return shape_err("matmul", format!("`{}` {:?} and `{}` {:?} must be at least 2-D", a.name(), a.shape(), b.name(), b.shape()));
    }
    let (ar, ac) = (a.shape()[a.shape().len() - 2], a.shape()[a.shape().len() - 1]);
    let (br, bc) = (b.shape()[b.shape().len() - 2], b.shape()[b.shape().len() - 1]);
    let (m, k) = if trans_a { (ac, ar) } else { (ar, ac) };
    let (k2, n) = if trans_b { (bc, br) } else { (br, bc) };
    if k != k2 {
        return shape_err("matmul", format!("inner dimensions differ: `{}` {:?}{} x `{}` {:?}{}", a.name(), a.shape(), if trans_a { "ᵀ" } else { "" }, b.name(), b.shape(), if trans_b { "ᵀ" } else { "" }));
    }
    let lead = &a.shape()[..a.shape().len() - 2];
    let batch: usize = lead.iter().product();
    let b_lead = &b.shape()[..b.shape().len() - 2];
    let b_shared = b_lead.is_empty();
    if !b_shared && b_lead != lead {
        return shape_err("matmul", format!("batch dims differ: `{}` {:?} vs `{}` {:?}", a.name(), a.shape(), b.name(), b.shape()));
    }
    let mut shape = lead.to_vec();
    shape.extend([m, n]);
    let c = Tensor::uninit(rec.gpu(), "matmul", &shape, DType::F32)?;
    let mut bv = View::dense(br, bc, trans_b);
    if b_shared {
        bv.s1 = 0;
    }
    let g = Gemm { m, n, k, batch1: batch, batch2: 1, a: View::dense(ar, ac, trans_a), b: bv, c: View::dense(m, n, false), alpha: 1.0, accumulate: false };
    gemm(rec, MatmulKernel::Auto, &g, a, b, None, &c)?;
    Ok(c)
}

/// y = x Wᵀ + b for x [rows, in], W [out, in] (PyTorch layout), b [out].
pub fn linear(rec: &mut Recorder, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let (rows, inp) = super::rows_cols(x);
    if w.shape().len() != 2 || w.shape()[1] != inp {
        return shape_err("linear", format!("weight `{}` {:?} does not take inputs of width {inp} (`{}` {:?})", w.name(), w.shape(), x.name(), x.shape()));
    }
    let out_f = w.shape()[0];
    let mut shape = x.shape().to_vec();
    *shape.last_mut().unwrap() = out_f;
    let y = Tensor::uninit(rec.gpu(), "linear", &shape, DType::F32)?;
    let g = Gemm { m: rows, n: out_f, k: inp, batch1: 1, batch2: 1, a: View::dense(rows, inp, false), b: View::dense(out_f, inp, true), c: View::dense(rows, out_f, false), alpha: 1.0, accumulate: false };
    gemm(rec, MatmulKernel::Auto, &g, x, w, b, &y)?;
    Ok(y)
}

/// Gradients of `linear`: dx = dy W, dW = dyᵀ x, db = column sums of dy.
pub struct LinearGrads {
    pub dx: Tensor,
    pub dw: Tensor,
    pub db: Tensor,
}

pub fn linear_backward(rec: &mut Recorder, x: &Tensor, w: &Tensor, dy: &Tensor) -> Result<LinearGrads> {
    let dx = Tensor::uninit(rec.gpu(), "linear_dx", x.shape(), DType::F32)?;
    let (dw, db) = linear_backward_into(rec, x, w, dy, &dx, false)?;
    Ok(LinearGrads { dx, dw, db })
}

/// `linear_backward` writing (or, with `accumulate`, adding) dx into a given tensor: layers
/// whose input feeds several linears (Q, K, V) sum their input gradients without extra passes.
/// Returns (dW, db).
pub fn linear_backward_into(rec: &mut Recorder, x: &Tensor, w: &Tensor, dy: &Tensor, dx: &Tensor, accumulate: bool) -> Result<(Tensor, Tensor)> {
    let (rows, inp) = super::rows_cols(x);
    let (rows2, out_f) = super::rows_cols(dy);
    if rows != rows2 || w.shape() != [out_f, inp] || dx.numel() != x.numel() {
        return shape_err("linear_backward", format!("x {:?}, W {:?}, dy {:?}, dx {:?} do not fit together", x.shape(), w.shape(), dy.shape(), dx.shape()));
    }
    let g = Gemm { m: rows, n: inp, k: out_f, batch1: 1, batch2: 1, a: View::dense(rows, out_f, false), b: View::dense(out_f, inp, false), c: View::dense(rows, inp, false), alpha: 1.0, accumulate };
    gemm(rec, MatmulKernel::Auto, &g, dy, w, None, dx)?;
    let dw = Tensor::uninit(rec.gpu(), "linear_dw", w.shape(), DType::F32)?;
    let g = Gemm { m: out_f, n: inp, k: rows, batch1: 1, batch2: 1, a: View::dense(rows, out_f, true), b: View::dense(rows, inp, false), c: View::dense(out_f, inp, false), alpha: 1.0, accumulate: false };
    gemm(rec, MatmulKernel::Auto, &g, dy, x, None, &dw)?;
    let db = reduce::col_sum(rec, &dy.reshape(&[rows, out_f])?)?;
    Ok((dw, db))
}

/// Column block `[off, off + k)` of a [out, in] weight, read as the Bᵀ operand of `x W_blockᵀ`.
fn weight_block(w: &Tensor, off: usize, trans: bool) -> View {
    View { offset: off, ld: w.shape()[1], s1: 0, s2: 0, trans }
}

fn check_block(op: &'static str, x: &Tensor, w: &Tensor, off: usize) -> Result<(usize, usize, usize)> {
    let (rows, k) = super::rows_cols(x);
    if w.shape().len() != 2 || off + k > w.shape()[1] {
        return shape_err(op, format!("`{}` {:?} does not fit columns {off}..{} of weight `{}` {:?}", x.name(), x.shape(), off + k, w.name(), w.shape()));
    }
    Ok((rows, k, w.shape()[0]))
}

/// y (+)= x · W[:, off..off+k]ᵀ (+ bias): one input block of a linear layer over a concatenation,
/// so `Linear([a; b; c])` runs without building the concatenated input.
pub fn linear_block_into(rec: &mut Recorder, x: &Tensor, w: &Tensor, off: usize, bias: Option<&Tensor>, y: &Tensor, accumulate: bool) -> Result<()> {
    let (rows, k, out_f) = check_block("linear_block", x, w, off)?;
    if y.numel() != rows * out_f {
        return shape_err("linear_block", format!("output `{}` {:?} is not [{rows}, {out_f}]", y.name(), y.shape()));
    }
    let g = Gemm { m: rows, n: out_f, k, batch1: 1, batch2: 1, a: View::dense(rows, k, false), b: weight_block(w, off, true), c: View::dense(rows, out_f, false), alpha: 1.0, accumulate };
    gemm(rec, MatmulKernel::Auto, &g, x, w, bias, y)
}

/// Backward of `linear_block_into`: writes dW's column block into `dw` (same shape as W) and
/// dx = dy · W_block into `dx` (added when `accumulate_dx`).
pub fn linear_block_backward(rec: &mut Recorder, x: &Tensor, w: &Tensor, off: usize, dy: &Tensor, dw: &Tensor, dx: Option<(&Tensor, bool)>) -> Result<()> {
    let (rows, k, out_f) = check_block("linear_block_backward", x, w, off)?;
    if dy.numel() != rows * out_f || dw.shape() != w.shape() {
        return shape_err("linear_block_backward", format!("dy {:?} / dW {:?} do not fit x {:?}, W {:?}", dy.shape(), dw.shape(), x.shape(), w.shape()));
    }
    let ld = w.shape()[1];
    let g = Gemm { m: out_f, n: k, k: rows, batch1: 1, batch2: 1, a: View::dense(rows, out_f, true), b: View::dense(rows, k, false), c: View { offset: off, ld, s1: 0, s2: 0, trans: false }, alpha: 1.0, accumulate: false };
    gemm(rec, MatmulKernel::Auto, &g, dy, x, None, dw)?;
    if let Some((dx, acc)) = dx {
        let g = Gemm { m: rows, n: k, k: out_f, batch1: 1, batch2: 1, a: View::dense(rows, out_f, false), b: weight_block(w, off, false), c: View::dense(rows, k, false), alpha: 1.0, accumulate: acc };
        gemm(rec, MatmulKernel::Auto, &g, dy, w, None, dx)?;
    }
    Ok(())
}

/// Linear([x_1; x_2; ...]) with W [out, Σ in_i]: y = Σ_i x_i W_iᵀ + b.
pub fn linear_cat(rec: &mut Recorder, xs: &[&Tensor], w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let (rows, _) = super::rows_cols(xs[0]);
    let y = Tensor::uninit(rec.gpu(), "linear_cat", &[rows, w.shape()[0]], DType::F32)?;
    let mut off = 0;
    for (i, x) in xs.iter().enumerate() {
        linear_block_into(rec, x, w, off, if i == 0 { b } else { None }, &y, i > 0)?;
        off += super::rows_cols(x).1;
    }
    if off != w.shape()[1] {
        return shape_err("linear_cat", format!("inputs have {off} columns in all, weight `{}` {:?}", w.name(), w.shape()));
    }
    Ok(y)
}

/// (dx_i, dW, db) of `linear_cat`.
pub fn linear_cat_backward(rec: &mut Recorder, xs: &[&Tensor], w: &Tensor, dy: &Tensor) -> Result<(Vec<Tensor>, Tensor, Tensor)> {
    let dw = Tensor::uninit(rec.gpu(), "linear_cat_dw", w.shape(), DType::F32)?;
    let mut dxs = Vec::new();
    let mut off = 0;
    for x in xs {
        let dx = Tensor::uninit(rec.gpu(), "linear_cat_dx", x.shape(), DType::F32)?;
        linear_block_backward(rec, x, w, off, dy, &dw, Some((&dx, false)))?;
        off += super::rows_cols(x).1;
        dxs.push(dx);
    }
    let (rows, out_f) = super::rows_cols(dy);
    let db = reduce::col_sum(rec, &dy.reshape(&[rows, out_f])?)?;
    Ok((dxs, dw, db))
}
