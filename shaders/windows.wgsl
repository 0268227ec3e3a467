// Re-assembly of long documents encoded as two windows (ATLOP's process_long_input, SPEC 1.6),
// and its backward. Windows ("segments") are rows of a [S, W] encoder batch; documents are rows
// of the [B, C] output. The host builds the index tables (model::windows::WindowPlan):
//   pos_src [B*C, 2] u32: for output position bp, the segment rows s*W + r placed there
//                         (NONE = 0xffffffff when fewer than two windows cover it);
//   seg_dst [S*W] u32:    for segment row s*W + r, the output position b*C + p it feeds, or NONE
//                         (dropped [SEP]/[CLS] rows, padding beyond the document's output).
//   renorm [B] u32:       1 if document b was split, so its attention rows are renormalized.
//
// merge_hidden      src [S*W, d], pos_src, out [B*C, d]:
//                   out[bp] = (sum of placed rows) / (count + 1e-10); uncovered rows are 0.
// split_hidden      dout [B*C, d], pos_src, seg_dst, dsrc [S*W, d]: dsrc[sr] = dout[bp] / (count(bp) + 1e-10).
// merge_attention   att [S, H, W, W], pos_src, renorm, out [B, H, C, C], zsum [B*H*C]:
//                   raw[p, q] = sum over windows holding both p and q of their probability;
//                   out = raw / (rowsum(raw) + 1e-10) for split documents, raw otherwise.
//                   zsum keeps the divisor for the backward (1 for documents not split).
// merge_attention_rows  rows [2R, H, W], pos_src, renorm, att_out [R, H, C], at [R] u32:
//                   merge_attention for the output rows at positions at[r] = b*C + p only (the
//                   mention rows evaluation keeps); rows[2r + k] is the probability row of the
//                   segment row pos_src[2 at[r] + k] (any row where that is NONE: it is skipped).
// attention_rows_backward  out, dout, renorm, zsum, draw [B, H, C, C]:
//                   draw[p, q] = (dout[p, q] - sum_q' dout[p, q'] out[p, q']) / z for split
//                   documents, dout otherwise.
// split_attention  draw, seg_dst, datt [S, H, W, W] (bindings 0, 1, 2): datt[s, h, r, r'] = draw[b, h, p, q] when
//                   both rows map to the output, else 0.
// Dispatch: one invocation per output element (merge_hidden, split_hidden, split_attention) or
// per attention row (merge_attention, merge_attention_rows, attention_rows_backward); ceil(count / 256) workgroups
// of 256 over x/y.

struct Win { count: u32, dim: u32, heads: u32, win: u32, c: u32 }
var<immediate> p: Win;

const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> pos_src: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@group(0) @binding(2) var<storage, read> seg_dst: array<u32>;
@group(0) @binding(3) var<storage, read_write> dsrc: array<f32>;

@group(0) @binding(2) var<storage, read> renorm: array<u32>;
@group(0) @binding(3) var<storage, read_write> att_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> zsum: array<f32>;

@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read> zsum_in: array<f32>;
@group(0) @binding(4) var<storage, read_write> draw: array<f32>;

@group(0) @binding(1) var<storage, read> seg_dst_b1: array<u32>;

@group(0) @binding(4) var<storage, read> at_pos: array<u32>;

fn count_of(bp: u32) -> f32 {
    return f32(u32(pos_src[2u * bp] != NONE) + u32(pos_src[2u * bp + 1u] != NONE)) + 1e-10;
}

@compute @workgroup_size(256)
fn merge_hidden(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i >= p.count) { return; }
    let bp = i / p.dim;
    let e = i % p.dim;
    var acc = 0.0;
    for (var k = 0u; k < 2u; k++) {
        let sr = pos_src[2u * bp + k];
        if (sr != NONE) { acc += src[sr * p.dim + e]; }
    }
    out[i] = acc / count_of(bp);
}

@compute @workgroup_size(256)
fn split_hidden(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i >= p.count) { return; }
    let sr = i / p.dim;
    let bp = seg_dst[sr];
    if (bp == NONE) { dsrc[i] = 0.0; return; }
    dsrc[i] = src[bp * p.dim + i % p.dim] / count_of(bp);
}

