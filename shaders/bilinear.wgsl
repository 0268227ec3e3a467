// The fused grouped bilinear layer of the base module (SPEC 0.2, 2.4) and its backward, as GEMMs
// whose operands are formed on the fly: the [P, E*K] outer product never exists in memory.
// The host prepends this operand header to the matmul bodies (matmul.wgsl, and
// matmul_subgroup.wgsl on CPU adapters with subgroups): the bodies only call a_at, b_at,
// store and batch_bases and read p.m, p.n, p.k, so each body's tiling serves all four modes.
//
// K = p.blk (a runtime value, so that one pipeline per mode serves every block size), E = features, O = outputs, G = E / K groups, EK = E*K.
// zs, zo [P, E]; w [O, EK] with input index g*K*K + i*K + j; dy [P, O].
// Bindings: x0, x1, x2, x3 (read), c (read_write), by MODE (override):
//   MODE 0 forward   x0 = zs, x1 = zo, x2 = w, x3 = bias [O]; c = y [P, O]
//                    C[p, o] = bias[o] + sum_k A[p, k] w[o, k],  A[p, gKK+iK+j] = zs[p, gK+i] zo[p, gK+j]
//                    (m = P, n = O, k = EK, one batch)
//   MODE 1 dW        x0 = zs, x1 = zo, x2 = dy, x3 unused; c = dw [O, EK]
//                    C[o, k] = sum_p dy[p, o] A[p, k]                         (m = O, n = EK, k = P)
//   MODE 2 dzs       x0 = zo, x1 = w, x2 = dy, x3 unused; c = dzs [P, E]; batch z = group g
//                    C_g[p, i] = sum_{o, j} dy[p, o] zo[p, gK+j] w[o, gKK+iK+j] (m = P, n = K, k = O*K)
//   MODE 3 dzo       x0 = zs, x1 = w, x2 = dy, x3 unused; c = dzo [P, E]; batch z = group g
//                    C_g[p, j] = sum_{o, i} dy[p, o] zs[p, gK+i] w[o, gKK+iK+j] (m = P, n = K, k = O*K)
// The host splits k into dispatches of at most K_PER_DISPATCH (llvmpipe's loop limit, see
// ops/matmul.rs): p.k0 is a dispatch's first k, and every dispatch after the first adds to c.
// Dispatch: the matmul body's grid over (n, m) tiles, z = 1 (modes 0, 1) or G (modes 2, 3).

struct Bl {
    m: u32, n: u32, k: u32,
    e: u32, o: u32, k0: u32,
    blk: u32, inv_blk: f32, inv_blk2: f32,
}
var<immediate> p: Bl;

// An override, not an immediate: one pipeline per mode. Read at run time, the mode would save
// three compilations per body (9 s of a cold self-test on lavapipe) but ran the layer 2.2x
// slower there, where a switch on a uniform value still costs in the innermost loop.
override MODE: u32 = 0u;

// (k / d, k % d) for k < 2^22 through the f32 reciprocal inv = 1/d: the estimate is off by at
// most one, and the remainder's sign corrects it. A u32 division by a runtime value would be a
// scalar loop per SIMD lane on CPU adapters, in the innermost loop.
fn divmod(k: u32, d: u32, inv: f32) -> vec2<u32> {
    let q = i32(f32(k) * inv);
    let r = i32(k) - q * i32(d);
    let fix = select(select(0, 1, r >= i32(d)), -1, r < 0);
    return vec2<u32>(u32(q + fix), u32(r - fix * i32(d)));
}

@group(0) @binding(0) var<storage, read> x0: array<f32>;
@group(0) @binding(1) var<storage, read> x1: array<f32>;
@group(0) @binding(2) var<storage, read> x2: array<f32>;
@group(0) @binding(3) var<storage, read> x3: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

// Column k = g*K*K + i*K + j of the grouped outer product as (g*K, i, j): its value in row r
// is zs[r*E + g*K + i] * zo[r*E + g*K + j].
fn outer_col(k: u32) -> vec3<u32> {
    let gr = divmod(k, p.blk * p.blk, p.inv_blk2);
    let ij = divmod(gr.y, p.blk, p.inv_blk);
    return vec3<u32>(gr.x * p.blk, ij.x, ij.y);
}

// The group index (modes 2, 3) stands in for every operand base.
fn batch_bases(z: u32) -> vec3<u32> {
    return vec3<u32>(z);
}

fn a_at(g: u32, m: u32, kc: u32) -> f32 {
    let k = p.k0 + kc;
    switch MODE {
        case 0u: {
            let c = outer_col(k);
            let row = m * p.e + c.x;
            return x0[row + c.y] * x1[row + c.z];
        }
        case 1u: { return x2[k * p.o + m]; }
        default: {
            // k = o * K + (the contracted index of the other side)
            let oj = divmod(k, p.blk, p.inv_blk);
            return x2[m * p.o + oj.x] * x0[m * p.e + g * p.blk + oj.y];
        }
    }
}

fn b_at(g: u32, kc: u32, n: u32) -> f32 {
    let k = p.k0 + kc;
    switch MODE {
        case 0u: { return x2[n * p.e * p.blk + k]; }
        case 1u: {
            let c = outer_col(n);
            let row = k * p.e + c.x;
            return x0[row + c.y] * x1[row + c.z];
        }
        case 2u: {
            let oj = divmod(k, p.blk, p.inv_blk);
            return x1[oj.x * p.e * p.blk + g * p.blk * p.blk + n * p.blk + oj.y];
        }
        default: {
            let oi = divmod(k, p.blk, p.inv_blk);
            return x1[oi.x * p.e * p.blk + g * p.blk * p.blk + oi.y * p.blk + n];
        }
    }
}

fn store(g: u32, m: u32, n: u32, v: f32) {
    if (m < p.m && n < p.n) {
        var idx = m * p.n + n;
        var r = v;
        if (MODE >= 2u) { idx = m * p.e + g * p.blk + n; }
        if (p.k0 > 0u) {
            r += c[idx];
        } else if (MODE == 0u) {
            r += x3[n];
        }
        c[idx] = r;
    }
}
