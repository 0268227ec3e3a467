// Losses and decisions over pair rows (SPEC 4.1, 4.3) and the predictor's BatchNorm1d.
//
// atloss_forward   logits [P, C], labels [P, C], mask [P] -> loss [P]:
//                  loss[p] = mask[p] * (L1 + L2), the adaptive-thresholding loss with class 0
//                  as the threshold (labels[.,0] is ignored: forced to 0).
// atloss_backward  logits, labels, mask -> dlogits [P, C] = coef * mask[p] * dL/dlogits.
// get_label        logits -> labels [P, C]: r >= 1 is on iff logit_r > logit_0 and fewer than
//                  top_k logits (class 0 included) are strictly larger; column 0 is on iff none is.
// corrupt_labels   labels [P, C], picks [P] -> labels' [P, C]: a pair with picks[p] = u in [0, 1)
//                  becomes one-hot in the floor(u·n)-th of the n classes its labels do not contain
//                  (stage-2 noise on predicted labels); a pair with u < 0, or with no such class,
//                  keeps its labels.
// cosine_forward   x, y [P, D] -> f [P] = 2 - 2 <x/max(|x|,1e-12), y/max(|y|,1e-12)>.
// cosine_backward  x, y -> dx [P, D] = coef * df/dx (y is a constant).
// batchnorm_forward  x [P, D], gamma, beta, running mean [D] and var [D] (rw) -> y [P, D],
//                  stats [D, 2]:
//                  batch mean and biased variance over the P rows, eps from the immediates;
//                  running = (1 - momentum) running + momentum (mean, unbiased var).
// batchnorm_backward x, gamma, stats, dy -> dx [P, D], dgamma [D], dbeta [D].
// Dispatch: one invocation per pair row (per column for batchnorm), ceil(count / 64) workgroups
// of 64 over x/y.

struct Ls { rows: u32, cols: u32, top_k: u32, coef: f32, eps: f32, momentum: f32 }
var<immediate> ls: Ls;

const NEG: f32 = -3.0e38;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y_in: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@group(0) @binding(1) var<storage, read_write> labels_out: array<f32>;

@group(0) @binding(1) var<storage, read> picks: array<f32>;
@group(0) @binding(2) var<storage, read_write> corrupted: array<f32>;
@group(0) @binding(2) var<storage, read_write> f_out: array<f32>;

@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(4) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(5) var<storage, read_write> bn_y: array<f32>;
@group(0) @binding(6) var<storage, read_write> bn_stats: array<f32>;

@group(0) @binding(2) var<storage, read> stats_in: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> dbeta: array<f32>;

fn idx(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return group_index(wid, nwg) * 64u + li;
}

fn positive(p: u32, r: u32) -> bool {
    return r > 0u && y_in[p * ls.cols + r] > 0.5;
}

// Log-sum-exp over the part-1 set (positives and TH) and the part-2 set (all but positives).
fn lse_sets(p: u32) -> vec2<f32> {
    var m1 = NEG;
    var m2 = NEG;
    for (var r = 0u; r < ls.cols; r++) {
        let v = x[p * ls.cols + r];
        if (positive(p, r) || r == 0u) { m1 = max(m1, v); }
        if (!positive(p, r)) { m2 = max(m2, v); }
    }
    var s1 = 0.0;
    var s2 = 0.0;
    for (var r = 0u; r < ls.cols; r++) {
        let v = x[p * ls.cols + r];
        if (positive(p, r) || r == 0u) { s1 += exp(v - m1); }
        if (!positive(p, r)) { s2 += exp(v - m2); }
    }
    return vec2<f32>(m1 + log(s1), m2 + log(s2));
}

@compute @workgroup_size(64)
fn atloss_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let p = idx(wid, nwg, li);
    if (p >= ls.rows) { return; }
    if (mask[p] == 0.0) { out[p] = 0.0; return; }
    let z = lse_sets(p);
    var l1 = 0.0;
    for (var r = 1u; r < ls.cols; r++) {
        if (positive(p, r)) { l1 += z.x - x[p * ls.cols + r]; }
    }
    out[p] = mask[p] * (l1 + z.y - x[p * ls.cols]);
}

