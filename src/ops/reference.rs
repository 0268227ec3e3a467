//! Plain f64 CPU versions of every kernel, forward and backward: the truth the GPU kernels are
//! tested against. Written for clarity, never for speed; row-major everywhere.
//! Their own backward passes are proven by finite differences in tests/reference_gradcheck.rs.

use super::elementwise::Activation;
use super::matmul::Gemm;

/// C = alpha * op(A) op(B) (+ bias) (+ C_in if accumulate), exactly as shaders/matmul.wgsl.
pub fn gemm(g: &Gemm, a: &[f64], b: &[f64], bias: Option<&[f64]>, c: &mut [f64]) {
    for b1 in 0..g.batch1 {
        for b2 in 0..g.batch2 {
            let ab = g.a.offset + b1 * g.a.s1 + b2 * g.a.s2;
            let bb = g.b.offset + b1 * g.b.s1 + b2 * g.b.s2;
            let cb = g.c.offset + b1 * g.c.s1 + b2 * g.c.s2;
            for m in 0..g.m {
                for n in 0..g.n {
                    let mut s = 0.0;
                    for k in 0..g.k {
                        let av = if g.a.trans { a[ab + k * g.a.ld + m] } else { a[ab + m * g.a.ld + k] };
                        let bv = if g.b.trans { b[bb + n * g.b.ld + k] } else { b[bb + k * g.b.ld + n] };
                        s += av * bv;
                    }
                    let mut r = g.alpha as f64 * s;
                    if let Some(bias) = bias {
                        r += bias[n];
                    }
                    let idx = cb + m * g.c.ld + n;
                    c[idx] = if g.accumulate { c[idx] + r } else { r };
                }
            }
        }
    }
}

/// Dense C [m, n] = A [m, k] B [k, n].
pub fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            let av = a[i * k + p];
            for j in 0..n {
                c[i * n + j] += av * b[p * n + j];
            }
        }
    }
    c
}

pub fn transpose(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut t = vec![0.0; a.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = a[r * cols + c];
        }
    }
    t
}

/// Gradients of C = A B: dA = dC Bᵀ, dB = Aᵀ dC.
pub fn matmul_backward(a: &[f64], b: &[f64], dc: &[f64], m: usize, k: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
    let da = matmul(dc, &transpose(b, k, n), m, n, k);
    let db = matmul(&transpose(a, m, k), dc, k, m, n);
    (da, db)
}

/// y = x Wᵀ + b, x [rows, inp], W [out, inp].
pub fn linear(x: &[f64], w: &[f64], b: Option<&[f64]>, rows: usize, inp: usize, out: usize) -> Vec<f64> {
    let mut y = matmul(x, &transpose(w, out, inp), rows, inp, out);
    if let Some(b) = b {
        for r in 0..rows {
            for o in 0..out {
                y[r * out + o] += b[o];
            }
        }
    }
    y
}

/// (dx, dW, db) of `linear`.
pub fn linear_backward(x: &[f64], w: &[f64], dy: &[f64], rows: usize, inp: usize, out: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let dx = matmul(dy, w, rows, out, inp);
    let dw = matmul(&transpose(dy, rows, out), x, out, rows, inp);
    (dx, dw, col_sum(dy, rows, out))
}

pub fn add_scaled(x: &[f64], y: &[f64], alpha: f64, beta: f64) -> Vec<f64> {
    x.iter().enumerate().map(|(i, v)| alpha * v + beta * y[i % y.len()]).collect()
}

pub fn mul(x: &[f64], y: &[f64]) -> Vec<f64> {
    x.iter().enumerate().map(|(i, v)| v * y[i % y.len()]).collect()
}

/// (dx, dy) of `mul` with y broadcast by wrapping.
pub fn mul_backward(x: &[f64], y: &[f64], dout: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let dx = mul(dout, y);
    let mut dy = vec![0.0; y.len()];
    for i in 0..x.len() {
        dy[i % y.len()] += dout[i] * x[i];
    }
    (dx, dy)
}

