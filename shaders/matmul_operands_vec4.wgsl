// Operands of matmul_subgroup.wgsl with 16-byte loads, for the strided GEMM of
// matmul_common.wgsl: A as vec4 over k (rows of A contiguous in k, i.e. not TRANS_A; with
// TRANS_A four scalar loads), B as four vec4 loads per column group (over n, or over k and
// transposed when TRANS_B). Every vec4 start (offsets, strides, leading dimensions) must be a
// multiple of 4 elements, and without TRANS_B also n (ops::matmul::vec4_fits). In the last k
// step the k past p.k read a clamped place (or the rest of an aligned row, which the leading
// dimension covers); the body zeroes them.
// TRANS_A and TRANS_B are override constants here: a layout branch in the inner loop halved the
// speed on lavapipe, so each layout the model uses gets a pipeline of its own.
// Bindings as matmul_common.wgsl: A and B read through vec4 views of the same buffers (one entry
// point may not use two views of one binding, so this body never calls a_at / b_at).

override TRANS_A: bool = false;
override TRANS_B: bool = false;

@group(0) @binding(0) var<storage, read> av: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> bv: array<vec4<f32>>;

fn a_el(i: u32) -> f32 {
    return av[i >> 2u][i & 3u];
}

// A(m, k..k+3).
fn a4_at(base: u32, m: u32, k: u32) -> vec4<f32> {
    if (TRANS_A) {
        let kl = p.k - 1u;
        let i = base + m;
        return vec4<f32>(a_el(i + k * p.lda), a_el(i + min(k + 1u, kl) * p.lda), a_el(i + min(k + 2u, kl) * p.lda), a_el(i + min(k + 3u, kl) * p.lda));
    }
    return av[(base + m * p.lda + k) >> 2u];
}

// Column t is B(k + t, n..n+3); columns past p.n read a clamped (valid) place.
fn b_rows(base: u32, k: u32, n: u32) -> mat4x4<f32> {
    if (TRANS_B) {
        let nl = p.n - 1u;
        let i = base + k;
        return transpose(mat4x4<f32>(bv[(i + min(n, nl) * p.ldb) >> 2u], bv[(i + min(n + 1u, nl) * p.ldb) >> 2u],
                                     bv[(i + min(n + 2u, nl) * p.ldb) >> 2u], bv[(i + min(n + 3u, nl) * p.ldb) >> 2u]));
    }
    let kl = p.k - 1u;
    let i = base + min(n, p.n - 4u);
    return mat4x4<f32>(bv[(i + k * p.ldb) >> 2u], bv[(i + min(k + 1u, kl) * p.ldb) >> 2u],
                       bv[(i + min(k + 2u, kl) * p.ldb) >> 2u], bv[(i + min(k + 3u, kl) * p.ldb) >> 2u]);
}
