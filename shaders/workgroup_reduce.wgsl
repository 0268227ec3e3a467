// Workgroup reductions shared by softmax, layernorm and reduce (prepended by their launchers).
// Fixed-order tree over WG lanes, so results are bit-reproducible; WG must be a power of two.
// The result is read with workgroupUniformLoad, which makes it uniform to WGSL's uniformity
// analysis: Tint (Chrome's compiler) refuses a barrier under a branch on a plain workgroup
// load (the ECA workgroup kernel branches on a reduced max), where naga lets it pass.

override WG: u32 = 64u;
var<workgroup> red: array<f32, WG>;

fn reduce_sum(v: f32, li: u32) -> f32 {
    red[li] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (li < s) { red[li] = red[li] + red[li + s]; }
        workgroupBarrier();
    }
    let r = workgroupUniformLoad(&red[0]);
    workgroupBarrier();
    return r;
}

fn reduce_max(v: f32, li: u32) -> f32 {
    red[li] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (li < s) { red[li] = max(red[li], red[li + s]); }
        workgroupBarrier();
    }
    let r = workgroupUniformLoad(&red[0]);
    workgroupBarrier();
    return r;
}
