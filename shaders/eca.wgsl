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
// Training drops attention probabilities (prob_keep, from shaders/counter_rng.wgsl, prepended):
// out = Σ p·keep·v with keep ∈ {0, 1/(1-p)}. Then Δ = dout·out = Σ p·keep·dP still holds, so the
// backward is ds = p·(keep·dP − Δ) and dV += p·keep·dout.
//
// Bindings. Every entry point but eca_terms starts with `index` [4P + 2B + B·N·N] u32: the pair
// table tab [P, 4] = (doc, s, o, unused) at 0, docs [B, 2] = (first pair row, pair count) at
// c.docs_at and the cell map [B, N, N] at c.cell_at, packed so that no entry point binds more than
// WebGPU's 8 storage buffers. Then per entry point:
//   eca_forward          index, q, k, v [P, D] -> out [P, D], stats [P, HEADS, 2] = (max, sum)
//   eca_terms            out, dout, stats -> terms [P, HEADS, 2] = (log-sum-exp, Δ = dout·out)
//   eca_backward_query   index, q, k, v, dout, terms -> dq [P, D]
//   eca_backward_key     index, q, k, v, dout, terms -> dk [P, D], dv [P, D]
// The key-major backward enumerates, for each key pair, the queries that read it (the same line
// structure transposed), so dK and dV are summed in a fixed order without atomics. Δ has its own
// pass because both backward kernels need it for other pairs than their own.
// Dispatch: one workgroup of WG invocations per (pair, head), P*HEADS workgroups over x/y. Slots
// are processed in tiles of WG: invocation t scores slot tile+t, then every invocation
// accumulates the tile's weighted values for its features t, t+WG, t+2WG, t+3WG (dh <= 4*WG).
// eca_terms: one invocation per (pair, head), ceil(P*HEADS / 64) workgroups of 64 over x/y.
// eca_forward_lanes (CPU adapters, small heads): one invocation per (pair, head) task with the
// head's DH features (an override, a multiple of 4, at most 32) in registers, read as vec4s
// (D % 4 == 0); tasks in head-major order (task t = h·P + row) so the lanes of one SIMD vector
// share a head. Where a subgroup per task would spend its lanes on DH / SG features each and
// repeat the slot's row lookup and exponentials in every lane, a lane per task does each once.
// Dispatch: ceil(P*HEADS / 64) workgroups of 64 over x/y; bindings as eca_forward.

struct Ec { p: u32, d: u32, heads: u32, n: u32, scale: f32, docs_at: u32, cell_at: u32, seed_lo: u32, seed_hi: u32, offset: u32, drop: f32, keep_scale: f32, docs: u32 }
var<immediate> c: Ec;

override MODE: u32 = 0u;

const NONE: u32 = 0xffffffffu;
const EMPTY: f32 = -3.0e38;

@group(0) @binding(0) var<storage, read> index: array<u32>;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
// eca_forward
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;
// eca_backward_query, eca_backward_key
@group(0) @binding(4) var<storage, read> dout: array<f32>;
@group(0) @binding(5) var<storage, read> terms: array<f32>;
@group(0) @binding(6) var<storage, read_write> dq: array<f32>;
@group(0) @binding(6) var<storage, read_write> dk: array<f32>;
@group(0) @binding(7) var<storage, read_write> dv: array<f32>;
// eca_forward_lanes, eca_forward_lines: q, k, v as vec4s, out as vec4s
@group(0) @binding(1) var<storage, read> q4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out4: array<vec4<f32>>;
// eca_terms
@group(0) @binding(0) var<storage, read> t_out: array<f32>;
@group(0) @binding(1) var<storage, read> t_dout: array<f32>;
@group(0) @binding(2) var<storage, read> t_stats: array<f32>;
@group(0) @binding(3) var<storage, read_write> t_terms: array<f32>;

var<workgroup> vec_a: array<f32, 512>;
var<workgroup> vec_b: array<f32, 512>;
var<workgroup> tile_row: array<u32, WG>;
var<workgroup> tile_w: array<f32, WG>;
var<workgroup> tile_w2: array<f32, WG>;

fn cell_at(b: u32, x: u32, y: u32) -> u32 {
    if (x >= c.n || y >= c.n) { return NONE; }
    return index[c.cell_at + (b * c.n + x) * c.n + y];
}

