//! The kernel checks of `docre selftest` and tests/kernels.rs: every kernel's forward and
//! backward on the GPU against ops::reference (f64) on random inputs, for sizes 1, primes (7, 33,
//! 129) and shapes larger than one tile. Tolerance: |gpu − ref| ≤ atol + rtol·|ref|, stated per
//! kernel below.

use super::harness::{available, close, download, ensure, upload, Check, Checked, Rng, Verdict};
use crate::gpu::{DType, Gpu, Recorder, Tensor};
use crate::ops::adamw::{adamw_step, AdamW};
use crate::ops::attention::{attention_rows, fused_attention, fused_lanes};
use crate::ops::dropout::{dropout, DropoutRng, Site};
use crate::ops::eca::{attention_backward_using, attention_forward_using, Attention, EcaKernel, PairIndex};
use crate::ops::elementwise::{self as ew, Activation};
use crate::ops::embedding::{gather_rows, scatter_add_rows, RowScatter};
use crate::ops::layernorm::{add_layernorm_using, layernorm_backward_using, layernorm_using};
use crate::ops::loss::{atloss_backward, atloss_sum, batchnorm, batchnorm_backward, corrupt_labels, cosine_backward, cosine_sum, get_label};
use crate::ops::matmul::{gemm, linear, linear_backward, matmul, Gemm, MatmulKernel, View};
use crate::ops::pair::{bilinear_backward_using, bilinear_using, bilinear_weight_grad_sq, context_weights, context_weights_backward, PairEntities};
use crate::ops::reduce::{col_sum, row_sum, sum_squares};
use crate::ops::reference as r;
use crate::ops::softmax::{lse_pool, lse_pool_backward, softmax_backward_using, softmax_using, Mask, RowKernel, RowSets};

/// Every kernel check, one per family and variant.
pub(super) fn checks() -> Vec<Check> {
    let mut v = Vec::new();
    for (name, k) in MATMUL_BODIES {
        v.push(Check::new("matmul", name, move |g| Box::pin(matmul_all_transposes(g, k))));
        v.push(Check::new("matmul", format!("{name}, batched head slices"), move |g| Box::pin(matmul_batched_head_slices(g, k))));
        v.push(Check::new("matmul", format!("{name}, k > 4096"), move |g| Box::pin(matmul_long_contraction(g, k))));
        v.push(Check::new("matmul", format!("{name}, k % 4 tails and unaligned views"), move |g| Box::pin(matmul_k_tails_and_unaligned_views(g, k))));
        v.push(Check::new("bilinear", name, move |g| Box::pin(bilinear_forward_and_backward(g, k))));
    }
    v.push(Check::new("matmul", "auto: linear layers and gradients", |g| Box::pin(matmul_backward_and_linear(g))));
    for (name, k) in [("workgroup", RowKernel::Workgroup), ("subgroup", RowKernel::Subgroup), ("rows", RowKernel::Rows)] {
        v.push(Check::new("softmax", name, move |g| Box::pin(softmax_masked_forward_and_backward(g, k))));
    }
    for (name, k) in [("workgroup", RowKernel::Workgroup), ("rows", RowKernel::Rows)] {
        v.push(Check::new("layernorm", name, move |g| Box::pin(layernorm_forward_and_backward(g, k))));
    }
    for (name, k) in [("workgroup", EcaKernel::Workgroup), ("subgroup", EcaKernel::Subgroup), ("lanes", EcaKernel::Lanes), ("lines", EcaKernel::Lines)] {
        v.push(Check::new("eca", name, move |g| Box::pin(eca_and_dense_attention_forward_and_backward(g, k))));
    }
    v.push(Check::new("encoder-attention", "fused lines and mention rows", |g| Box::pin(fused_encoder_attention_and_rows(g))));
    v.push(Check::new("lse-pool", "workgroup", |g| Box::pin(lse_pool_forward_and_backward(g))));
    v.push(Check::new("pair-context", "flat", |g| Box::pin(pair_context_forward_and_backward(g))));
    v.push(Check::new("elementwise", "flat", |g| Box::pin(elementwise_forward_and_backward(g))));
    v.push(Check::new("elementwise", "launch over two grid dimensions", |g| Box::pin(large_launch_splits_over_two_grid_dimensions(g))));
    v.push(Check::new("embedding", "flat", |g| Box::pin(embedding_gather_and_scatter_add(g))));
    v.push(Check::new("reduce", "workgroup", |g| Box::pin(reductions(g))));
    v.push(Check::new("dropout", "flat", |g| Box::pin(dropout_matches_reference_mask_and_rate(g))));
    v.push(Check::new("adamw", "flat", |g| Box::pin(adamw_steps_with_and_without_clipping(g))));
    v.push(Check::new("loss", "atloss, labels, label noise, cosine, batchnorm", |g| Box::pin(losses_labels_and_batchnorm(g))));
    v
}

const MATMUL_BODIES: [(&str, MatmulKernel); 4] =
    [("register", MatmulKernel::Register), ("tiled", MatmulKernel::Tiled), ("subgroup", MatmulKernel::Subgroup), ("subgroup-strided", MatmulKernel::SubgroupStrided)];

// f32 products summed over k ≤ 129 terms of magnitude ≤ 1.
const MATMUL_TOL: (f64, f64) = (1e-4, 1e-4);

// (129, 65, 70) and (130, 20, 131) exceed one tile of every kernel (64 x 64 for the tiled kernel,
// 32 x 4·SG for the subgroup kernel with SG ≤ 16); (36, 20, 68) has every size, view and n a
// multiple of 4, which the subgroup kernel stores as vec4s (partial tiles in both directions).
const MATMUL_SHAPES: [(usize, usize, usize); 7] = [(1, 1, 1), (7, 33, 5), (33, 7, 129), (129, 65, 70), (70, 129, 33), (130, 20, 131), (36, 20, 68)];

/// C = 0.5·op(A)·op(B) + bias + C0 for dense operands with `kernel`, and the f64 reference.
async fn dense_gemm(gpu: &Gpu, rng: &mut Rng, kernel: MatmulKernel, (m, k, n): (usize, usize, usize), (ta, tb): (bool, bool)) -> Result<(Vec<f64>, Vec<f64>), Verdict> {
    let (a, b, bias, c0) = (rng.vec(m * k), rng.vec(k * n), rng.vec(n), rng.vec(m * n));
    let (ar, ac) = if ta { (k, m) } else { (m, k) };
    let (br, bc) = if tb { (n, k) } else { (k, n) };
    let g = Gemm { m, n, k, batch1: 1, batch2: 1, a: View::dense(ar, ac, ta), b: View::dense(br, bc, tb), c: View::dense(m, n, false), alpha: 0.5, accumulate: true };
    let c = upload(gpu, "c", &[m, n], &c0)?;
    let mut rec = Recorder::new(gpu);
    gemm(&mut rec, kernel, &g, &upload(gpu, "a", &[ar, ac], &a)?, &upload(gpu, "b", &[br, bc], &b)?, Some(&upload(gpu, "bias", &[n], &bias)?), &c)?;
    rec.finish()?;
    let at = if ta { r::transpose(&a, k, m) } else { a };
    let bt = if tb { r::transpose(&b, n, k) } else { b };
    let prod = r::matmul(&at, &bt, m, k, n);
    Ok((download(gpu, &c).await?, (0..m * n).map(|i| c0[i] + 0.5 * prod[i] + bias[i % n]).collect()))
}

