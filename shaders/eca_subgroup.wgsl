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
