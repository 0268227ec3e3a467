// Batched, strided matrix multiply: C[z] = alpha * op(A[z]) * op(B[z]) (+ bias[n]) (+ C[z]).
//
// Layout: every operand is a strided view into a flat f32 buffer. Batch index z = b1*nb2 + b2
// selects A at a_off + b1*a_s1 + b2*a_s2, and likewise for B and C, which expresses plain
// batches as well as per-head slices of [B, L, H, dh] activations without copies.
// op(A)(m, k) = A[m*lda + k], or A[k*lda + m] when TRANS_A; op(B)(k, n) = B[k*ldb + n], or
// B[n*ldb + k] when TRANS_B. C(m, n) = C[m*ldc + n]. flags: bit 0 adds bias[n], bit 1 adds
// the existing C (accumulation, e.g. weight gradients over several batches).
// Bindings: a (read), b (read), bias (read; any buffer when unused), c (rw).
//
// This common part is prepended to matmul.wgsl and to matmul_subgroup.wgsl (+ matmul_vec4_operands.wgsl
// + matmul_subgroup_vec4.wgsl). Entry points, chosen
// per adapter kind by the host:
//   matmul_subgroup (CPU adapters with subgroups of SG = 4..64 lanes) one subgroup per
//                                64 x 8·SG tile; grid (ceil(N/(8·SG)), ceil(M/64), batch).
//   matmul_subgroup_vec4         the same with k stepped by 4 and 16-byte loads, where k and
//                                the operands' rows are 4-element aligned (ops::matmul::vec4_fits).
//   matmul_reg   (other CPU adapters) workgroup WX x WY, each invocation an RM x RN block;
//                                grid (ceil(N/(WX*RN)), ceil(M/(WY*RM)), batch).
//   matmul_tiled (GPUs)          workgroup (BN/4) x (BM/4), BM x BN tile staged through
//                                workgroup memory in BK-deep slices, 4x4 per invocation;
//                                grid (ceil(N/BN), ceil(M/BM), batch).
// What lavapipe rewards (measured): see the notes at the top of matmul.wgsl.

struct Mm {
    m: u32, n: u32, k: u32, nb2: u32,
    lda: u32, ldb: u32, ldc: u32, flags: u32,
    a_off: u32, a_s1: u32, a_s2: u32,
    b_off: u32, b_s1: u32, b_s2: u32,
    c_off: u32, c_s1: u32, c_s2: u32,
    alpha: f32,
}
var<immediate> p: Mm;

override TRANS_A: bool = false;
override TRANS_B: bool = false;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

// Flat offsets of batch z's A, B and C (z = b1*nb2 + b2).
fn batch_bases(z: u32) -> vec3<u32> {
    let b1 = z / p.nb2;
    let b2 = z % p.nb2;
    return vec3<u32>(p.a_off + b1 * p.a_s1 + b2 * p.a_s2, p.b_off + b1 * p.b_s1 + b2 * p.b_s2, p.c_off + b1 * p.c_s1 + b2 * p.c_s2);
}

fn a_at(base: u32, m: u32, k: u32) -> f32 {
    if (TRANS_A) { return a[base + k * p.lda + m]; }
    return a[base + m * p.lda + k];
}

fn b_at(base: u32, k: u32, n: u32) -> f32 {
    if (TRANS_B) { return b[base + n * p.ldb + k]; }
    return b[base + k * p.ldb + n];
}

fn store(cbase: u32, m: u32, n: u32, v: f32) {
    if (m < p.m && n < p.n) {
        var r = p.alpha * v;
        if ((p.flags & 1u) != 0u) { r = r + bias[n]; }
        let idx = cbase + m * p.ldc + n;
        if ((p.flags & 2u) != 0u) { r = r + c[idx]; }
        c[idx] = r;
    }
}