/// Skip a matmul body this adapter cannot run (the subgroup bodies need supported widths).
fn matmul_available(gpu: &Gpu, kernel: MatmulKernel) -> Checked {
    available(crate::ops::matmul::body(gpu, kernel))
}

/// k above ops::matmul::K_PER_DISPATCH runs as several accumulating dispatches: llvmpipe cuts
/// shader loops off after 65535 iterations, which gave wrong sums for k = 8192 in one dispatch.
async fn matmul_long_contraction(gpu: &Gpu, kernel: MatmulKernel) -> Checked {
    matmul_available(gpu, kernel)?;
    let mut rng = Rng::new(5);
    let (m, k, n) = (3, 9001, 5);
    for (ta, tb) in [(false, false), (true, true)] {
        let (got, want) = dense_gemm(gpu, &mut rng, kernel, (m, k, n), (ta, tb)).await?;
        close(&format!("matmul {kernel:?} {m}x{k}x{n} ta={ta} tb={tb}"), &got, &want, 1e-3, 1e-4)?;
    }
    Ok(())
}

/// Contractions of every length modulo 4 (the subgroup body steps k by 4 and zeroes the k past
/// the end), across a K_PER_DISPATCH boundary too, and per-head slices of a [L, H*dh]
/// activation whose offsets and strides are not multiples of 4 (odd dh), on one body.
async fn matmul_k_tails_and_unaligned_views(gpu: &Gpu, kernel: MatmulKernel) -> Checked {
    matmul_available(gpu, kernel)?;
    let mut rng = Rng::new(9);
    for &(m, k, n) in &[(5usize, 1usize, 6usize), (9, 2, 7), (70, 3, 68), (7, 6, 12), (66, 343, 70), (3, 4101, 9)] {
        for (ta, tb) in [(false, false), (true, true)] {
            let (got, want) = dense_gemm(gpu, &mut rng, kernel, (m, k, n), (ta, tb)).await?;
            let tol = if k > 1000 { 1e-3 } else { 1e-4 };
            close(&format!("matmul {kernel:?} {m}x{k}x{n} ta={ta} tb={tb}"), &got, &want, tol, 1e-4)?;
        }
    }
    // Scores Q Kᵀ per head: slices at offsets h*dh with dh = 7.
    head_slice_scores(gpu, kernel, &mut rng, (1, 20, 3, 7), 1.0, (1e-5, 1e-4)).await
}

async fn matmul_all_transposes(gpu: &Gpu, kernel: MatmulKernel) -> Checked {
    matmul_available(gpu, kernel)?;
    let mut rng = Rng::new(1);
    for &(m, k, n) in &MATMUL_SHAPES {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = rng.vec(m * k);
            let b = rng.vec(k * n);
            let bias = rng.vec(n);
            let c0 = rng.vec(m * n);
            let (ar, ac) = if ta { (k, m) } else { (m, k) };
            let (br, bc) = if tb { (n, k) } else { (k, n) };
            for (with_bias, accumulate) in [(false, false), (true, true)] {
                let g = Gemm { m, n, k, batch1: 1, batch2: 1, a: View::dense(ar, ac, ta), b: View::dense(br, bc, tb), c: View::dense(m, n, false), alpha: 0.5, accumulate };
                let mut want = c0.clone();
                r::gemm(&g, &a, &b, with_bias.then_some(&bias[..]), &mut want);
                let (at, bt, biast) = (upload(gpu, "a", &[ar, ac], &a)?, upload(gpu, "b", &[br, bc], &b)?, upload(gpu, "bias", &[n], &bias)?);
                let ct = upload(gpu, "c", &[m, n], &c0)?;
                let mut rec = Recorder::new(gpu);
                gemm(&mut rec, kernel, &g, &at, &bt, with_bias.then_some(&biast), &ct)?;
                rec.finish()?;
                let what = format!("{kernel:?} {m}x{k}x{n} ta={ta} tb={tb} bias/acc={with_bias}");
                close(&what, &download(gpu, &ct).await?, &want, MATMUL_TOL.0, MATMUL_TOL.1)?;
            }
        }
    }
    Ok(())
}

async fn matmul_batched_head_slices(gpu: &Gpu, kernel: MatmulKernel) -> Checked {
    matmul_available(gpu, kernel)?;
    head_slice_scores(gpu, kernel, &mut Rng::new(2), (2, 7, 3, 5), 0.25, MATMUL_TOL).await
}

/// Q·Kᵀ per (batch, head) out of [B, L, H, dh] activations read in place: the two-level batch
/// strides, and offsets h*dh that are 4-aligned only when dh is.
async fn head_slice_scores(gpu: &Gpu, kernel: MatmulKernel, rng: &mut Rng, (bsz, l, h, dh): (usize, usize, usize, usize), alpha: f32, (atol, rtol): (f64, f64)) -> Checked {
    let q = rng.vec(bsz * l * h * dh);
    let kx = rng.vec(bsz * l * h * dh);
    let g = Gemm {
        m: l,
        n: l,
        k: dh,
        batch1: bsz,
        batch2: h,
        a: View { offset: 0, ld: h * dh, s1: l * h * dh, s2: dh, trans: false },
        b: View { offset: 0, ld: h * dh, s1: l * h * dh, s2: dh, trans: true },
        c: View { offset: 0, ld: l, s1: h * l * l, s2: l * l, trans: false },
        alpha,
        accumulate: false,
    };
    let mut want = vec![0.0; bsz * h * l * l];
    r::gemm(&g, &q, &kx, None, &mut want);
    let (qt, kt) = (upload(gpu, "q", &[bsz, l, h, dh], &q)?, upload(gpu, "k", &[bsz, l, h, dh], &kx)?);
    let ct = Tensor::zeros(gpu, "scores", &[bsz, h, l, l])?;
    let mut rec = Recorder::new(gpu);
    gemm(&mut rec, kernel, &g, &qt, &kt, None, &ct)?;
    rec.finish()?;
    close(&format!("{kernel:?} batched heads, dh = {dh}"), &download(gpu, &ct).await?, &want, atol, rtol)
}