/// Exact erf (via the complementary error function's continued fraction / series), for GELU.
pub fn erf(x: f64) -> f64 {
    // Series for small |x|, continued fraction for large: both accurate far beyond f32.
    let ax = x.abs();
    let r = if ax < 2.5 {
        let mut term = ax;
        let mut sum = ax;
        let mut n = 0.0;
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -ax * ax / n;
            sum += term / (2.0 * n + 1.0);
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    } else {
        // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...))))
        let mut f = ax;
        for k in (1..60).rev() {
            f = ax + (k as f64 / 2.0) / f;
        }
        1.0 - (-ax * ax).exp() / std::f64::consts::PI.sqrt() / f
    };
    if x < 0.0 { -r } else { r }
}

pub fn act(a: Activation, v: f64) -> f64 {
    match a {
        Activation::Gelu => 0.5 * v * (1.0 + erf(v / std::f64::consts::SQRT_2)),
        Activation::Tanh => v.tanh(),
        Activation::Relu => v.max(0.0),
        Activation::Sigmoid => 1.0 / (1.0 + (-v).exp()),
    }
}

pub fn act_grad(a: Activation, v: f64) -> f64 {
    match a {
        Activation::Gelu => {
            0.5 * (1.0 + erf(v / std::f64::consts::SQRT_2)) + v * (-0.5 * v * v).exp() / (2.0 * std::f64::consts::PI).sqrt()
        }
        Activation::Tanh => 1.0 - v.tanh().powi(2),
        Activation::Relu => {
            if v > 0.0 { 1.0 } else { 0.0 }
        }
        Activation::Sigmoid => {
            let s = 1.0 / (1.0 + (-v).exp());
            s * (1.0 - s)
        }
    }
}

pub fn activation(a: Activation, x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| act(a, v)).collect()
}

pub fn activation_backward(a: Activation, x: &[f64], dy: &[f64]) -> Vec<f64> {
    x.iter().zip(dy).map(|(&v, &d)| d * act_grad(a, v)).collect()
}

/// Row softmax of scale*x + mask[(r / div) % mask_rows] over rows of `cols`.
pub fn softmax(x: &[f64], cols: usize, mask: Option<(&[f64], usize)>, scale: f64) -> Vec<f64> {
    let rows = x.len() / cols;
    let mut y = vec![0.0; x.len()];
    for r in 0..rows {
        let logit = |c: usize| {
            let mut v = scale * x[r * cols + c];
            if let Some((m, div)) = mask {
                let mr = m.len() / cols;
                v += m[((r / div) % mr) * cols + c];
            }
            v
        };
        let mx = (0..cols).map(logit).fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = (0..cols).map(|c| (logit(c) - mx).exp()).sum();
        for c in 0..cols {
            y[r * cols + c] = (logit(c) - mx).exp() / s;
        }
    }
    y
}

/// The encoder's attention probabilities over segments of `w` token rows (Q, K [segments·w, d],
/// heads of d / heads columns), keys of segment s its first seg_len[s] rows:
/// [segments, heads, w, w], zero past the keys.
pub fn attention_probs(q: &[f64], k: &[f64], d: usize, w: usize, heads: usize, seg_len: &[usize], scale: f64) -> Vec<f64> {
    let dh = d / heads;
    let mut probs = vec![0.0; seg_len.len() * heads * w * w];
    for (s, &len) in seg_len.iter().enumerate() {
        for h in 0..heads {
            for i in 0..w {
                let qi = (s * w + i) * d + h * dh;
                let scores: Vec<f64> = (0..len).map(|j| scale * (0..dh).map(|t| q[qi + t] * k[(s * w + j) * d + h * dh + t]).sum::<f64>()).collect();
                let mx = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = scores.iter().map(|x| (x - mx).exp()).sum();
                for (j, x) in scores.iter().enumerate() {
                    probs[((s * heads + h) * w + i) * w + j] = (x - mx).exp() / sum;
                }
            }
        }
    }
    probs
}

