// Base-module pair kernels (SPEC 2.3): the localized-context weights and their backward (the
// grouped bilinear layer is bilinear.wgsl). Pairs are rows of [P, ·] lists; `pe` [P, 3] u32 holds
// each pair's global head entity, global tail entity and document.
//
// context_weights       ea [Ne, H, L] (entity attention), pe -> w [P, L]:
//                       r_l = sum_h ea[s, h, l] * ea[o, h, l];  w = r / (sum_l r + 1e-5).
//                       Never builds the [P, H, L] product. One invocation per pair.
// context_weights_back  ea, pe, dw [P, L] -> dr [P, L] (gradient wrt r, recomputing r).
//                       One invocation per pair.
// entity_attention_grad dr, ea, epairs -> dea [Ne, H, L]:
//                       dea[e, h, l] = sum over pairs (e, k): dr[p, l] ea[k, h, l]
//                                    + sum over pairs (k, e): dr[p, l] ea[k, h, l].
//                       `epairs` [Ne, 2] u32 = (first row of the entity's CSR list, count) into
//                       `elist` [2P, 2] u32 = (pair row, other entity). One invocation per element.
// Dispatch: ceil(count / 64) workgroups of 64 over x/y.

struct Pc { p: u32, a: u32, b: u32 }
var<immediate> pc: Pc;

const WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> in0: array<f32>;
@group(0) @binding(1) var<storage, read> in1: array<f32>;
@group(0) @binding(4) var<storage, read_write> out0: array<f32>;

@group(0) @binding(1) var<storage, read> pe: array<u32>;
@group(0) @binding(2) var<storage, read_write> w_out: array<f32>;
@group(0) @binding(2) var<storage, read> dw_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> dr_out: array<f32>;
@group(0) @binding(2) var<storage, read> epairs: array<u32>;
@group(0) @binding(3) var<storage, read> elist: array<u32>;

fn index(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return group_index(wid, nwg) * WG + li;
}

// r_l for the pair of entities s and o: pc.a = heads, pc.b = L, in0 = ea.
fn raw_weight(s: u32, o: u32, l: u32) -> f32 {
    var r = 0.0;
    for (var h = 0u; h < pc.a; h++) {
        r += in0[(s * pc.a + h) * pc.b + l] * in0[(o * pc.a + h) * pc.b + l];
    }
    return r;
}

// r is stored as it is summed, then scaled in place: one load of w per token in the second
// pass instead of the 2H loads that recomputing r costs (every load is a loop over the lanes
// on CPU drivers). The same products in the same order: the weights are unchanged to the bit.
@compute @workgroup_size(64)
fn context_weights(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let p = index(wid, nwg, li);
    if (p >= pc.p) { return; }
    let s = pe[3u * p];
    let o = pe[3u * p + 1u];
    var sum = 0.0;
    for (var l = 0u; l < pc.b; l++) {
        let r = raw_weight(s, o, l);
        w_out[p * pc.b + l] = r;
        sum += r;
    }
    let inv = 1.0 / (sum + 1e-5);
    for (var l = 0u; l < pc.b; l++) { w_out[p * pc.b + l] = w_out[p * pc.b + l] * inv; }
}

@compute @workgroup_size(64)
fn context_weights_back(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let p = index(wid, nwg, li);
    if (p >= pc.p) { return; }
    let s = pe[3u * p];
    let o = pe[3u * p + 1u];
    var sum = 0.0;
    var dot = 0.0;
    for (var l = 0u; l < pc.b; l++) {
        let r = raw_weight(s, o, l);
        sum += r;
        dot += r * dw_in[p * pc.b + l];
    }
    let z = sum + 1e-5;
    // w = r / z: dr_l = dw_l / z - sum_l' dw_l' r_l' / z².
    for (var l = 0u; l < pc.b; l++) { dr_out[p * pc.b + l] = (dw_in[p * pc.b + l] - dot / z) / z; }
}

// in0 = dr [P, L], in1 = ea [Ne, H, L]; pc.p = Ne*H*L, pc.a = H, pc.b = L.
@compute @workgroup_size(64)
fn entity_attention_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = index(wid, nwg, li);
    if (i >= pc.p) { return; }
    let l = i % pc.b;
    let h = (i / pc.b) % pc.a;
    let e = i / (pc.b * pc.a);
    let first = epairs[2u * e];
    let count = epairs[2u * e + 1u];
    var acc = 0.0;
    for (var j = first; j < first + count; j++) {
        let row = elist[2u * j];
        let other = elist[2u * j + 1u];
        acc += in0[row * pc.b + l] * in1[(other * pc.a + h) * pc.b + l];
    }
    out0[i] = acc;
}
