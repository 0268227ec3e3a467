// The attention core of an ECA unit (SPEC 0.2, 3.3) and of the `dense` ablation, forward and
// backward, with a streaming (online) softmax: no per-slot score or probability tensor is ever
// stored, and keys/values are read in place.
//
// Pair grids are stored as pair lists [P, D] (rows in hts order, documents contiguous) plus an
// index map `cell` [B, N, N] (u32 pair row, or NONE for the diagonal and padded entities), so a
// grid line (s, ·), (·, o), (·, s), (o, ·) is read by indexing through the map.
//
// Slots of query pair (s, o), head h (MODE 0 = ECA): slot 0 is the pair itself with logit bias
// +1; slot 1 + k is cell (s, k) for head 0 (k = o excluded), (k, o) for head 1 (k = s excluded),
// (k, s) for head 2 and (o, k) for head 3. Masked slots are skipped, which equals the reference's
// additive -10000 (their probability underflows to exactly 0). MODE 1 = dense: every pair of the
// document, the pair itself with bias +1. MODE 2 = dense restricted to ECA's key sets (a test of
// the two against each other). score = SCALE-free: the host passes scale = 1/sqrt(dh).
//
// Bindings (all entry points): tab [P, 4] u32 = (doc, s, o, unused), cell [B*N*N] u32,
// docs [B, 2] u32 = (first pair row, pair count), then per entry point:
//   eca_forward          q, k, v [P, D] -> out [P, D], stats [P, HEADS, 2] = (max, sum)
//   eca_backward_query   q, k, v, out, dout, stats -> dq [P, D], delta [P, HEADS]
//   eca_backward_key     q, k, v, dout, stats, delta -> dk [P, D], dv [P, D]
// The key-major backward enumerates, for each key pair, the queries that read it (the same line
// structure transposed), so dK and dV are summed in a fixed order without atomics.
// Dispatch: one workgroup of WG invocations per (pair, head), P*HEADS workgroups over x/y. Slots
// are processed in tiles of WG: invocation t scores slot tile+t, then every invocation
// accumulates the tile's weighted values for its features t, t+WG, t+2WG, t+3WG (dh <= 4*WG).

struct Ec { p: u32, d: u32, heads: u32, n: u32, scale: f32 }
var<immediate> c: Ec;

override MODE: u32 = 0u;

const NONE: u32 = 0xffffffffu;
const EMPTY: f32 = -3.0e38;

@group(0) @binding(0) var<storage, read> tab: array<u32>;
@group(0) @binding(1) var<storage, read> cell: array<u32>;
@group(0) @binding(2) var<storage, read> docs: array<u32>;
@group(0) @binding(3) var<storage, read> q: array<f32>;
@group(0) @binding(4) var<storage, read> k: array<f32>;
@group(0) @binding(5) var<storage, read> v: array<f32>;
// eca_forward
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read_write> stats: array<f32>;
// eca_backward_query
@group(0) @binding(6) var<storage, read> out_in: array<f32>;
@group(0) @binding(7) var<storage, read> dout: array<f32>;
@group(0) @binding(8) var<storage, read> stats_in: array<f32>;
@group(0) @binding(9) var<storage, read_write> dq: array<f32>;
@group(0) @binding(10) var<storage, read_write> delta: array<f32>;
// eca_backward_key (dout at 6, stats at 7, delta at 8)
@group(0) @binding(6) var<storage, read> dout_k: array<f32>;
@group(0) @binding(7) var<storage, read> stats_k: array<f32>;
@group(0) @binding(8) var<storage, read> delta_k: array<f32>;
@group(0) @binding(9) var<storage, read_write> dk: array<f32>;
@group(0) @binding(10) var<storage, read_write> dv: array<f32>;

var<workgroup> vec_a: array<f32, 512>;
var<workgroup> vec_b: array<f32, 512>;
var<workgroup> tile_row: array<u32, WG>;
var<workgroup> tile_w: array<f32, WG>;
var<workgroup> tile_w2: array<f32, WG>;

fn cell_at(b: u32, x: u32, y: u32) -> u32 {
    if (x >= c.n || y >= c.n) { return NONE; }
    return cell[(b * c.n + x) * c.n + y];
}

// Slots per query (and, transposed, queries per key) for this MODE.
fn slot_count(b: u32) -> u32 {
    if (MODE == 0u) { return c.n + 1u; }
    return docs[2u * b + 1u];
}

