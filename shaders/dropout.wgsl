// Dropout with a counter-based RNG: element i keeps its value (scaled by 1/(1-p)) iff
// uniform(seed, offset + i) >= p. The mask is a pure function of (seed, offset + i), so the
// backward pass regenerates it instead of storing it, and runs are reproducible. The same
// entry serves forward (x = activations) and backward (x = upstream gradient).
//
// dropout   x [n] (read), y [n] (rw).
// Dispatch: ceil(n / 256) workgroups of 256 over x/y, one invocation per element.
// ops::reference::dropout_keep implements the identical hash on the CPU.

struct Dp { n: u32, seed_lo: u32, seed_hi: u32, offset: u32, prob: f32, scale: f32 }
var<immediate> p: Dp;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

// "lowbias32" integer hash (C. Wellons): a bijection on u32 with good avalanche.
fn mix32(v0: u32) -> u32 {
    var v = v0;
    v ^= v >> 16u;
    v *= 0x7feb352du;
    v ^= v >> 15u;
    v *= 0x846ca68bu;
    v ^= v >> 16u;
    return v;
}

fn uniform01(counter: u32) -> f32 {
    let h = mix32(mix32(counter ^ mix32(p.seed_lo)) + mix32(p.seed_hi ^ 0x9e3779b9u));
    return f32(h >> 8u) * (1.0 / 16777216.0);
}

@compute @workgroup_size(256)
fn dropout(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i >= p.n) { return; }
    y[i] = select(0.0, x[i] * p.scale, uniform01(p.offset + i) >= p.prob);
}
