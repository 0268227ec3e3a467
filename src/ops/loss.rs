//! Launchers for shaders/loss.wgsl: ATLoss and its decision rule, the SimSiam cosine loss and
//! the predictor's BatchNorm1d. Per-pair values are summed by `reduce` in a fixed order.

use super::{launch_flat64, reduce, rows_cols};
use crate::error::{shape_err, Result};
use crate::gpu::{Access, DType, Imm, Kernel, Recorder, Shader, Tensor};

static SHADER: Shader = Shader { name: "loss", source: include_str!("../../shaders/loss.wgsl") };
use Access::{Read as R, Write as W};
static AT_FORWARD: Kernel = Kernel { shader: &SHADER, entry: "atloss_forward", bindings: &[R, R, R, W] };
static AT_BACKWARD: Kernel = Kernel { shader: &SHADER, entry: "atloss_backward", bindings: &[R, R, R, W] };
static GET_LABEL: Kernel = Kernel { shader: &SHADER, entry: "get_label", bindings: &[R, W] };
static CORRUPT: Kernel = Kernel { shader: &SHADER, entry: "corrupt_labels", bindings: &[R, R, W] };
static COS_FORWARD: Kernel = Kernel { shader: &SHADER, entry: "cosine_forward", bindings: &[R, R, W] };
static COS_BACKWARD: Kernel = Kernel { shader: &SHADER, entry: "cosine_backward", bindings: &[R, R, R, W] };
static BN_FORWARD: Kernel = Kernel { shader: &SHADER, entry: "batchnorm_forward", bindings: &[R, R, R, W, W, W, W] };
static BN_BACKWARD: Kernel = Kernel { shader: &SHADER, entry: "batchnorm_backward", bindings: &[R, R, R, R, W, W, W] };

fn imm(rows: usize, cols: usize, top_k: usize, coef: f32, eps: f32, momentum: f32) -> Imm {
    Imm::new().u(rows).u(cols).u(top_k).f(coef).f(eps).f(momentum)
}


fn check_at(logits: &Tensor, labels: &Tensor, mask: &Tensor) -> Result<(usize, usize)> {
    let (p, c) = rows_cols(logits);
    if labels.shape() != logits.shape() || mask.numel() != p {
        return shape_err("atloss", format!("logits {:?}, labels {:?}, mask {:?} do not fit", logits.shape(), labels.shape(), mask.shape()));
    }
    Ok((p, c))
}

/// Σ over pairs of mask·(L1 + L2) as a [1] tensor (the caller scales: 100 / selected pairs).
pub fn atloss_sum(rec: &mut Recorder, logits: &Tensor, labels: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let (p, c) = check_at(logits, labels, mask)?;
    let per = Tensor::uninit(rec.gpu(), "atloss_pairs", &[1, p.max(1)], DType::F32)?;
    if p == 0 {
        super::elementwise::fill(rec, &per, 0.0)?;
    }
    launch_flat64(rec, &AT_FORWARD, &[logits, labels, mask, &per], &imm(p, c, 0, 0.0, 0.0, 0.0), p)?;
    reduce::row_sum(rec, &per)
}

/// coef · mask · d(L1 + L2)/dlogits.
pub fn atloss_backward(rec: &mut Recorder, logits: &Tensor, labels: &Tensor, mask: &Tensor, coef: f32) -> Result<Tensor> {
    let (p, c) = check_at(logits, labels, mask)?;
    let d = Tensor::uninit(rec.gpu(), "atloss_grad", logits.shape(), DType::F32)?;
    launch_flat64(rec, &AT_BACKWARD, &[logits, labels, mask, &d], &imm(p, c, 0, coef, 0.0, 0.0), p)?;
    Ok(d)
}

/// Multi-hot decisions [P, C] by the top-k adaptive-threshold rule.
pub fn get_label(rec: &mut Recorder, logits: &Tensor, top_k: usize) -> Result<Tensor> {
    let (p, c) = rows_cols(logits);
    let out = Tensor::uninit(rec.gpu(), "labels", logits.shape(), DType::F32)?;
    launch_flat64(rec, &GET_LABEL, &[logits, &out], &imm(p, c, top_k, 0.0, 0.0, 0.0), p)?;
    Ok(out)
}

