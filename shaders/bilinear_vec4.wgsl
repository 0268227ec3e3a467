// Operands of matmul_subgroup.wgsl with 16-byte loads for the grouped bilinear layer: the four
// modes of bilinear.wgsl (prepended), k stepped by 4. Every mode keeps a step's four k inside
// one (group, i) or (o, ·) run, so it needs K % 4 == 0 (hence E % 4 == 0); modes 0, 2 and 3
// contract over E*K or O*K, multiples of 4, and mode 1 over P, whose last partial step reads
// clamped rows that the body zeroes. Buffers x0..x2 must hold whole vec4s (the host checks and
// otherwise runs matmul_operands_scalar.wgsl).
// Bindings as bilinear.wgsl; x0, x1 and x2 are read only through these vec4 views here
// (one entry point may not use two views of one binding).
//   mode 0  A(p, k..) = zs[p, gK+i] * zo[p, gK+j..j+3]        B(k.., o..)   = w[o, k..k+3]ᵀ
//   mode 1  A(o, k..) = dy[k..k+3, o]                          B(k.., n..)   = zs[k+t, gK+i] * zo[k+t, gK+j..j+3]
//   mode 2  A(p, k..) = dy[p, o] * zo[p, gK+j..j+3]            B(k.., i..)   = w[o, gKK + i'K + j..j+3]ᵀ
//   mode 3  A(p, k..) = dy[p, o] * zs[p, gK+i..i+3]            B(k.., j..)   = w[o, gKK + (i+t)K + j..j+3]
// Dispatch as the subgroup body: grid (ceil(n/(4*SG)), ceil(m/32), 1 or G).

@group(0) @binding(0) var<storage, read> x0v: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> x1v: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> x2v: array<vec4<f32>>;

fn x0_el(i: u32) -> f32 {
    return x0v[i >> 2u][i & 3u];
}

fn x2_el(i: u32) -> f32 {
    return x2v[i >> 2u][i & 3u];
}

// Global k of this dispatch's kc + t, clamped to the dispatch's last k (mode 1's partial step).
fn k_at(kc: u32, t: u32) -> u32 {
    return p.k0 + min(kc + t, p.k - 1u);
}

// A(m, kc..kc+3) of this dispatch; g is the group (modes 2, 3).
fn a4_at(g: u32, m: u32, kc: u32) -> vec4<f32> {
    let k = p.k0 + kc;
    var v: vec4<f32>;
    switch MODE {
        case 0u: {
            let c = outer_col(k);
            let row = m * p.e + c.x;
            v = x0_el(row + c.y) * x1v[(row + c.z) >> 2u];
        }
        case 1u: {
            v = vec4<f32>(x2_el(k * p.o + m), x2_el(k_at(kc, 1u) * p.o + m), x2_el(k_at(kc, 2u) * p.o + m), x2_el(k_at(kc, 3u) * p.o + m));
        }
        default: {
            let oj = divmod(k, p.blk, p.inv_blk);
            v = x2_el(m * p.o + oj.x) * x0v[(m * p.e + g * p.blk + oj.y) >> 2u];
        }
    }
    return v;
}

// Column t is B(kc + t, n..n+3); columns past p.n read a clamped (valid) place.
fn b_rows(g: u32, kc: u32, n: u32) -> mat4x4<f32> {
    let k = p.k0 + kc;
    var r: mat4x4<f32>;
    switch MODE {
        case 0u: {
            let nl = p.n - 1u;
            let ek = p.e * p.blk;
            r = transpose(mat4x4<f32>(x2v[(min(n, nl) * ek + k) >> 2u], x2v[(min(n + 1u, nl) * ek + k) >> 2u],
                                      x2v[(min(n + 2u, nl) * ek + k) >> 2u], x2v[(min(n + 3u, nl) * ek + k) >> 2u]));
        }
        case 1u: {
            // n..n+3 share one (group, i): n and K are multiples of 4.
            let c = outer_col(min(n, p.n - 4u));
            let r0 = k * p.e + c.x;
            let r1 = k_at(kc, 1u) * p.e + c.x;
            let r2 = k_at(kc, 2u) * p.e + c.x;
            let r3 = k_at(kc, 3u) * p.e + c.x;
            r = mat4x4<f32>(x0_el(r0 + c.y) * x1v[(r0 + c.z) >> 2u], x0_el(r1 + c.y) * x1v[(r1 + c.z) >> 2u],
                            x0_el(r2 + c.y) * x1v[(r2 + c.z) >> 2u], x0_el(r3 + c.y) * x1v[(r3 + c.z) >> 2u]);
        }
        case 2u: {
            let oj = divmod(k, p.blk, p.inv_blk);
            let i = oj.x * p.e * p.blk + g * p.blk * p.blk + min(n, p.n - 4u) * p.blk + oj.y;
            r = transpose(mat4x4<f32>(x1v[i >> 2u], x1v[(i + p.blk) >> 2u], x1v[(i + 2u * p.blk) >> 2u], x1v[(i + 3u * p.blk) >> 2u]));
        }
        default: {
            let oi = divmod(k, p.blk, p.inv_blk);
            let i = oi.x * p.e * p.blk + g * p.blk * p.blk + oi.y * p.blk + min(n, p.n - 4u);
            r = mat4x4<f32>(x1v[i >> 2u], x1v[(i + p.blk) >> 2u], x1v[(i + 2u * p.blk) >> 2u], x1v[(i + 3u * p.blk) >> 2u]);
        }
    }
    return r;
}
