//! Launchers for shaders/elementwise.wgsl: arithmetic and activations with their backward.

use super::{launch_flat, reduce};
use crate::error::{shape_err, Result};
use crate::gpu::{Access, DType, Imm, Kernel, Recorder, Shader, Tensor};

static SHADER: Shader = Shader { name: "elementwise", source: include_str!("../../shaders/elementwise.wgsl") };
const BINARY: &[Access] = &[Access::Read, Access::Read, Access::Write];
const UNARY: &[Access] = &[Access::Read, Access::Write];
/// An entry point and its vec4 twin (see the shader's header).
const fn twins(entry: [&'static str; 2], bindings: &'static [Access]) -> [Kernel; 2] {
    [Kernel { shader: &SHADER, entry: entry[0], bindings }, Kernel { shader: &SHADER, entry: entry[1], bindings }]
}
static ADD_SCALED: [Kernel; 2] = twins(["add_scaled", "add_scaled4"], BINARY);
static GATE_MIX: [Kernel; 2] = twins(["gate_mix", "gate_mix4"], &[Access::Read, Access::Read, Access::Write, Access::Read]);
static MUL: [Kernel; 2] = twins(["mul", "mul4"], BINARY);
static ACT_BACKWARD: [Kernel; 2] = twins(["act_backward", "act_backward4"], BINARY);
static SCALE: [Kernel; 2] = twins(["scale", "scale4"], UNARY);
static ACT_FORWARD: [Kernel; 2] = twins(["act_forward", "act_forward4"], UNARY);
static ACCUMULATE: [Kernel; 2] = twins(["accumulate", "accumulate4"], &[Access::Write, Access::Read]);
static FILL: [Kernel; 2] = twins(["fill", "fill4"], &[Access::Write]);

/// Runs `kernels` over n elements with a second operand of nb: the vec4 twin when both are
/// multiples of 4, else the scalar entry point.
fn launch(rec: &mut Recorder, kernels: &[Kernel; 2], constants: &[(&'static str, f64)], bindings: &[&Tensor], (n, nb): (usize, usize), (alpha, beta): (f32, f32)) -> Result<()> {
    let w = if n % 4 == 0 && nb % 4 == 0 { 4 } else { 1 };
    let imm = Imm::new().u(n / w).u(nb / w).f(alpha).f(beta);
    launch_flat(rec, &kernels[(w == 4) as usize], constants, bindings, &imm, n / w)
}

/// Point-wise nonlinearity; the discriminant is the shader's ACT override.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// erf form, as HF BERT's "gelu".
    Gelu = 0,
    Tanh = 1,
    Relu = 2,
    Sigmoid = 3,
}

impl Activation {
    pub const ALL: [Activation; 4] = [Activation::Gelu, Activation::Tanh, Activation::Relu, Activation::Sigmoid];
    fn constants(self) -> [(&'static str, f64); 1] {
        [("ACT", self as u32 as f64)]
    }
}

fn check_broadcast(op: &'static str, x: &Tensor, y: &Tensor) -> Result<()> {
    x.expect_dtype(op, DType::F32)?;
    y.expect_dtype(op, DType::F32)?;
    let (n, nb) = (x.numel(), y.numel());
    if n > 0 && (nb == 0 || n % nb != 0) {
        return shape_err(op, format!("`{}` {:?} cannot broadcast over `{}` {:?} (its element count must divide)", y.name(), y.shape(), x.name(), x.shape()));
    }
    Ok(())
}

/// alpha*x + beta*y, with y broadcast by wrapping (e.g. a [cols] vector over [rows, cols]).
pub fn add_scaled(rec: &mut Recorder, x: &Tensor, y: &Tensor, alpha: f32, beta: f32) -> Result<Tensor> {
    check_broadcast("add_scaled", x, y)?;
    let out = Tensor::uninit(rec.gpu(), "add", x.shape(), DType::F32)?;
    launch(rec, &ADD_SCALED, &[], &[x, y, &out], (x.numel(), y.numel()), (alpha, beta))?;
    Ok(out)
}

pub fn add(rec: &mut Recorder, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    add_scaled(rec, x, y, 1.0, 1.0)
}

/// r + gate ⊙ (f − r), all of one shape: the inference layer's gated fusion in one pass.
pub fn gate_mix(rec: &mut Recorder, gate: &Tensor, f: &Tensor, r: &Tensor) -> Result<Tensor> {
    for t in [f, r] {
        t.expect_dtype("gate_mix", DType::F32)?;
        if t.shape() != gate.shape() {
            return shape_err("gate_mix", format!("`{}` {:?} and the gate {:?} differ", t.name(), t.shape(), gate.shape()));
        }
    }
    let out = Tensor::uninit(rec.gpu(), "gate_mix", f.shape(), DType::F32)?;
    let n = f.numel();
    launch(rec, &GATE_MIX, &[], &[gate, f, &out, r], (n, n), (0.0, 0.0))?;
    Ok(out)
}

/// x * y, with y broadcast by wrapping.
pub fn mul(rec: &mut Recorder, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    check_broadcast("mul", x, y)?;
    let out = Tensor::uninit(rec.gpu(), "mul", x.shape(), DType::F32)?;
    launch(rec, &MUL, &[], &[x, y, &out], (x.numel(), y.numel()), (0.0, 0.0))?;
    Ok(out)
}

/// Gradients of out = x * y (y possibly broadcast): dx = dout*y, dy = sum over the broadcast
/// copies of dout*x.
pub fn mul_backward(rec: &mut Recorder, x: &Tensor, y: &Tensor, dout: &Tensor) -> Result<(Tensor, Tensor)> {
    check_broadcast("mul_backward", x, y)?;
    let dx = mul(rec, dout, y)?;
    let prod = mul(rec, dout, x)?;
    let dy = if y.numel() == x.numel() {
        prod
    } else {
        let cols = prod.reshape(&[x.numel() / y.numel(), y.numel()])?;
        reduce::col_sum(rec, &cols)?.reshape(y.shape())?
    };
    Ok((dx, dy))
}

pub fn scale(rec: &mut Recorder, x: &Tensor, alpha: f32) -> Result<Tensor> {
    x.expect_dtype("scale", DType::F32)?;
    let out = Tensor::uninit(rec.gpu(), "scale", x.shape(), DType::F32)?;
    launch(rec, &SCALE, &[], &[x, &out], (x.numel(), 4), (alpha, 0.0))?;
    Ok(out)
}

/// acc += alpha * y (y broadcast by wrapping); gradient accumulation in place.
pub fn accumulate(rec: &mut Recorder, acc: &Tensor, y: &Tensor, alpha: f32) -> Result<()> {
    check_broadcast("accumulate", acc, y)?;
    launch(rec, &ACCUMULATE, &[], &[acc, y], (acc.numel(), y.numel()), (alpha, 0.0))
}

/// Set every element to `value`.
pub fn fill(rec: &mut Recorder, t: &Tensor, value: f32) -> Result<()> {
    launch(rec, &FILL, &[], &[t], (t.numel(), 4), (value, 0.0))
}

pub fn activation(rec: &mut Recorder, act: Activation, x: &Tensor) -> Result<Tensor> {
    x.expect_dtype("activation", DType::F32)?;
    let out = Tensor::uninit(rec.gpu(), "activation", x.shape(), DType::F32)?;
    launch(rec, &ACT_FORWARD, &act.constants(), &[x, &out], (x.numel(), 4), (0.0, 0.0))?;
    Ok(out)
}

/// dx = dy * f'(x), from the activation's input x.
pub fn activation_backward(rec: &mut Recorder, act: Activation, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    if x.shape() != dy.shape() {
        return shape_err("activation_backward", format!("x {:?} and dy {:?} differ", x.shape(), dy.shape()));
    }
    let out = Tensor::uninit(rec.gpu(), "activation_grad", x.shape(), DType::F32)?;
    launch(rec, &ACT_BACKWARD, &act.constants(), &[x, dy, &out], (x.numel(), x.numel()), (0.0, 0.0))?;
    Ok(out)
}
