// The encoder's self-attention for evaluation, fused: softmax(scale · Q Kᵀ + key mask) V without
// the [segments, heads, W, W] score and probability tensors, which the unfused path (a strided
// GEMM, a row softmax, a second GEMM) writes and reads several times: on CPU drivers those
// memory passes, not the arithmetic, were most of the encoder's attention time.
// Only built where subgroup operations exist (its own module).
//
// Layout: Q, K, V and the output are token rows [segments · W, d] (row s·W + i is position i of
// segment s), head h the columns h·DH .. h·DH + DH; d and DH multiples of 4, DH at most 64.
// seg_len [segments] u32: the keys of segment s are its positions 0 .. seg_len[s] (the others are
// padding: the unfused path adds -1e30 to their scores, whose weights are then exactly 0, as
// here where they are skipped). Every query row is computed, padding rows included, as there.
// stats [segments · W, heads, 2]: per query row and head, the running max m and sum l of the
// streaming softmax, so that probability (i, j) = exp(score(i, j) - m) / l.
//
// attention_lines (subgroups of SG <= 16 lanes): one subgroup per SG consecutive queries of one
// (segment, head). Keys go by chunks of SG: lane l loads key kk0 + l's K and V rows once (vec4
// loads), and every lane reads them by subgroupShuffle from a literal lane (key_score and
// key_value are called with constants, so each shuffle is a broadcast; a load or a shuffle from a
// loop counter is a loop over the lanes on llvmpipe). One load then feeds SG queries. A chunk's
// scores are formed first, then one rescale of the running sums per chunk and one exp per key.
// Dispatch: segments · heads · ceil(W / SG) workgroups of SG over x/y (group_index).
//
// attention_rows: the probabilities of chosen query rows only (the mention rows the base module
// reads from the last layer), from that layer's stats: probs [R · heads, W] with row r·heads + h
// for query row rows[r] (a token row) and head h, zero past the segment's keys. One invocation
// per (row, head); dispatch ceil(R · heads / 64) workgroups of 64 over x/y.

struct Att { w: u32, heads: u32, d: u32, count: u32, scale: f32 }
var<immediate> c: Att;

@group(0) @binding(0) var<storage, read> q4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> k4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> seg_len: array<u32>;
@group(0) @binding(4) var<storage, read_write> out4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;
// attention_rows
@group(0) @binding(2) var<storage, read> stats_in: array<f32>;
@group(0) @binding(4) var<storage, read> rows: array<u32>;
@group(0) @binding(5) var<storage, read_write> probs: array<f32>;

override SG: u32 = 8u;
override DH: u32 = 16u;

// A masked key's score: its exp underflows to 0 against any real score.
const MASKED: f32 = -3.0e38;

// The per-lane rows (q, the chunk's keys and values, the accumulator): DH / 4 of 16 vec4s are used.
alias Row = array<vec4<f32>, 16>;

fn dot_row(a: ptr<function, Row>, b: ptr<function, Row>) -> f32 {
    var s = vec4<f32>(0.0);
    for (var j = 0u; j < DH / 4u; j++) { s += (*a)[j] * (*b)[j]; }
    return (s.x + s.y) + (s.z + s.w);
}

// Score of the chunk's key `i` (lane i's K row) for this lane's query; MASKED past the keys.
fn key_score(i: u32, kl: ptr<function, Row>, qv: ptr<function, Row>, live: u32) -> f32 {
    if (i >= SG) { return MASKED; }
    var kr: Row;
    for (var j = 0u; j < DH / 4u; j++) { kr[j] = subgroupShuffle((*kl)[j], i); }
    return select(MASKED, c.scale * dot_row(qv, &kr), i < live);
}

// Adds key `i`'s value with weight exp(sc - m) to the running sums.
fn key_value(i: u32, sc: f32, m: f32, vl: ptr<function, Row>, acc: ptr<function, Row>, l: ptr<function, f32>) {
    if (i >= SG) { return; }
    let p = exp(sc - m);
    *l += p;
    for (var j = 0u; j < DH / 4u; j++) { (*acc)[j] += p * subgroupShuffle((*vl)[j], i); }
}

