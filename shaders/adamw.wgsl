// Fused AdamW step with global-norm gradient clipping (torch.optim.AdamW semantics):
//   coef = min(1, max_norm / (sqrt(normsq) + 1e-6))   (1 when max_norm <= 0)
//   g = coef * grad
//   param *= 1 - lr * weight_decay                      (decoupled decay)
//   m = beta1*m + (1-beta1)*g ;  v = beta2*v + (1-beta2)*g^2
//   param -= lr/bc1 * m / (sqrt(v/bc2) + eps),  bc1 = 1 - beta1^t, bc2 = 1 - beta2^t
// The clipping coefficient is read from normsq[0] on the device (written by reduce.wgsl), so a
// training step never reads the gradient norm back to the host.
//
// adamw_step  param [n] (rw), grad [n] (read), m [n] (rw), v [n] (rw), normsq [1] (read).
// Dispatch: ceil(n / 256) workgroups of 256 over x/y.

struct Adam { n: u32, lr: f32, beta1: f32, beta2: f32, eps: f32, weight_decay: f32, bc1: f32, bc2: f32, max_norm: f32 }
var<immediate> p: Adam;

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read> normsq: array<f32>;

@compute @workgroup_size(256)
fn adamw_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i >= p.n) { return; }
    var coef = 1.0;
    if (p.max_norm > 0.0) { coef = min(1.0, p.max_norm / (sqrt(normsq[0]) + 1e-6)); }
    let g = coef * grad[i];
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let w = param[i] * (1.0 - p.lr * p.weight_decay);
    param[i] = w - (p.lr / p.bc1) * mi / (sqrt(vi / p.bc2) + p.eps);
}
