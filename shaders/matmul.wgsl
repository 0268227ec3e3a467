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
// Two entry points, chosen per adapter kind by the host:
//   matmul_reg   (CPU adapters)  workgroup WX x WY, each invocation an RM x RN register block;
//                                grid (ceil(N/(WX*RN)), ceil(M/(WY*RM)), batch).
//   matmul_tiled (GPUs)          workgroup (BN/4) x (BM/4), BM x BN tile staged through
//                                workgroup memory in BK-deep slices, 4x4 per invocation;
//                                grid (ceil(N/BN), ceil(M/BM), batch).
//
// What lavapipe (llvmpipe) rewards, measured with `docre bench kernels` on 2 cores:
//   see the notes above matmul_reg.

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

fn a_at(base: u32, m: u32, k: u32) -> f32 {
    if (TRANS_A) { return a[base + k * p.lda + m]; }
    return a[base + m * p.lda + k];
}

fn b_at(base: u32, k: u32, n: u32) -> f32 {
    if (TRANS_B) { return b[base + n * p.ldb + k]; }
    return b[base + k * p.ldb + n];
}

fn store(cbase: u32, m: u32, n: u32, v: f32) {
    if (m >= p.m || n >= p.n) { return; }
    var r = p.alpha * v;
    if ((p.flags & 1u) != 0u) { r = r + bias[n]; }
    let idx = cbase + m * p.ldc + n;
    if ((p.flags & 2u) != 0u) { r = r + c[idx]; }
    c[idx] = r;
}

// ---------------------------------------------------------------- CPU adapters
const RM: u32 = 8u;
const RN: u32 = 8u;
override WX: u32 = 8u;
override WY: u32 = 8u;

@compute @workgroup_size(WX, WY)
fn matmul_reg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let z = wid.z;
    let b1 = z / p.nb2;
    let b2 = z % p.nb2;
    let abase = p.a_off + b1 * p.a_s1 + b2 * p.a_s2;
    let bbase = p.b_off + b1 * p.b_s1 + b2 * p.b_s2;
    let cbase = p.c_off + b1 * p.c_s1 + b2 * p.c_s2;
    let m0 = (wid.y * WY + lid.y) * RM;
    let n0 = (wid.x * WX + lid.x) * RN;
    // Out-of-range rows/columns read a clamped (valid) element and are never stored, which
    // keeps the k loop free of branches.
    var rows: array<u32, RM>;
    var cols: array<u32, RN>;
    for (var i = 0u; i < RM; i++) { rows[i] = min(m0 + i, p.m - 1u); }
    for (var j = 0u; j < RN; j++) { cols[j] = min(n0 + j, p.n - 1u); }
    var acc: array<array<f32, RN>, RM>;
    for (var kk = 0u; kk < p.k; kk++) {
        var av: array<f32, RM>;
        var bv: array<f32, RN>;
        for (var i = 0u; i < RM; i++) { av[i] = a_at(abase, rows[i], kk); }
        for (var j = 0u; j < RN; j++) { bv[j] = b_at(bbase, kk, cols[j]); }
        for (var i = 0u; i < RM; i++) {
            for (var j = 0u; j < RN; j++) { acc[i][j] = fma(av[i], bv[j], acc[i][j]); }
        }
    }
    for (var i = 0u; i < RM; i++) {
        for (var j = 0u; j < RN; j++) { store(cbase, m0 + i, n0 + j, acc[i][j]); }
    }
}

// ---------------------------------------------------------------- GPUs
override BM: u32 = 64u;
override BN: u32 = 64u;
override BK: u32 = 16u;
var<workgroup> tile_a: array<f32, BM * BK>;
var<workgroup> tile_b: array<f32, BK * BN>;

@compute @workgroup_size(BN / 4u, BM / 4u)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let z = wid.z;
    let b1 = z / p.nb2;
    let b2 = z % p.nb2;
    let abase = p.a_off + b1 * p.a_s1 + b2 * p.a_s2;
    let bbase = p.b_off + b1 * p.b_s1 + b2 * p.b_s2;
    let cbase = p.c_off + b1 * p.c_s1 + b2 * p.c_s2;
    let tm0 = wid.y * BM;
    let tn0 = wid.x * BN;
    let threads = (BM / 4u) * (BN / 4u);
    var acc: array<array<f32, 4>, 4>;
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        // tile_a is stored k-major ([BK][BM]) so the inner loop reads 4 consecutive rows.
        for (var e = li; e < BM * BK; e += threads) {
            let kk = e / BM;
            let mm = e % BM;
            let gm = tm0 + mm;
            let gk = k0 + kk;
            tile_a[e] = select(0.0, a_at(abase, min(gm, p.m - 1u), min(gk, p.k - 1u)), gm < p.m && gk < p.k);
        }
        for (var e = li; e < BK * BN; e += threads) {
            let kk = e / BN;
            let nn = e % BN;
            let gn = tn0 + nn;
            let gk = k0 + kk;
            tile_b[e] = select(0.0, b_at(bbase, min(gk, p.k - 1u), min(gn, p.n - 1u)), gn < p.n && gk < p.k);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) { av[i] = tile_a[kk * BM + lid.y * 4u + i]; }
            for (var j = 0u; j < 4u; j++) { bv[j] = tile_b[kk * BN + lid.x * 4u + j]; }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) { acc[i][j] = fma(av[i], bv[j], acc[i][j]); }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { store(cbase, tm0 + lid.y * 4u + i, tn0 + lid.x * 4u + j, acc[i][j]); }
    }
}
