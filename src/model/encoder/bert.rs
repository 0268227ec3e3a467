//! The BERT-family encoder: loading a Hugging Face checkpoint, the forward pass that returns
//! the last hidden states and last-layer attention, and the backward pass that turns their
//! gradients into gradients for every parameter.
//!
//! Layout: token rows are [segments * win, hidden]; head h of a row owns features
//! [h*dh, (h+1)*dh), so attention reads Q, K, V in place through strided GEMM views instead of
//! transposing them to [segments, heads, win, dh].

use std::path::Path;

use crate::model::checkpoint::tensor_file::TensorFile;
use crate::model::config::{BertConfig, Family};
use super::windows::{WindowPlan, Windows};
use crate::error::{Error, Result};
use crate::gpu::{DType, Gpu, Recorder, Tensor};
use crate::ops::attention::{attention_rows, fused_attention, fused_lanes};
use crate::ops::dropout::{dropout, DropoutRng};
use crate::ops::elementwise::{activation, activation_backward, add, fill, Activation};
use crate::ops::embedding::{gather_rows, scatter_add_rows, RowScatter};
use crate::ops::layernorm::{add_layernorm, layernorm_backward};
use crate::ops::matmul::{gemm, linear, linear_backward_into, Gemm, MatmulKernel, View};
use crate::ops::softmax::{softmax, softmax_backward, Mask};

/// Embedding parameters, in the order `Bert::params` holds them (HF names).
pub const EMBEDDING_PARAMS: [&str; 5] = [
    "embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight",
    "embeddings.token_type_embeddings.weight",
    "embeddings.LayerNorm.weight",
    "embeddings.LayerNorm.bias",
];

/// Per-layer parameters, as `encoder.layer.{l}.<name>`, in order.
pub const LAYER_PARAMS: [&str; 16] = [
    "attention.self.query.weight",
    "attention.self.query.bias",
    "attention.self.key.weight",
    "attention.self.key.bias",
    "attention.self.value.weight",
    "attention.self.value.bias",
    "attention.output.dense.weight",
    "attention.output.dense.bias",
    "attention.output.LayerNorm.weight",
    "attention.output.LayerNorm.bias",
    "intermediate.dense.weight",
    "intermediate.dense.bias",
    "output.dense.weight",
    "output.dense.bias",
    "output.LayerNorm.weight",
    "output.LayerNorm.bias",
];

/// Indices into `EMBEDDING_PARAMS` and `LAYER_PARAMS`.
pub mod slot {
    pub const WORD: usize = 0;
    pub const POSITION: usize = 1;
    pub const TOKEN_TYPE: usize = 2;
    pub const EMB_LN_W: usize = 3;
    pub const EMB_LN_B: usize = 4;
    pub const Q_W: usize = 0;
    pub const Q_B: usize = 1;
    pub const K_W: usize = 2;
    pub const K_B: usize = 3;
    pub const V_W: usize = 4;
    pub const V_B: usize = 5;
    pub const AO_W: usize = 6;
    pub const AO_B: usize = 7;
    pub const LN1_W: usize = 8;
    pub const LN1_B: usize = 9;
    pub const I_W: usize = 10;
    pub const I_B: usize = 11;
    pub const O_W: usize = 12;
    pub const O_B: usize = 13;
    pub const LN2_W: usize = 14;
    pub const LN2_B: usize = 15;
}

/// Position of layer `l`'s parameter `field` in the flat parameter list.
pub fn layer_param(l: usize, field: usize) -> usize {
    EMBEDDING_PARAMS.len() + LAYER_PARAMS.len() * l + field
}

