// Epilogue of matmul_subgroup.wgsl for any C: C(m, n..n+3) through four calls of the scalar
// store(cbase, m, n, v) of the file prepended to the body (matmul_common.wgsl, bilinear.wgsl),
// which applies alpha, the bias, accumulation and the bounds.
// Bindings: those of the prepended file.

// The scalar store adds the bias itself (after alpha, as the prepended file defines it), so the
// column term here is zero and store4 ignores it.
fn column_add4(n: u32) -> vec4<f32> {
    return vec4<f32>(0.0);
}

fn store4(cbase: u32, m: u32, n: u32, v: vec4<f32>, _add: vec4<f32>) {
    store(cbase, m, n, v.x);
    store(cbase, m, n + 1u, v.y);
    store(cbase, m, n + 2u, v.z);
    store(cbase, m, n + 3u, v.w);
}
