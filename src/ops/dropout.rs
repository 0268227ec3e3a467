//! Launcher for shaders/dropout.wgsl. Backward is the same call on the upstream gradient with
//! the same seed and offset.

use super::launch_flat;
use crate::error::{shape_err, Result};
use crate::gpu::{Access, DType, Imm, Kernel, Recorder, Shader, Tensor};

static SHADER: Shader = Shader { name: "dropout", source: include_str!("../../shaders/dropout.wgsl") };
static DROPOUT: Kernel = Kernel { shader: &SHADER, entry: "dropout", bindings: &[Access::Read, Access::Write] };

/// Where a dropout mask comes from: a run seed and a counter offset unique to this use.
#[derive(Clone, Copy, Debug)]
pub struct DropoutRng {
    pub seed: u64,
    pub offset: u32,
}

/// y = x * keep / (1 - p), keep = uniform(seed, offset + i) >= p.
pub fn dropout(rec: &mut Recorder, x: &Tensor, p: f32, rng: DropoutRng) -> Result<Tensor> {
    if !(0.0..1.0).contains(&p) {
        return shape_err("dropout", format!("probability {p} is outside [0, 1)"));
    }
    x.expect_dtype("dropout", DType::F32)?;
    let y = Tensor::uninit(rec.gpu(), "dropout", x.shape(), DType::F32)?;
    let imm = Imm::new()
        .u(x.numel())
        .u((rng.seed & 0xffff_ffff) as usize)
        .u((rng.seed >> 32) as usize)
        .u(rng.offset as usize)
        .f(p)
        .f(1.0 / (1.0 - p));
    launch_flat(rec, &DROPOUT, &[], &[x, &y], &imm, x.numel())?;
    Ok(y)
}