@compute @workgroup_size(64)
fn atloss_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let p = idx(wid, nwg, li);
    if (p >= ls.rows) { return; }
    let w = ls.coef * mask[p];
    if (w == 0.0) {
        for (var r = 0u; r < ls.cols; r++) { out[p * ls.cols + r] = 0.0; }
        return;
    }
    let z = lse_sets(p);
    var npos = 0.0;
    for (var r = 1u; r < ls.cols; r++) { if (positive(p, r)) { npos += 1.0; } }
    for (var r = 0u; r < ls.cols; r++) {
        let v = x[p * ls.cols + r];
        var g = 0.0;
        // L1 = sum over positives of (lse1 - v_r): each positive term pulls softmax1 over pos ∪ TH.
        if (positive(p, r) || r == 0u) { g += npos * exp(v - z.x); }
        if (positive(p, r)) { g -= 1.0; }
        // L2 = lse2 - v_0 over the non-positive classes.
        if (!positive(p, r)) { g += exp(v - z.y); }
        if (r == 0u) { g -= 1.0; }
        out[p * ls.cols + r] = w * g;
    }
}

// "Fewer than top_k logits are larger than v" is "v >= the top_k-th largest logit" (counted
// with repeats), so one pass keeps the row's largest TOP_MAX logits, sorted, in registers: each
// logit is read twice instead of once per class (every load is a loop over the lanes on CPU
// drivers). top_k above TOP_MAX counts, as the definition reads.
const TOP_MAX: u32 = 8u;

@compute @workgroup_size(64)
fn get_label(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let p = idx(wid, nwg, li);
    if (p >= ls.rows) { return; }
    let row = p * ls.cols;
    let th = x[row];
    var kth = -3.0e38;
    if (ls.top_k <= TOP_MAX) {
        var top: array<f32, 8>;
        for (var i = 0u; i < TOP_MAX; i++) { top[i] = -3.0e38; }
        for (var j = 0u; j < ls.cols; j++) {
            var v = x[row + j];
            for (var i = 0u; i < TOP_MAX; i++) {
                let hi = max(top[i], v);
                v = min(top[i], v);
                top[i] = hi;
            }
        }
        for (var i = 0u; i < TOP_MAX; i++) { if (i + 1u == ls.top_k) { kth = top[i]; } }
    }
    var any = false;
    for (var r = 1u; r < ls.cols; r++) {
        let v = x[row + r];
        var on = v > th && v >= kth;
        if (ls.top_k > TOP_MAX) {
            var larger = 0u;
            for (var j = 0u; j < ls.cols; j++) { if (x[row + j] > v) { larger++; } }
            on = on && larger < ls.top_k;
        }
        labels_out[row + r] = select(0.0, 1.0, on);
        any = any || on;
    }
    labels_out[row] = select(1.0, 0.0, any);
}

@compute @workgroup_size(64)
fn corrupt_labels(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let p = idx(wid, nwg, li);
    if (p >= ls.rows) { return; }
    let row = p * ls.cols;
    var wrong = 0u;
    for (var c = 0u; c < ls.cols; c++) { if (x[row + c] < 0.5) { wrong++; } }
    let u = picks[p];
    if (u < 0.0 || wrong == 0u) {
        for (var c = 0u; c < ls.cols; c++) { corrupted[row + c] = x[row + c]; }
        return;
    }
    let k = min(u32(u * f32(wrong)), wrong - 1u);
    var seen = 0u;
    for (var c = 0u; c < ls.cols; c++) {
        var v = 0.0;
        if (x[row + c] < 0.5) {
            if (seen == k) { v = 1.0; }
            seen++;
        }
        corrupted[row + c] = v;
    }
}

