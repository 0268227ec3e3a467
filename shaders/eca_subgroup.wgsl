// Subgroup variants of the ECA core for CPU adapters (appended to eca.wgsl; a separate module
// because it only compiles where subgroup operations exist). One subgroup per (pair, head):
// lane i owns features i, i + SG, ..., i + (FPL-1)·SG of the head (dh = FPL·SG), keeps them in
// registers, and every dot product is a lane-partial sum finished by subgroupAdd. No workgroup
// memory and no barriers: on llvmpipe each barrier is a coroutine switch per invocation, and
// lanes reading consecutive features turn into vector loads.
// Dispatch: ceil(P·HEADS / (64 / SG)) workgroups of 64 over x/y; same bindings as eca.wgsl, whose
// eca_terms pass also serves these backward kernels.

override FPL: u32 = 16u;

fn sg_task(wid: vec3<u32>, nwg: vec3<u32>, li: u32, sg: u32) -> u32 {
    return group_index(wid, nwg) * (64u / sg) + li / sg;
}

@compute @workgroup_size(64)
fn eca_forward_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sg: u32) {
    let g = sg_task(wid, nwg, li, sg);
    if (g >= c.p * c.heads) { return; } // uniform per subgroup
    let row = g / c.heads;
    let h = g % c.heads;
    let base = h * (c.d / c.heads) + lane;
    var qv: array<f32, 64>;
    var acc: array<f32, 64>;
    for (var j = 0u; j < FPL; j++) { qv[j] = q[row * c.d + base + j * sg]; acc[j] = 0.0; }
    var m = EMPTY;
    var l = 0.0;
    let at = pair_of(row);
    let slots = slot_count(at.x);
    for (var s = 0u; s < slots; s++) {
        let r = slot_row(row, at, h, s, false);
        if (r == NONE) { continue; }
        var part = 0.0;
        for (var j = 0u; j < FPL; j++) { part += qv[j] * k[r * c.d + base + j * sg]; }
        let sc = c.scale * subgroupAdd(part) + bias(row, r);
        let mn = max(m, sc);
        let corr = exp(m - mn);
        let pj = exp(sc - mn);
        l = l * corr + pj;
        let w = pj * prob_keep(g, r);
        for (var j = 0u; j < FPL; j++) { acc[j] = acc[j] * corr + w * v[r * c.d + base + j * sg]; }
        m = mn;
    }
    for (var j = 0u; j < FPL; j++) { out[row * c.d + base + j * sg] = acc[j] / l; }
    if (lane == 0u) {
        stats[2u * g] = m;
        stats[2u * g + 1u] = l;
    }
}

@compute @workgroup_size(64)
fn eca_backward_query_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sg: u32) {
    let g = sg_task(wid, nwg, li, sg);
    if (g >= c.p * c.heads) { return; }
    let row = g / c.heads;
    let h = g % c.heads;
    let base = h * (c.d / c.heads) + lane;
    var qv: array<f32, 64>;
    var dov: array<f32, 64>;
    var acc: array<f32, 64>;
    var kr: array<f32, 64>; // the slot's key row: read once for its dot and again for the update
    for (var j = 0u; j < FPL; j++) {
        let i = row * c.d + base + j * sg;
        qv[j] = q[i];
        dov[j] = dout[i];
        acc[j] = 0.0;
    }
    let lse = terms[2u * g];
    let dl = terms[2u * g + 1u];
    let at = pair_of(row);
    let slots = slot_count(at.x);
    for (var s = 0u; s < slots; s++) {
        let r = slot_row(row, at, h, s, false);
        if (r == NONE) { continue; }
        var ps = 0.0;
        var pd = 0.0;
        for (var j = 0u; j < FPL; j++) {
            kr[j] = k[r * c.d + base + j * sg];
            ps += qv[j] * kr[j];
            pd += dov[j] * v[r * c.d + base + j * sg];
        }
        let p = exp(c.scale * subgroupAdd(ps) + bias(row, r) - lse);
        let ds = p * (prob_keep(g, r) * subgroupAdd(pd) - dl);
        for (var j = 0u; j < FPL; j++) { acc[j] += ds * kr[j]; }
    }
    for (var j = 0u; j < FPL; j++) { dq[row * c.d + base + j * sg] = c.scale * acc[j]; }
}

