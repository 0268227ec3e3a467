// Prelude prepended to every docre shader by the pipeline cache.

// Linear workgroup index of a 1-D launch that the host split over x and y (see gpu::grid).
fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}
