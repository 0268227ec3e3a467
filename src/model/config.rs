//! The model's configurations: the encoder's hyper-parameters, read from a Hugging Face
//! `config.json` (BERT or RoBERTa), and the heads' sizes and switches (SPEC 0.1).

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::ops::eca::Attention;

/// Which member of the BERT family (`model_type`). They share the architecture and differ in
/// position ids, special tokens and the long-document windows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    #[default]
    Bert,
    /// Position ids start after the padding index; a split document's first window ends with
    /// two `</s>`.
    Roberta,
}

/// What the encoder needs from a BERT-family `config.json`. Everything else in the file
/// (architectures, pooler settings, ...) is ignored.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BertConfig {
    #[serde(default)]
    pub family: Family,
    /// The padding id (RoBERTa's position ids start at pad_token_id + 1).
    #[serde(default)]
    pub pad_token_id: usize,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub hidden_dropout_prob: f64,
    pub attention_probs_dropout_prob: f64,
}

impl BertConfig {
    pub fn load(path: &Path) -> Result<BertConfig> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io { context: format!("cannot read encoder config {}", path.display()), source })?;
        let v: Value = serde_json::from_str(&text).map_err(|e| Error::Input(format!("{}: not valid JSON: {e}", path.display())))?;
        Self::from_json(&v).map_err(|e| Error::Input(format!("{}: {e}", path.display())))
    }

    /// Parses and checks the fields; the error names the offending field.
    pub fn from_json(v: &Value) -> std::result::Result<BertConfig, String> {
        let int = |k: &str| -> std::result::Result<usize, String> {
            match v.get(k) {
                Some(x) => x.as_u64().filter(|&n| n > 0).map(|n| n as usize).ok_or_else(|| format!("field `{k}` must be a positive integer, found {x}")),
                None => Err(format!("field `{k}` is missing")),
            }
        };
        let float = |k: &str, default: f64| -> std::result::Result<f64, String> {
            match v.get(k) {
                Some(x) => x.as_f64().ok_or_else(|| format!("field `{k}` must be a number, found {x}")),
                None => Ok(default),
            }
        };
        let family = match v.get("model_type").and_then(Value::as_str).unwrap_or("bert") {
            "bert" | "distilbert_as_bert" => Family::Bert,
            "roberta" => Family::Roberta,
            t => return Err(format!("field `model_type` is \"{t}\"; this encoder implements \"bert\" and \"roberta\"")),
        };
        match v.get("hidden_act").and_then(Value::as_str).unwrap_or("gelu") {
            "gelu" => {}
            other => return Err(format!("field `hidden_act` is \"{other}\"; only the exact erf GELU (\"gelu\") is implemented")),
        }
        if let Some(p) = v.get("position_embedding_type").and_then(Value::as_str) {
            if p != "absolute" {
                return Err(format!("field `position_embedding_type` is \"{p}\"; only \"absolute\" is implemented"));
            }
        }
        let pad_token_id = match v.get("pad_token_id") {
            Some(x) => x.as_u64().map(|n| n as usize).ok_or_else(|| format!("field `pad_token_id` must be an integer, found {x}"))?,
            None if family == Family::Roberta => return Err("field `pad_token_id` is missing (RoBERTa's position ids start after it)".into()),
            None => 0,
        };
        // Fields a config may leave out take BERT's defaults.
        let d = BertConfig::bert(0, 0, 0, 0, 0);
        let c = BertConfig {
            family,
            pad_token_id,
            vocab_size: int("vocab_size")?,
            hidden_size: int("hidden_size")?,
            num_hidden_layers: int("num_hidden_layers")?,
            num_attention_heads: int("num_attention_heads")?,
            intermediate_size: int("intermediate_size")?,
            max_position_embeddings: int("max_position_embeddings")?,
            type_vocab_size: int("type_vocab_size").unwrap_or(d.type_vocab_size),
            layer_norm_eps: float("layer_norm_eps", d.layer_norm_eps)?,
            hidden_dropout_prob: float("hidden_dropout_prob", d.hidden_dropout_prob)?,
            attention_probs_dropout_prob: float("attention_probs_dropout_prob", d.attention_probs_dropout_prob)?,
        };
        if c.hidden_size % c.num_attention_heads != 0 {
            return Err(format!("field `hidden_size` ({}) is not a multiple of `num_attention_heads` ({})", c.hidden_size, c.num_attention_heads));
        }
        for (k, p) in [("hidden_dropout_prob", c.hidden_dropout_prob), ("attention_probs_dropout_prob", c.attention_probs_dropout_prob)] {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("field `{k}` is {p}, outside [0, 1)"));
            }
        }
        if c.max_position_embeddings < c.position_offset() + 4 {
            return Err(format!("field `max_position_embeddings` ({}) leaves no room after the first position id {}", c.max_position_embeddings, c.position_offset()));
        }
        Ok(c)
    }

    /// The shapes of all-MiniLM-L6-v2 (6 layers, hidden 384, 12 heads, FFN 1536): the default
    /// encoder of benchmarks run without a checkpoint.
    /// A BERT of these sizes with BERT's other defaults (512 positions, 2 token types, layer
    /// norm ε 1e-12, dropout 0.1): the one place they are written.
    pub fn bert(vocab_size: usize, hidden_size: usize, num_hidden_layers: usize, num_attention_heads: usize, intermediate_size: usize) -> BertConfig {
        BertConfig {
            family: Family::Bert,
            pad_token_id: 0,
            vocab_size,
            hidden_size,
            num_hidden_layers,
            num_attention_heads,
            intermediate_size,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
        }
    }

    pub fn minilm_l6() -> BertConfig {
        BertConfig::bert(30522, 384, 6, 12, 1536)
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Position id of a window's first token: 0 for BERT, pad_token_id + 1 for RoBERTa.
    pub fn position_offset(&self) -> usize {
        match self.family {
            Family::Bert => 0,
            Family::Roberta => self.pad_token_id + 1,
        }
    }

    /// Longest sequence one encoder pass takes: longer documents go through two windows.
    pub fn window(&self) -> usize {
        (self.max_position_embeddings - self.position_offset()).min(512)
    }

    /// End tokens of a split document's first window (ATLOP's `end_tokens`): [SEP] for BERT,
    /// `</s></s>` for RoBERTa.
    pub fn window_end_tokens(&self) -> usize {
        match self.family {
            Family::Bert => 1,
            Family::Roberta => 2,
        }
    }

    /// Longest document (input ids with its special tokens) that two windows cover.
    pub fn max_ids(&self) -> usize {
        2 * self.window() - 1 - self.window_end_tokens()
    }
}

