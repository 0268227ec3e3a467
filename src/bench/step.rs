//! One whole training step (`docre bench step`, benches/step.rs): real Re-DocRED documents
//! through the encoder, the heads, the losses, both backward passes, clipping and AdamW, exactly
//! as `docre train` runs them (`Trainer::train_step`), for stage 1 and stage 2 at the batch sizes
//! asked for, with the encoder trained or frozen.
//!
//! The time of a step is wall time (host work included: that is what training takes); the
//! per-phase split comes from one more step with GPU timestamps around every dispatch
//! (`gpu::profile`), which sums kernel time only.

use std::path::PathBuf;
use std::time::Instant;

use crate::data::docred::{read_docred, Relations};
use crate::data::features::{featurize, Example};
use crate::data::WordPieceTokenizer;
use crate::error::{Error, Result};
use crate::gpu::{profile, Gpu};
use crate::model::heads::Heads;
use crate::model::{Bert, BertConfig};
use crate::rng::Rng;
use crate::model::encoder_cache::EncoderCache;
use crate::model::{Batch, Model};
use crate::train::trainer::{Stage, Trainer};
use crate::train::preset::preset;

/// The phases a step is split into, in the order they run.
pub const PHASES: [&str; 6] = ["encoder forward", "heads forward", "losses", "heads backward", "encoder backward", "optimizer"];

pub struct StepBenchConfig {
    /// Re-DocRED (DocRED-format) file and the indices of the documents to use; a batch of B
    /// takes the first B.
    pub data: PathBuf,
    pub docs: Vec<usize>,
    /// rel2id.json; None: the built-in DocRED inventory.
    pub rel2id: Option<PathBuf>,
    /// Encoder directory (config.json, tokenizer.json, model.safetensors).
    pub encoder: PathBuf,
    /// Random weights of the directory's shapes instead of its checkpoint (same speed).
    pub random_weights: bool,
    pub stages: Vec<u32>,
    pub batches: Vec<usize>,
    pub frozen: bool,
    /// Inference layers N_I (the preset's default is 2).
    pub layers: usize,
    pub samples: usize,
}

/// One measured case, also the JSON record of `docre bench step --json`.
#[derive(serde::Serialize, Clone, Debug)]
pub struct StepRow {
    pub stage: u32,
    pub batch: usize,
    pub frozen_encoder: bool,
    pub documents: Vec<String>,
    pub entities: usize,
    pub pairs: usize,
    pub tokens: usize,
    /// Median, fastest and slowest wall time of a step, seconds.
    pub seconds: f64,
    pub min_seconds: f64,
    pub max_seconds: f64,
    /// GPU kernel seconds per phase (PHASES order) and their sum, from the profiled step.
    pub phases: Vec<(String, f64)>,
    pub kernel_seconds: f64,
    /// Most bytes of GPU tensors a step holds at once beyond the model and optimizer state.
    pub peak_bytes: u64,
}

fn load(cfg: &StepBenchConfig, gpu: &Gpu) -> Result<(Bert, Vec<(String, Example)>, usize)> {
    let rels = match &cfg.rel2id {
        Some(p) => Relations::load(p, None)?,
        None => Relations::docred(),
    };
    let docs = read_docred(&cfg.data, &rels)?;
    let tok = WordPieceTokenizer::load(&cfg.encoder.join("tokenizer.json"))?;
    let bert = if cfg.random_weights {
        let config = BertConfig::load(&cfg.encoder.join("config.json"))?;
        Bert::random(gpu, config, 0)?
    } else {
        Bert::load(gpu, &cfg.encoder)?
    };
    let max_ids = bert.config.max_ids();
    let mut examples = Vec::new();
    for &i in &cfg.docs {
        let doc = docs.get(i).ok_or_else(|| Error::Input(format!("{}: --docs names document {i}, but the file has {}", cfg.data.display(), docs.len())))?;
        let (ex, _) = featurize(i, doc, &tok, rels.len(), max_ids)?;
        if ex.entities() < 2 {
            return Err(Error::Input(format!("{}: document {i} (`{}`) has fewer than two entities", cfg.data.display(), doc.title)));
        }
        examples.push((doc.title.clone(), ex));
    }
    Ok((bert, examples, rels.len()))
}

/// The model, the documents and (with a frozen encoder) the encoder cache, built once.
pub struct StepSetup {
    model: Model,
    titles: Vec<String>,
    examples: Vec<Example>,
    cache: Option<EncoderCache>,
    run: crate::train::preset::RunConfig,
}