/// The attention context from `attention_probs`' layout and V [segments·w, d]: [segments·w, d].
pub fn attention_context(probs: &[f64], v: &[f64], d: usize, w: usize, heads: usize) -> Vec<f64> {
    let dh = d / heads;
    let mut ctx = vec![0.0; v.len()];
    for (row, c) in ctx.iter_mut().enumerate() {
        let (s, i, h, t) = (row / (w * d), (row / d) % w, (row % d) / dh, row % dh);
        *c = (0..w).map(|j| probs[((s * heads + h) * w + i) * w + j] * v[(s * w + j) * d + h * dh + t]).sum();
    }
    ctx
}

pub fn softmax_backward(y: &[f64], dy: &[f64], cols: usize, scale: f64) -> Vec<f64> {
    let mut dx = vec![0.0; y.len()];
    for r in 0..y.len() / cols {
        let row = r * cols..(r + 1) * cols;
        let d: f64 = row.clone().map(|i| y[i] * dy[i]).sum();
        for i in row {
            dx[i] = scale * y[i] * (dy[i] - d);
        }
    }
    dx
}

/// pooled[s] = logsumexp over rows in sets[s] of x [rows, dim]; empty sets give 0.
pub fn lse_pool(x: &[f64], dim: usize, sets: &[Vec<u32>]) -> Vec<f64> {
    let mut out = vec![0.0; sets.len() * dim];
    for (s, set) in sets.iter().enumerate() {
        if set.is_empty() {
            continue;
        }
        for d in 0..dim {
            let mx = set.iter().map(|&r| x[r as usize * dim + d]).fold(f64::NEG_INFINITY, f64::max);
            let t: f64 = set.iter().map(|&r| (x[r as usize * dim + d] - mx).exp()).sum();
            out[s * dim + d] = mx + t.ln();
        }
    }
    out
}

pub fn lse_pool_backward(x: &[f64], dim: usize, sets: &[Vec<u32>], pooled: &[f64], dpooled: &[f64]) -> Vec<f64> {
    let mut dx = vec![0.0; x.len()];
    for (s, set) in sets.iter().enumerate() {
        for &r in set {
            for d in 0..dim {
                let o = s * dim + d;
                dx[r as usize * dim + d] += dpooled[o] * (x[r as usize * dim + d] - pooled[o]).exp();
            }
        }
    }
    dx
}

/// LayerNorm rows of `cols`; returns (y, per-row [mean, rstd]).
pub fn layernorm(x: &[f64], gamma: &[f64], beta: &[f64], eps: f64) -> (Vec<f64>, Vec<f64>) {
    let cols = gamma.len();
    let rows = x.len() / cols;
    let mut y = vec![0.0; x.len()];
    let mut stats = vec![0.0; rows * 2];
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let mean = row.iter().sum::<f64>() / cols as f64;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / cols as f64;
        let rstd = 1.0 / (var + eps).sqrt();
        for c in 0..cols {
            y[r * cols + c] = (row[c] - mean) * rstd * gamma[c] + beta[c];
        }
        stats[2 * r] = mean;
        stats[2 * r + 1] = rstd;
    }
    (y, stats)
}

/// (dx, dgamma, dbeta) of `layernorm`.
pub fn layernorm_backward(x: &[f64], gamma: &[f64], stats: &[f64], dy: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let cols = gamma.len();
    let rows = x.len() / cols;
    let n = cols as f64;
    let mut dx = vec![0.0; x.len()];
    let mut dg = vec![0.0; cols];
    let mut db = vec![0.0; cols];
    for r in 0..rows {
        let (mean, rstd) = (stats[2 * r], stats[2 * r + 1]);
        let xh = |c: usize| (x[r * cols + c] - mean) * rstd;
        let g = |c: usize| dy[r * cols + c] * gamma[c];
        let mg = (0..cols).map(g).sum::<f64>() / n;
        let mgx = (0..cols).map(|c| g(c) * xh(c)).sum::<f64>() / n;
        for c in 0..cols {
            dx[r * cols + c] = rstd * (g(c) - mg - xh(c) * mgx);
            dg[c] += dy[r * cols + c] * xh(c);
            db[c] += dy[r * cols + c];
        }
    }
    (dx, dg, db)
}