fn norm_of(t: u32, p: u32) -> f32 {
    var s = 0.0;
    for (var d = 0u; d < ls.cols; d++) {
        var v: f32;
        if (t == 0u) { v = x[p * ls.cols + d]; } else { v = y_in[p * ls.cols + d]; }
        s += v * v;
    }
    return max(sqrt(s), 1e-12);
}

@compute @workgroup_size(64)
fn cosine_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let p = idx(wid, nwg, li);
    if (p >= ls.rows) { return; }
    let nx = norm_of(0u, p);
    let ny = norm_of(1u, p);
    var dot = 0.0;
    for (var d = 0u; d < ls.cols; d++) { dot += x[p * ls.cols + d] * y_in[p * ls.cols + d]; }
    f_out[p] = 2.0 - 2.0 * dot / (nx * ny);
}

// out (binding 3) = dx; binding 2 (mask) unused but bound, so the layout matches atloss.
@compute @workgroup_size(64)
fn cosine_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let p = idx(wid, nwg, li);
    if (p >= ls.rows) { return; }
    var ssq = 0.0;
    var dot = 0.0;
    for (var d = 0u; d < ls.cols; d++) {
        let v = x[p * ls.cols + d];
        ssq += v * v;
        dot += v * y_in[p * ls.cols + d];
    }
    let nx_raw = sqrt(ssq);
    let nx = max(nx_raw, 1e-12);
    let ny = norm_of(1u, p);
    let c = dot / (nx * ny); // cosine, with the clamped norms
    for (var d = 0u; d < ls.cols; d++) {
        let yh = y_in[p * ls.cols + d] / ny;
        var g = -2.0 * yh / nx;
        // Below the clamp the norm is a constant and only the yh term remains.
        if (nx_raw > 1e-12) { g += 2.0 * c * x[p * ls.cols + d] / (nx * nx); }
        out[p * ls.cols + d] = ls.coef * g;
    }
}

@compute @workgroup_size(64)
fn batchnorm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let d = idx(wid, nwg, li);
    if (d >= ls.cols) { return; }
    let n = f32(ls.rows);
    var mean = 0.0;
    for (var p = 0u; p < ls.rows; p++) { mean += x[p * ls.cols + d]; }
    mean /= n;
    var var_ = 0.0;
    for (var p = 0u; p < ls.rows; p++) { let t = x[p * ls.cols + d] - mean; var_ += t * t; }
    var_ /= n;
    let rstd = 1.0 / sqrt(var_ + ls.eps);
    for (var p = 0u; p < ls.rows; p++) {
        bn_y[p * ls.cols + d] = (x[p * ls.cols + d] - mean) * rstd * gamma[d] + beta[d];
    }
    bn_stats[2u * d] = mean;
    bn_stats[2u * d + 1u] = rstd;
    let unbiased = var_ * n / max(n - 1.0, 1.0);
    running_mean[d] = (1.0 - ls.momentum) * running_mean[d] + ls.momentum * mean;
    running_var[d] = (1.0 - ls.momentum) * running_var[d] + ls.momentum * unbiased;
}

@compute @workgroup_size(64)
fn batchnorm_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let d = idx(wid, nwg, li);
    if (d >= ls.cols) { return; }
    let n = f32(ls.rows);
    let mean = stats_in[2u * d];
    let rstd = stats_in[2u * d + 1u];
    var sdy = 0.0;
    var sdyx = 0.0;
    for (var p = 0u; p < ls.rows; p++) {
        let g = dy[p * ls.cols + d];
        sdy += g;
        sdyx += g * (x[p * ls.cols + d] - mean) * rstd;
    }
    dgamma[d] = sdyx;
    dbeta[d] = sdy;
    for (var p = 0u; p < ls.rows; p++) {
        let xh = (x[p * ls.cols + d] - mean) * rstd;
        dx[p * ls.cols + d] = gamma[d] * rstd * (dy[p * ls.cols + d] - sdy / n - xh * sdyx / n);
    }
}
