//! The device's subgroup width, measured once by shaders/subgroup_probe.wgsl when the device
//! opens: adapters report only a range, and the subgroup kernels are specialized for the width
//! they run at.

use super::{Access, Gpu, Imm, Kernel, Recorder, Shader, Tensor};
use crate::error::Result;

static SHADER: Shader = Shader { name: "subgroup_probe", source: include_str!("../../shaders/subgroup_probe.wgsl") };
static PROBE: Kernel = Kernel { shader: &SHADER, entry: "subgroup_size_probe", bindings: &[Access::Write] };

impl Gpu {
    /// The device's subgroup size, measured when the device was opened; None without subgroup
    /// support.
    pub fn subgroup_size(&self) -> Result<Option<u32>> {
        Ok(self.0.subgroup_size.get().copied().flatten())
    }

    /// Measures the subgroup size once (`Gpu::open` calls it: in the browser the readback is a
    /// future, so the measurement cannot wait until a kernel first asks).
    pub(crate) async fn probe_subgroup_size(&self) -> Result<()> {
        if !self.report().subgroups {
            let _ = self.0.subgroup_size.set(None);
            return Ok(());
        }
        let out = Tensor::zeros(self, "subgroup_probe", &[1])?;
        let mut rec = Recorder::new(self);
        rec.dispatch(&PROBE, &[], &[&out], &Imm::new(), [1, 1, 1])?;
        rec.finish()?;
        let size = out.read_f32_async(self).await?[0] as u32;
        let _ = self.0.subgroup_size.set(Some(size));
        Ok(())
    }
}
