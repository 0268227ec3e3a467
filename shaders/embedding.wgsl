// Row gather (embedding lookup) and its backward, a deterministic row scatter-add.
//
// gather_rows       table [rows, dim] (read), ids [n] (u32), out [n, dim] (rw):
//                   out[i] = table[ids[i]], or zeros when ids[i] >= rows.
// scatter_add_rows  src [m, dim] (read), offsets [u+1] (u32), sources [k] (u32),
//                   targets [u] (u32, distinct), dst [*, dim] (rw):
//                   dst[targets[t]] += sum over j in offsets[t]..offsets[t+1] of src[sources[j]].
//                   The host builds this CSR grouping, so every destination row is owned by one
//                   set of invocations and summed in a fixed order: no float atomics, bit-exact
//                   repeats.
// Dispatch (both): one invocation per output element, ceil(count / 256) workgroups over x/y.

struct Emb { count: u32, dim: u32, rows: u32 }
var<immediate> p: Emb;

@group(0) @binding(0) var<storage, read> table: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@group(0) @binding(2) var<storage, read> sources: array<u32>;
@group(0) @binding(3) var<storage, read> targets: array<u32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn gather_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = group_index(wid, nwg) * 256u + li;
    if (e >= p.count * p.dim) { return; }
    let i = e / p.dim;
    let d = e % p.dim;
    let row = ids[i];
    out[e] = select(0.0, table[min(row, p.rows - 1u) * p.dim + d], row < p.rows);
}

@compute @workgroup_size(256)
fn scatter_add_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = group_index(wid, nwg) * 256u + li;
    if (e >= p.count * p.dim) { return; }
    let t = e / p.dim;
    let d = e % p.dim;
    var s = 0.0;
    for (var j = ids[t]; j < ids[t + 1u]; j++) { s += table[sources[j] * p.dim + d]; }
    let o = targets[t] * p.dim + d;
    dst[o] = dst[o] + s;
}
