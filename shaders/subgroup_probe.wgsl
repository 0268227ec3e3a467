// subgroup_size_probe: writes the width of the subgroup it runs in. Adapters report only a
// range of widths, and the subgroup kernels are specialized for the one they run at, so the
// host (gpu::subgroup) dispatches this once per device and reads the value back.
// Layout: out (binding 0): one f32. Dispatch: one workgroup of one invocation.

@group(0) @binding(0) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(1)
fn subgroup_size_probe(@builtin(subgroup_size) size: u32) {
    out[0] = f32(size);
}
