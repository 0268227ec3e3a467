//! Finite-difference checks of every backward in ops::reference, so the CPU truth the GPU
//! kernels are tested against is itself proven. For an op y = f(x) and a random weight w, the
//! analytic gradient of L = Σ w·f(x) must match central differences (f64, h = 1e-6).

mod common;

use common::Rng;
use docre::ops::elementwise::Activation;
use docre::ops::reference as r;

const H: f64 = 1e-6;

/// Compare `analytic` with central differences of `loss` around `x`.
fn check(what: &str, x: &[f64], analytic: &[f64], loss: impl Fn(&[f64]) -> f64) {
    assert_eq!(x.len(), analytic.len(), "{what}: gradient length");
    let mut xp = x.to_vec();
    for i in 0..x.len() {
        xp[i] = x[i] + H;
        let up = loss(&xp);
        xp[i] = x[i] - H;
        let down = loss(&xp);
        xp[i] = x[i];
        let fd = (up - down) / (2.0 * H);
        let tol = 1e-6 + 1e-5 * fd.abs().max(analytic[i].abs());
        assert!((fd - analytic[i]).abs() <= tol, "{what}: d/dx[{i}] analytic {} vs finite difference {fd}", analytic[i]);
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn matmul_and_linear() {
    let mut rng = Rng::new(21);
    for (m, k, n) in [(1, 1, 1), (3, 7, 5), (7, 2, 3)] {
        let (a, b, w) = (rng.vec(m * k), rng.vec(k * n), rng.vec(m * n));
        let (da, db) = r::matmul_backward(&a, &b, &w, m, k, n);
        check("matmul dA", &a, &da, |a| dot(&r::matmul(a, &b, m, k, n), &w));
        check("matmul dB", &b, &db, |b| dot(&r::matmul(&a, b, m, k, n), &w));
        let (x, wt, bias) = (rng.vec(m * k), rng.vec(n * k), rng.vec(n));
        let (dx, dw, dbias) = r::linear_backward(&x, &wt, &w, m, k, n);
        check("linear dx", &x, &dx, |x| dot(&r::linear(x, &wt, Some(&bias), m, k, n), &w));
        check("linear dW", &wt, &dw, |wt| dot(&r::linear(&x, wt, Some(&bias), m, k, n), &w));
        check("linear db", &bias, &dbias, |b| dot(&r::linear(&x, &wt, Some(b), m, k, n), &w));
    }
}

#[test]
fn elementwise_ops() {
    let mut rng = Rng::new(22);
    for n in [1, 7, 14] {
        let x: Vec<f64> = rng.vec(n).iter().map(|v| v * 3.0).collect();
        let y = rng.vec(7.min(n));
        let y = if n % y.len() == 0 { y } else { rng.vec(n) };
        let w = rng.vec(n);
        let (dx, dy) = r::mul_backward(&x, &y, &w);
        check("mul dx", &x, &dx, |x| dot(&r::mul(x, &y), &w));
        check("mul dy", &y, &dy, |y| dot(&r::mul(&x, y), &w));
        let ones = vec![1.0; n];
        check("add_scaled dx", &x, &w.iter().map(|v| 0.5 * v).collect::<Vec<_>>(), |x| dot(&r::add_scaled(x, &ones, 0.5, 2.0), &w));
        // Keep ReLU's kink away from the probe points.
        let xs: Vec<f64> = x.iter().map(|v| if v.abs() < 1e-3 { 0.5 } else { *v }).collect();
        for act in Activation::ALL {
            let d = r::activation_backward(act, &xs, &w);
            check(&format!("{act:?}"), &xs, &d, |x| dot(&r::activation(act, x), &w));
        }
    }
}

#[test]
fn erf_matches_known_values() {
    for (x, want) in [(0.0, 0.0), (0.5, 0.520_499_877_813_046_5), (1.0, 0.842_700_792_949_714_9), (2.0, 0.995_322_265_018_952_7), (3.0, 0.999_977_909_503_001_4), (-1.0, -0.842_700_792_949_714_9)] {
        assert!((r::erf(x) - want).abs() < 1e-14, "erf({x}) = {} , expected {want}", r::erf(x));
    }
}

#[test]
fn softmax_with_mask_and_scale() {
    let mut rng = Rng::new(23);
    for (rows, cols) in [(1, 1), (3, 7), (4, 5)] {
        let x = rng.vec(rows * cols);
        let mask: Vec<f64> = (0..2 * cols).map(|i| if i % 3 == 0 { -10000.0 } else { 0.0 }).collect();
        let w = rng.vec(rows * cols);
        let y = r::softmax(&x, cols, Some((&mask, 2)), 0.7);
        let dx = r::softmax_backward(&y, &w, cols, 0.7);
        check("softmax", &x, &dx, |x| dot(&r::softmax(x, cols, Some((&mask, 2)), 0.7), &w));
    }
}

#[test]
fn lse_pool() {
    let mut rng = Rng::new(24);
    let (rows, dim) = (6, 3);
    let x = rng.vec(rows * dim);
    let sets = vec![vec![0, 2, 5], vec![], vec![1], vec![2, 2, 3]];
    let w = rng.vec(sets.len() * dim);
    let pooled = r::lse_pool(&x, dim, &sets);
    let dx = r::lse_pool_backward(&x, dim, &sets, &pooled, &w);
    check("lse_pool", &x, &dx, |x| dot(&r::lse_pool(x, dim, &sets), &w));
}

#[test]
fn layernorm() {
    let mut rng = Rng::new(25);
    for (rows, cols) in [(1, 2), (3, 7), (2, 16)] {
        let (x, g, b, w) = (rng.vec(rows * cols), rng.vec(cols), rng.vec(cols), rng.vec(rows * cols));
        let (_, stats) = r::layernorm(&x, &g, &b, 1e-5);
        let (dx, dg, db) = r::layernorm_backward(&x, &g, &stats, &w);
        check("layernorm dx", &x, &dx, |x| dot(&r::layernorm(x, &g, &b, 1e-5).0, &w));
        check("layernorm dgamma", &g, &dg, |g| dot(&r::layernorm(&x, g, &b, 1e-5).0, &w));
        check("layernorm dbeta", &b, &db, |b| dot(&r::layernorm(&x, &g, b, 1e-5).0, &w));
    }
}

#[test]
fn gather_scatter_dropout_and_reductions() {
    let mut rng = Rng::new(26);
    let (vocab, dim) = (5, 3);
    let table = rng.vec(vocab * dim);
    let ids = [3u32, 0, 3, 4, 3];
    let w = rng.vec(ids.len() * dim);
    let mut dtable = vec![0.0; vocab * dim];
    r::scatter_add_rows(&w, dim, &ids, &mut dtable);
    check("gather_rows", &table, &dtable, |t| dot(&r::gather_rows(t, dim, &ids), &w));

    let x = rng.vec(40);
    let w = rng.vec(40);
    let dx = r::dropout(&w, 0.3, 99, 7);
    check("dropout", &x, &dx, |x| dot(&r::dropout(x, 0.3, 99, 7), &w));

    let (rows, cols) = (4, 3);
    let x = rng.vec(rows * cols);
    let wr = rng.vec(rows);
    let wc = rng.vec(cols);
    let drow: Vec<f64> = (0..rows * cols).map(|i| wr[i / cols]).collect();
    let dcol: Vec<f64> = (0..rows * cols).map(|i| wc[i % cols]).collect();
    check("row_sum", &x, &drow, |x| dot(&r::row_sum(x, cols), &wr));
    check("col_sum", &x, &dcol, |x| dot(&r::col_sum(x, rows, cols), &wc));
    let d2: Vec<f64> = x.iter().map(|v| 2.0 * v).collect();
    check("sum_squares", &x, &d2, |x| r::sum_squares(&[x]));
}