/// One (stage, batch) case: a trainer whose steps are timed.
pub struct StepCase<'a> {
    setup: &'a StepSetup,
    trainer: Trainer,
    batch: Batch,
    rng: Rng,
}

impl StepSetup {
    pub fn new(gpu: &Gpu, cfg: &StepBenchConfig) -> Result<StepSetup> {
        let (bert, examples, classes) = load(cfg, gpu)?;
        let mut run = preset("docred")?;
        run.layers = cfg.layers;
        let heads = Heads::random(gpu, run.head_config(bert.config.hidden_size, classes), 1)?;
        let model = Model { gpu: gpu.clone(), encoder: bert, heads };
        let (titles, examples): (Vec<String>, Vec<Example>) = examples.into_iter().unzip();
        let cache = if cfg.frozen { Some(EncoderCache::build(&model.gpu, &model.encoder, &examples, None, |_| {})?.0) } else { None };
        Ok(StepSetup { model, titles, examples, cache, run })
    }

    /// A trainer for `stage` on the first `batch` documents.
    pub fn case(&self, stage: u32, batch: usize) -> Result<StepCase<'_>> {
        if stage != 1 && stage != 2 {
            return Err(Error::Input(format!("--stages {stage}: stages are 1 and 2")));
        }
        if batch == 0 || batch > self.examples.len() {
            return Err(Error::Input(format!("--batch {batch}: needs between 1 and the {} documents of --docs", self.examples.len())));
        }
        let picked: Vec<(usize, &Example)> = self.examples.iter().take(batch).enumerate().collect();
        let hyper = if stage == 1 { self.run.stage1.clone() } else { self.run.stage2.clone() };
        let trainer = Trainer::new(if stage == 1 { Stage::One } else { Stage::Two }, hyper, self.cache.is_some(), 1000);
        Ok(StepCase { setup: self, trainer, batch: Batch::new(&picked), rng: Rng::new(7) })
    }

    pub fn gpu(&self) -> &Gpu {
        &self.model.gpu
    }
}

impl StepCase<'_> {
    /// One training step; its wall time in seconds.
    pub fn step(&mut self, seed: u64) -> Result<f64> {
        let t0 = Instant::now();
        self.trainer.train_step(&self.setup.model, &self.batch, seed, &mut self.rng, self.setup.cache.as_ref())?;
        Ok(t0.elapsed().as_secs_f64())
    }
}

/// Runs every (stage, batch) case; `row` sees each as it is measured.
pub fn step_bench(gpu: &Gpu, cfg: &StepBenchConfig, mut row: impl FnMut(&StepRow)) -> Result<Vec<StepRow>> {
    let setup = StepSetup::new(gpu, cfg)?;
    for &stage in &cfg.stages {
        for &b in &cfg.batches {
            setup.case(stage, b)?;
        }
    }
    let mut rows = Vec::new();
    for &stage in &cfg.stages {
        for &b in &cfg.batches {
            let mut case = setup.case(stage, b)?;
            // The first step compiles pipelines and creates the optimizer moments.
            case.step(0)?;
            let mut t: Vec<f64> = (0..cfg.samples.max(1)).map(|i| case.step(1 + i as u64)).collect::<Result<_>>()?;
            t.sort_by(f64::total_cmp);
            gpu.reset_memory_peak();
            let before = gpu.memory_in_use().0;
            let (profiled, table) = profile::measured(|| case.step(100));
            profiled?;
            let peak_bytes = gpu.memory_in_use().1.saturating_sub(before);
            let input = &case.batch.input;
            let r = StepRow {
                stage,
                batch: b,
                frozen_encoder: cfg.frozen,
                documents: setup.titles.iter().take(b).cloned().collect(),
                entities: input.entity_counts.iter().sum(),
                pairs: input.pairs.len(),
                tokens: case.batch.tokens.docs.iter().map(Vec::len).sum(),
                seconds: t[t.len() / 2],
                min_seconds: t[0],
                max_seconds: t[t.len() - 1],
                phases: PHASES.iter().map(|p| (p.to_string(), table.phase_seconds(p))).collect(),
                kernel_seconds: table.total_seconds(),
                peak_bytes,
            };
            row(&r);
            rows.push(r);
        }
    }
    Ok(rows)
}

/// `../shared` paths the benchmark uses by default, data and encoder (`DOCRE_SHARED` overrides
/// the folder).
pub fn default_paths() -> (PathBuf, PathBuf) {
    let shared = crate::settings::shared().unwrap_or_else(|| PathBuf::from("../shared"));
    (shared.join("data/redocred/dev_revised.json"), shared.join("models/all-MiniLM-L6-v2"))
}