// Slots per query (and, transposed, queries per key) for this MODE.
fn slot_count(b: u32) -> u32 {
    if (MODE == 0u) { return c.n + 1u; }
    return index[c.docs_at + 2u * b + 1u];
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

// (doc, s, o) of pair `row`: read once per task, not once per slot.
fn pair_of(row: u32) -> vec3<u32> {
    return vec3<u32>(index[4u * row], index[4u * row + 1u], index[4u * row + 2u]);
}

// Key row of slot j of query `row` at `at` = pair_of(row) (or, with `transposed`, the j-th query
// that reads key `row`), NONE if masked.
fn slot_row(row: u32, at: vec3<u32>, h: u32, j: u32, transposed: bool) -> u32 {
    let b = at.x;
    let s = at.y;
    let o = at.z;
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
    let other = index[c.docs_at + 2u * b] + j;
    if (MODE == 1u || other == row) { return other; }
    let s2 = index[4u * other + 1u];
    let o2 = index[4u * other + 2u];
    var hit: bool;
    if (transposed) { hit = in_line(h, s2, o2, s, o); } else { hit = in_line(h, s, o, s2, o2); }
    if (hit) { return other; }
    return NONE;
}

fn bias(row: u32, other: u32) -> f32 {
    return select(0.0, 1.0, row == other);
}

// Dropout on the attention probabilities (training only; c.drop = 0 turns it off): the factor,
// 0 or 1/(1 - p), on the probability of key row r in query task g = row·HEADS + h. Forward and
// both backward kernels draw it from the same counter, so the mask is never stored. The
// softmax's max and sum stay those of the undropped probabilities, as in PyTorch.
fn prob_keep(g: u32, r: u32) -> f32 {
    if (c.drop == 0.0) { return 1.0; }
    return select(0.0, c.keep_scale, counter_uniform(c.seed_lo, c.seed_hi, mix32(c.offset + g) ^ r) >= c.drop);
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

fn dout_dot_b(r: u32, base: u32, dh: u32) -> f32 {
    var acc = 0.0;
    for (var e = 0u; e < dh; e++) { acc += dout[r * c.d + base + e] * vec_b[e]; }
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
    let at = pair_of(row);
    let slots = slot_count(at.x);
    for (var tile = 0u; tile < slots; tile += WG) {
        let j = tile + li;
        var r = NONE;
        var sc = EMPTY;
        if (j < slots) { r = slot_row(row, at, h, j, false); }
        if (r != NONE) { sc = c.scale * k_dot_a(r, base, dh) + bias(row, r); }
        let tmax = reduce_max(sc, li);
        if (tmax > EMPTY) {
            let mn = max(m, tmax);
            var pj = 0.0;
            if (r != NONE) { pj = exp(sc - mn); }
            tile_row[li] = r;
            tile_w[li] = pj * prob_keep(g, r);
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

// Per (pair, head): the log-sum-exp of its attention row and Δ = dout · out = Σ_slots p · dP,
// which both backward kernels read for every query they visit.
@compute @workgroup_size(64)
fn eca_terms(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = group_index(wid, nwg) * 64u + li;
    if (g >= c.p * c.heads) { return; }
    let dh = c.d / c.heads;
    let first = (g / c.heads) * c.d + (g % c.heads) * dh;
    var dl = 0.0;
    for (var e = 0u; e < dh; e++) { dl += t_dout[first + e] * t_out[first + e]; }
    t_terms[2u * g] = t_stats[2u * g] + log(t_stats[2u * g + 1u]);
    t_terms[2u * g + 1u] = dl;
}

@compute @workgroup_size(WG)
fn eca_backward_query(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = group_index(wid, nwg);
    if (g >= c.p * c.heads) { return; }
    let row = g / c.heads;
    let h = g % c.heads;
    let dh = c.d / c.heads;
    let base = h * dh;
    for (var e = li; e < dh; e += WG) {
        let i = row * c.d + base + e;
        vec_a[e] = q[i];
        vec_b[e] = dout[i];
    }
    workgroupBarrier();
    let lse = terms[2u * g];
    let dl = terms[2u * g + 1u];
    var acc = vec4<f32>(0.0);
    let at = pair_of(row);
    let slots = slot_count(at.x);
    for (var tile = 0u; tile < slots; tile += WG) {
        let j = tile + li;
        var r = NONE;
        var ds = 0.0;
        if (j < slots) { r = slot_row(row, at, h, j, false); }
        if (r != NONE) {
            let p = exp(c.scale * k_dot_a(r, base, dh) + bias(row, r) - lse);
            ds = p * (prob_keep(g, r) * v_dot_b(r, base, dh) - dl);
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
    let at = pair_of(row);
    let slots = slot_count(at.x);
    for (var tile = 0u; tile < slots; tile += WG) {
        let j = tile + li;
        var r = NONE; // a query that reads this key
        var p = 0.0; // the dropped probability, which dV needs
        var ds = 0.0;
        if (j < slots) { r = slot_row(row, at, h, j, true); }
        if (r != NONE) {
            let qg = r * c.heads + h;
            p = exp(c.scale * q_dot_a(r, base, dh) + bias(row, r) - terms[2u * qg]);
            let keep = prob_keep(qg, row);
            ds = p * (keep * dout_dot_b(r, base, dh) - terms[2u * qg + 1u]);
            p *= keep;
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
                    acc_v[u] += wp * dout[rr * c.d + base + e];
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

override DH: u32 = 16u;

@compute @workgroup_size(64)
fn eca_forward_lanes(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = group_index(wid, nwg) * 64u + li;
    if (t >= c.p * c.heads) { return; }
    let h = t / c.p;
    let row = t % c.p;
    let g = row * c.heads + h;
    let q4s = c.d / 4u;
    let head4 = h * (DH / 4u);
    var qv: array<vec4<f32>, 8>;
    var acc: array<vec4<f32>, 8>;
    for (var j = 0u; j < DH / 4u; j++) { qv[j] = q4[row * q4s + head4 + j]; acc[j] = vec4<f32>(0.0); }
    var m = EMPTY;
    var l = 0.0;
    let at = pair_of(row);
    let slots = slot_count(at.x);
    for (var sl = 0u; sl < slots; sl++) {
        let r = slot_row(row, at, h, sl, false);
        if (r == NONE) { continue; }
        var dot = vec4<f32>(0.0);
        for (var j = 0u; j < DH / 4u; j++) { dot += qv[j] * k4[r * q4s + head4 + j]; }
        let sc = c.scale * ((dot.x + dot.y) + (dot.z + dot.w)) + bias(row, r);
        let mn = max(m, sc);
        let corr = exp(m - mn);
        let pj = exp(sc - mn);
        l = l * corr + pj;
        let w = pj * prob_keep(g, r);
        for (var j = 0u; j < DH / 4u; j++) { acc[j] = acc[j] * corr + w * v4[r * q4s + head4 + j]; }
        m = mn;
    }
    for (var j = 0u; j < DH / 4u; j++) { out4[row * q4s + head4 + j] = acc[j] / l; }
    stats[2u * g] = m;
    stats[2u * g + 1u] = l;
}