async fn matmul_backward_and_linear(gpu: &Gpu) -> Checked {
    let mut rng = Rng::new(3);
    for &(m, k, n) in &MATMUL_SHAPES {
        // C = A B; dA = dC Bᵀ and dB = Aᵀ dC through the transposed forms of the same kernel.
        let (a, b, dc) = (rng.vec(m * k), rng.vec(k * n), rng.vec(m * n));
        let (at, bt, dct) = (upload(gpu, "a", &[m, k], &a)?, upload(gpu, "b", &[k, n], &b)?, upload(gpu, "dc", &[m, n], &dc)?);
        let mut rec = Recorder::new(gpu);
        let c = matmul(&mut rec, &at, &bt, false, false)?;
        let da = matmul(&mut rec, &dct, &bt, false, true)?;
        let db = matmul(&mut rec, &at, &dct, true, false)?;
        rec.finish()?;
        let (wda, wdb) = r::matmul_backward(&a, &b, &dc, m, k, n);
        close("matmul", &download(gpu, &c).await?, &r::matmul(&a, &b, m, k, n), MATMUL_TOL.0, MATMUL_TOL.1)?;
        close("matmul dA", &download(gpu, &da).await?, &wda, MATMUL_TOL.0, MATMUL_TOL.1)?;
        close("matmul dB", &download(gpu, &db).await?, &wdb, MATMUL_TOL.0, MATMUL_TOL.1)?;

        // Linear layer: rows = m, in = k, out = n.
        let (x, w, bias, dy) = (rng.vec(m * k), rng.vec(n * k), rng.vec(n), rng.vec(m * n));
        let (xt, wt, bt2, dyt) = (upload(gpu, "x", &[m, k], &x)?, upload(gpu, "w", &[n, k], &w)?, upload(gpu, "b", &[n], &bias)?, upload(gpu, "dy", &[m, n], &dy)?);
        let mut rec = Recorder::new(gpu);
        let y = linear(&mut rec, &xt, &wt, Some(&bt2))?;
        let grads = linear_backward(&mut rec, &xt, &wt, &dyt)?;
        rec.finish()?;
        let (wdx, wdw, wdb) = r::linear_backward(&x, &w, &dy, m, k, n);
        close("linear", &download(gpu, &y).await?, &r::linear(&x, &w, Some(&bias), m, k, n), MATMUL_TOL.0, MATMUL_TOL.1)?;
        close("linear dx", &download(gpu, &grads.dx).await?, &wdx, MATMUL_TOL.0, MATMUL_TOL.1)?;
        close("linear dW", &download(gpu, &grads.dw).await?, &wdw, MATMUL_TOL.0, MATMUL_TOL.1)?;
        close("linear db", &download(gpu, &grads.db).await?, &wdb, MATMUL_TOL.0, MATMUL_TOL.1)?;
    }
    Ok(())
}

// 1000 and 1028 take the vec4 entry points, 1000 with a broadcast operand of 8.
const SIZES: [usize; 6] = [1, 7, 33, 129, 1000, 1028];

async fn elementwise_forward_and_backward(gpu: &Gpu) -> Checked {
    // Single f32 operations: a few ulps. GELU uses a 1.5e-7 erf approximation.
    let (atol, rtol) = (1e-6, 1e-5);
    let mut rng = Rng::new(4);
    for &n in &SIZES {
        let x: Vec<f64> = rng.vec(n).iter().map(|v| v * 4.0).collect();
        let y = rng.vec(n);
        let nb = if n % 7 == 0 { 7 } else if n % 8 == 0 { 8 } else { n };
        let yb = rng.vec(nb);
        let (xt, yt, ybt) = (upload(gpu, "x", &[n], &x)?, upload(gpu, "y", &[n], &y)?, upload(gpu, "yb", &[nb], &yb)?);
        let mut rec = Recorder::new(gpu);
        let s = ew::add_scaled(&mut rec, &xt, &ybt, 0.5, -2.0)?;
        let a = ew::add(&mut rec, &xt, &yt)?;
        let m = ew::mul(&mut rec, &xt, &ybt)?;
        let (mdx, mdy) = ew::mul_backward(&mut rec, &xt, &ybt, &yt)?;
        let sc = ew::scale(&mut rec, &xt, 3.0)?;
        let acc = upload(gpu, "acc", &[n], &y)?;
        ew::accumulate(&mut rec, &acc, &ybt, -0.5)?;
        let filled = Tensor::uninit(gpu, "filled", &[n], DType::F32)?;
        ew::fill(&mut rec, &filled, 2.5)?;
        let mixed = ew::gate_mix(&mut rec, &xt, &yt, &acc)?;
        let mut acts = Vec::new();
        for act in Activation::ALL {
            acts.push((act, ew::activation(&mut rec, act, &xt)?, ew::activation_backward(&mut rec, act, &xt, &yt)?));
        }
        rec.finish()?;
        close("add_scaled", &download(gpu, &s).await?, &r::add_scaled(&x, &yb, 0.5, -2.0), atol, rtol)?;
        close("add", &download(gpu, &a).await?, &r::add_scaled(&x, &y, 1.0, 1.0), atol, rtol)?;
        close("mul", &download(gpu, &m).await?, &r::mul(&x, &yb), atol, rtol)?;
        let (wdx, wdy) = r::mul_backward(&x, &yb, &y);
        close("mul dx", &download(gpu, &mdx).await?, &wdx, atol, rtol)?;
        close("mul dy", &download(gpu, &mdy).await?, &wdy, 1e-5, 1e-5)?;
        close("scale", &download(gpu, &sc).await?, &x.iter().map(|v| 3.0 * v).collect::<Vec<_>>(), atol, rtol)?;
        close("accumulate", &download(gpu, &acc).await?, &r::add_scaled(&y, &yb, 1.0, -0.5), atol, rtol)?;
        close("fill", &download(gpu, &filled).await?, &vec![2.5; n], 0.0, 0.0)?;
        let accumulated = r::add_scaled(&y, &yb, 1.0, -0.5);
        let want_mix: Vec<f64> = x.iter().zip(&y).zip(&accumulated).map(|((g, f), r)| r + g * (f - r)).collect();
        close("gate_mix", &download(gpu, &mixed).await?, &want_mix, atol, rtol)?;
        for (act, fwd, bwd) in acts {
            close(&format!("{act:?}"), &download(gpu, &fwd).await?, &r::activation(act, &x), 2e-6, 1e-5)?;
            close(&format!("{act:?} backward"), &download(gpu, &bwd).await?, &r::activation_backward(act, &x, &y), 2e-6, 1e-5)?;
        }
    }
    Ok(())
}

async fn large_launch_splits_over_two_grid_dimensions(gpu: &Gpu) -> Checked {
    // More than 65535 workgroups of 256: the launch must spill into the y dimension. An odd n
    // keeps `fill` on its one-element-per-invocation entry point.
    let n = 777 * 21601; // > 65535 * 256
    let t = Tensor::uninit(gpu, "big", &[n], DType::F32)?;
    let mut rec = Recorder::new(gpu);
    ew::fill(&mut rec, &t, 1.0)?;
    let s = row_sum(&mut rec, &t.reshape(&[n / 777, 777])?)?;
    rec.finish()?;
    let v = t.read_f32_async(gpu).await?;
    ensure(v.iter().all(|&x| x == 1.0), || "some elements were not written".into())?;
    ensure(s.read_f32_async(gpu).await?.iter().all(|&x| x == 777.0), || "a row sum of 777 ones is not 777".into())
}

