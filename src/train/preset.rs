//! Run configuration: presets carrying the paper's hyper-parameters (SPEC 6.1), a TOML file, and
//! command-line flags, applied in that order.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::config::{BertConfig, HeadConfig, TestOutput};
use crate::ops::eca::Attention;
use crate::train::sampling::Noise;
use crate::train::trainer::Hyper;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    pub preset: String,
    /// HF checkpoint directory; none = a random encoder of the `tiny_*` sizes with a word-level
    /// vocabulary built from the training data.
    pub encoder: Option<PathBuf>,
    pub tiny_layers: usize,
    pub tiny_hidden: usize,
    pub tiny_heads: usize,
    /// Pair feature size E (default: the encoder's hidden size) and bilinear block.
    pub emb: Option<usize>,
    pub block: usize,
    pub width: usize,
    pub layers: usize,
    pub iterations: usize,
    pub top_k: usize,
    pub attention: Attention,
    pub fusion: bool,
    /// Stage 2's SimSiam term (false: the paper's "w/o contrastive loss").
    pub contrastive: bool,
    /// Stage 2's relation input: corrupted gold labels (`gold`, the code) or noisy base
    /// predictions (`predictions`, the paper).
    pub noise: Noise,
    /// Dropout wherever DocRE-II's heads have it (training only).
    pub head_dropout: f64,
    pub test_output: TestOutput,
    pub batch_size: usize,
    /// Batches per optimizer step (gradient accumulation; the step uses their mean gradient).
    pub accumulate: usize,
    pub stage1_epochs: usize,
    pub stage2_epochs: usize,
    pub stage1: Hyper,
    pub stage2: Hyper,
    pub seed: u64,
    pub freeze_encoder: bool,
    /// Longest input (ids incl. [CLS]/[SEP]); longer documents are cut with a warning.
    pub max_ids: usize,
    /// Where stage 2 starts: stage 1's last state, or its best dev epoch (`best/`), the file a
    /// DocRE-II user points its stage-2 run at.
    pub stage2_from: Stage2From,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage2From {
    Last,
    Best,
}

fn hyper(encoder_lr: f64, head_lr: f64) -> Hyper {
    Hyper { encoder_lr, head_lr, weight_decay: 1e-4, max_norm: 1.0, warmup: 0.06, adam_eps: 1e-6 }
}

impl Default for RunConfig {
    fn default() -> RunConfig {
        preset("docred").expect("the docred preset exists")
    }
}

/// The named presets: `docred`, `cdr`, `gda` (SPEC 6.1, BERT-family encoders) and `tiny` (a
/// small random encoder and heads for tests and the demo).
pub fn preset(name: &str) -> Result<RunConfig> {
    let base = RunConfig {
        preset: name.to_string(),
        encoder: None,
        tiny_layers: 2,
        tiny_hidden: 64,
        tiny_heads: 4,
        emb: None,
        block: 64,
        width: 512,
        layers: 2,
        iterations: 3,
        top_k: 4,
        attention: Attention::Eca,
        fusion: true,
        contrastive: true,
        noise: Noise::Gold,
        head_dropout: 0.1,
        test_output: TestOutput::Sum,
        batch_size: 8,
        accumulate: 1,
        stage1_epochs: 30,
        stage2_epochs: 15,
        stage1: hyper(5e-5, 1e-4),
        // Stage 2 trains the encoder at its own rate and the inference module; the base head is frozen.
        stage2: hyper(1e-5, 1e-4),
        seed: 66,
        freeze_encoder: false,
        max_ids: 1022,
        stage2_from: Stage2From::Last,
    };
    Ok(match name {
        "docred" => base,
        "cdr" => RunConfig { top_k: 1, stage1_epochs: 20, stage2_epochs: 10, stage1: hyper(1e-5, 5e-5), stage2: hyper(1e-6, 5e-5), ..base },
        "gda" => RunConfig { top_k: 1, batch_size: 6, stage1_epochs: 10, stage2_epochs: 5, stage1: hyper(2e-5, 8e-5), stage2: hyper(2e-6, 8e-5), ..base },
        // Tuned to overfit the four demo documents in about 80 steps of each stage: a random
        // encoder learns fast in stage 1 and is held fixed in stage 2.
        "tiny" => RunConfig { block: 16, width: 64, batch_size: 2, stage1_epochs: 40, stage2_epochs: 30, stage1: hyper(2e-3, 5e-3), stage2: hyper(0.0, 2e-3), seed: 1, ..base },
        other => return Err(Error::Input(format!("unknown preset `{other}` (docred, cdr, gda, tiny)"))),
    })
}

impl RunConfig {
    /// The preset named in the file (or `fallback`), with the file's values on top.
    pub fn from_toml(path: &Path, fallback: &str) -> Result<RunConfig> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io { context: format!("cannot read config {}", path.display()), source })?;
        let table: toml::Table = text.parse().map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
        let name = table.get("preset").and_then(|v| v.as_str()).unwrap_or(fallback).to_string();
        let mut merged = toml::Table::try_from(preset(&name)?).expect("presets serialize");
        for (k, v) in table {
            merge(&mut merged, k, v);
        }
        toml::Value::Table(merged).try_into().map_err(|e| Error::Input(format!("{}: {e}", path.display())))
    }

    pub fn head_config(&self, hidden: usize, classes: usize) -> HeadConfig {
        HeadConfig {
            hidden,
            emb: self.emb.unwrap_or(hidden),
            block: self.block,
            classes,
            width: self.width,
            layers: self.layers,
            eca_heads: 4,
            ffn_inner: 2 * self.width,
            iterations: self.iterations,
            top_k: self.top_k,
            attention: self.attention,
            fusion: self.fusion,
            test_output: self.test_output,
            ln_eps: 1e-12,
            bn_eps: 1e-5,
            bn_momentum: 0.1,
            head_dropout: self.head_dropout,
            contrastive: self.contrastive,
        }
    }

    /// The random `tiny` encoder for a vocabulary of `vocab` ids.
    pub fn tiny_encoder(&self, vocab: usize) -> BertConfig {
        BertConfig::bert(vocab, self.tiny_hidden, self.tiny_layers, self.tiny_heads, 2 * self.tiny_hidden)
    }
}

/// Nested tables merge key by key (`[stage1]` may set one learning rate).
fn merge(into: &mut toml::Table, k: String, v: toml::Value) {
    match (into.get_mut(&k), v) {
        (Some(toml::Value::Table(a)), toml::Value::Table(b)) => {
            for (k2, v2) in b {
                merge(a, k2, v2);
            }
        }
        (_, v) => {
            into.insert(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configurations the documented commands use (README, docs/) must keep loading as the
    /// presets change.
    #[test]
    fn documented_configs_load_and_validate() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        let mut seen = 0;
        for entry in std::fs::read_dir(&docs).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let cfg = RunConfig::from_toml(&path, "docred").unwrap_or_else(|e| panic!("{e}"));
                cfg.head_config(384, 2).validate().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                seen += 1;
            }
        }
        assert!(seen > 0, "no configurations in {}", docs.display());
        let small = RunConfig::from_toml(&docs.join("cdr-small.toml"), "docred").unwrap();
        assert_eq!((small.emb, small.block, small.width, small.top_k, small.stage1_epochs), (Some(128), 32, 256, 1, 10));
    }
}
