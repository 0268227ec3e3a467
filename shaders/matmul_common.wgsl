// Batched, strided matrix multiply: C[z] = alpha * op(A[z]) * op(B[z]) (+ bias[n]) (+ C[z]).
//
// Layout: every operand is a strided view into a flat f32 buffer. Batch index z = b1*nb2 + b2
// selects A at a_off + b1*a_s1 + b2*a_s2, and likewise for B and C, which expresses plain
// batches as well as per-head slices of [B, L, H, dh] activations without copies.
// op(A)(m, k) = A[m*lda + k], or A[k*lda + m] when flags bit 2 (A transposed); op(B)(k, n) =
// B[k*ldb + n], or B[n*ldb + k] when flags bit 3. C(m, n) = C[m*ldc + n]. flags bit 0 adds
// bias[n], bit 1 adds the existing C (accumulation, e.g. weight gradients over several batches).
// Transposes are immediates, not override constants, so one pipeline per body serves every
// layout: a CPU driver compiles each pipeline on first use, for seconds.
// Bindings: a (read), b (read), bias (read; any buffer when unused), c (rw).
//
// This common part is prepended to matmul.wgsl and to matmul_subgroup.wgsl. Entry points, chosen
// per adapter kind by the host:
//   matmul_subgroup (CPU adapters with subgroups of SG = 4..64 lanes) one subgroup per
//                                32 x 4·SG tile, k by 4; grid (ceil(N/(4·SG)), ceil(M/32), batch).
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

// (row stride, column stride) of op(A) and op(B): computed from immediates only, which CPU
// drivers keep as scalars.
fn a_strides() -> vec2<u32> {
    return select(vec2<u32>(p.lda, 1u), vec2<u32>(1u, p.lda), (p.flags & 4u) != 0u);
}

fn b_strides() -> vec2<u32> {
    return select(vec2<u32>(p.ldb, 1u), vec2<u32>(1u, p.ldb), (p.flags & 8u) != 0u);
}

fn a_at(base: u32, m: u32, k: u32) -> f32 {
    let s = a_strides();
    return a[base + m * s.x + k * s.y];
}

fn b_at(base: u32, k: u32, n: u32) -> f32 {
    let s = b_strides();
    return b[base + k * s.x + n * s.y];
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