pub fn gather_rows(table: &[f64], dim: usize, ids: &[u32]) -> Vec<f64> {
    let rows = table.len() / dim;
    let mut out = vec![0.0; ids.len() * dim];
    for (i, &id) in ids.iter().enumerate() {
        if (id as usize) < rows {
            out[i * dim..(i + 1) * dim].copy_from_slice(&table[id as usize * dim..(id as usize + 1) * dim]);
        }
    }
    out
}

/// dst[index[j]] += src[j]: the backward of `gather_rows`.
pub fn scatter_add_rows(src: &[f64], dim: usize, index: &[u32], dst: &mut [f64]) {
    for (j, &t) in index.iter().enumerate() {
        for d in 0..dim {
            dst[t as usize * dim + d] += src[j * dim + d];
        }
    }
}

pub fn row_sum(x: &[f64], cols: usize) -> Vec<f64> {
    x.chunks(cols).map(|r| r.iter().sum()).collect()
}

pub fn col_sum(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut out = vec![0.0; cols];
    for r in 0..rows {
        for c in 0..cols {
            out[c] += x[r * cols + c];
        }
    }
    out
}

pub fn sum_squares(tensors: &[&[f64]]) -> f64 {
    tensors.iter().flat_map(|t| t.iter()).map(|v| v * v).sum()
}

pub fn mix32(mut v: u32) -> u32 {
    v ^= v >> 16;
    v = v.wrapping_mul(0x7feb352d);
    v ^= v >> 15;
    v = v.wrapping_mul(0x846ca68b);
    v ^= v >> 16;
    v
}

/// Uniform in [0, 1) for (seed, counter): shaders/counter_rng.wgsl's hash.
pub fn counter_uniform(seed: u64, counter: u32) -> f64 {
    let (lo, hi) = (seed as u32, (seed >> 32) as u32);
    let h = mix32(mix32(counter ^ mix32(lo)).wrapping_add(mix32(hi ^ 0x9e37_79b9)));
    ((h >> 8) as f64) * (1.0 / 16_777_216.0)
}

/// Whether element `counter` survives dropout with probability `p` (same hash as the shader).
pub fn dropout_keep(seed: u64, counter: u32, p: f64) -> bool {
    counter_uniform(seed, counter) >= p
}

/// The ECA kernels' attention-dropout factor (0 or 1/(1-p); 1 without dropout) on the
/// probability of key row `r` for query task g = row·heads + h (shaders/eca.wgsl, prob_keep).
pub fn attention_keep(drop: Option<super::dropout::Site>, g: usize, r: usize) -> f64 {
    match drop {
        None => 1.0,
        Some(s) => {
            let counter = mix32(s.rng.offset.wrapping_add(g as u32)) ^ r as u32;
            if counter_uniform(s.rng.seed, counter) >= s.p as f64 { 1.0 / (1.0 - s.p as f64) } else { 0.0 }
        }
    }
}

/// Dropout forward; the backward is the same function applied to the gradient.
pub fn dropout(x: &[f64], p: f64, seed: u64, offset: u32) -> Vec<f64> {
    let scale = 1.0 / (1.0 - p);
    x.iter()
        .enumerate()
        .map(|(i, &v)| if dropout_keep(seed, offset.wrapping_add(i as u32), p) { v * scale } else { 0.0 })
        .collect()
}