/// Every parameter's HF name and shape, in `Bert::params` order.
pub fn param_specs(c: &BertConfig) -> Vec<(String, Vec<usize>)> {
    let (d, f) = (c.hidden_size, c.intermediate_size);
    let mut v = vec![
        (EMBEDDING_PARAMS[0].to_string(), vec![c.vocab_size, d]),
        (EMBEDDING_PARAMS[1].to_string(), vec![c.max_position_embeddings, d]),
        (EMBEDDING_PARAMS[2].to_string(), vec![c.type_vocab_size, d]),
        (EMBEDDING_PARAMS[3].to_string(), vec![d]),
        (EMBEDDING_PARAMS[4].to_string(), vec![d]),
    ];
    for l in 0..c.num_hidden_layers {
        for (i, name) in LAYER_PARAMS.iter().enumerate() {
            let shape = match i {
                slot::I_W => vec![f, d],
                slot::I_B => vec![f],
                slot::O_W => vec![d, f],
                w if w % 2 == 0 && w != slot::LN1_W && w != slot::LN2_W => vec![d, d],
                _ => vec![d],
            };
            v.push((format!("encoder.layer.{l}.{name}"), shape));
        }
    }
    v
}

/// Position ids of `rows` segment rows of `w` tokens each: the index in the segment, after
/// RoBERTa's padding index (`BertConfig::position_offset`). Padded rows get ids too; they feed
/// nothing.
pub fn position_ids(c: &BertConfig, rows: usize, w: usize) -> Vec<u32> {
    (0..rows).map(|r| (c.position_offset() + r % w) as u32).collect()
}

