// Dropout with a counter-based RNG: element i keeps its value (scaled by 1/(1-p)) iff
// uniform(seed, offset + i) >= p. The mask is a pure function of (seed, offset + i), so the
// backward pass regenerates it instead of storing it, and runs are reproducible. The same
// entry serves forward (x = activations) and backward (x = upstream gradient).
//
// dropout   x [n] (read), y [n] (rw).
// Dispatch: ceil(n / 256) workgroups of 256 over x/y, one invocation per element.
// The hash is shaders/counter_rng.wgsl's, prepended.

struct Dp { n: u32, seed_lo: u32, seed_hi: u32, offset: u32, prob: f32, scale: f32 }
var<immediate> p: Dp;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn dropout(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i >= p.n) { return; }
    y[i] = select(0.0, x[i] * p.scale, counter_uniform(p.seed_lo, p.seed_hi, p.offset + i) >= p.prob);
}
