// Subgroup variants of softmax_forward / softmax_backward (appended to softmax.wgsl; a separate
// module because it only compiles where subgroup operations exist). One subgroup per row: lane
// i reads columns i, i + SG, ..., so a subgroup's loads are contiguous (llvmpipe turns them into
// vector loads), and the reductions are subgroupMax / subgroupAdd with no barriers.
// Dispatch: ceil(rows / (64 / SG)) workgroups of 64 over x/y, where SG is the subgroup size.

@compute @workgroup_size(64)
fn softmax_forward_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sg: u32) {
    let r = group_index(wid, nwg) * (64u / sg) + li / sg;
    if (r >= p.rows) { return; } // uniform per subgroup
    var m = -3.0e38;
    var s = 0.0;
    for (var c = lane; c < p.cols; c += sg) {
        let v = logit(r, c);
        let mn = max(m, v);
        s = s * exp(m - mn) + exp(v - mn);
        m = mn;
    }
    let mx = subgroupMax(m);
    let inv = 1.0 / subgroupAdd(s * exp(m - mx));
    for (var c = lane; c < p.cols; c += sg) { out[r * p.cols + c] = exp(logit(r, c) - mx) * inv; }
}

@compute @workgroup_size(64)
fn softmax_backward_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sg: u32) {
    let r = group_index(wid, nwg) * (64u / sg) + li / sg;
    if (r >= p.rows) { return; }
    let base = r * p.cols;
    var d = 0.0;
    for (var c = lane; c < p.cols; c += sg) { d += in0[base + c] * in1[base + c]; }
    d = subgroupAdd(d);
    for (var c = lane; c < p.cols; c += sg) { out[base + c] = p.scale * in0[base + c] * (in1[base + c] - d); }
}