/// Seed of dropout site `site` (0 = embeddings, then 3 per layer: attention probabilities,
/// attention output, feed-forward output) for a pass seeded with `seed`.
pub fn dropout_seed(seed: u64, site: usize) -> u64 {
    let mut z = seed ^ (site as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A batch of documents, each a list of token ids starting with [CLS] and ending with [SEP].
#[derive(Clone, Debug)]
pub struct TokenBatch {
    pub docs: Vec<Vec<u32>>,
}

impl TokenBatch {
    /// Padded length of the batch.
    pub fn len(&self) -> usize {
        self.docs.iter().map(Vec::len).max().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }
}

/// What a forward pass does besides computing outputs.
#[derive(Clone, Copy, Debug)]
pub struct Pass {
    /// Dropout seed: Some in training, None in evaluation.
    pub dropout: Option<u64>,
    /// Keep what the backward needs.
    pub grad: bool,
}

impl Pass {
    pub fn eval() -> Pass {
        Pass { dropout: None, grad: false }
    }
    pub fn train(seed: u64) -> Pass {
        Pass { dropout: Some(seed), grad: true }
    }
}

/// The encoder's outputs for a batch padded to length L.
pub struct EncoderOutput {
    /// Last hidden states [B, L, hidden].
    pub hidden: Tensor,
    /// Last layer's attention probabilities [B, heads, L, L] (after attention dropout, as HF
    /// returns them); from `forward_mention_rows`, only the chosen rows [rows · heads, L].
    pub attention: Tensor,
}

struct LayerTape {
    x: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    probs: Tensor,
    ctx: Tensor,
    r1: Tensor,
    ln1_stats: Tensor,
    h1: Tensor,
    pre: Tensor,
    act: Tensor,
    r2: Tensor,
    ln2_stats: Tensor,
}

/// Everything the backward needs from one forward pass.
pub struct Tape {
    pass: Pass,
    plan: WindowPlan,
    windows: Option<Windows>,
    emb_sum: Tensor,
    emb_stats: Tensor,
    layers: Vec<LayerTape>,
    /// Re-assembled attention and its row divisors (windowed batches only).
    merged: Option<(Tensor, Tensor)>,
}

/// How `Bert::forward_with` runs each layer's attention.
enum Attend {
    /// Score GEMM, masked softmax and context GEMM over [segments, heads, win, win]: training,
    /// whose backward reads the probabilities.
    Unfused { mask: Tensor },
    /// shaders/encoder_attention.wgsl; `rows`: the output positions whose last-layer attention
    /// is kept and the segment rows that hold them (None when there are none).
    Fused { seg_len: Tensor, rows: Option<(Tensor, Tensor)> },
}

pub struct Bert {
    pub config: BertConfig,
    names: Vec<String>,
    params: Vec<Tensor>,
}

impl Bert {
    /// Loads `config.json` and `model.safetensors` from a checkpoint directory. Tensor names may
    /// carry a `bert.` or `roberta.` prefix; F16/BF16 weights are widened to f32; extra tensors
    /// (pooler, heads) are ignored.
    pub fn load(gpu: &Gpu, dir: &Path) -> Result<Bert> {
        let config = BertConfig::load(&dir.join("config.json"))?;
        let path = dir.join("model.safetensors");
        if !path.exists() {
            return Err(Error::Input(format!("{}: no model.safetensors in the encoder directory (convert pytorch_model.bin to safetensors first)", dir.display())));
        }
        let file = TensorFile::open(&path)?;
        let mut host = Vec::new();
        for (name, shape) in param_specs(&config) {
            let prefix = match config.family {
                Family::Bert => "bert",
                Family::Roberta => "roberta",
            };
            let found = match file.weights(&name)? {
                Some(t) => Some(t),
                None => file.weights(&format!("{prefix}.{name}"))?,
            };
            let t = found.ok_or_else(|| Error::Input(format!("{}: tensor `{name}` (or `{prefix}.{name}`) is missing; expected shape {shape:?}", path.display())))?;
            if t.shape != shape {
                return Err(Error::Input(format!("{}: tensor `{name}` has shape {:?}, expected {shape:?} from config.json", path.display(), t.shape)));
            }
            host.push(t.data);
        }
        Bert::from_host(gpu, config, &host)
    }

    /// An encoder from host arrays in `param_specs` order (random tiny configs, tests).
    pub fn from_host(gpu: &Gpu, config: BertConfig, host: &[Vec<f32>]) -> Result<Bert> {
        let specs = param_specs(&config);
        if host.len() != specs.len() {
            return Err(Error::Input(format!("{} parameter arrays given, the config needs {}", host.len(), specs.len())));
        }
        let mut params = Vec::new();
        for ((name, shape), data) in specs.iter().zip(host) {
            if data.len() != shape.iter().product::<usize>() {
                return Err(Error::Input(format!("parameter `{name}` has {} values, expected shape {shape:?}", data.len())));
            }
            params.push(Tensor::from_f32(gpu, name, shape, data)?);
        }
        Ok(Bert { config, names: specs.into_iter().map(|(n, _)| n).collect(), params })
    }

    /// A randomly initialized encoder as HF initializes BERT: weights N(0, 0.02), biases 0,
    /// LayerNorm weight 1.
    pub fn random(gpu: &Gpu, config: BertConfig, seed: u64) -> Result<Bert> {
        let mut rng = crate::rng::Rng::new(seed);
        let host: Vec<Vec<f32>> = param_specs(&config)
            .iter()
            .map(|(name, shape)| {
                let n: usize = shape.iter().product();
                if name.ends_with("LayerNorm.weight") {
                    vec![1.0; n]
                } else if name.ends_with("bias") {
                    vec![0.0; n]
                } else {
                    (0..n).map(|_| (0.02 * rng.normal()) as f32).collect()
                }
            })
            .collect();
        Bert::from_host(gpu, config, &host)
    }

    /// HF names of the parameters, in the order of `params` and of the gradients.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    fn p(&self, l: usize, field: usize) -> &Tensor {
        &self.params[layer_param(l, field)]
    }

    fn check_ids(&self, batch: &TokenBatch) -> Result<()> {
        for (i, d) in batch.docs.iter().enumerate() {
            if let Some((j, id)) = d.iter().enumerate().find(|(_, &id)| id as usize >= self.config.vocab_size) {
                return Err(Error::Input(format!("document {i}: token {j} has id {id}, outside the vocabulary of {} ids", self.config.vocab_size)));
            }
        }
        Ok(())
    }

    /// Runs the encoder on `batch`. Batches longer than one window go through the two-window
    /// scheme; the output always has the batch's padded length.
    pub fn forward(&self, rec: &mut Recorder, batch: &TokenBatch, pass: Pass) -> Result<(EncoderOutput, Option<Tape>)> {
        self.forward_with(rec, batch, pass, None)
    }

    /// Whether `forward_mention_rows` runs: an adapter that runs the fused attention
    /// (ops::attention::fused_lanes), and `DOCRE_ENCODER_ATTENTION` not `unfused`. `Err` where
    /// the variable asks for the fused attention and it cannot run, saying why.
    pub fn fused_attention_runs(&self, gpu: &Gpu) -> Result<bool> {
        let setting = crate::settings::encoder_attention()?;
        if setting == Some("unfused") {
            return Ok(false);
        }
        let c = &self.config;
        let why = match fused_lanes(gpu, c.hidden_size, c.head_dim()) {
            Err(why) => why,
            Ok(_) => return Ok(true),
        };
        match setting {
            Some(_) => Err(Error::Input(format!("DOCRE_ENCODER_ATTENTION=fused: {why}"))),
            None => Ok(false),
        }
    }

    /// Evaluation forward with the fused attention (check `fused_attention_runs` first): the
    /// last hidden states [B, L, hidden] and only the last layer's attention rows of the queries
    /// at `rows` (b·L + position) as [rows · heads, L], row r·heads + h, the layout of
    /// `HeadBatch::new_compact`. No [segments, heads, win, win] tensor is formed; a batch split
    /// into windows merges only those rows.
    pub fn forward_mention_rows(&self, rec: &mut Recorder, batch: &TokenBatch, rows: &[u32]) -> Result<EncoderOutput> {
        Ok(self.forward_with(rec, batch, Pass::eval(), Some(rows))?.0)
    }

    fn forward_with(&self, rec: &mut Recorder, batch: &TokenBatch, pass: Pass, fused_rows: Option<&[u32]>) -> Result<(EncoderOutput, Option<Tape>)> {
        self.check_ids(batch)?;
        let plan = WindowPlan::new(&batch.docs, self.config.window(), self.config.window_end_tokens())?;
        if fused_rows.is_some() && (pass.grad || pass.dropout.is_some()) {
            return Err(Error::Input("the fused attention serves evaluation only".into()));
        }
        let gpu = rec.gpu().clone();
        let c = &self.config;
        let (d, heads, w, s) = (c.hidden_size, c.num_attention_heads, plan.win, plan.segments());
        let rows = s * w;
        let ids = Tensor::from_u32(&gpu, "token_ids", &[rows], &plan.seg_ids)?;
        let pos = Tensor::from_u32(&gpu, "position_ids", &[rows], &position_ids(c, rows, w))?;
        let types = Tensor::from_u32(&gpu, "token_type_ids", &[rows], &vec![0u32; rows])?;
        let windows = if plan.windowed { Some(Windows::upload(&gpu, plan.clone())?) } else { None };
        let attend = match fused_rows {
            None => Attend::Unfused { mask: Tensor::from_f32(&gpu, "key_mask", &[s, w], &plan.key_mask())? },
            Some(picks) => {
                let out_rows = plan.batch * plan.len;
                if let Some(&bad) = picks.iter().find(|&&r| r as usize >= out_rows) {
                    return Err(Error::Input(format!("attention row {bad} is outside the batch's {out_rows} token rows")));
                }
                let lens: Vec<u32> = plan.seg_lens.iter().map(|&l| l as u32).collect();
                let picks = match picks.is_empty() {
                    true => None,
                    false => {
                        let seg_rows = windows.as_ref().map_or_else(|| picks.to_vec(), |win| win.segment_rows(picks));
                        Some((Tensor::from_u32(&gpu, "attention_positions", &[picks.len()], picks)?, Tensor::from_u32(&gpu, "attention_segment_rows", &[seg_rows.len()], &seg_rows)?))
                    }
                };
                Attend::Fused { seg_len: Tensor::from_u32(&gpu, "segment_lengths", &[s], &lens)?, rows: picks }
            }
        };
        let dropout_at = |rec: &mut Recorder, x: &Tensor, p: f64, site: usize| -> Result<Tensor> {
            match pass.dropout {
                Some(seed) if p > 0.0 => dropout(rec, x, p as f32, DropoutRng { seed: dropout_seed(seed, site), offset: 0 }),
                _ => Ok(x.clone()),
            }
        };

        let word = gather_rows(rec, &self.params[slot::WORD], &ids)?;
        let position = gather_rows(rec, &self.params[slot::POSITION], &pos)?;
        let token_type = gather_rows(rec, &self.params[slot::TOKEN_TYPE], &types)?;
        let e = add(rec, &word, &position)?;
        let (ln, emb_sum) = add_layernorm(rec, &e, &token_type, &self.params[slot::EMB_LN_W], &self.params[slot::EMB_LN_B], c.layer_norm_eps as f32, pass.grad)?;
        let mut x = dropout_at(rec, &ln.y, c.hidden_dropout_prob, 0)?;
        let mut layers = Vec::new();
        let mut last_probs = None;
        let alpha = 1.0 / (c.head_dim() as f32).sqrt();
        for l in 0..c.num_hidden_layers {
            let q = linear(rec, &x, self.p(l, slot::Q_W), Some(self.p(l, slot::Q_B)))?;
            let k = linear(rec, &x, self.p(l, slot::K_W), Some(self.p(l, slot::K_B)))?;
            let v = linear(rec, &x, self.p(l, slot::V_W), Some(self.p(l, slot::V_B)))?;
            let last = l + 1 == c.num_hidden_layers;
            let (ctx, probs) = match &attend {
                Attend::Fused { seg_len, rows: picks } => {
                    let (ctx, stats) = fused_attention(rec, &q, &k, &v, seg_len, w, heads, alpha)?;
                    if last {
                        last_probs = Some(match (picks, &windows) {
                            (Some((at, seg_rows)), Some(win)) => {
                                let rows = attention_rows(rec, &q, &k, &stats, seg_len, seg_rows, w, heads, alpha)?;
                                win.merge_attention_rows(rec, &rows, at, heads)?
                            }
                            (Some((_, seg_rows)), None) => attention_rows(rec, &q, &k, &stats, seg_len, seg_rows, w, heads, alpha)?,
                            (None, _) => Tensor::uninit(&gpu, "attention_rows", &[0, plan.len], DType::F32)?,
                        });
                    }
                    (ctx, None)
                }
                Attend::Unfused { mask } => {
                    let scores = Tensor::uninit(&gpu, "attention_scores", &[s, heads, w, w], DType::F32)?;
                    gemm(rec, MatmulKernel::Auto, &self.scores_gemm(s, w, alpha), &q, &k, None, &scores)?;
                    let probs = softmax(rec, &scores, Some(Mask { mask, div: heads * w }), 1.0)?;
                    let probs_used = dropout_at(rec, &probs, c.attention_probs_dropout_prob, 1 + 3 * l)?;
                    let ctx = Tensor::uninit(&gpu, "attention_context", &[rows, d], DType::F32)?;
                    gemm(rec, MatmulKernel::Auto, &self.context_gemm(s, w), &probs_used, &v, None, &ctx)?;
                    if last {
                        last_probs = Some(probs_used);
                    }
                    (ctx, Some(probs))
                }
            };
            let ao = linear(rec, &ctx, self.p(l, slot::AO_W), Some(self.p(l, slot::AO_B)))?;
            let ao = dropout_at(rec, &ao, c.hidden_dropout_prob, 2 + 3 * l)?;
            let (ln1, r1) = add_layernorm(rec, &ao, &x, self.p(l, slot::LN1_W), self.p(l, slot::LN1_B), c.layer_norm_eps as f32, pass.grad)?;
            let pre = linear(rec, &ln1.y, self.p(l, slot::I_W), Some(self.p(l, slot::I_B)))?;
            let act = activation(rec, Activation::Gelu, &pre)?;
            let o = linear(rec, &act, self.p(l, slot::O_W), Some(self.p(l, slot::O_B)))?;
            let o = dropout_at(rec, &o, c.hidden_dropout_prob, 3 + 3 * l)?;
            let (ln2, r2) = add_layernorm(rec, &o, &ln1.y, self.p(l, slot::LN2_W), self.p(l, slot::LN2_B), c.layer_norm_eps as f32, pass.grad)?;
            if pass.grad {
                let (probs, r1, r2) = (probs.expect("training runs the unfused attention"), r1.expect("kept with grad"), r2.expect("kept with grad"));
                layers.push(LayerTape { x, q, k, v, probs, ctx, r1, ln1_stats: ln1.stats, h1: ln1.y, pre, act, r2, ln2_stats: ln2.stats });
            }
            x = ln2.y;
            // Submitting per layer lets the pool hand this layer's temporaries to the next one
            // instead of holding every intermediate of the pass until the end.
            rec.flush();
        }
        let probs = last_probs.ok_or_else(|| Error::Input("the encoder config has no layers".into()))?;
        let (out, windows, merged) = if let Some(win) = windows {
            let hidden = win.merge_hidden(rec, &x)?;
            if let Attend::Fused { .. } = attend {
                (EncoderOutput { hidden, attention: probs }, Some(win), None)
            } else {
                let (attention, z) = win.merge_attention(rec, &probs, heads)?;
                let merged = pass.grad.then(|| (attention.clone(), z));
                (EncoderOutput { hidden, attention }, Some(win), merged)
            }
        } else {
            let (b, len) = (plan.batch, plan.len);
            (EncoderOutput { hidden: x.reshape(&[b, len, d])?, attention: probs }, None, None)
        };
        let tape = match (pass.grad, emb_sum) {
            (true, Some(emb_sum)) => Some(Tape { pass, plan, windows, emb_sum, emb_stats: ln.stats, layers, merged }),
            _ => None,
        };
        Ok((out, tape))
    }

    /// S[s, h, i, j] = alpha * Q[s, i, h] · K[s, j, h]; also dP = dctx · Vᵀ in the backward.
    fn scores_gemm(&self, s: usize, w: usize, alpha: f32) -> Gemm {
        let (d, heads, dh) = (self.config.hidden_size, self.config.num_attention_heads, self.config.head_dim());
        let tok = View { offset: 0, ld: d, s1: w * d, s2: dh, trans: false };
        Gemm {
            m: w,
            n: w,
            k: dh,
            batch1: s,
            batch2: heads,
            a: tok,
            b: View { trans: true, ..tok },
            c: self.prob_view(w, false),
            alpha,
            accumulate: false,
        }
    }

    /// ctx[s, i, h] = Σ_j P[s, h, i, j] V[s, j, h].
    fn context_gemm(&self, s: usize, w: usize) -> Gemm {
        self.token_gemm(s, w, self.prob_view(w, false), 1.0)
    }

    /// A GEMM that writes a [win, dh] block per (segment, head) into token-row layout, with K = win.
    fn token_gemm(&self, s: usize, w: usize, a: View, alpha: f32) -> Gemm {
        let (d, heads, dh) = (self.config.hidden_size, self.config.num_attention_heads, self.config.head_dim());
        let tok = View { offset: 0, ld: d, s1: w * d, s2: dh, trans: false };
        Gemm { m: w, n: dh, k: w, batch1: s, batch2: heads, a, b: tok, c: tok, alpha, accumulate: false }
    }

    fn prob_view(&self, w: usize, trans: bool) -> View {
        let heads = self.config.num_attention_heads;
        View { offset: 0, ld: w, s1: heads * w * w, s2: w * w, trans }
    }

    /// Gradients of every parameter (in `names()` order) given the gradients of the hidden
    /// states [B, L, hidden] and, optionally, of the returned attention [B, heads, L, L].
    pub fn backward(&self, rec: &mut Recorder, tape: Tape, d_hidden: &Tensor, d_attention: Option<&Tensor>) -> Result<Vec<Tensor>> {
        let c = &self.config;
        let gpu = rec.gpu().clone();
        let plan = &tape.plan;
        let (d, heads, w, s) = (c.hidden_size, c.num_attention_heads, plan.win, plan.segments());
        let rows = s * w;
        d_hidden.expect_shape("encoder backward", &[plan.batch, plan.len, d])?;
        if let Some(da) = d_attention {
            da.expect_shape("encoder backward", &[plan.batch, heads, plan.len, plan.len])?;
        }
        let dropout_at = |rec: &mut Recorder, x: &Tensor, p: f64, site: usize| -> Result<Tensor> {
            match tape.pass.dropout {
                Some(seed) if p > 0.0 => dropout(rec, x, p as f32, DropoutRng { seed: dropout_seed(seed, site), offset: 0 }),
                _ => Ok(x.clone()),
            }
        };
        let (mut dx, d_probs_last) = match &tape.windows {
            Some(win) => {
                let dx = win.split_hidden(rec, d_hidden, d)?;
                let da = match d_attention {
                    Some(da) => {
                        let (out, z) = tape.merged.as_ref().expect("windowed tape keeps the merged attention");
                        Some(win.split_attention(rec, out, da, z, heads)?)
                    }
                    None => None,
                };
                (dx, da)
            }
            None => (d_hidden.reshape(&[rows, d])?, d_attention.cloned()),
        };
        let mut grads: Vec<Option<Tensor>> = vec![None; self.params.len()];
        let alpha = 1.0 / (c.head_dim() as f32).sqrt();
        for (l, t) in tape.layers.iter().enumerate().rev() {
            let g2 = layernorm_backward(rec, &t.r2, self.p(l, slot::LN2_W), &t.ln2_stats, &dx)?;
            grads[layer_param(l, slot::LN2_W)] = Some(g2.dgamma);
            grads[layer_param(l, slot::LN2_B)] = Some(g2.dbeta);
            let dr2 = g2.dx;
            let d_o = dropout_at(rec, &dr2, c.hidden_dropout_prob, 3 + 3 * l)?;
            let dact = Tensor::uninit(&gpu, "ffn_act_grad", t.act.shape(), DType::F32)?;
            let (dw, db) = linear_backward_into(rec, &t.act, self.p(l, slot::O_W), &d_o, &dact, false)?;
            grads[layer_param(l, slot::O_W)] = Some(dw);
            grads[layer_param(l, slot::O_B)] = Some(db);
            let dpre = activation_backward(rec, Activation::Gelu, &t.pre, &dact)?;
            // dh1 = dr2 (residual) + the intermediate layer's input gradient, summed in place.
            let (dw, db) = linear_backward_into(rec, &t.h1, self.p(l, slot::I_W), &dpre, &dr2, true)?;
            grads[layer_param(l, slot::I_W)] = Some(dw);
            grads[layer_param(l, slot::I_B)] = Some(db);
            let g1 = layernorm_backward(rec, &t.r1, self.p(l, slot::LN1_W), &t.ln1_stats, &dr2)?;
            grads[layer_param(l, slot::LN1_W)] = Some(g1.dgamma);
            grads[layer_param(l, slot::LN1_B)] = Some(g1.dbeta);
            let dr1 = g1.dx;
            let dao = dropout_at(rec, &dr1, c.hidden_dropout_prob, 2 + 3 * l)?;
            let dctx = Tensor::uninit(&gpu, "context_grad", &[rows, d], DType::F32)?;
            let (dw, db) = linear_backward_into(rec, &t.ctx, self.p(l, slot::AO_W), &dao, &dctx, false)?;
            grads[layer_param(l, slot::AO_W)] = Some(dw);
            grads[layer_param(l, slot::AO_B)] = Some(db);

            // dP_used = dctx Vᵀ (+ the caller's gradient of the returned attention).
            let dpu = Tensor::uninit(&gpu, "attention_probs_grad", &[s, heads, w, w], DType::F32)?;
            let mut g = self.scores_gemm(s, w, 1.0);
            if l + 1 == c.num_hidden_layers {
                if let Some(da) = &d_probs_last {
                    rec.copy(da, &dpu)?;
                    g.accumulate = true;
                }
            }
            gemm(rec, MatmulKernel::Auto, &g, &dctx, &t.v, None, &dpu)?;
            let dp = dropout_at(rec, &dpu, c.attention_probs_dropout_prob, 1 + 3 * l)?;
            // dV = P_usedᵀ dctx.
            let dv = Tensor::uninit(&gpu, "value_grad", &[rows, d], DType::F32)?;
            // The dropped-out probabilities are regenerated from their seed rather than kept.
            let probs_used = dropout_at(rec, &t.probs, c.attention_probs_dropout_prob, 1 + 3 * l)?;
            gemm(rec, MatmulKernel::Auto, &self.token_gemm(s, w, self.prob_view(w, true), 1.0), &probs_used, &dctx, None, &dv)?;
            let ds = softmax_backward(rec, &t.probs, &dp, 1.0)?;
            // dQ = alpha dS K, dK = alpha dSᵀ Q.
            let dq = Tensor::uninit(&gpu, "query_grad", &[rows, d], DType::F32)?;
            gemm(rec, MatmulKernel::Auto, &self.token_gemm(s, w, self.prob_view(w, false), alpha), &ds, &t.k, None, &dq)?;
            let dk = Tensor::uninit(&gpu, "key_grad", &[rows, d], DType::F32)?;
            gemm(rec, MatmulKernel::Auto, &self.token_gemm(s, w, self.prob_view(w, true), alpha), &ds, &t.q, None, &dk)?;
            // dx = dr1 (residual) + the three projections' input gradients.
            for (dy, wf, bf) in [(&dq, slot::Q_W, slot::Q_B), (&dk, slot::K_W, slot::K_B), (&dv, slot::V_W, slot::V_B)] {
                let (dw, db) = linear_backward_into(rec, &t.x, self.p(l, wf), dy, &dr1, true)?;
                grads[layer_param(l, wf)] = Some(dw);
                grads[layer_param(l, bf)] = Some(db);
            }
            dx = dr1;
            rec.flush();
        }
        let de = dropout_at(rec, &dx, c.hidden_dropout_prob, 0)?;
        let ge = layernorm_backward(rec, &tape.emb_sum, &self.params[slot::EMB_LN_W], &tape.emb_stats, &de)?;
        grads[slot::EMB_LN_W] = Some(ge.dgamma);
        grads[slot::EMB_LN_B] = Some(ge.dbeta);
        let pos = position_ids(&self.config, rows, w);
        for (slot_i, index) in [(slot::WORD, plan.seg_ids.clone()), (slot::POSITION, pos), (slot::TOKEN_TYPE, vec![0u32; rows])] {
            let table = &self.params[slot_i];
            let g = Tensor::uninit(&gpu, "embedding_grad", table.shape(), DType::F32)?;
            fill(rec, &g, 0.0)?;
            scatter_add_rows(rec, &ge.dx, &RowScatter::new(&gpu, &index, table.shape()[0])?, &g)?;
            grads[slot_i] = Some(g);
        }
        Ok(grads.into_iter().map(|g| g.expect("every parameter gets a gradient")).collect())
    }
}