/// One AdamW step in place, as shaders/adamw.wgsl (torch.optim.AdamW with clipping).
#[allow(clippy::too_many_arguments)]
pub fn adamw_step(hp: &super::adamw::AdamW, step: u32, normsq: f64, param: &mut [f64], grad: &[f64], m: &mut [f64], v: &mut [f64]) {
    let (b1, b2) = (hp.beta1 as f64, hp.beta2 as f64);
    let coef = if hp.max_norm > 0.0 { (hp.max_norm as f64 / (normsq.sqrt() + 1e-6)).min(1.0) } else { 1.0 };
    let bc1 = 1.0 - b1.powi(step as i32);
    let bc2 = 1.0 - b2.powi(step as i32);
    let lr = hp.lr as f64;
    for i in 0..param.len() {
        let g = coef * grad[i];
        m[i] = b1 * m[i] + (1.0 - b1) * g;
        v[i] = b2 * v[i] + (1.0 - b2) * g * g;
        let w = param[i] * (1.0 - lr * hp.weight_decay as f64);
        param[i] = w - lr / bc1 * m[i] / ((v[i] / bc2).sqrt() + hp.eps as f64);
    }
}

/// Explicit key set of pair `row` on head `h` (SPEC 3.3): (key row, logit bias), built by
/// enumerating cells rather than through the kernel's line formulas.
pub fn attention_keys(coords: &[(u32, u32, u32)], kind: super::eca::Attention, h: usize, row: usize) -> Vec<(usize, f64)> {
    use super::eca::Attention;
    let (b, s, o) = coords[row];
    let mut keys = vec![(row, 1.0)];
    for (r, &(b2, x, y)) in coords.iter().enumerate() {
        if b2 != b || r == row {
            continue;
        }
        let eca = match h {
            0 => x == s && y != o,
            1 => y == o && x != s,
            2 => y == s,
            _ => x == o,
        };
        if kind == Attention::Dense || eca {
            keys.push((r, 0.0));
        }
    }
    keys
}

/// The attention core: per pair and head, softmax over its keys of q·k/√dh + bias, dropped at
/// `drop`, times v.
#[allow(clippy::too_many_arguments)]
pub fn attention(coords: &[(u32, u32, u32)], kind: super::eca::Attention, heads: usize, d: usize, q: &[f64], k: &[f64], v: &[f64], drop: Option<super::dropout::Site>) -> Vec<f64> {
    let dh = d / heads;
    let scale = 1.0 / (dh as f64).sqrt();
    let mut out = vec![0.0; q.len()];
    for row in 0..coords.len() {
        for h in 0..heads {
            let keys = attention_keys(coords, kind, h, row);
            let f = |r: usize, t: &[f64], e: usize| t[r * d + h * dh + e];
            let sc: Vec<f64> = keys.iter().map(|&(r, bias)| scale * (0..dh).map(|e| f(row, q, e) * f(r, k, e)).sum::<f64>() + bias).collect();
            let mx = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = sc.iter().map(|s| (s - mx).exp()).sum();
            for (i, &(r, _)) in keys.iter().enumerate() {
                let p = (sc[i] - mx).exp() / z * attention_keep(drop, row * heads + h, r);
                for e in 0..dh {
                    out[row * d + h * dh + e] += p * f(r, v, e);
                }
            }
        }
    }
    out
}

/// (dq, dk, dv) of `attention`.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(coords: &[(u32, u32, u32)], kind: super::eca::Attention, heads: usize, d: usize, q: &[f64], k: &[f64], v: &[f64], dout: &[f64], drop: Option<super::dropout::Site>) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let dh = d / heads;
    let scale = 1.0 / (dh as f64).sqrt();
    let (mut dq, mut dk, mut dv) = (vec![0.0; q.len()], vec![0.0; k.len()], vec![0.0; v.len()]);
    for row in 0..coords.len() {
        for h in 0..heads {
            let keys = attention_keys(coords, kind, h, row);
            let at = |r: usize, e: usize| r * d + h * dh + e;
            let sc: Vec<f64> = keys.iter().map(|&(r, bias)| scale * (0..dh).map(|e| q[at(row, e)] * k[at(r, e)]).sum::<f64>() + bias).collect();
            let mx = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = sc.iter().map(|s| (s - mx).exp()).sum();
            let p: Vec<f64> = sc.iter().map(|s| (s - mx).exp() / z).collect();
            // dP of the probability itself: the dropout factor times dout·v.
            let keep: Vec<f64> = keys.iter().map(|&(r, _)| attention_keep(drop, row * heads + h, r)).collect();
            let dp: Vec<f64> = keys.iter().enumerate().map(|(i, &(r, _))| keep[i] * (0..dh).map(|e| dout[at(row, e)] * v[at(r, e)]).sum::<f64>()).collect();
            let delta: f64 = p.iter().zip(&dp).map(|(a, b)| a * b).sum();
            for (i, &(r, _)) in keys.iter().enumerate() {
                let ds = p[i] * (dp[i] - delta);
                for e in 0..dh {
                    dv[at(r, e)] += p[i] * keep[i] * dout[at(row, e)];
                    dq[at(row, e)] += scale * ds * k[at(r, e)];
                    dk[at(r, e)] += scale * ds * q[at(row, e)];
                }
            }
        }
    }
    (dq, dk, dv)
}

