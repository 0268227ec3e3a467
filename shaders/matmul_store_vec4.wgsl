// Epilogue of matmul_subgroup.wgsl for a 4-aligned C (ops::matmul::vec4_c_fits: offsets,
// strides, ldc and n multiples of 4, the bias and C bindings whole vec4s): C(m, n..n+3) as one
// 16-byte store and bias(n..n+3) as one 16-byte load per column group. On lavapipe every
// storage access is a loop over the lanes, so at the heads' k = 64 the scalar epilogue's 4 stores
// and 4 bias loads per vec4 cost more than all of the k loop's loads.
// Bindings: bias and C as vec4 views of matmul_common.wgsl's bindings 2 and 3 (this body never
// calls its scalar store, so one entry point uses one view of each).

@group(0) @binding(2) var<storage, read> biasv: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> cv: array<vec4<f32>>;

// The bias of columns n..n+3 (zero without one), loaded once per column group: the body adds
// it to each of the tile's rows, where loading it in every store4 cost 32 loads per lane.
fn column_add4(n: u32) -> vec4<f32> {
    if ((p.flags & 1u) != 0u && n < p.n) { return biasv[n >> 2u]; }
    return vec4<f32>(0.0);
}

// n is a multiple of 4 and so is p.n: a column group is all inside C or all outside.
fn store4(cbase: u32, m: u32, n: u32, v: vec4<f32>, add: vec4<f32>) {
    if (m < p.m && n < p.n) {
        var r = p.alpha * v + add;
        let i = (cbase + m * p.ldc + n) >> 2u;
        if ((p.flags & 2u) != 0u) { r = r + cv[i]; }
        cv[i] = r;
    }
}
