// Entry points matmul_reg (CPU adapters without subgroups) and matmul_tiled (GPUs); the header
// with layout and bindings is matmul_common.wgsl, which the host prepends. CPU adapters with
// subgroups of 4 to 64 lanes (lavapipe on AVX2: 8, SwiftShader: 4) run matmul_subgroup.wgsl
// instead, specialized for the measured width. Operand reads go through a_at / b_at, so the
// bilinear layer (bilinear.wgsl) runs these bodies too.
//
// What llvmpipe (lavapipe, Mesa 22.3) rewards, measured with `docre bench kernels` and
// `docre bench peak` on 2 cores; what the CPU-driver body (matmul_subgroup.wgsl) is built on:
// * A workgroup's invocations run as SIMD lanes (8 on AVX2), and every storage-buffer load whose
//   address is not derived from immediates and constants alone (nir_src_is_always_uniform, not
//   divergence analysis: a loop counter or the workgroup id already disqualifies it) becomes a
//   loop over the lanes with a mask test, a bounds test and a scalar load each. So a lane-uniform
//   address is no cheaper than a gather here (the same 64x64 kernel with every lane loading each
//   A value itself ran at half the speed), a 16-byte load costs one such loop instead of four,
//   and workgroup memory is no better (the tiled kernel: 0.6 GFLOP/s). Barriers are coroutine
//   switches. Newer Mesa turns per-lane addresses into masked gathers, so this can change.
// * subgroupShuffle with a constant source is a register shuffle: one per-lane load of A feeds
//   SG lanes. That is the only way found to cut loads per FMA.
// * Private arrays indexed by a loop variable that NIR does not unroll become per-lane memory
//   traffic too: this file's matmul_reg (8x8 register block in arrays) reaches only ~1 GFLOP/s.
//   Spelled-out register blocks (named variables, tools/gen_matmul_subgroup.py) stay in
//   registers, or spill to the stack, which costs less than loading again.
// * The tile is a trade of per-lane loads against spills and compile time. Per lane of an 8-lane
//   subgroup, k by 4, with 16-byte loads (512^3 / 1024^3 GFLOP/s; first dispatch, i.e. LLVM
//   compile, single runs on shared cores): 64 rows x 8 columns 15.7 / 23 (35 s), 64 x 4 34 / 37
//   (8 s), 32 x 8 34 / 26 (8.5 s), 48 x 4 34 / 19 (4.8 s), 32 x 4 28 / 17 (2.9 s), 16 x 4 12
//   (0.9 s), 128 x 4 - / 17 (39 s). In `docre bench kernels --quick`, two alternated rounds, 32 x 4
//   ran every GEMM and the bilinear layer in 0.87-1.02x the time of 64 x 4 (unchanged softmax:
//   0.87, the noise), and `docre selftest --only bilinear` with an empty shader cache took 43 s
//   against 109 s. Against 64 x 8, the tile before, in two alternated rounds of the whole
//   `docre bench kernels` (docs/benchmarks.md, "At the CPU driver's limit"): 1.36-1.59x the time on the
//   square GEMMs, 0.92-1.16x on the BERT-layer shapes, 1.08-1.28x on the bilinear layer, so the
//   single-run figures above understate 64 x 8; in the model (encoder, stage-2 step) the two
//   are at parity, and the first run is 4x shorter. 32 x 4 it is, for now.
// * 16-byte loads matter: the same body on scalar loads (matmul_operands_scalar.wgsl) ran at
//   0.55-0.8x, and choosing between the two with a branch on an immediate inside the loop at
//   0.5x, so each layout the model uses (TRANS_A, TRANS_B) is a pipeline of its own and the
//   scalar one serves only views that are not 4-aligned.
// * Any shader loop is cut off after 65535 iterations (llvmpipe's loop limiter), silently: a
//   k = 8192 loop in matmul_reg returned wrong sums. The host splits k into dispatches of at
//   most 4096 (ops/matmul.rs, K_PER_DISPATCH).
//
// ---------------------------------------------------------------- CPU adapters
const RM: u32 = 8u;
const RN: u32 = 8u;
override WX: u32 = 8u;
override WY: u32 = 8u;

@compute @workgroup_size(WX, WY)
fn matmul_reg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let bases = batch_bases(wid.z);
    let abase = bases.x;
    let bbase = bases.y;
    let cbase = bases.z;
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
    let bases = batch_bases(wid.z);
    let abase = bases.x;
    let bbase = bases.y;
    let cbase = bases.z;
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