// Whether key pair (x, y) is in ECA's line for query (s, o) and head h (self slot excluded).
fn in_line(h: u32, s: u32, o: u32, x: u32, y: u32) -> bool {
    switch h {
        case 0u: { return x == s && y != o; }
        case 1u: { return y == o && x != s; }
        case 2u: { return y == s; }
        default: { return x == o; }
    }
}

// Key row of slot j of query `row` (or, with `transposed`, the j-th query that reads key `row`),
// NONE if masked.
fn slot_row(row: u32, h: u32, j: u32, transposed: bool) -> u32 {
    let b = tab[4u * row];
    let s = tab[4u * row + 1u];
    let o = tab[4u * row + 2u];
    if (MODE == 0u) {
        if (j == 0u) { return row; }
        let kk = j - 1u;
        if (!transposed) {
            switch h {
                case 0u: { if (kk == o) { return NONE; } return cell_at(b, s, kk); }
                case 1u: { if (kk == s) { return NONE; } return cell_at(b, kk, o); }
                case 2u: { return cell_at(b, kk, s); }
                default: { return cell_at(b, o, kk); }
            }
        }
        // Queries reading key (s, o) = (x, y) on head h.
        switch h {
            case 0u: { if (kk == o) { return NONE; } return cell_at(b, s, kk); }
            case 1u: { if (kk == s) { return NONE; } return cell_at(b, kk, o); }
            case 2u: { return cell_at(b, o, kk); }
            default: { return cell_at(b, kk, s); }
        }
    }
    let other = docs[2u * b] + j;
    if (MODE == 1u || other == row) { return other; }
    let s2 = tab[4u * other + 1u];
    let o2 = tab[4u * other + 2u];
    var hit: bool;
    if (transposed) { hit = in_line(h, s2, o2, s, o); } else { hit = in_line(h, s, o, s2, o2); }
    if (hit) { return other; }
    return NONE;
}

fn bias(row: u32, other: u32) -> f32 {
    return select(0.0, 1.0, row == other);
}

// Dots of a head slice (features base..base+dh) of one buffer's row r with a workgroup vector.
// One function per buffer: an entry point may only touch the variables bound for it.
fn k_dot_a(r: u32, base: u32, dh: u32) -> f32 {
    var acc = 0.0;
    for (var e = 0u; e < dh; e++) { acc += k[r * c.d + base + e] * vec_a[e]; }
    return acc;
}

fn q_dot_a(r: u32, base: u32, dh: u32) -> f32 {
    var acc = 0.0;
    for (var e = 0u; e < dh; e++) { acc += q[r * c.d + base + e] * vec_a[e]; }
    return acc;
}

fn v_dot_b(r: u32, base: u32, dh: u32) -> f32 {
    var acc = 0.0;
    for (var e = 0u; e < dh; e++) { acc += v[r * c.d + base + e] * vec_b[e]; }
    return acc;
}

fn dout_k_dot_b(r: u32, base: u32, dh: u32) -> f32 {
    var acc = 0.0;
    for (var e = 0u; e < dh; e++) { acc += dout_k[r * c.d + base + e] * vec_b[e]; }
    return acc;
}

@compute @workgroup_size(WG)
fn eca_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = group_index(wid, nwg);
    if (g >= c.p * c.heads) { return; }
    let row = g / c.heads;
    let h = g % c.heads;
    let dh = c.d / c.heads;
    let base = h * dh;
    for (var e = li; e < dh; e += WG) { vec_a[e] = q[row * c.d + base + e]; }
    workgroupBarrier();
    var m = EMPTY;
    var l = 0.0;
    var acc = vec4<f32>(0.0);
    let slots = slot_count(tab[4u * row]);
    for (var tile = 0u; tile < slots; tile += WG) {
        let j = tile + li;
        var r = NONE;
        var sc = EMPTY;
        if (j < slots) { r = slot_row(row, h, j, false); }
        if (r != NONE) { sc = c.scale * k_dot_a(r, base, dh) + bias(row, r); }
        let tmax = reduce_max(sc, li);
        if (tmax > EMPTY) {
            let mn = max(m, tmax);
            var pj = 0.0;
            if (r != NONE) { pj = exp(sc - mn); }
            tile_row[li] = r;
            tile_w[li] = pj;
            let corr = exp(m - mn);
            l = l * corr + reduce_sum(pj, li); // reduce_sum's barriers also publish tile_row/tile_w
            acc = acc * corr;
            m = mn;
            for (var jj = 0u; jj < WG; jj++) {
                let rr = tile_row[jj];
                if (rr == NONE) { continue; }
                let w = tile_w[jj];
                for (var u = 0u; u < 4u; u++) {
                    let e = li + u * WG;
                    if (e < dh) { acc[u] += w * v[rr * c.d + base + e]; }
                }
            }
            workgroupBarrier();
        }
    }
    for (var u = 0u; u < 4u; u++) {
        let e = li + u * WG;
        if (e < dh) { out[row * c.d + base + e] = acc[u] / l; }
    }
    if (li == 0u) {
        stats[2u * g] = m;
        stats[2u * g + 1u] = l;
    }
}