@compute @workgroup_size(64)
fn eca_backward_key_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sg: u32) {
    let g = sg_task(wid, nwg, li, sg);
    if (g >= c.p * c.heads) { return; }
    let row = g / c.heads; // the key / value pair
    let h = g % c.heads;
    let base = h * (c.d / c.heads) + lane;
    var kv: array<f32, 64>;
    var vv: array<f32, 64>;
    var acc_k: array<f32, 64>;
    var acc_v: array<f32, 64>;
    // The reading query's q and dout rows: read once for the dots and again for the updates.
    var qr: array<f32, 64>;
    var dr: array<f32, 64>;
    for (var j = 0u; j < FPL; j++) {
        kv[j] = k[row * c.d + base + j * sg];
        vv[j] = v[row * c.d + base + j * sg];
        acc_k[j] = 0.0;
        acc_v[j] = 0.0;
    }
    let at = pair_of(row);
    let slots = slot_count(at.x);
    for (var s = 0u; s < slots; s++) {
        let r = slot_row(row, at, h, s, true); // a query that reads this key
        if (r == NONE) { continue; }
        let qg = r * c.heads + h;
        var ps = 0.0;
        var pd = 0.0;
        for (var j = 0u; j < FPL; j++) {
            qr[j] = q[r * c.d + base + j * sg];
            dr[j] = dout[r * c.d + base + j * sg];
            ps += qr[j] * kv[j];
            pd += dr[j] * vv[j];
        }
        let p = exp(c.scale * subgroupAdd(ps) + bias(row, r) - terms[2u * qg]);
        let keep = prob_keep(qg, row);
        let ds = p * (keep * subgroupAdd(pd) - terms[2u * qg + 1u]);
        let pk = p * keep;
        for (var j = 0u; j < FPL; j++) {
            acc_v[j] += pk * dr[j];
            acc_k[j] += ds * qr[j];
        }
    }
    for (var j = 0u; j < FPL; j++) {
        dk[row * c.d + base + j * sg] = c.scale * acc_k[j];
        dv[row * c.d + base + j * sg] = acc_v[j];
    }
}

// eca_forward_lines (CPU adapters with subgroups of at most 16 lanes; MODE 0, heads of DH
// features, DH a multiple of 4 and at most 32, D % 4 == 0). The queries of one ECA line attend
// the same keys, so one subgroup takes SG of them: lane l loads key kk0 + l of the line once
// (its k and v features as vec4s) and the SG keys of a chunk reach every lane by subgroupShuffle
// from a constant lane (line_slot is called with literal lanes, so each shuffle is a broadcast;
// a shuffle from a loop counter is a loop over the lanes on llvmpipe, as a load is). One load
// then feeds SG queries, where eca_forward_lanes loads every key in every lane.
// Head h of entity e: the line is row e (h = 0, h >= 3) or column e (h = 1, 2); its queries are
// (e, u) for h = 0, 2 and (u, e) for h = 1 and h >= 3, u = chunk·SG + lane. Heads 0 and 1 meet
// their own pair in the line (the self slot, bias +1); heads 2 and 3 take it first, apart.
// Dispatch: HEADS·B·N·ceil(N / SG) workgroups of SG over x/y (group_index); bindings as
// eca_forward_lanes.
override SG: u32 = 8u;

// The online-softmax state of one query: running max, sum and weighted values.
struct LineState { m: f32, l: f32, acc: array<vec4<f32>, 8> }

// Folds key `i` of the chunk (lane i's krow, kl, vl) into `st`; masked keys (the diagonal,
// padding) leave it as it is.
fn line_slot(i: u32, krow: u32, kl: ptr<function, array<vec4<f32>, 8>>, vl: ptr<function, array<vec4<f32>, 8>>, qv: ptr<function, array<vec4<f32>, 8>>, qrow: u32, g: u32, st: ptr<function, LineState>) {
    if (i >= SG) { return; }
    let r = subgroupShuffle(krow, i);
    var dot = vec4<f32>(0.0);
    for (var j = 0u; j < DH / 4u; j++) { dot += (*qv)[j] * subgroupShuffle((*kl)[j], i); }
    let ok = r != NONE;
    let sc = c.scale * ((dot.x + dot.y) + (dot.z + dot.w)) + select(0.0, 1.0, r == qrow);
    let m = (*st).m;
    let mn = select(m, max(m, sc), ok);
    let corr = exp(m - mn);
    let pj = select(0.0, exp(sc - mn), ok);
    (*st).l = (*st).l * corr + pj;
    let w = pj * prob_keep(g, r);
    for (var j = 0u; j < DH / 4u; j++) { (*st).acc[j] = (*st).acc[j] * corr + w * subgroupShuffle((*vl)[j], i); }
    (*st).m = mn;
}

