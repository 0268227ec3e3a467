//! Launcher for shaders/dropout.wgsl. Backward is the same call on the upstream gradient with
//! the same seed and offset.

use super::launch_flat;
use crate::error::{shape_err, Result};
use crate::gpu::{Access, DType, Imm, Kernel, Recorder, Shader, Tensor};

static SHADER: Shader = Shader { name: "dropout", source: concat!(include_str!("../../shaders/counter_rng.wgsl"), include_str!("../../shaders/dropout.wgsl")) };
static DROPOUT: Kernel = Kernel { shader: &SHADER, entry: "dropout", bindings: &[Access::Read, Access::Write] };

/// Where a dropout mask comes from: a run seed and a counter offset unique to this use.
#[derive(Clone, Copy, Debug)]
pub struct DropoutRng {
    pub seed: u64,
    pub offset: u32,
}

/// One use of dropout in training: its probability and where its mask comes from.
#[derive(Clone, Copy, Debug)]
pub struct Site {
    pub p: f32,
    pub rng: DropoutRng,
}

impl Site {
    pub(crate) fn check(&self, what: &'static str) -> Result<()> {
        if !(0.0..1.0).contains(&self.p) {
            return shape_err(what, format!("dropout probability {} is outside [0, 1)", self.p));
        }
        Ok(())
    }
}

/// y = x * keep / (1 - p), keep = uniform(seed, offset + i) >= p.
pub fn dropout(rec: &mut Recorder, x: &Tensor, p: f32, rng: DropoutRng) -> Result<Tensor> {
    Site { p, rng }.check("dropout")?;
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