async fn softmax_masked_forward_and_backward(gpu: &Gpu, kernel: RowKernel) -> Checked {
    let (atol, rtol) = (1e-6, 1e-4);
    if kernel == RowKernel::Subgroup {
        available(crate::ops::subgroup_lanes(gpu))?;
    }
    let mut rng = Rng::new(5);
    for (rows, cols, mask_rows, div) in [(1, 1, 1, 1), (7, 33, 7, 1), (12, 129, 2, 6), (3, 300, 1, 3), (33, 7, 3, 11), (1, 4, 1, 1), (70, 132, 5, 7)] {
        if kernel == RowKernel::Rows && cols % 4 != 0 {
            let xt = upload(gpu, "x", &[rows, cols], &vec![0.0; rows * cols])?;
            ensure(softmax_using(&mut Recorder::new(gpu), kernel, &xt, None, 1.0).is_err(), || format!("{rows}x{cols}: the vec4 kernel must refuse {cols} columns"))?;
            continue;
        }
        let x: Vec<f64> = rng.vec(rows * cols).iter().map(|v| v * 5.0).collect();
        let mask: Vec<f64> = (0..mask_rows * cols).map(|_| if rng.below(4) == 0 { -10000.0 } else { 0.0 }).collect();
        let dy = rng.vec(rows * cols);
        let scale = 0.75f32;
        let (xt, mt, dyt) = (upload(gpu, "x", &[rows, cols], &x)?, upload(gpu, "mask", &[mask_rows, cols], &mask)?, upload(gpu, "dy", &[rows, cols], &dy)?);
        let mut rec = Recorder::new(gpu);
        let y = softmax_using(&mut rec, kernel, &xt, Some(Mask { mask: &mt, div }), scale)?;
        let y_plain = softmax_using(&mut rec, kernel, &xt, None, 1.0)?;
        let dx = softmax_backward_using(&mut rec, kernel, &y, &dyt, scale)?;
        rec.finish()?;
        let want = r::softmax(&x, cols, Some((&mask, div)), scale as f64);
        let what = format!("softmax {kernel:?} {rows}x{cols}");
        close(&what, &download(gpu, &y).await?, &want, atol, rtol)?;
        close(&format!("{what} unmasked"), &download(gpu, &y_plain).await?, &r::softmax(&x, cols, None, 1.0), atol, rtol)?;
        close(&format!("{what} backward"), &download(gpu, &dx).await?, &r::softmax_backward(&want, &dy, cols, scale as f64), atol, rtol)?;
    }
    Ok(())
}

/// The fused self-attention against the f64 reference: segments shorter than the padded width,
/// segments of one key, lengths that are and are not multiples of the subgroup, heads of 4 to 64
/// features; then the probabilities of chosen rows (padding rows and the last row included).
async fn fused_encoder_attention_and_rows(gpu: &Gpu) -> Checked {
    let (atol, rtol) = (2e-6, 1e-4);
    let mut rng = Rng::new(41);
    for (w, seg_len, heads, d) in [(1, vec![1usize], 1, 4), (9, vec![9, 3, 1], 2, 8), (37, vec![37, 20], 4, 64), (70, vec![66, 70, 17], 2, 128), (24, vec![8, 24], 3, 96)] {
        fused_lanes(gpu, d, d / heads).map_err(Verdict::Skip)?;
        let rows = seg_len.len() * w;
        let scale = 1.0 / ((d / heads) as f64).sqrt();
        let (q, k, v) = (rng.vec(rows * d), rng.vec(rows * d), rng.vec(rows * d));
        // Scores far apart, so that a wrong max or a missed rescale shows.
        let q: Vec<f64> = q.iter().map(|x| 4.0 * x).collect();
        let t = |n: &str, x: &[f64]| upload(gpu, n, &[rows, d], x);
        let (qt, kt, vt) = (t("q", &q)?, t("k", &k)?, t("v", &v)?);
        let lens: Vec<u32> = seg_len.iter().map(|&l| l as u32).collect();
        let lt = Tensor::from_u32(gpu, "seg_len", &[lens.len()], &lens)?;
        let picks: Vec<u32> = [0, rows / 2, rows - 1, w.saturating_sub(1), rows / 3].iter().map(|&r| r as u32).collect();
        let pt = Tensor::from_u32(gpu, "rows", &[picks.len()], &picks)?;
        let mut rec = Recorder::new(gpu);
        let (ctx, stats) = fused_attention(&mut rec, &qt, &kt, &vt, &lt, w, heads, scale as f32)?;
        let probs = attention_rows(&mut rec, &qt, &kt, &stats, &lt, &pt, w, heads, scale as f32)?;
        rec.finish()?;
        let want_probs = r::attention_probs(&q, &k, d, w, heads, &seg_len, scale);
        let want_ctx = r::attention_context(&want_probs, &v, d, w, heads);
        let what = format!("fused attention w {w}, segments {seg_len:?}, {heads} heads of {}", d / heads);
        close(&what, &download(gpu, &ctx).await?, &want_ctx, atol, rtol)?;
        let mut want_rows = Vec::new();
        for &r in &picks {
            let (s, i) = (r as usize / w, r as usize % w);
            for h in 0..heads {
                want_rows.extend_from_slice(&want_probs[((s * heads + h) * w + i) * w..((s * heads + h) * w + i + 1) * w]);
            }
        }
        close(&format!("{what}: rows {picks:?}"), &download(gpu, &probs).await?, &want_rows, atol, rtol)?;
    }
    Ok(())
}

async fn lse_pool_forward_and_backward(gpu: &Gpu) -> Checked {
    let (atol, rtol) = (2e-6, 1e-5);
    let mut rng = Rng::new(6);
    for (rows, dim, nsets) in [(1, 1, 1), (7, 33, 4), (33, 7, 9), (129, 5, 40)] {
        let x = rng.vec(rows * dim);
        let sets: Vec<Vec<u32>> = (0..nsets)
            .map(|s| if s == 1 { vec![] } else { (0..1 + rng.below(4)).map(|_| rng.below(rows) as u32).collect() })
            .collect();
        let dpool = rng.vec(nsets * dim);
        let rs = RowSets::new(gpu, &sets, rows)?;
        let (xt, dpt) = (upload(gpu, "x", &[rows, dim], &x)?, upload(gpu, "dpool", &[nsets, dim], &dpool)?);
        let mut rec = Recorder::new(gpu);
        let pooled = lse_pool(&mut rec, &xt, &rs)?;
        let dx = lse_pool_backward(&mut rec, &xt, &rs, &pooled, &dpt)?;
        rec.finish()?;
        let want = r::lse_pool(&x, dim, &sets);
        close("lse_pool", &download(gpu, &pooled).await?, &want, atol, rtol)?;
        close("lse_pool backward", &download(gpu, &dx).await?, &r::lse_pool_backward(&x, dim, &sets, &want, &dpool), atol, rtol)?;
    }
    Ok(())
}

