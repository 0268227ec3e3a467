//! Launcher for shaders/adamw.wgsl: one fused AdamW update per parameter tensor, with the
//! global-norm clipping coefficient computed on the device from `reduce::sum_squares`.

use super::launch_flat;
use crate::error::{shape_err, Result};
use crate::gpu::{Access, Imm, Kernel, Recorder, Shader, Tensor};

static SHADER: Shader = Shader { name: "adamw", source: include_str!("../../shaders/adamw.wgsl") };
static STEP: Kernel = Kernel {
    shader: &SHADER,
    entry: "adamw_step",
    bindings: &[Access::Write, Access::Read, Access::Write, Access::Write, Access::Read],
};

/// Hyper-parameters of one parameter group at one step.
#[derive(Clone, Copy, Debug)]
pub struct AdamW {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// Global gradient-norm bound; <= 0 turns clipping off.
    pub max_norm: f32,
}

/// Update `param`, `m`, `v` in place for optimizer step `step` (1-based).
pub fn adamw_step(rec: &mut Recorder, hp: &AdamW, step: u32, param: &Tensor, grad: &Tensor, m: &Tensor, v: &Tensor, normsq: &Tensor) -> Result<()> {
    for t in [grad, m, v] {
        if t.shape() != param.shape() {
            return shape_err("adamw_step", format!("`{}` {:?} does not match parameter `{}` {:?}", t.name(), t.shape(), param.name(), param.shape()));
        }
    }
    if step == 0 || normsq.numel() != 1 {
        return shape_err("adamw_step", "step must be >= 1 and normsq a single element");
    }
    let bc1 = 1.0 - (hp.beta1 as f64).powi(step as i32);
    let bc2 = 1.0 - (hp.beta2 as f64).powi(step as i32);
    let imm = Imm::new()
        .u(param.numel())
        .f(hp.lr)
        .f(hp.beta1)
        .f(hp.beta2)
        .f(hp.eps)
        .f(hp.weight_decay)
        .f(bc1 as f32)
        .f(bc2 as f32)
        .f(hp.max_norm);
    launch_flat(rec, &STEP, &[], &[param, grad, m, v, normsq], &imm, param.numel())
}
