// Element-wise kernels over flat tensors of n elements.
//
// Immediates: Ew { n, nb, alpha, beta }. `nb` is the length of the second operand, which is
// broadcast by wrapping (index i % nb), so a [cols] vector applies to every row of [rows, cols].
// Dispatch: ceil(n / 256) workgroups of 256 invocations, split over x/y (linear index via
// group_index); one invocation per element.
//
// Each entry point has a twin with the suffix 4 over the same bindings read as vec4s, one
// invocation per 4 elements, for when n and nb are multiples of 4 (the host then passes n / 4
// and nb / 4). CPU drivers turn every storage access whose address differs between lanes into
// a loop over the lanes, so a 16-byte access moves four times the data per trip of that loop.
//
// Entry points and their bindings (storage buffers in binding order):
//   add_scaled    x (read), y (read), out (rw)    out = alpha*x + beta*y[i % nb]
//   mul           x (read), y (read), out (rw)    out = x * y[i % nb]
//   act_backward  x (read), y (read), out (rw)    out = y * f'(x)   (y = upstream gradient)
//   scale         x (read), o1 (rw)               o1 = alpha*x
//   act_forward   x (read), o1 (rw)               o1 = f(x)
//   accumulate    acc (rw), y (read)              acc += alpha*y[i % nb]
//   fill          acc (rw)                        acc = alpha
//   gate_mix      x (read), y (read), out (rw), z (read)
//                                                 out = z + x * (y - z): the inference layer's
//                                                 gated fusion R + s(F - R) in one pass instead
//                                                 of three (no broadcast)
// The activation f is the override ACT: 0 GELU (erf form, as HF BERT), 1 tanh, 2 ReLU, 3 sigmoid.

struct Ew { n: u32, nb: u32, alpha: f32, beta: f32 }
var<immediate> p: Ew;

override ACT: u32 = 0u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read_write> o1: array<f32>;
@group(0) @binding(0) var<storage, read_write> acc: array<f32>;
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> y4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> o14: array<vec4<f32>>;
@group(0) @binding(0) var<storage, read_write> acc4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> z: array<f32>;
@group(0) @binding(3) var<storage, read> z4: array<vec4<f32>>;

// Abramowitz & Stegun 7.1.26, |error| < 1.5e-7: WGSL has no erf builtin.
fn erf_approx(v: vec4<f32>) -> vec4<f32> {
    let a = abs(v);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
    return sign(v) * (1.0 - poly * exp(-a * a));
}

// Written once for vec4s; the scalar entry points use lane x (they only run on odd sizes).
fn act(v: vec4<f32>) -> vec4<f32> {
    switch ACT {
        case 0u: { return 0.5 * v * (1.0 + erf_approx(v * 0.70710678118654752)); }
        // Clamped because some drivers return NaN for tanh of large arguments.
        case 1u: { return tanh(clamp(v, vec4(-15.0), vec4(15.0))); }
        case 2u: { return max(v, vec4(0.0)); }
        default: { return 1.0 / (1.0 + exp(-v)); }
    }
}

fn act_grad(v: vec4<f32>) -> vec4<f32> {
    switch ACT {
        case 0u: {
            let cdf = 0.5 * (1.0 + erf_approx(v * 0.70710678118654752));
            return cdf + v * 0.39894228040143268 * exp(-0.5 * v * v);
        }
        case 1u: { let t = tanh(clamp(v, vec4(-15.0), vec4(15.0))); return 1.0 - t * t; }
        case 2u: { return select(vec4(0.0), vec4(1.0), v > vec4(0.0)); }
        default: { let s = 1.0 / (1.0 + exp(-v)); return s * (1.0 - s); }
    }
}

@compute @workgroup_size(256)
fn add_scaled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i < p.n) { out[i] = p.alpha * x[i] + p.beta * y[i % p.nb]; }
}

@compute @workgroup_size(256)
fn mul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i < p.n) { out[i] = x[i] * y[i % p.nb]; }
}

@compute @workgroup_size(256)
fn act_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i < p.n) { out[i] = y[i] * act_grad(vec4(x[i])).x; }
}

@compute @workgroup_size(256)
fn scale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i < p.n) { o1[i] = p.alpha * x[i]; }
}

@compute @workgroup_size(256)
fn act_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i < p.n) { o1[i] = act(vec4(x[i])).x; }
}

@compute @workgroup_size(256)
fn accumulate(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i < p.n) { acc[i] = acc[i] + p.alpha * y[i % p.nb]; }
}

@compute @workgroup_size(256)
fn gate_mix(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i < p.n) { out[i] = z[i] + x[i] * (y[i] - z[i]); }
}

@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i < p.n) { acc[i] = p.alpha; }
}

@compute @workgroup_size(256)
fn add_scaled4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i < p.n) { out4[i] = p.alpha * x4[i] + p.beta * y4[i % p.nb]; }
}

@compute @workgroup_size(256)
fn mul4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i < p.n) { out4[i] = x4[i] * y4[i % p.nb]; }
}

@compute @workgroup_size(256)
fn act_backward4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i < p.n) { out4[i] = y4[i] * act_grad(x4[i]); }
}

@compute @workgroup_size(256)
fn scale4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i < p.n) { o14[i] = p.alpha * x4[i]; }
}

@compute @workgroup_size(256)
fn act_forward4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i < p.n) { o14[i] = act(x4[i]); }
}

@compute @workgroup_size(256)
fn accumulate4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i < p.n) { acc4[i] = acc4[i] + p.alpha * y4[i % p.nb]; }
}

@compute @workgroup_size(256)
fn gate_mix4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i < p.n) { out4[i] = z4[i] + x4[i] * (y4[i] - z4[i]); }
}

@compute @workgroup_size(256)
fn fill4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i < p.n) { acc4[i] = vec4(p.alpha); }
}
