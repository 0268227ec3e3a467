// LayerNorm over the last dimension: y = (x - mean) * rstd * gamma + beta, rstd = 1/sqrt(var + eps)
// (biased variance, as PyTorch).
//
// layernorm_forward          in0 = x [rows, cols], in1 = gamma [cols], in2 = beta [cols],
//                            out3 = y [rows, cols], out4 = stats [rows, 2] (mean, rstd) for backward.
// layernorm_backward_input   in0 = x, in1 = gamma, in2 = dy, in3 = stats, out4 = dx:
//                            g = dy*gamma; dx = rstd * (g - mean(g) - xhat * mean(g*xhat)).
// Dispatch (both): one workgroup of WG invocations per row, rows split over x/y.
// layernorm_forward_rows, layernorm_backward_input_rows: the same bindings and results with one
// invocation per row, vec4 loads (cols % 4 == 0) and no reduction across invocations: CPU
// adapters, where that beats a workgroup's tree reduction (see softmax.wgsl). The forward is
// specialized for its width (COLS4) and holds rows of up to 128 columns in registers.
// Dispatch: ceil(rows / 64) workgroups of 64 over x/y.
// layernorm_backward_params  in0 = x, in1 = dy, in2 = stats, out3 = dgamma [cols], out4 = dbeta [cols]:
//                            column sums over all rows in row order (deterministic, no atomics).
// Dispatch: one invocation per column, ceil(cols / 64) workgroups of 64.
// layernorm_backward_params4: the same with four columns per invocation through vec4 loads
// (cols % 4 == 0; CPU adapters). Dispatch: ceil(cols / 256) workgroups of 64.

struct Ln { rows: u32, cols: u32, eps: f32 }
var<immediate> p: Ln;


@group(0) @binding(0) var<storage, read> in0: array<f32>;
@group(0) @binding(1) var<storage, read> in1: array<f32>;
@group(0) @binding(2) var<storage, read> in2: array<f32>;
@group(0) @binding(3) var<storage, read> in3: array<f32>;
@group(0) @binding(3) var<storage, read_write> out3: array<f32>;
@group(0) @binding(4) var<storage, read_write> out4: array<f32>;
@group(0) @binding(0) var<storage, read> in0v: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> in1v: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> in2v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out3v: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out4v: array<vec4<f32>>;

fn hsum(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}


@compute @workgroup_size(WG)
fn layernorm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = group_index(wid, nwg);
    if (r >= p.rows) { return; }
    let base = r * p.cols;
    let n = f32(p.cols);
    var s = 0.0;
    for (var c = li; c < p.cols; c += WG) { s += in0[base + c]; }
    let mean = reduce_sum(s, li) / n;
    // Two-pass variance: the one-pass E[x^2] - mean^2 loses digits on BERT's large activations.
    var v = 0.0;
    for (var c = li; c < p.cols; c += WG) { let d = in0[base + c] - mean; v += d * d; }
    let rstd = inverseSqrt(reduce_sum(v, li) / n + p.eps);
    for (var c = li; c < p.cols; c += WG) {
        out3[base + c] = (in0[base + c] - mean) * rstd * in1[c] + in2[c];
    }
    if (li == 0u) { out4[2u * r] = mean; out4[2u * r + 1u] = rstd; }
}

@compute @workgroup_size(WG)
fn layernorm_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = group_index(wid, nwg);
    if (r >= p.rows) { return; }
    let base = r * p.cols;
    let mean = in3[2u * r];
    let rstd = in3[2u * r + 1u];
    var sg = 0.0;
    var sgx = 0.0;
    for (var c = li; c < p.cols; c += WG) {
        let g = in2[base + c] * in1[c];
        sg += g;
        sgx += g * (in0[base + c] - mean) * rstd;
    }
    let n = f32(p.cols);
    let mg = reduce_sum(sg, li) / n;
    let mgx = reduce_sum(sgx, li) / n;
    for (var c = li; c < p.cols; c += WG) {
        let xhat = (in0[base + c] - mean) * rstd;
        out4[base + c] = rstd * (in2[base + c] * in1[c] - mg - xhat * mgx);
    }
}

// A row of up to 128 columns in registers (COLS4 of its vec4s are used); the host's
// RESIDUAL_MAX_COLS4 (ops/layernorm.rs) is this length.
alias Row = array<vec4<f32>, 32>;