@compute @workgroup_size(SG)
fn eca_forward_lines(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let chunks = (c.n + SG - 1u) / SG;
    let per_head = c.docs * c.n * chunks;
    let t = group_index(wid, nwg);
    if (t >= c.heads * per_head) { return; } // uniform per workgroup
    let h = t / per_head;
    let b = (t % per_head) / (c.n * chunks);
    let e = (t / chunks) % c.n;
    let u = (t % chunks) * SG + lane;
    let row_line = h == 0u || h >= 3u;
    var qrow: u32;
    if (h == 0u || h == 2u) { qrow = cell_at(b, e, u); } else { qrow = cell_at(b, u, e); }
    let live = qrow != NONE;
    // Lines and chunks past a document's entities (N is the batch's largest count) hold no pair.
    if (subgroupAll(!live)) { return; }
    let qr = select(0u, qrow, live);
    let g = qr * c.heads + h;
    let q4s = c.d / 4u;
    let head4 = h * (DH / 4u);
    var qv: array<vec4<f32>, 8>;
    var st: LineState;
    st.m = EMPTY;
    st.l = 0.0;
    for (var j = 0u; j < DH / 4u; j++) { qv[j] = q4[qr * q4s + head4 + j]; st.acc[j] = vec4<f32>(0.0); }
    if (h >= 2u) {
        var dot = vec4<f32>(0.0);
        for (var j = 0u; j < DH / 4u; j++) { dot += qv[j] * k4[qr * q4s + head4 + j]; }
        st.m = c.scale * ((dot.x + dot.y) + (dot.z + dot.w)) + 1.0;
        st.l = 1.0;
        let w = prob_keep(g, qr);
        for (var j = 0u; j < DH / 4u; j++) { st.acc[j] = w * v4[qr * q4s + head4 + j]; }
    }
    for (var kk0 = 0u; kk0 < c.n; kk0 += SG) {
        var krow: u32;
        if (row_line) { krow = cell_at(b, e, kk0 + lane); } else { krow = cell_at(b, kk0 + lane, e); }
        if (subgroupAll(krow == NONE)) { continue; }
        let kr = select(0u, krow, krow != NONE);
        var kl: array<vec4<f32>, 8>;
        var vl: array<vec4<f32>, 8>;
        for (var j = 0u; j < DH / 4u; j++) { kl[j] = k4[kr * q4s + head4 + j]; vl[j] = v4[kr * q4s + head4 + j]; }
        line_slot(0u, krow, &kl, &vl, &qv, qrow, g, &st);
        line_slot(1u, krow, &kl, &vl, &qv, qrow, g, &st);
        line_slot(2u, krow, &kl, &vl, &qv, qrow, g, &st);
        line_slot(3u, krow, &kl, &vl, &qv, qrow, g, &st);
        line_slot(4u, krow, &kl, &vl, &qv, qrow, g, &st);
        line_slot(5u, krow, &kl, &vl, &qv, qrow, g, &st);
        line_slot(6u, krow, &kl, &vl, &qv, qrow, g, &st);
        line_slot(7u, krow, &kl, &vl, &qv, qrow, g, &st);
        line_slot(8u, krow, &kl, &vl, &qv, qrow, g, &st);
        line_slot(9u, krow, &kl, &vl, &qv, qrow, g, &st);
        line_slot(10u, krow, &kl, &vl, &qv, qrow, g, &st);
        line_slot(11u, krow, &kl, &vl, &qv, qrow, g, &st);
        line_slot(12u, krow, &kl, &vl, &qv, qrow, g, &st);
        line_slot(13u, krow, &kl, &vl, &qv, qrow, g, &st);
        line_slot(14u, krow, &kl, &vl, &qv, qrow, g, &st);
        line_slot(15u, krow, &kl, &vl, &qv, qrow, g, &st);
    }
    if (live) {
        for (var j = 0u; j < DH / 4u; j++) { out4[qr * q4s + head4 + j] = st.acc[j] / st.l; }
        stats[2u * g] = st.m;
        stats[2u * g + 1u] = st.l;
    }
}
