// Roofline probes for `docre bench peak`: what this adapter can do at best, so that
// `docre bench kernels` can state every kernel's share of it. Nothing here is part of the model.
//
// Bindings: src (read) array<vec4<f32>>, dst (read_write) array<vec4<f32>>.
// Immediates: n (vec4 elements of src and dst), iters (fma_probe: loop trips).
//
// fma_probe     workgroup (64); each invocation runs `iters` trips of 64 vec4 FMAs over 4
//               independent vec4 chains (16 scalar chains: enough to cover FMA latency on
//               every CPU and GPU at hand) and writes their sum to dst[gid], so nothing folds.
//               FLOPs = invocations * iters * 64 * 4 * 2. src[0] holds the multiplier and addend,
//               read once at a lane-uniform address. iters stays below llvmpipe's 65535-trip loop
//               limit (the host uses at most 4096).
//               Grid: the 1-D launch of gpu::grid over the invocations / 64.
// stream_copy   dst[i] = src[i]: invocation t copies the vec4s t*CHUNK .. (t+1)*CHUNK (a run
//               per invocation, as the row kernels read: on CPU drivers every lane's load is a
//               scalar load, and a lane streaming its own run is what they do best; on GPUs the
//               host sets CHUNK = 1 so neighbouring lanes read neighbouring vec4s).
//               bytes = 2 * 16 * n. Grid: the 1-D launch of gpu::grid over n / CHUNK / 64.
// stream_read   the same runs summed into one vec4 per invocation: bytes = 16 * n (+ the small
//               output).

override CHUNK: u32 = 1u;

struct Pk {
    n: u32,
    iters: u32,
    threads: u32,
}
var<immediate> p: Pk;

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;

fn flat_id(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return group_index(wid, nwg) * 64u + li;
}

@compute @workgroup_size(64)
fn fma_probe(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let id = flat_id(wid, nwg, li);
    let x = src[0];
    let m = vec4<f32>(x.x);
    let a = vec4<f32>(x.y);
    var c0 = vec4<f32>(f32(id));
    var c1 = c0 + 1.0;
    var c2 = c0 + 2.0;
    var c3 = c0 + 3.0;
    // Spelled out: a straight-line body keeps the chains in registers on CPU drivers, with the
    // loop's own cost spread over 64 FMAs.
    for (var i = 0u; i < p.iters; i++) {
        c0 = fma(c0, m, a); c1 = fma(c1, m, a); c2 = fma(c2, m, a); c3 = fma(c3, m, a);
        c0 = fma(c0, m, a); c1 = fma(c1, m, a); c2 = fma(c2, m, a); c3 = fma(c3, m, a);
        c0 = fma(c0, m, a); c1 = fma(c1, m, a); c2 = fma(c2, m, a); c3 = fma(c3, m, a);
        c0 = fma(c0, m, a); c1 = fma(c1, m, a); c2 = fma(c2, m, a); c3 = fma(c3, m, a);
        c0 = fma(c0, m, a); c1 = fma(c1, m, a); c2 = fma(c2, m, a); c3 = fma(c3, m, a);
        c0 = fma(c0, m, a); c1 = fma(c1, m, a); c2 = fma(c2, m, a); c3 = fma(c3, m, a);
        c0 = fma(c0, m, a); c1 = fma(c1, m, a); c2 = fma(c2, m, a); c3 = fma(c3, m, a);
        c0 = fma(c0, m, a); c1 = fma(c1, m, a); c2 = fma(c2, m, a); c3 = fma(c3, m, a);
        c0 = fma(c0, m, a); c1 = fma(c1, m, a); c2 = fma(c2, m, a); c3 = fma(c3, m, a);
        c0 = fma(c0, m, a); c1 = fma(c1, m, a); c2 = fma(c2, m, a); c3 = fma(c3, m, a);
        c0 = fma(c0, m, a); c1 = fma(c1, m, a); c2 = fma(c2, m, a); c3 = fma(c3, m, a);
        c0 = fma(c0, m, a); c1 = fma(c1, m, a); c2 = fma(c2, m, a); c3 = fma(c3, m, a);
        c0 = fma(c0, m, a); c1 = fma(c1, m, a); c2 = fma(c2, m, a); c3 = fma(c3, m, a);
        c0 = fma(c0, m, a); c1 = fma(c1, m, a); c2 = fma(c2, m, a); c3 = fma(c3, m, a);
        c0 = fma(c0, m, a); c1 = fma(c1, m, a); c2 = fma(c2, m, a); c3 = fma(c3, m, a);
        c0 = fma(c0, m, a); c1 = fma(c1, m, a); c2 = fma(c2, m, a); c3 = fma(c3, m, a);
    }
    if (id < p.threads) {
        dst[id] = c0 + c1 + c2 + c3;
    }
}

@compute @workgroup_size(64)
fn stream_copy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = flat_id(wid, nwg, li);
    let end = min(t * CHUNK + CHUNK, p.n);
    for (var i = t * CHUNK; i < end; i++) {
        dst[i] = src[i];
    }
}

@compute @workgroup_size(64)
fn stream_read(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = flat_id(wid, nwg, li);
    let end = min(t * CHUNK + CHUNK, p.n);
    var s = vec4<f32>(0.0);
    for (var i = t * CHUNK; i < end; i++) {
        s += src[i];
    }
    if (t < p.threads) {
        dst[t] = s;
    }
}