@compute @workgroup_size(SG)
fn attention_lines(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let chunks = (c.w + SG - 1u) / SG;
    let t = group_index(wid, nwg);
    if (t >= c.count * c.heads * chunks) { return; } // uniform per workgroup
    let s = t / (c.heads * chunks);
    let h = (t / chunks) % c.heads;
    let i = (t % chunks) * SG + lane;
    let qrow = s * c.w + min(i, c.w - 1u);
    let d4 = c.d / 4u;
    let head4 = h * (DH / 4u);
    var qv: Row;
    var acc: Row;
    for (var j = 0u; j < DH / 4u; j++) {
        qv[j] = q4[qrow * d4 + head4 + j];
        acc[j] = vec4<f32>(0.0);
    }
    var m = MASKED;
    var l = 0.0;
    let len = seg_len[s];
    for (var kk0 = 0u; kk0 < len; kk0 += SG) {
        let krow = s * c.w + min(kk0 + lane, len - 1u);
        var kl: Row;
        var vl: Row;
        for (var j = 0u; j < DH / 4u; j++) {
            kl[j] = k4[krow * d4 + head4 + j];
            vl[j] = v4[krow * d4 + head4 + j];
        }
        let live = len - kk0;
        let s0 = key_score(0u, &kl, &qv, live);
        let s1 = key_score(1u, &kl, &qv, live);
        let s2 = key_score(2u, &kl, &qv, live);
        let s3 = key_score(3u, &kl, &qv, live);
        let s4 = key_score(4u, &kl, &qv, live);
        let s5 = key_score(5u, &kl, &qv, live);
        let s6 = key_score(6u, &kl, &qv, live);
        let s7 = key_score(7u, &kl, &qv, live);
        let s8 = key_score(8u, &kl, &qv, live);
        let s9 = key_score(9u, &kl, &qv, live);
        let s10 = key_score(10u, &kl, &qv, live);
        let s11 = key_score(11u, &kl, &qv, live);
        let s12 = key_score(12u, &kl, &qv, live);
        let s13 = key_score(13u, &kl, &qv, live);
        let s14 = key_score(14u, &kl, &qv, live);
        let s15 = key_score(15u, &kl, &qv, live);
        let mc = max(max(max(max(s0, s1), max(s2, s3)), max(max(s4, s5), max(s6, s7))), max(max(max(s8, s9), max(s10, s11)), max(max(s12, s13), max(s14, s15))));
        let mn = max(m, mc);
        let corr = exp(m - mn);
        l *= corr;
        for (var j = 0u; j < DH / 4u; j++) { acc[j] *= corr; }
        key_value(0u, s0, mn, &vl, &acc, &l);
        key_value(1u, s1, mn, &vl, &acc, &l);
        key_value(2u, s2, mn, &vl, &acc, &l);
        key_value(3u, s3, mn, &vl, &acc, &l);
        key_value(4u, s4, mn, &vl, &acc, &l);
        key_value(5u, s5, mn, &vl, &acc, &l);
        key_value(6u, s6, mn, &vl, &acc, &l);
        key_value(7u, s7, mn, &vl, &acc, &l);
        key_value(8u, s8, mn, &vl, &acc, &l);
        key_value(9u, s9, mn, &vl, &acc, &l);
        key_value(10u, s10, mn, &vl, &acc, &l);
        key_value(11u, s11, mn, &vl, &acc, &l);
        key_value(12u, s12, mn, &vl, &acc, &l);
        key_value(13u, s13, mn, &vl, &acc, &l);
        key_value(14u, s14, mn, &vl, &acc, &l);
        key_value(15u, s15, mn, &vl, &acc, &l);
        m = mn;
    }
    if (i < c.w) {
        let inv = 1.0 / l;
        for (var j = 0u; j < DH / 4u; j++) { out4[qrow * d4 + head4 + j] = acc[j] * inv; }
        stats[2u * (qrow * c.heads + h)] = m;
        stats[2u * (qrow * c.heads + h) + 1u] = l;
    }
}

// One invocation per (row, head) that loops over the keys: its query row and statistics are
// loaded once, where an invocation per element loaded them again for every key.
@compute @workgroup_size(64)
fn attention_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = group_index(wid, nwg) * 64u + li;
    if (t >= c.count * c.heads) { return; }
    let h = t % c.heads;
    let qrow = rows[t / c.heads];
    let s = qrow / c.w;
    let len = seg_len[s];
    let d4 = c.d / 4u;
    let head4 = h * (DH / 4u);
    var qv: Row;
    for (var jj = 0u; jj < DH / 4u; jj++) { qv[jj] = q4[qrow * d4 + head4 + jj]; }
    let st = 2u * (qrow * c.heads + h);
    let m = stats_in[st];
    let inv = 1.0 / stats_in[st + 1u];
    for (var j = 0u; j < c.w; j++) {
        var p = 0.0;
        if (j < len) {
            var kr: Row;
            for (var jj = 0u; jj < DH / 4u; jj++) { kr[jj] = k4[((s * c.w + j) * d4) + head4 + jj]; }
            p = exp(c.scale * dot_row(&qv, &kr) - m) * inv;
        }
        probs[t * c.w + j] = p;
    }
}
