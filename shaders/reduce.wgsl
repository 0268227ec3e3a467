// Deterministic reductions (fixed summation order, no atomics).
//
// row_sum   x [rows, cols] (read), out [rows] (rw): out[r] = sum_c x[r, c].
//           Dispatch: one workgroup of WG invocations per row, rows split over x/y.
// col_sum   x [rows, cols] (read), out [ceil(rows / chunk), cols] (rw):
//           out[g, c] = sum of x[r, c] for r in chunk g. The host repeats it until one row is
//           left, so bias gradients of long sequences keep the GPU busy and stay deterministic.
//           Dispatch: one invocation per (chunk, column), ceil(count / 256) workgroups over x/y.
// sumsq     x [n] (read), out (rw): out[out_offset + w] = sum of x[i]^2 over workgroup w's
//           WG*PER elements. The host gives every parameter tensor its own slots in one partial
//           buffer, then row_sum's it to the global squared gradient norm (clipping, AdamW).
//           Dispatch: ceil(n / (WG*PER)) workgroups over x/y.

struct Red { rows: u32, cols: u32, chunk: u32, out_offset: u32 }
var<immediate> p: Red;

const PER: u32 = 16u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;


@compute @workgroup_size(WG)
fn row_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = group_index(wid, nwg);
    if (r >= p.rows) { return; }
    var s = 0.0;
    for (var c = li; c < p.cols; c += WG) { s += x[r * p.cols + c]; }
    s = reduce_sum(s, li);
    if (li == 0u) { out[r] = s; }
}

@compute @workgroup_size(256)
fn col_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = group_index(wid, nwg) * 256u + li;
    let chunks = (p.rows + p.chunk - 1u) / p.chunk;
    if (e >= chunks * p.cols) { return; }
    let g = e / p.cols;
    let c = e % p.cols;
    let r1 = min(p.rows, (g + 1u) * p.chunk);
    var s = 0.0;
    for (var r = g * p.chunk; r < r1; r++) { s += x[r * p.cols + c]; }
    out[e] = s;
}

@compute @workgroup_size(WG)
fn sumsq(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let w = group_index(wid, nwg);
    let n = p.rows;
    let start = w * WG * PER;
    if (start >= n) { return; }
    var s = 0.0;
    for (var i = 0u; i < PER; i++) {
        let idx = start + i * WG + li;
        if (idx < n) { let v = x[idx]; s += v * v; }
    }
    s = reduce_sum(s, li);
    if (li == 0u) { out[p.out_offset + w] = s; }
}