async fn layernorm_forward_and_backward(gpu: &Gpu, kernel: RowKernel) -> Checked {
    // Reductions over ≤ 384 columns in f32; the row kernel holds rows of up to 128 columns in
    // registers (64, 128) and loops over wider ones (132, 384).
    let (atol, rtol) = (2e-5, 1e-4);
    let mut rng = Rng::new(7);
    for (rows, cols, eps) in [(1, 7, 1e-12), (7, 33, 1e-5), (33, 129, 1e-12), (129, 7, 1e-5), (5, 384, 1e-12), (1, 4, 1e-5), (70, 12, 1e-12), (65, 64, 1e-12), (9, 128, 1e-5), (3, 132, 1e-5)] {
        let x: Vec<f64> = rng.vec(rows * cols).iter().map(|v| v * 3.0 + 0.5).collect();
        let (gamma, beta, dy) = (rng.vec(cols), rng.vec(cols), rng.vec(rows * cols));
        let (xt, gt, bt, dyt) = (upload(gpu, "x", &[rows, cols], &x)?, upload(gpu, "g", &[cols], &gamma)?, upload(gpu, "b", &[cols], &beta)?, upload(gpu, "dy", &[rows, cols], &dy)?);
        let mut rec = Recorder::new(gpu);
        if kernel == RowKernel::Rows && cols % 4 != 0 {
            ensure(layernorm_using(&mut rec, kernel, &xt, &gt, &bt, 1e-5).is_err(), || format!("the vec4 layernorm must refuse {cols} columns"))?;
            continue;
        }
        let out = layernorm_using(&mut rec, kernel, &xt, &gt, &bt, eps as f32)?;
        let g = layernorm_backward_using(&mut rec, kernel, &xt, &gt, &out.stats, &dyt)?;
        rec.finish()?;
        let (wy, ws) = r::layernorm(&x, &gamma, &beta, eps);
        let (wdx, wdg, wdb) = r::layernorm_backward(&x, &gamma, &ws, &dy);
        let what = format!("layernorm {kernel:?} {rows}x{cols}");
        close(&what, &download(gpu, &out.y).await?, &wy, atol, rtol)?;
        close(&format!("{what} stats"), &download(gpu, &out.stats).await?, &ws, atol, rtol)?;
        close(&format!("{what} dx"), &download(gpu, &g.dx).await?, &wdx, atol, rtol)?;
        close(&format!("{what} dgamma"), &download(gpu, &g.dgamma).await?, &wdg, atol, rtol)?;
        close(&format!("{what} dbeta"), &download(gpu, &g.dbeta).await?, &wdb, atol, rtol)?;
        // LayerNorm of a residual sum x + y, with and without the sum kept (fused on the row
        // kernel up to 128 columns, an add and the LayerNorm past that and on the workgroup one).
        let y: Vec<f64> = rng.vec(rows * cols);
        let yt = upload(gpu, "residual", &[rows, cols], &y)?;
        let sum: Vec<f64> = x.iter().zip(&y).map(|(a, b)| a + b).collect();
        let (wy, ws) = r::layernorm(&sum, &gamma, &beta, eps);
        for keep in [true, false] {
            let mut rec = Recorder::new(gpu);
            let (out, kept) = add_layernorm_using(&mut rec, kernel, &xt, &yt, &gt, &bt, eps as f32, keep)?;
            rec.finish()?;
            let what = format!("{what} of a residual sum (sum kept: {keep})");
            close(&what, &download(gpu, &out.y).await?, &wy, atol, rtol)?;
            close(&format!("{what} stats"), &download(gpu, &out.stats).await?, &ws, atol, rtol)?;
            match kept {
                Some(t) if keep => close(&format!("{what} sum"), &download(gpu, &t).await?, &sum, 1e-6, 1e-6)?,
                None if !keep => {}
                _ => return Err(Verdict::Fail(format!("{what}: the sum was {} though it was {}asked for", if keep { "missing" } else { "returned" }, if keep { "" } else { "not " }))),
            }
        }
    }
    Ok(())
}

async fn embedding_gather_and_scatter_add(gpu: &Gpu) -> Checked {
    // Gather is a copy (exact); scatter sums a handful of f32 values.
    let mut rng = Rng::new(8);
    for (vocab, dim, n) in [(1, 1, 1), (7, 33, 20), (33, 7, 129), (129, 5, 300)] {
        let table = rng.vec(vocab * dim);
        let ids: Vec<u32> = (0..n).map(|_| rng.below(vocab) as u32).collect();
        let dout = rng.vec(n * dim);
        let dtable0 = rng.vec(vocab * dim);
        let tt = upload(gpu, "table", &[vocab, dim], &table)?;
        let idt = Tensor::from_u32(gpu, "ids", &[n], &ids)?;
        let scatter = RowScatter::new(gpu, &ids, vocab)?;
        let (dt, dtab) = (upload(gpu, "dout", &[n, dim], &dout)?, upload(gpu, "dtable", &[vocab, dim], &dtable0)?);
        let mut rec = Recorder::new(gpu);
        let out = gather_rows(&mut rec, &tt, &idt)?;
        scatter_add_rows(&mut rec, &dt, &scatter, &dtab)?;
        rec.finish()?;
        close("gather_rows", &download(gpu, &out).await?, &r::gather_rows(&table, dim, &ids), 0.0, 0.0)?;
        let mut want = dtable0.clone();
        r::scatter_add_rows(&dout, dim, &ids, &mut want);
        close("scatter_add_rows", &download(gpu, &dtab).await?, &want, 1e-6, 1e-6)?;
    }
    Ok(())
}

async fn reductions(gpu: &Gpu) -> Checked {
    let mut rng = Rng::new(9);
    for (rows, cols) in [(1, 1), (7, 33), (129, 7), (200, 3), (4100, 2)] {
        let x = rng.vec(rows * cols);
        let xt = upload(gpu, "x", &[rows, cols], &x)?;
        let mut rec = Recorder::new(gpu);
        let rs = row_sum(&mut rec, &xt)?;
        let cs = col_sum(&mut rec, &xt)?;
        rec.finish()?;
        close("row_sum", &download(gpu, &rs).await?, &r::row_sum(&x, cols), 1e-5, 1e-5)?;
        close("col_sum", &download(gpu, &cs).await?, &r::col_sum(&x, rows, cols), 1e-4, 1e-5)?;
    }
    let parts: Vec<Vec<f64>> = [1usize, 7, 33, 129, 5000].iter().map(|&n| rng.vec(n)).collect();
    let tensors = parts.iter().map(|p| upload(gpu, "p", &[p.len()], p)).collect::<crate::Result<Vec<Tensor>>>()?;
    let mut rec = Recorder::new(gpu);
    let s = sum_squares(&mut rec, &tensors.iter().collect::<Vec<_>>())?;
    rec.finish()?;
    let want = r::sum_squares(&parts.iter().map(|p| &p[..]).collect::<Vec<_>>());
    close("sum_squares", &download(gpu, &s).await?, &[want], 1e-4, 1e-5)
}

