// Counter-based uniform numbers: a pure function of (64-bit seed, counter), so a backward pass
// regenerates a forward pass's dropout mask instead of storing it, and runs are reproducible.
// Prepended to dropout.wgsl and eca.wgsl; ops::reference::counter_uniform is the same hash on
// the CPU. No bindings, no entry points.

// "lowbias32" integer hash (C. Wellons): a bijection on u32 with good avalanche.
fn mix32(v0: u32) -> u32 {
    var v = v0;
    v ^= v >> 16u;
    v *= 0x7feb352du;
    v ^= v >> 15u;
    v *= 0x846ca68bu;
    v ^= v >> 16u;
    return v;
}

// Uniform in [0, 1) with 24 bits, for seed (seed_lo, seed_hi) and `counter`.
fn counter_uniform(seed_lo: u32, seed_hi: u32, counter: u32) -> f32 {
    let h = mix32(mix32(counter ^ mix32(seed_lo)) + mix32(seed_hi ^ 0x9e3779b9u));
    return f32(h >> 8u) * (1.0 / 16777216.0);
}