/// Localized-context weights w [P, L] from entity attention ea [Ne, H, L] (SPEC 2.3).
pub fn context_weights(ea: &[f64], heads: usize, l: usize, pairs: &[(u32, u32, u32)]) -> Vec<f64> {
    let mut w = vec![0.0; pairs.len() * l];
    for (p, &(s, o, _)) in pairs.iter().enumerate() {
        let r: Vec<f64> = (0..l).map(|x| (0..heads).map(|h| ea[(s as usize * heads + h) * l + x] * ea[(o as usize * heads + h) * l + x]).sum()).collect();
        let z = r.iter().sum::<f64>() + 1e-5;
        for x in 0..l {
            w[p * l + x] = r[x] / z;
        }
    }
    w
}

/// dea of `context_weights` given dw.
pub fn context_weights_backward(ea: &[f64], heads: usize, l: usize, pairs: &[(u32, u32, u32)], dw: &[f64]) -> Vec<f64> {
    let mut dea = vec![0.0; ea.len()];
    for (p, &(s, o, _)) in pairs.iter().enumerate() {
        let (s, o) = (s as usize, o as usize);
        let r: Vec<f64> = (0..l).map(|x| (0..heads).map(|h| ea[(s * heads + h) * l + x] * ea[(o * heads + h) * l + x]).sum()).collect();
        let z = r.iter().sum::<f64>() + 1e-5;
        let dot: f64 = (0..l).map(|x| dw[p * l + x] * r[x]).sum();
        for x in 0..l {
            let dr = (dw[p * l + x] - dot / z) / z;
            for h in 0..heads {
                dea[(s * heads + h) * l + x] += dr * ea[(o * heads + h) * l + x];
                dea[(o * heads + h) * l + x] += dr * ea[(s * heads + h) * l + x];
            }
        }
    }
    dea
}

/// Grouped bilinear: y[p, e] = b[e] + Σ_{g,i,j} zs[p, gk+i] zo[p, gk+j] W[e, gk²+ik+j].
pub fn bilinear(zs: &[f64], zo: &[f64], w: &[f64], b: &[f64], e_in: usize, block: usize) -> Vec<f64> {
    let p = zs.len() / e_in;
    let o = b.len();
    let v = outer(zs, zo, e_in, block);
    let mut y = linear(&v, w, Some(b), p, e_in * block, o);
    y.truncate(p * o);
    y
}

fn outer(zs: &[f64], zo: &[f64], e_in: usize, k: usize) -> Vec<f64> {
    let p = zs.len() / e_in;
    let mut v = vec![0.0; p * e_in * k];
    for r in 0..p {
        for g in 0..e_in / k {
            for i in 0..k {
                for j in 0..k {
                    v[r * e_in * k + g * k * k + i * k + j] = zs[r * e_in + g * k + i] * zo[r * e_in + g * k + j];
                }
            }
        }
    }
    v
}