/// How the test loop turns iterations into the final logits (SPEC 3.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TestOutput {
    /// Base logits plus every iteration's inference logits (the code's behaviour).
    Sum,
    /// The last iteration's inference logits alone (the paper's P^(K)).
    Last,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct HeadConfig {
    /// Encoder hidden size d.
    pub hidden: usize,
    /// Pair feature size E (the grouped bilinear's width) and its block size.
    pub emb: usize,
    pub block: usize,
    /// Relation classes C, class 0 being the threshold / NA class.
    pub classes: usize,
    /// Inference-module width D, its layers N_I, ECA heads and FFN inner width.
    pub width: usize,
    pub layers: usize,
    pub eca_heads: usize,
    pub ffn_inner: usize,
    /// Test-time iterations K and the decision rule's top-k.
    pub iterations: usize,
    pub top_k: usize,
    pub attention: Attention,
    /// The gated fusion sub-layer (false: M̃ = F̃ + R̃, the paper's "w/o fusion").
    pub fusion: bool,
    pub test_output: TestOutput,
    pub ln_eps: f64,
    pub bn_eps: f64,
    pub bn_momentum: f64,
    /// Dropout probability everywhere DocRE-II's heads have dropout (`head_dropout`), in
    /// training only.
    #[serde(default = "default_head_dropout")]
    pub head_dropout: f64,
    /// The SimSiam term in stage 2 (false: the paper's "w/o contrastive loss", which also skips
    /// the predictor and the swapped passes).
    #[serde(default = "default_true")]
    pub contrastive: bool,
}

fn default_head_dropout() -> f64 {
    0.1
}

fn default_true() -> bool {
    true
}

impl HeadConfig {
    /// Checks the sizes that the kernels rely on.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Input(format!("head config: {m}")));
        if self.block == 0 || self.emb % self.block != 0 {
            return bad(format!("emb {} is not a multiple of block {}", self.emb, self.block));
        }
        if self.eca_heads != 4 {
            return bad(format!("ECA has exactly 4 heads (one per grid line), not {}", self.eca_heads));
        }
        if self.width % self.eca_heads != 0 || self.width / self.eca_heads > 512 {
            return bad(format!("width {} must split into 4 heads of at most 512", self.width));
        }
        if self.classes < 2 || self.top_k == 0 || self.layers == 0 {
            return bad(format!("classes {} (≥ 2), top_k {} (≥ 1) and layers {} (≥ 1) are out of range", self.classes, self.top_k, self.layers));
        }
        if !(0.0..1.0).contains(&self.head_dropout) {
            return bad(format!("head_dropout {} is outside [0, 1)", self.head_dropout));
        }
        Ok(())
    }
}
