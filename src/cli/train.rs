//! `docre train`: one run, or one per seed, from a preset, a config file and flags.

use std::path::Path;

use crate::data::format::{examples, Format};
use crate::fsutil::write_atomic;
use crate::gpu::Gpu;
use crate::model::checkpoint::{self, Sidecar};
use crate::model::heads::Heads;
use crate::model::Model;
use crate::train::preset::RunConfig;
use crate::workflow::run as wf;
use crate::{Error, Result};

pub fn train_cmd(cfg: &RunConfig, train: &Path, dev: Option<&Path>, format: Format, rel2id: Option<&Path>, rel_info: Option<&Path>, out: &Path, resume: bool) -> Result<()> {
    let rels = format.relations(rel2id, rel_info)?;
    let train_docs = format.read(train, &rels)?;
    if train_docs.iter().all(|d| !d.labelled) {
        return Err(Error::Input(format!("{}: the training file has no labels", train.display())));
    }
    let dev_docs = dev.map(|d| format.read(d, &rels)).transpose()?;
    let gpu = Gpu::new()?;
    if resume {
        let last = out.join("last");
        let (model, mut sidecar) = checkpoint::load(&gpu, &last)?;
        let progress = sidecar.progress.clone().ok_or_else(|| Error::Input(format!("{}: the checkpoint records no training progress to resume from", last.display())))?;
        let moments = checkpoint::load_moments(&gpu, &last)?.unwrap_or_default();
        let tok = sidecar.tokenizer.load()?;
        let max_ids = cfg.max_ids.min(model.encoder.config.max_ids());
        let train_ex = examples(&train_docs, &tok, rels.len(), max_ids)?;
        let dev = dev_docs.map(|d| examples(&d, &tok, rels.len(), max_ids).map(|e| (d, e))).transpose()?;
        println!("resuming after stage {} epoch {} (step {})", progress.stage, progress.epoch, progress.global_step);
        wf::train(&model, &mut sidecar, cfg, &train_ex, &wf::RunOutputs { dir: out.to_path_buf(), dev, tokenizer: tok.fingerprint(), progress: true, stop_after_epochs: None }, Some((progress, moments)))?;
        println!("wrote {}/last (and best, when a dev file was given), metrics.jsonl", out.display());
        return Ok(());
    }
    let (encoder, tok, source, encoder_hub) = wf::start_encoder(&gpu, cfg, train_docs.iter().flat_map(|d| d.sents.iter().flatten().map(String::as_str)))?;
    let hc = cfg.head_config(encoder.config.hidden_size, rels.len());
    let heads = Heads::random(&gpu, hc.clone(), cfg.seed)?;
    let model = Model { gpu, encoder, heads };
    // The encoder's two windows bound the length (RoBERTa's cover one id less than BERT's).
    let max_ids = cfg.max_ids.min(model.encoder.config.max_ids());
    let train_ex = examples(&train_docs, &tok, rels.len(), max_ids)?;
    let dev = match dev_docs {
        Some(d) => {
            let e = examples(&d, &tok, rels.len(), max_ids)?;
            Some((d, e))
        }
        None => None,
    };
    let mut sidecar = Sidecar { encoder: model.encoder.config.clone(), heads: hc, tokenizer: source, relations: rels.codes.clone(), relation_names: rels.names.clone(), step: 0, best_score: None, note: format!("preset {}, trained on {}", cfg.preset, train.display()), progress: None, frozen_encoder: cfg.freeze_encoder, encoder_hub, kernel_choices: Default::default(), files: Default::default(), init_seed: Some(cfg.seed) };
    std::fs::create_dir_all(out).map_err(|source| Error::Io { context: format!("cannot create {}", out.display()), source })?;
    write_atomic(&out.join("config.toml"), toml::to_string(cfg).expect("config serializes").as_bytes())?;
    wf::train(&model, &mut sidecar, cfg, &train_ex, &wf::RunOutputs { dir: out.to_path_buf(), dev, tokenizer: tok.fingerprint(), progress: true, stop_after_epochs: None }, None)?;
    println!("wrote {}/last (and best, when a dev file was given), metrics.jsonl", out.display());
    Ok(())
}