/// Labels [P, C] with pair p replaced by a one-hot wrong class where picks[p] = u ∈ [0, 1): the
/// ⌊u·n⌋-th of the n classes it does not contain; pairs with picks[p] < 0 are kept.
pub fn corrupt_labels(rec: &mut Recorder, labels: &Tensor, picks: &Tensor) -> Result<Tensor> {
    let (p, c) = rows_cols(labels);
    if picks.numel() != p {
        return shape_err("corrupt_labels", format!("picks {:?} do not give one value per row of labels {:?}", picks.shape(), labels.shape()));
    }
    let out = Tensor::uninit(rec.gpu(), "corrupted_labels", labels.shape(), DType::F32)?;
    launch_flat64(rec, &CORRUPT, &[labels, picks, &out], &imm(p, c, 0, 0.0, 0.0, 0.0), p)?;
    Ok(out)
}

/// Σ over rows of 2 − 2·cos(x, y) as a [1] tensor.
pub fn cosine_sum(rec: &mut Recorder, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    if x.shape() != y.shape() {
        return shape_err("cosine", format!("x {:?} and y {:?} differ", x.shape(), y.shape()));
    }
    let (p, d) = rows_cols(x);
    let per = Tensor::uninit(rec.gpu(), "cosine_pairs", &[1, p.max(1)], DType::F32)?;
    if p == 0 {
        super::elementwise::fill(rec, &per, 0.0)?;
    }
    launch_flat64(rec, &COS_FORWARD, &[x, y, &per], &imm(p, d, 0, 0.0, 0.0, 0.0), p)?;
    reduce::row_sum(rec, &per)
}

/// coef · d(2 − 2·cos(x, y))/dx, with y held constant.
pub fn cosine_backward(rec: &mut Recorder, x: &Tensor, y: &Tensor, coef: f32) -> Result<Tensor> {
    let (p, d) = rows_cols(x);
    let dx = Tensor::uninit(rec.gpu(), "cosine_grad", x.shape(), DType::F32)?;
    // Binding 2 is unused by this entry; y fills it so the layout matches the others.
    launch_flat64(rec, &COS_BACKWARD, &[x, y, y, &dx], &imm(p, d, 0, coef, 0.0, 0.0), p)?;
    Ok(dx)
}

/// BatchNorm1d in training mode over the rows of x [P, D]: returns (y, stats [D, 2]) and updates
/// the running mean and (unbiased) variance [D] with `momentum`.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm(rec: &mut Recorder, x: &Tensor, gamma: &Tensor, beta: &Tensor, running_mean: &Tensor, running_var: &Tensor, eps: f32, momentum: f32) -> Result<(Tensor, Tensor)> {
    let (p, d) = rows_cols(x);
    if [gamma, beta, running_mean, running_var].iter().any(|t| t.numel() != d) {
        return shape_err("batchnorm", format!("x {:?} needs gamma, beta and running statistics of {d} values", x.shape()));
    }
    let y = Tensor::uninit(rec.gpu(), "batchnorm", x.shape(), DType::F32)?;
    let stats = Tensor::uninit(rec.gpu(), "batchnorm_stats", &[d, 2], DType::F32)?;
    launch_flat64(rec, &BN_FORWARD, &[x, gamma, beta, running_mean, running_var, &y, &stats], &imm(p, d, 0, 0.0, eps, momentum), d)?;
    Ok((y, stats))
}

/// (dx, dgamma, dbeta) of `batchnorm`.
pub fn batchnorm_backward(rec: &mut Recorder, x: &Tensor, gamma: &Tensor, stats: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    let (p, d) = rows_cols(x);
    dy.expect_shape("batchnorm_backward", x.shape())?;
    let gpu = rec.gpu().clone();
    let dx = Tensor::uninit(&gpu, "batchnorm_dx", x.shape(), DType::F32)?;
    let dg = Tensor::uninit(&gpu, "batchnorm_dgamma", &[d], DType::F32)?;
    let db = Tensor::uninit(&gpu, "batchnorm_dbeta", &[d], DType::F32)?;
    launch_flat64(rec, &BN_BACKWARD, &[x, gamma, stats, dy, &dx, &dg, &db], &imm(p, d, 0, 0.0, 0.0, 0.0), d)?;
    Ok((dx, dg, db))
}