async fn dropout_matches_reference_mask_and_rate(gpu: &Gpu) -> Checked {
    let mut rng = Rng::new(10);
    for (n, p, seed, offset) in [(1usize, 0.1f32, 66u64, 0u32), (129, 0.5, 1 << 40 | 3, 17), (20000, 0.1, 7, 123_456)] {
        let x = rng.vec(n);
        let xt = upload(gpu, "x", &[n], &x)?;
        let mut rec = Recorder::new(gpu);
        let y = dropout(&mut rec, &xt, p, DropoutRng { seed, offset })?;
        rec.finish()?;
        let got = download(gpu, &y).await?;
        close("dropout", &got, &r::dropout(&x, p as f64, seed, offset), 1e-6, 1e-6)?;
        if n >= 20000 {
            let kept = got.iter().filter(|v| **v != 0.0).count() as f64 / n as f64;
            ensure((kept - (1.0 - p as f64)).abs() < 0.01, || format!("keep rate {kept} for p = {p}"))?;
        }
    }
    // Another seed gives another mask.
    let (a, b): (Vec<bool>, Vec<bool>) = (0..1000).map(|i| (r::dropout_keep(1, i, 0.5), r::dropout_keep(2, i, 0.5))).unzip();
    ensure(a != b, || "two dropout seeds gave the same mask".into())
}

async fn adamw_steps_with_and_without_clipping(gpu: &Gpu) -> Checked {
    let mut rng = Rng::new(11);
    for (n, max_norm) in [(1usize, 0.0f32), (33, 1.0), (1000, 0.5), (129, 100.0)] {
        let hp = AdamW { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-6, weight_decay: 0.01, max_norm };
        let mut p = rng.vec(n);
        let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
        let (pt, mt, vt) = (upload(gpu, "p", &[n], &p)?, Tensor::zeros(gpu, "m", &[n])?, Tensor::zeros(gpu, "v", &[n])?);
        for step in 1..=3 {
            let g = rng.vec(n);
            let gt = upload(gpu, "g", &[n], &g)?;
            let mut rec = Recorder::new(gpu);
            let normsq = sum_squares(&mut rec, &[&gt])?;
            adamw_step(&mut rec, &hp, step, &pt, &gt, &mt, &vt, &normsq)?;
            rec.finish()?;
            r::adamw_step(&hp, step, r::sum_squares(&[&g]), &mut p, &g, &mut m, &mut v);
        }
        close("adamw param", &download(gpu, &pt).await?, &p, 1e-6, 1e-5)?;
        close("adamw m", &download(gpu, &mt).await?, &m, 1e-6, 1e-5)?;
        close("adamw v", &download(gpu, &vt).await?, &v, 1e-7, 1e-5)?;
    }
    Ok(())
}

/// All ordered pairs of distinct entities per document, h-major (hts order).
fn hts_pairs(counts: &[usize]) -> Vec<(u32, u32, u32)> {
    let mut v = Vec::new();
    for (b, &n) in counts.iter().enumerate() {
        for s in 0..n {
            for o in 0..n {
                if s != o {
                    v.push((b as u32, s as u32, o as u32));
                }
            }
        }
    }
    v
}

async fn eca_and_dense_attention_forward_and_backward(gpu: &Gpu, kernel: EcaKernel) -> Checked {
    // Documents with 1 (no pairs), 2, a prime count and more, 4 heads. The subgroup kernel gets
    // heads of 1, 2 and 4 features per lane (it needs dh divisible by the subgroup size); the
    // workgroup kernel heads of 1, 3 and 32 features; the lane and line forwards heads of 4, 8
    // and 32.
    let widths = match kernel {
        EcaKernel::Subgroup => {
            let sg = crate::ops::subgroup_lanes(gpu).map_err(|e| Verdict::Skip(e.to_string()))?;
            [4 * sg, 8 * sg, 16 * sg]
        }
        EcaKernel::Lines => {
            if !gpu.subgroup_size()?.is_some_and(|s| s <= 16) {
                return Err(Verdict::Skip(format!("the line forward needs subgroups of at most 16 lanes; this adapter has {:?}", gpu.subgroup_size()?)));
            }
            [16, 32, 128]
        }
        EcaKernel::Lanes => [16, 32, 128],
        _ => [4, 12, 128],
    };
    let mut rng = Rng::new(77);
    // 11 entities: lines of more than one chunk of queries and keys for subgroups of 4 and 8.
    for (counts, d) in [(vec![2usize], widths[0]), (vec![3, 1, 5], widths[1]), (vec![7, 2], widths[0]), (vec![4, 6], widths[2]), (vec![3, 11], widths[1])] {
        let pairs = hts_pairs(&counts);
        let p = pairs.len();
        let idx = PairIndex::new(gpu, &counts, &pairs)?;
        let (q, k, v, dout) = (rng.vec(p * d), rng.vec(p * d), rng.vec(p * d), rng.vec(p * d));
        let t = |n: &str, x: &[f64]| upload(gpu, n, &[p, d], x);
        let (qt, kt, vt, dt) = (t("q", &q)?, t("k", &k)?, t("v", &v)?, t("dout", &dout)?);
        // Without and with attention-probability dropout (a high p, so that masks matter).
        for drop in [None, Some(Site { p: 0.3, rng: DropoutRng { seed: 0x5eed_0000_0001, offset: 17 } })] {
            let mut outs = Vec::new();
            for kind in [Attention::Eca, Attention::Dense, Attention::DenseEcaMask] {
                let mut rec = Recorder::new(gpu);
                let (out, stats) = attention_forward_using(&mut rec, kernel, &idx, kind, 4, &qt, &kt, &vt, drop)?;
                let (dq, dk, dv) = attention_backward_using(&mut rec, kernel, &idx, kind, 4, &qt, &kt, &vt, &out, &stats, &dt, drop)?;
                rec.finish()?;
                let what = format!("{kernel:?} {kind:?} counts {counts:?} d {d} dropout {}", drop.map_or(0.0, |s| s.p));
                let want = r::attention(&pairs, kind, 4, d, &q, &k, &v, drop);
                let (wq, wk, wv) = r::attention_backward(&pairs, kind, 4, d, &q, &k, &v, &dout, drop);
                close(&format!("{what} out"), &download(gpu, &out).await?, &want, 1e-5, 1e-4)?;
                close(&format!("{what} dq"), &download(gpu, &dq).await?, &wq, 1e-5, 1e-4)?;
                close(&format!("{what} dk"), &download(gpu, &dk).await?, &wk, 1e-5, 1e-4)?;
                close(&format!("{what} dv"), &download(gpu, &dv).await?, &wv, 1e-5, 1e-4)?;
                if drop.is_some() && kind == Attention::Eca && p * d <= 2048 {
                    // The reference's gradients with dropout, against finite differences of its
                    // output (the mask is fixed by the seed, so the function is smooth).
                    let fd_q = numeric_grad(&q, |x| r::attention(&pairs, kind, 4, d, x, &k, &v, drop).iter().zip(&dout).map(|(a, b)| a * b).sum());
                    close(&format!("{what} reference dq vs finite differences"), &wq, &fd_q, 1e-6, 1e-5)?;
                    let fd_v = numeric_grad(&v, |x| r::attention(&pairs, kind, 4, d, &q, &k, x, drop).iter().zip(&dout).map(|(a, b)| a * b).sum());
                    close(&format!("{what} reference dv vs finite differences"), &wv, &fd_v, 1e-6, 1e-5)?;
                }
                outs.push(download(gpu, &out).await?);
            }
            // Dense restricted to ECA's key sets is ECA.
            close("dense with ECA mask vs ECA", &outs[2], &outs[0], 1e-6, 1e-5)?;
        }
    }
    Ok(())
}