// Index of segment `s`'s row covering output position bp, or NONE.
fn row_in(bp: u32, s: u32) -> u32 {
    for (var k = 0u; k < 2u; k++) {
        let sr = pos_src[2u * bp + k];
        if (sr != NONE && sr / p.win == s) { return sr % p.win; }
    }
    return NONE;
}

fn raw_at(b: u32, h: u32, pp: u32, q: u32) -> f32 {
    var acc = 0.0;
    for (var k = 0u; k < 2u; k++) {
        let sr = pos_src[2u * (b * p.c + pp) + k];
        if (sr == NONE) { continue; }
        let s = sr / p.win;
        let rq = row_in(b * p.c + q, s);
        if (rq != NONE) { acc += src[((s * p.heads + h) * p.win + sr % p.win) * p.win + rq]; }
    }
    return acc;
}

@compute @workgroup_size(256)
fn merge_attention(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = group_index(wid, nwg) * 256u + li; // (b, h, p)
    if (row >= p.count) { return; }
    let pp = row % p.c;
    let b = row / (p.c * p.heads);
    let h = (row / p.c) % p.heads;
    var z = 1.0;
    if (renorm[b] != 0u) {
        var s = 0.0;
        for (var q = 0u; q < p.c; q++) { s += raw_at(b, h, pp, q); }
        z = s + 1e-10;
    }
    zsum[row] = z;
    for (var q = 0u; q < p.c; q++) { att_out[row * p.c + q] = raw_at(b, h, pp, q) / z; }
}

// raw_at for output row r of merge_attention_rows (at_pos[r] = b*C + pp).
fn raw_row_at(r: u32, b: u32, h: u32, bp: u32, q: u32) -> f32 {
    var acc = 0.0;
    for (var k = 0u; k < 2u; k++) {
        let sr = pos_src[2u * bp + k];
        if (sr == NONE) { continue; }
        let rq = row_in(b * p.c + q, sr / p.win);
        if (rq != NONE) { acc += src[((2u * r + k) * p.heads + h) * p.win + rq]; }
    }
    return acc;
}

@compute @workgroup_size(256)
fn merge_attention_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = group_index(wid, nwg) * 256u + li; // (r, h)
    if (row >= p.count) { return; }
    let r = row / p.heads;
    let h = row % p.heads;
    let bp = at_pos[r];
    let b = bp / p.c;
    var z = 1.0;
    if (renorm[b] != 0u) {
        var s = 0.0;
        for (var q = 0u; q < p.c; q++) { s += raw_row_at(r, b, h, bp, q); }
        z = s + 1e-10;
    }
    for (var q = 0u; q < p.c; q++) { att_out[row * p.c + q] = raw_row_at(r, b, h, bp, q) / z; }
}

@compute @workgroup_size(256)
fn attention_rows_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = group_index(wid, nwg) * 256u + li;
    if (row >= p.count) { return; }
    let b = row / (p.c * p.heads);
    let base = row * p.c;
    if (renorm[b] == 0u) {
        for (var q = 0u; q < p.c; q++) { draw[base + q] = dout[base + q]; }
        return;
    }
    var dot = 0.0;
    for (var q = 0u; q < p.c; q++) { dot += dout[base + q] * src[base + q]; }
    let z = zsum_in[row];
    for (var q = 0u; q < p.c; q++) { draw[base + q] = (dout[base + q] - dot) / z; }
}

@compute @workgroup_size(256)
fn split_attention(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li; // (s, h, r, r')
    if (i >= p.count) { return; }
    let rq = i % p.win;
    let rp = (i / p.win) % p.win;
    let h = (i / (p.win * p.win)) % p.heads;
    let s = i / (p.win * p.win * p.heads);
    let bp = seg_dst_b1[s * p.win + rp];
    let bq = seg_dst_b1[s * p.win + rq];
    if (bp == NONE || bq == NONE) { out[i] = 0.0; return; }
    let b = bp / p.c;
    out[i] = src[((b * p.heads + h) * p.c + bp % p.c) * p.c + bq % p.c];
}
