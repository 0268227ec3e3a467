// Operands of matmul_subgroup.wgsl from scalar loads: a4_at and b_rows built on the a_at(base,
// m, k) and b_at(base, k, n) of the file prepended to this one (matmul_common.wgsl: any strided
// view, transposes as immediates, so one pipeline serves every layout; bilinear.wgsl: the
// bilinear layer's operands where its block is not a multiple of 4). The k past p.k read a
// clamped, valid place (the body zeroes them); columns past p.n read a clamped place and are
// never stored.
// Bindings: those of the prepended file.

// A(m, k..k+3).
fn a4_at(base: u32, m: u32, k: u32) -> vec4<f32> {
    let kl = p.k - 1u;
    return vec4<f32>(a_at(base, m, k), a_at(base, m, min(k + 1u, kl)), a_at(base, m, min(k + 2u, kl)), a_at(base, m, min(k + 3u, kl)));
}

// Column t is B(k + t, n..n+3).
fn b_rows(base: u32, k: u32, n: u32) -> mat4x4<f32> {
    let kl = p.k - 1u;
    let nl = p.n - 1u;
    let n1 = min(n + 1u, nl);
    let n2 = min(n + 2u, nl);
    let n3 = min(n + 3u, nl);
    var r: mat4x4<f32>;
    for (var t = 0u; t < 4u; t++) {
        let kt = min(k + t, kl);
        r[t] = vec4<f32>(b_at(base, kt, n), b_at(base, kt, n1), b_at(base, kt, n2), b_at(base, kt, n3));
    }
    return r;
}