@compute @workgroup_size(WG)
fn eca_backward_query(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = group_index(wid, nwg);
    if (g >= c.p * c.heads) { return; }
    let row = g / c.heads;
    let h = g % c.heads;
    let dh = c.d / c.heads;
    let base = h * dh;
    var part = 0.0;
    for (var e = li; e < dh; e += WG) {
        let i = row * c.d + base + e;
        vec_a[e] = q[i];
        vec_b[e] = dout[i];
        part += dout[i] * out_in[i];
    }
    let dl = reduce_sum(part, li); // Δ = dout · out = Σ_slots p · dP
    let m = stats_in[2u * g];
    let inv_l = 1.0 / stats_in[2u * g + 1u];
    var acc = vec4<f32>(0.0);
    let slots = slot_count(tab[4u * row]);
    for (var tile = 0u; tile < slots; tile += WG) {
        let j = tile + li;
        var r = NONE;
        var ds = 0.0;
        if (j < slots) { r = slot_row(row, h, j, false); }
        if (r != NONE) {
            let p = exp(c.scale * k_dot_a(r, base, dh) + bias(row, r) - m) * inv_l;
            ds = p * (v_dot_b(r, base, dh) - dl);
        }
        tile_row[li] = r;
        tile_w[li] = ds;
        workgroupBarrier();
        for (var jj = 0u; jj < WG; jj++) {
            let rr = tile_row[jj];
            if (rr == NONE) { continue; }
            let w = tile_w[jj];
            for (var u = 0u; u < 4u; u++) {
                let e = li + u * WG;
                if (e < dh) { acc[u] += w * k[rr * c.d + base + e]; }
            }
        }
        workgroupBarrier();
    }
    for (var u = 0u; u < 4u; u++) {
        let e = li + u * WG;
        if (e < dh) { dq[row * c.d + base + e] = c.scale * acc[u]; }
    }
    if (li == 0u) { delta[g] = dl; }
}

@compute @workgroup_size(WG)
fn eca_backward_key(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = group_index(wid, nwg);
    if (g >= c.p * c.heads) { return; }
    let row = g / c.heads; // the key / value pair
    let h = g % c.heads;
    let dh = c.d / c.heads;
    let base = h * dh;
    for (var e = li; e < dh; e += WG) {
        vec_a[e] = k[row * c.d + base + e];
        vec_b[e] = v[row * c.d + base + e];
    }
    workgroupBarrier();
    var acc_k = vec4<f32>(0.0);
    var acc_v = vec4<f32>(0.0);
    let slots = slot_count(tab[4u * row]);
    for (var tile = 0u; tile < slots; tile += WG) {
        let j = tile + li;
        var r = NONE; // a query that reads this key
        var p = 0.0;
        var ds = 0.0;
        if (j < slots) { r = slot_row(row, h, j, true); }
        if (r != NONE) {
            let qg = r * c.heads + h;
            p = exp(c.scale * q_dot_a(r, base, dh) + bias(row, r) - stats_k[2u * qg]) / stats_k[2u * qg + 1u];
            ds = p * (dout_k_dot_b(r, base, dh) - delta_k[qg]);
        }
        tile_row[li] = r;
        tile_w[li] = p;
        tile_w2[li] = ds;
        workgroupBarrier();
        for (var jj = 0u; jj < WG; jj++) {
            let rr = tile_row[jj];
            if (rr == NONE) { continue; }
            let wp = tile_w[jj];
            let wd = tile_w2[jj];
            for (var u = 0u; u < 4u; u++) {
                let e = li + u * WG;
                if (e < dh) {
                    acc_v[u] += wp * dout_k[rr * c.d + base + e];
                    acc_k[u] += wd * q[rr * c.d + base + e];
                }
            }
        }
        workgroupBarrier();
    }
    for (var u = 0u; u < 4u; u++) {
        let e = li + u * WG;
        if (e < dh) {
            dk[row * c.d + base + e] = c.scale * acc_k[u];
            dv[row * c.d + base + e] = acc_v[u];
        }
    }
}