// Writes y and the stats of row r (starting at vec4 `base`) from its values in registers.
fn normalize_row(xs: ptr<function, Row>, r: u32, base: u32) {
    let n = f32(COLS4 * 4u);
    var s = vec4<f32>(0.0);
    for (var c = 0u; c < COLS4; c++) { s += (*xs)[c]; }
    let mean = hsum(s) / n;
    var v = vec4<f32>(0.0);
    for (var c = 0u; c < COLS4; c++) { let d = (*xs)[c] - mean; v += d * d; }
    let rstd = inverseSqrt(hsum(v) / n + p.eps);
    for (var c = 0u; c < COLS4; c++) { out3v[base + c] = ((*xs)[c] - mean) * rstd * in1v[c] + in2v[c]; }
    out4[2u * r] = mean;
    out4[2u * r + 1u] = rstd;
}

// The row width in vec4s (p.cols / 4), fixed per pipeline by the host: a constant bound lets the
// compiler unroll the loops, and then gamma's and beta's addresses are constants, which CPU
// drivers load once for all lanes instead of in a loop over the lanes.
override COLS4: u32 = 1u;

@compute @workgroup_size(64)
fn layernorm_forward_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = group_index(wid, nwg) * 64u + li;
    if (r >= p.rows) { return; }
    let q = COLS4;
    let base = r * q;
    let n = f32(p.cols);
    if (COLS4 <= 32u) {
        // Unrolled: the row stays in registers, one load per vec4 instead of three.
        var xs: Row;
        for (var c = 0u; c < COLS4; c++) { xs[c] = in0v[base + c]; }
        normalize_row(&xs, r, base);
        return;
    }
    var s = vec4<f32>(0.0);
    for (var c = 0u; c < q; c++) { s += in0v[base + c]; }
    let mean = hsum(s) / n;
    var v = vec4<f32>(0.0);
    for (var c = 0u; c < q; c++) { let d = in0v[base + c] - mean; v += d * d; }
    let rstd = inverseSqrt(hsum(v) / n + p.eps);
    for (var c = 0u; c < q; c++) { out3v[base + c] = (in0v[base + c] - mean) * rstd * in1v[c] + in2v[c]; }
    out4[2u * r] = mean;
    out4[2u * r + 1u] = rstd;
}

// layernorm_residual_rows: LayerNorm of in0 + in5 (a residual sum), and with KEEP_SUM the sum
// itself into out6 (training keeps it for the backward): one pass instead of an element-wise
// add and the LayerNorm. Rows of at most 128 columns (COLS4 <= 32), held in registers.
override KEEP_SUM: bool = false;
@group(0) @binding(5) var<storage, read> in5v: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> out6v: array<vec4<f32>>;

@compute @workgroup_size(64)
fn layernorm_residual_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = group_index(wid, nwg) * 64u + li;
    if (r >= p.rows) { return; }
    let base = r * COLS4;
    var xs: Row;
    for (var c = 0u; c < COLS4; c++) {
        xs[c] = in0v[base + c] + in5v[base + c];
        if (KEEP_SUM) { out6v[base + c] = xs[c]; }
    }
    normalize_row(&xs, r, base);
}

@compute @workgroup_size(64)
fn layernorm_backward_input_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = group_index(wid, nwg) * 64u + li;
    if (r >= p.rows) { return; }
    let q = p.cols / 4u;
    let base = r * q;
    let mean = in3[2u * r];
    let rstd = in3[2u * r + 1u];
    var sg = vec4<f32>(0.0);
    var sgx = vec4<f32>(0.0);
    for (var c = 0u; c < q; c++) {
        let g = in2v[base + c] * in1v[c];
        sg += g;
        sgx += g * (in0v[base + c] - mean) * rstd;
    }
    let n = f32(p.cols);
    let mg = hsum(sg) / n;
    let mgx = hsum(sgx) / n;
    for (var c = 0u; c < q; c++) {
        let xhat = (in0v[base + c] - mean) * rstd;
        out4v[base + c] = rstd * (in2v[base + c] * in1v[c] - mg - xhat * mgx);
    }
}

@compute @workgroup_size(64)
fn layernorm_backward_params(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= p.cols) { return; }
    var dg = 0.0;
    var db = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        let dy = in1[r * p.cols + c];
        dg += dy * (in0[r * p.cols + c] - in2[2u * r]) * in2[2u * r + 1u];
        db += dy;
    }
    out3[c] = dg;
    out4[c] = db;
}

@compute @workgroup_size(64)
fn layernorm_backward_params4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let q = p.cols / 4u;
    if (c >= q) { return; }
    var dg = vec4<f32>(0.0);
    var db = vec4<f32>(0.0);
    for (var r = 0u; r < p.rows; r++) {
        let dy = in1v[r * q + c];
        dg += dy * (in0v[r * q + c] - in2[2u * r]) * in2[2u * r + 1u];
        db += dy;
    }
    out3v[c] = dg;
    out4v[c] = db;
}
