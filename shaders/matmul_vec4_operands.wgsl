// Operands of matmul_subgroup_vec4 (prepended to it) for the strided GEMM of
// matmul_common.wgsl: A as vec4 over k (rows of A contiguous in k, i.e. not TRANS_A; with
// TRANS_A four scalar loads), B as four vec4 loads per column group (over n, or over k and
// transposed when TRANS_B). Every vec4 start (offsets, strides, leading dimensions) must be a
// multiple of 4 elements, and without TRANS_B also n (ops::matmul::vec4_fits).
// Bindings as matmul_common.wgsl: A and B read through vec4 views of the same buffers.

@group(0) @binding(0) var<storage, read> av: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> bv: array<vec4<f32>>;

fn a_el(i: u32) -> f32 {
    return av[i >> 2u][i & 3u];
}

// A(m, k..k+3).
fn a4_at(base: u32, m: u32, k: u32) -> vec4<f32> {
    if (TRANS_A) {
        let i = base + k * p.lda + m;
        return vec4<f32>(a_el(i), a_el(i + p.lda), a_el(i + 2u * p.lda), a_el(i + 3u * p.lda));
    }
    return av[(base + m * p.lda + k) >> 2u];
}

// Column t of the result is B(k + t, n..n+3); columns past p.n read a clamped (valid) place.
fn b_rows(base: u32, k: u32, n: u32) -> mat4x4<f32> {
    let nl = p.n - 1u;
    if (TRANS_B) {
        let i = base + k;
        return transpose(mat4x4<f32>(bv[(i + min(n, nl) * p.ldb) >> 2u], bv[(i + min(n + 1u, nl) * p.ldb) >> 2u],
                                     bv[(i + min(n + 2u, nl) * p.ldb) >> 2u], bv[(i + min(n + 3u, nl) * p.ldb) >> 2u]));
    }
    let i = base + k * p.ldb + min(n, p.n - 4u);
    return mat4x4<f32>(bv[i >> 2u], bv[(i + p.ldb) >> 2u], bv[(i + 2u * p.ldb) >> 2u], bv[(i + 3u * p.ldb) >> 2u]);
}
