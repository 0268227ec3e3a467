// Softmax over the last dimension with an additive mask, and log-sum-exp pooling over sets of rows.
//
// softmax_forward   in0 = x [rows, cols], in1 = mask [mask_rows, cols], out = y [rows, cols]
//                   y = softmax(scale*x + mask[(r / mask_div) % mask_rows]) (mask ignored unless
//                   has_mask); the mask row mapping lets a [B, L] key-padding mask serve the
//                   [B, H, L, L] attention scores (mask_div = H*L).
// softmax_backward  in0 = y, in1 = dy, out = dx;  dx = scale * y * (dy - sum(dy*y)).
// Dispatch: one workgroup of WG invocations per row, rows split over x/y (group_index).
// softmax_forward_rows, softmax_backward_rows: the same with one invocation per row, no
// reduction across invocations, vec4 loads (cols % 4 == 0) and, forward, an online max/sum
// (two passes over the row instead of three). For CPU adapters, where a lane walking its row
// with 16-byte loads beats both cross-lane variants (lavapipe: 2-3x the subgroup kernel).
// Dispatch: ceil(rows / 64) workgroups of 64 over x/y.
//
// lse_pool_forward  x [R, D], idx1 = offsets [S+1] (u32), idx2 = members [M] (u32 row ids),
//                   pooled [S, D]: pooled[s] = log sum_{j in set s} exp(x[members[j]]);
//                   an empty set gives 0 (an entity whose mentions were all truncated away).
// lse_pool_backward x, idx1 = member_set [M] (u32), idx2 = members, pooled_in [S, D],
//                   dpooled [S, D], dmember [M, D]: dmember[j] = dpooled[s] * exp(x[row] - pooled[s]).
//                   The host then scatter-adds dmember into dx (embedding.wgsl), deterministically.
// Dispatch: one invocation per output element, ceil(count / 256) workgroups over x/y.

// One immediate block for the whole file (an entry point has a single immediate variable);
// the lse_pool entries read rows = sets, cols = dim, mask_rows = members.
struct Sm { rows: u32, cols: u32, mask_rows: u32, mask_div: u32, scale: f32, has_mask: u32 }
var<immediate> p: Sm;


@group(0) @binding(0) var<storage, read> in0: array<f32>;
@group(0) @binding(1) var<storage, read> in1: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@group(0) @binding(1) var<storage, read> idx1: array<u32>;
@group(0) @binding(2) var<storage, read> idx2: array<u32>;
@group(0) @binding(3) var<storage, read_write> pooled: array<f32>;
@group(0) @binding(3) var<storage, read> pooled_in: array<f32>;
@group(0) @binding(4) var<storage, read> dpooled: array<f32>;
@group(0) @binding(5) var<storage, read_write> dmember: array<f32>;


fn logit(r: u32, c: u32) -> f32 {
    var v = p.scale * in0[r * p.cols + c];
    if (p.has_mask != 0u) { v = v + in1[((r / p.mask_div) % p.mask_rows) * p.cols + c]; }
    return v;
}

@compute @workgroup_size(WG)
fn softmax_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = group_index(wid, nwg);
    if (r >= p.rows) { return; } // uniform per workgroup, so barriers stay uniform
    var m = -3.0e38;
    for (var c = li; c < p.cols; c += WG) { m = max(m, logit(r, c)); }
    m = reduce_max(m, li);
    var s = 0.0;
    for (var c = li; c < p.cols; c += WG) { s += exp(logit(r, c) - m); }
    s = reduce_sum(s, li);
    let inv = 1.0 / s;
    for (var c = li; c < p.cols; c += WG) { out[r * p.cols + c] = exp(logit(r, c) - m) * inv; }
}

@compute @workgroup_size(WG)
fn softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = group_index(wid, nwg);
    if (r >= p.rows) { return; }
    let base = r * p.cols;
    var d = 0.0;
    for (var c = li; c < p.cols; c += WG) { d += in0[base + c] * in1[base + c]; }
    d = reduce_sum(d, li);
    for (var c = li; c < p.cols; c += WG) { out[base + c] = p.scale * in0[base + c] * (in1[base + c] - d); }
}

@group(0) @binding(0) var<storage, read> in0v: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> in1v: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> outv: array<vec4<f32>>;

fn logit4(r: u32, c4: u32) -> vec4<f32> {
    let q = p.cols / 4u;
    var v = p.scale * in0v[r * q + c4];
    if (p.has_mask != 0u) { v = v + in1v[((r / p.mask_div) % p.mask_rows) * q + c4]; }
    return v;
}

@compute @workgroup_size(64)
fn softmax_forward_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = group_index(wid, nwg) * 64u + li;
    if (r >= p.rows) { return; }
    let q = p.cols / 4u;
    // Online max and sum (one pass over the row instead of two): the sum is rescaled whenever
    // the running max grows.
    var m = -3.0e38;
    var s = 0.0;
    for (var c = 0u; c < q; c++) {
        let v = logit4(r, c);
        let mn = max(m, max(max(v.x, v.y), max(v.z, v.w)));
        let e = exp(v - mn);
        s = s * exp(m - mn) + (e.x + e.y) + (e.z + e.w);
        m = mn;
    }
    let inv = 1.0 / s;
    for (var c = 0u; c < q; c++) { outv[r * q + c] = exp(logit4(r, c) - m) * inv; }
}

@compute @workgroup_size(64)
fn softmax_backward_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = group_index(wid, nwg) * 64u + li;
    if (r >= p.rows) { return; }
    let q = p.cols / 4u;
    let base = r * q;
    var d4 = vec4<f32>(0.0);
    for (var c = 0u; c < q; c++) { d4 += in0v[base + c] * in1v[base + c]; }
    let d = d4.x + d4.y + d4.z + d4.w;
    for (var c = 0u; c < q; c++) { outv[base + c] = p.scale * in0v[base + c] * (in1v[base + c] - d); }
}

@compute @workgroup_size(256)
fn lse_pool_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = group_index(wid, nwg) * 256u + li;
    if (e >= p.rows * p.cols) { return; }
    let s = e / p.cols;
    let d = e % p.cols;
    let lo = idx1[s];
    let hi = idx1[s + 1u];
    if (lo == hi) { pooled[e] = 0.0; return; }
    var m = -3.0e38;
    for (var j = lo; j < hi; j++) { m = max(m, in0[idx2[j] * p.cols + d]); }
    var t = 0.0;
    for (var j = lo; j < hi; j++) { t += exp(in0[idx2[j] * p.cols + d] - m); }
    pooled[e] = m + log(t);
}

@compute @workgroup_size(256)
fn lse_pool_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = group_index(wid, nwg) * 256u + li;
    if (e >= p.mask_rows * p.cols) { return; }
    let j = e / p.cols;
    let d = e % p.cols;
    let s = idx1[j];
    let o = s * p.cols + d;
    dmember[e] = dpooled[o] * exp(in0[idx2[j] * p.cols + d] - pooled_in[o]);
}