/// Central finite differences of a scalar function of one input vector.
fn numeric_grad(x: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut x = x.to_vec();
    (0..x.len())
        .map(|i| {
            let o = x[i];
            x[i] = o + 1e-6;
            let a = f(&x);
            x[i] = o - 1e-6;
            let b = f(&x);
            x[i] = o;
            (a - b) / 2e-6
        })
        .collect()
}

async fn pair_context_forward_and_backward(gpu: &Gpu) -> Checked {
    let mut rng = Rng::new(31);
    for (counts, heads, l) in [(vec![2usize], 1usize, 3usize), (vec![3, 5], 2, 7), (vec![1, 4], 3, 13)] {
        let ne: usize = counts.iter().sum();
        let mut pairs = Vec::new();
        let mut first = 0u32;
        for (b, &n) in counts.iter().enumerate() {
            for s in 0..n as u32 {
                for o in 0..n as u32 {
                    if s != o {
                        pairs.push((first + s, first + o, b as u32));
                    }
                }
            }
            first += n as u32;
        }
        let p = pairs.len();
        let ea: Vec<f64> = rng.vec(ne * heads * l).iter().map(|v| v.abs()).collect();
        let dw = rng.vec(p * l);
        let pe = PairEntities::new(gpu, ne, &pairs)?;
        let eat = upload(gpu, "ea", &[ne, heads, l], &ea)?;
        let mut rec = Recorder::new(gpu);
        let w = context_weights(&mut rec, &eat, &pe)?;
        let dea = context_weights_backward(&mut rec, &eat, &pe, &upload(gpu, "dw", &[p, l], &dw)?)?;
        rec.finish()?;
        let what = format!("context {counts:?} h{heads} l{l}");
        close(&what, &download(gpu, &w).await?, &r::context_weights(&ea, heads, l, &pairs), 1e-6, 1e-4)?;
        let want = r::context_weights_backward(&ea, heads, l, &pairs, &dw);
        close(&format!("{what} backward"), &download(gpu, &dea).await?, &want, 1e-5, 1e-4)?;
        let fd = numeric_grad(&ea, |e| r::context_weights(e, heads, l, &pairs).iter().zip(&dw).map(|(a, b)| a * b).sum());
        close(&format!("{what} reference vs finite differences"), &want, &fd, 1e-6, 1e-5)?;
    }
    Ok(())
}

/// The bilinear layer on one matmul body; the larger shapes exceed one 64 x 64 tile in every
/// mode (P, O, E*K and, per group, K = 64), and P, blocks and sizes of every residue modulo 4
/// exercise the subgroup body's k tails (the weight gradient contracts over P).
async fn bilinear_forward_and_backward(gpu: &Gpu, kernel: MatmulKernel) -> Checked {
    matmul_available(gpu, kernel)?;
    let mut rng = Rng::new(32);
    for (p, e, o, block) in [(1usize, 4usize, 3usize, 2usize), (7, 6, 5, 3), (3, 8, 4, 4), (13, 16, 8, 8), (70, 128, 65, 64), (66, 24, 70, 4), (5, 8, 5, 4), (68, 128, 66, 64)] {
        let (zs, zo, w, b, dy) = (rng.vec(p * e), rng.vec(p * e), rng.vec(o * e * block), rng.vec(o), rng.vec(p * o));
        let mut rec = Recorder::new(gpu);
        let (zst, zot, wt) = (upload(gpu, "zs", &[p, e], &zs)?, upload(gpu, "zo", &[p, e], &zo)?, upload(gpu, "w", &[o, e * block], &w)?);
        let y = bilinear_using(&mut rec, kernel, &zst, &zot, &wt, &upload(gpu, "b", &[o], &b)?, block)?;
        let (dzs, dzo, dw, db) = bilinear_backward_using(&mut rec, kernel, &zst, &zot, &wt, &upload(gpu, "dy", &[p, o], &dy)?, block)?;
        rec.finish()?;
        let what = format!("bilinear {kernel:?} p{p} e{e} o{o} k{block}");
        // Sums of up to E*K = 8192 products of three values of magnitude <= 1.
        let tol = if e * block > 1000 { (1e-3, 1e-4) } else { (1e-5, 1e-4) };
        close(&what, &download(gpu, &y).await?, &r::bilinear(&zs, &zo, &w, &b, e, block), tol.0, tol.1)?;
        let (wzs, wzo, ww, wb) = r::bilinear_backward(&zs, &zo, &w, &dy, e, block);
        close(&format!("{what} dzs"), &download(gpu, &dzs).await?, &wzs, tol.0, tol.1)?;
        close(&format!("{what} dzo"), &download(gpu, &dzo).await?, &wzo, tol.0, tol.1)?;
        close(&format!("{what} dw"), &download(gpu, &dw).await?, &ww, tol.0, tol.1)?;
        close(&format!("{what} db"), &download(gpu, &db).await?, &wb, tol.0, tol.1)?;
        if kernel == MatmulKernel::Register {
            let mut rec = Recorder::new(gpu);
            let sq = bilinear_weight_grad_sq(&mut rec, &zst, &zot, &upload(gpu, "dy", &[p, o], &dy)?, block)?;
            rec.finish()?;
            let want: f64 = ww.iter().map(|v| v * v).sum();
            close(&format!("{what} ‖dW‖² by Gram matrices"), &download(gpu, &sq).await?, &[want], 1e-3, 1e-5)?;
        }
        if kernel == MatmulKernel::Register && p < 20 {
            let fd = numeric_grad(&zs, |z| r::bilinear(z, &zo, &w, &b, e, block).iter().zip(&dy).map(|(a, c)| a * c).sum());
            close(&format!("{what} reference dzs vs finite differences"), &wzs, &fd, 1e-6, 1e-5)?;
        }
    }
    Ok(())
}