/// (dzs, dzo, dW, db) of `bilinear`, through the explicit outer product.
pub fn bilinear_backward(zs: &[f64], zo: &[f64], w: &[f64], dy: &[f64], e_in: usize, block: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let p = zs.len() / e_in;
    let o = dy.len() / p;
    let k = block;
    let v = outer(zs, zo, e_in, k);
    let (dv, dw, db) = linear_backward(&v, w, dy, p, e_in * k, o);
    let (mut dzs, mut dzo) = (vec![0.0; zs.len()], vec![0.0; zo.len()]);
    for r in 0..p {
        for g in 0..e_in / k {
            for i in 0..k {
                for j in 0..k {
                    let d = dv[r * e_in * k + g * k * k + i * k + j];
                    dzs[r * e_in + g * k + i] += d * zo[r * e_in + g * k + j];
                    dzo[r * e_in + g * k + j] += d * zs[r * e_in + g * k + i];
                }
            }
        }
    }
    (dzs, dzo, dw, db)
}

/// ATLoss L1 + L2 of one pair (labels[0] ignored), with the masking by subtraction of 1e30
/// replaced by exclusion.
pub fn atloss_pair(logits: &[f64], labels: &[f64]) -> f64 {
    let pos = |r: usize| r > 0 && labels[r] > 0.5;
    let lse = |set: &dyn Fn(usize) -> bool| {
        let m = (0..logits.len()).filter(|&r| set(r)).map(|r| logits[r]).fold(f64::NEG_INFINITY, f64::max);
        m + (0..logits.len()).filter(|&r| set(r)).map(|r| (logits[r] - m).exp()).sum::<f64>().ln()
    };
    let l1_set = |r: usize| pos(r) || r == 0;
    let l2_set = |r: usize| !pos(r);
    let z1 = lse(&l1_set);
    let l1: f64 = (1..logits.len()).filter(|&r| pos(r)).map(|r| z1 - logits[r]).sum();
    l1 + lse(&l2_set) - logits[0]
}

/// get_label of one pair (SPEC 4.1).
pub fn get_label(logits: &[f64], top_k: usize) -> Vec<f64> {
    let mut out = vec![0.0; logits.len()];
    for r in 1..logits.len() {
        let larger = logits.iter().filter(|&&v| v > logits[r]).count();
        if logits[r] > logits[0] && larger < top_k {
            out[r] = 1.0;
        }
    }
    if out.iter().all(|&v| v == 0.0) {
        out[0] = 1.0;
    }
    out
}

/// shaders/loss.wgsl `corrupt_labels`: pair p becomes one-hot in the ⌊u·n⌋-th class it lacks
/// where picks[p] = u ≥ 0.
pub fn corrupt_labels(labels: &[f64], picks: &[f64], classes: usize) -> Vec<f64> {
    let mut out = labels.to_vec();
    for (p, &u) in picks.iter().enumerate() {
        let row = &labels[p * classes..(p + 1) * classes];
        let wrong: Vec<usize> = (0..classes).filter(|&c| row[c] < 0.5).collect();
        if u < 0.0 || wrong.is_empty() {
            continue;
        }
        let k = ((u * wrong.len() as f64) as usize).min(wrong.len() - 1);
        let o = &mut out[p * classes..(p + 1) * classes];
        o.fill(0.0);
        o[wrong[k]] = 1.0;
    }
    out
}

/// 2 − 2·cos with norms clamped at 1e-12.
pub fn cosine_loss(x: &[f64], y: &[f64]) -> f64 {
    let n = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-12);
    2.0 - 2.0 * x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>() / (n(x) * n(y))
}

/// BatchNorm1d training forward over rows: (y, mean, biased var).
pub fn batchnorm(x: &[f64], gamma: &[f64], beta: &[f64], eps: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let d = gamma.len();
    let p = x.len() / d;
    let mean: Vec<f64> = (0..d).map(|c| (0..p).map(|r| x[r * d + c]).sum::<f64>() / p as f64).collect();
    let var: Vec<f64> = (0..d).map(|c| (0..p).map(|r| (x[r * d + c] - mean[c]).powi(2)).sum::<f64>() / p as f64).collect();
    let y = (0..p * d).map(|i| (x[i] - mean[i % d]) / (var[i % d] + eps).sqrt() * gamma[i % d] + beta[i % d]).collect();
    (y, mean, var)
}