async fn losses_labels_and_batchnorm(gpu: &Gpu) -> Checked {
    let mut rng = Rng::new(41);
    // get_label on its own: ties (whole-number logits), top_k at and past the class count, and
    // past the kernel's register list of 8 (where it counts).
    for (p, c, k) in [(40usize, 22usize, 4usize), (17, 5, 8), (23, 13, 9), (12, 30, 8), (5, 3, 1), (9, 97, 3)] {
        let logits: Vec<f64> = rng.vec(p * c).iter().map(|v| (3.0 * v).round()).collect();
        let lt = upload(gpu, "l", &[p, c], &logits)?;
        let mut rec = Recorder::new(gpu);
        let lab = get_label(&mut rec, &lt, k)?;
        rec.finish()?;
        let want: Vec<f64> = (0..p).flat_map(|r| r::get_label(&logits[r * c..(r + 1) * c], k)).collect();
        ensure(download(gpu, &lab).await? == want, || format!("get_label p{p} c{c} k{k} (tied logits) differs from the reference"))?;
    }
    for (p, c, k) in [(1usize, 2usize, 1usize), (9, 5, 2), (31, 13, 4)] {
        let logits: Vec<f64> = rng.vec(p * c).iter().map(|v| 3.0 * v).collect();
        let mut labels = vec![0.0; p * c];
        for r in 0..p {
            match r % 3 {
                0 => labels[r * c] = 1.0,
                1 => labels[r * c + 1 + rng.below(c - 1)] = 1.0,
                _ => (1..c).for_each(|j| labels[r * c + j] = (rng.below(2) == 0) as u8 as f64),
            }
        }
        let mask: Vec<f64> = (0..p).map(|i| if i % 4 == 3 { 0.0 } else { 1.0 }).collect();
        let (lt, yt, mt) = (upload(gpu, "l", &[p, c], &logits)?, upload(gpu, "y", &[p, c], &labels)?, upload(gpu, "m", &[p], &mask)?);
        let mut rec = Recorder::new(gpu);
        let sum = atloss_sum(&mut rec, &lt, &yt, &mt)?;
        let grad = atloss_backward(&mut rec, &lt, &yt, &mt, 0.5)?;
        let lab = get_label(&mut rec, &lt, k)?;
        rec.finish()?;
        let loss = |lg: &[f64]| (0..p).map(|r| mask[r] * r::atloss_pair(&lg[r * c..(r + 1) * c], &labels[r * c..(r + 1) * c])).sum::<f64>();
        let what = format!("atloss p{p} c{c}");
        close(&what, &download(gpu, &sum).await?, &[loss(&logits)], 1e-5, 1e-5)?;
        let fd: Vec<f64> = numeric_grad(&logits, loss).iter().map(|g| 0.5 * g).collect();
        close(&format!("{what} backward vs finite differences"), &download(gpu, &grad).await?, &fd, 1e-5, 1e-4)?;
        let want: Vec<f64> = (0..p).flat_map(|r| r::get_label(&logits[r * c..(r + 1) * c], k)).collect();
        ensure(download(gpu, &lab).await? == want, || format!("get_label p{p} c{c} k{k} differs from the reference"))?;
        // Noise on those labels: every other pair corrupted, u at both ends of [0, 1).
        let picks: Vec<f64> = (0..p).map(|i| if i % 2 == 0 { -1.0 } else { [0.0, 0.999_999, rng.below(1000) as f64 / 1000.0][i % 3] }).collect();
        let mut rec = Recorder::new(gpu);
        let noisy = corrupt_labels(&mut rec, &lab, &upload(gpu, "picks", &[p], &picks)?)?;
        rec.finish()?;
        let want_noisy = r::corrupt_labels(&want, &picks, c);
        ensure(download(gpu, &noisy).await? == want_noisy, || format!("corrupt_labels p{p} c{c} differs from the reference"))?;
        ensure(p < 2 || want_noisy != want, || format!("corrupt_labels p{p} c{c} changed nothing"))?;
    }
    for (p, d) in [(1usize, 3usize), (6, 8), (17, 5)] {
        let (x, y) = (rng.vec(p * d), rng.vec(p * d));
        let (xt, yt) = (upload(gpu, "x", &[p, d], &x)?, upload(gpu, "y", &[p, d], &y)?);
        let mut rec = Recorder::new(gpu);
        let s = cosine_sum(&mut rec, &xt, &yt)?;
        let g = cosine_backward(&mut rec, &xt, &yt, 2.0)?;
        rec.finish()?;
        let f = |xs: &[f64]| (0..p).map(|r| r::cosine_loss(&xs[r * d..(r + 1) * d], &y[r * d..(r + 1) * d])).sum::<f64>();
        close("cosine", &download(gpu, &s).await?, &[f(&x)], 1e-5, 1e-5)?;
        let fd: Vec<f64> = numeric_grad(&x, f).iter().map(|v| 2.0 * v).collect();
        close("cosine backward vs finite differences", &download(gpu, &g).await?, &fd, 1e-5, 1e-4)?;
    }
    for (p, d) in [(2usize, 3usize), (9, 4), (33, 7)] {
        let (x, gm, bt, dy) = (rng.vec(p * d), rng.vec(d), rng.vec(d), rng.vec(p * d));
        let running: Vec<f64> = (0..2 * d).map(|i| if i < d { 0.1 } else { 1.0 }).collect();
        let (xt, gt) = (upload(gpu, "x", &[p, d], &x)?, upload(gpu, "g", &[d], &gm)?);
        let (rm, rv) = (upload(gpu, "run_mean", &[d], &running[..d])?, upload(gpu, "run_var", &[d], &running[d..])?);
        let mut rec = Recorder::new(gpu);
        let (y, stats) = batchnorm(&mut rec, &xt, &gt, &upload(gpu, "b", &[d], &bt)?, &rm, &rv, 1e-5, 0.1)?;
        let (dx, dg, db) = batchnorm_backward(&mut rec, &xt, &gt, &stats, &upload(gpu, "dy", &[p, d], &dy)?)?;
        rec.finish()?;
        let (want, mean, var) = r::batchnorm(&x, &gm, &bt, 1e-5);
        close("batchnorm", &download(gpu, &y).await?, &want, 1e-5, 1e-4)?;
        let run_want: Vec<f64> = (0..2 * d).map(|i| if i < d { 0.9 * 0.1 + 0.1 * mean[i] } else { 0.9 + 0.1 * var[i - d] * p as f64 / (p - 1) as f64 }).collect();
        let got_run: Vec<f64> = download(gpu, &rm).await?.into_iter().chain(download(gpu, &rv).await?).collect();
        close("batchnorm running stats", &got_run, &run_want, 1e-6, 1e-5)?;
        let f = |xs: &[f64]| r::batchnorm(xs, &gm, &bt, 1e-5).0.iter().zip(&dy).map(|(a, b)| a * b).sum::<f64>();
        close("batchnorm dx vs finite differences", &download(gpu, &dx).await?, &numeric_grad(&x, f), 1e-4, 1e-3)?;
        let fg = |g: &[f64]| r::batchnorm(&x, g, &bt, 1e-5).0.iter().zip(&dy).map(|(a, b)| a * b).sum::<f64>();
        close("batchnorm dgamma vs finite differences", &download(gpu, &dg).await?, &numeric_grad(&gm, fg), 1e-5, 1e-4)?;
        let want_db: Vec<f64> = (0..d).map(|c| (0..p).map(|r| dy[r * d + c]).sum()).collect();
        close("batchnorm dbeta", &download(gpu, &db).await?, &want_db, 1e-5, 1e-4)?;
    }
    Ok(())
}
