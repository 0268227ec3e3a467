//! A training run: the encoder it starts from, and the loop over stage 1 then stage 2 with its
//! progress line, JSON-lines metrics log, dev evaluation and checkpoints.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::train::preset::{RunConfig, Stage2From};
use crate::data::docred::Document;
use crate::data::features::Example;
use crate::data::WordPieceTokenizer;
use crate::error::{Error, Result};
use crate::eval::controls::{evaluate, redecide, tune_on, Split};
use crate::eval::output::titled;
use crate::eval::score;
use crate::eval::threshold::Candidate;
use crate::fsutil::{cache_root, write_atomic};
use crate::gpu::{Gpu, Tensor};
use crate::model::checkpoint::{self, Progress, Sidecar, TokenizerSource};
use crate::model::encoder::hub::{self, HubRef};
use crate::model::encoder_cache::{frozen_outputs, EncoderStore};
use crate::model::heads::objective;
use crate::model::{Batch, Bert, Model};
use crate::progress::Progress as Bar;
use crate::rng::Rng;
use crate::train::batching::batches;
use crate::train::trainer::{Stage, Trainer};

/// The encoder a run starts from: a pretrained one (folder or hub id, see `model::encoder::hub`) with its
/// tokenizer, or a random `tiny` one over a word-level vocabulary of `words`.
pub fn start_encoder<'a>(gpu: &Gpu, cfg: &RunConfig, words: impl Iterator<Item = &'a str>) -> Result<(Bert, WordPieceTokenizer, TokenizerSource, Option<HubRef>)> {
    match &cfg.encoder {
        Some(spec) => {
            let found = hub::locate(spec)?;
            if let Some(h) = &found.hub {
                println!("encoder {}@{} (commit {}) from {}", h.id, h.revision, h.commit, found.dir.display());
            }
            let tp = found.dir.join("tokenizer.json");
            Ok((Bert::load(gpu, &found.dir)?, WordPieceTokenizer::load(&tp)?, TokenizerSource::Hf { path: tp }, found.hub))
        }
        None => {
            let tok = WordPieceTokenizer::word_level(words);
            let words = tok.word_list().expect("word-level");
            Ok((Bert::random(gpu, cfg.tiny_encoder(tok.vocab_size()), cfg.seed)?, tok, TokenizerSource::Words { words }, None))
        }
    }
}

/// Where a run writes, and what it evaluates on.
pub struct RunOutputs {
    pub dir: PathBuf,
    pub dev: Option<(Vec<Document>, Vec<Example>)>,
    /// `WordPieceTokenizer::fingerprint` of the tokenizer that made the examples (part of the
    /// encoder cache's key).
    pub tokenizer: [u8; 32],
    /// Print the progress line.
    pub progress: bool,
    /// Stop after this many epochs (over both stages) of this invocation, as an interruption
    /// would (tests of `--resume` use it).
    pub stop_after_epochs: Option<usize>,
}

/// Appends one JSON object per line to `metrics.jsonl`.
struct Log(std::fs::File);

impl Log {
    fn write(&mut self, v: serde_json::Value) -> Result<()> {
        writeln!(self.0, "{v}").map_err(|source| Error::Io { context: "cannot write metrics.jsonl".into(), source })
    }
}

/// Keeps the records of `log` up to `step`, the resumed checkpoint's: an interrupted process
/// logged steps past its last checkpoint (and may have torn its last line), and the resumed run
/// logs those steps again.
fn drop_records_after(log: &Path, step: u64) -> Result<()> {
    let text = match std::fs::read_to_string(log) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(Error::Io { context: format!("cannot read {}", log.display()), source }),
    };
    let kept: String = text
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v["step"].as_u64()).is_some_and(|s| s <= step))
        .flat_map(|l| [l, "\n"])
        .collect();
    write_atomic(log, kept.as_bytes())
}

/// Trains stage 1 then stage 2 as configured, logging every step; keeps `best/` and `last/`
/// checkpoints under `out.dir`. Stage 1 keeps the best base module by its dev Ign F1; stage 2,
/// when it runs, selects afresh by the full model's dev Ign F1 (DocRE-II's two runs each keep
/// their own best), so `best/` always holds a trained inference module then.
///
/// With `resume` (the `last/` checkpoint's progress and optimizer moments, the model already
/// loaded from it), training continues after the saved epoch and produces the same losses, bit
/// for bit, as a run that was never interrupted.
pub fn train(model: &Model, sidecar: &mut Sidecar, cfg: &RunConfig, train_examples: &[Example], out: &RunOutputs, resume: Option<(Progress, HashMap<String, (Tensor, Tensor)>)>) -> Result<()> {
    std::fs::create_dir_all(&out.dir).map_err(|source| Error::Io { context: format!("cannot create {}", out.dir.display()), source })?;
    let log_path = out.dir.join("metrics.jsonl");
    if let Some((p, _)) = &resume {
        drop_records_after(&log_path, p.global_step)?;
    }
    let file = std::fs::OpenOptions::new().create(true).write(true).append(resume.is_some()).truncate(resume.is_none()).open(&log_path);
    let mut log = Log(file.map_err(|source| Error::Io { context: format!("cannot open {}", log_path.display()), source })?);
    let mut rng = Rng::new(resume.as_ref().map(|r| r.0.rng).unwrap_or(cfg.seed));
    let accum = cfg.accumulate.max(1);
    // The encoder's [B, H, L, L] attention must fit one storage binding.
    let max_attention = model.gpu.limits().max_storage_buffer_binding_size as usize / 4 / model.encoder.config.num_attention_heads;
    let per_epoch = batches(train_examples, cfg.batch_size, max_attention, &mut Rng::new(cfg.seed)).len().div_ceil(accum);
    if per_epoch == 0 {
        return Err(Error::Input("no training document has two or more entities".into()));
    }
    let mut global = resume.as_ref().map(|r| r.0.global_step).unwrap_or(0);
    let mut resume = resume;
    let mut epochs_run = 0;
    let started = Instant::now();
    let (cache, dev_cache) = if cfg.freeze_encoder {
        // Opening the store reads the encoder's weights back to hash them: once per run.
        let store = EncoderStore::open(&cache_root(), &model.gpu, &model.encoder, out.tokenizer)?;
        let c = frozen_outputs(&model.gpu, &model.encoder, &store, train_examples, "training documents", out.progress)?;
        let d = out.dev.as_ref().map(|(_, e)| frozen_outputs(&model.gpu, &model.encoder, &store, e, "dev documents", out.progress)).transpose()?;
        log.write(serde_json::json!({"step": 0, "encoder_cache_seconds": started.elapsed().as_secs_f64(), "documents": train_examples.len()}))?;
        (Some(c), d)
    } else {
        (None, None)
    };
    for (stage, epochs, hyper) in [(Stage::One, cfg.stage1_epochs, &cfg.stage1), (Stage::Two, cfg.stage2_epochs, &cfg.stage2)] {
        if epochs == 0 {
            continue;
        }
        let mut trainer = Trainer::new(stage, hyper.clone(), cfg.freeze_encoder, (epochs * per_epoch) as u32);
        trainer.noise = cfg.noise;
        let mut first_epoch = 1;
        if let Some((p, moments)) = &resume {
            if p.stage > stage_no(stage) || (p.stage == stage_no(stage) && p.epoch >= epochs) {
                continue; // this stage was finished before the interruption
            }
            if p.stage == stage_no(stage) {
                first_epoch = p.epoch + 1;
                trainer.step = p.stage_step;
                trainer.set_moments(moments.clone());
            }
            resume = None;
        }
        if stage == Stage::Two && first_epoch == 1 {
            if cfg.stage2_from == Stage2From::Best && out.dir.join("best").exists() {
                let (best, side) = checkpoint::load(&model.gpu, &out.dir.join("best"))?;
                let pairs = model.encoder.params().iter().zip(best.encoder.params()).chain(model.heads.params.tensors().iter().zip(best.heads.params.tensors()));
                for (now, then) in pairs {
                    now.write_f32(&model.gpu, &then.read_f32(&model.gpu)?)?;
                }
                log.write(serde_json::json!({"stage": 2, "step": global, "stage2_from": "best", "best_step": side.step}))?;
            } else if cfg.stage2_from == Stage2From::Best {
                eprintln!("docre: stage2_from = \"best\" but there is no best/ (no dev file): stage 2 starts from stage 1's last state");
            }
            // A stage-1 score is the base module's; the full model must not have to beat it.
            sidecar.best_score = None;
        }
        for epoch in first_epoch..=epochs {
            let t0 = Instant::now();
            let bs = batches(train_examples, cfg.batch_size, max_attention, &mut rng);
            let mut docs_done = 0;
            let groups: Vec<&[Vec<usize>]> = bs.chunks(accum).collect();
            let bar = Bar::new(groups.len() as u64, format!("stage {} epoch {epoch:>3}/{epochs} steps", stage_no(stage)), out.progress);
            let mut last = String::new();
            for (bi, group) in groups.iter().enumerate() {
                let owned: Vec<Batch> = group.iter().map(|b| Batch::new(&b.iter().map(|&i| (i, &train_examples[i])).collect::<Vec<_>>())).collect();
                let refs: Vec<&Batch> = owned.iter().collect();
                global += 1;
                let losses = trainer.train_steps(model, &refs, cfg.seed ^ global.wrapping_mul(0x9e37_79b9_7f4a_7c15), &mut rng, cache.as_ref())?;
                let total = objective(&losses);
                let lr = hyper.head_lr * trainer.schedule(trainer.step);
                docs_done += group.iter().map(Vec::len).sum::<usize>();
                let mut rec = serde_json::json!({"stage": stage_no(stage), "epoch": epoch, "step": global, "loss": total, "lr": lr, "seconds": started.elapsed().as_secs_f64()});
                for (n, v) in &losses {
                    rec[format!("loss_{n}")] = (*v).into();
                }
                log.write(rec)?;
                let rate = docs_done as f64 / t0.elapsed().as_secs_f64().max(1e-9);
                last = format!("{rate:6.2} docs/s loss {total:9.4} lr {lr:.2e}");
                bar.update(bi as u64 + 1, &last);
            }
            bar.finish(&last);
            sidecar.progress = Some(Progress { stage: stage_no(stage), epoch, global_step: global, stage_step: trainer.step, rng: rng.state() });
            let (docs, exs) = match &out.dev {
                Some((d, e)) => (d.as_slice(), e.as_slice()),
                None => (&[][..], &[][..]),
            };
            if !docs.is_empty() {
                let (base, full, p) = evaluate(model, docs, exs, cfg.batch_size.max(4), None, dev_cache.as_ref())?;
                // Thresholds tuned on dev itself: in-sample, so an upper bound on what
                // recalibration alone would give; `docre eval --tune-on` measures it out of sample.
                let t = tune_on(&p, &Split { docs, examples: exs, cache: None });
                let tuned = |c: &[Vec<Candidate>], theta: f32| score(docs, &titled(docs, &redecide(c, exs, theta)), None);
                let (base_tuned, full_tuned) = (tuned(&p.base_candidates, t.base)?, tuned(&p.full_candidates, t.full)?);
                let mut rec = serde_json::json!({"stage": stage_no(stage), "epoch": epoch, "step": global, "dev_base_f1": base.f1, "dev_base_ign_f1": base.ign_f1, "dev_base_tuned_f1": base_tuned.f1, "dev_base_threshold": t.base});
                if stage == Stage::One {
                    // Stage 1 never trains the inference module: the full model it scores is the
                    // base module with the inference module as initialised.
                    rec["dev_untrained_module_f1"] = full.f1.into();
                } else {
                    for (k, v) in [("dev_f1", full.f1), ("dev_ign_f1", full.ign_f1), ("dev_tuned_f1", full_tuned.f1), ("dev_threshold", t.full as f64)] {
                        rec[k] = v.into();
                    }
                }
                log.write(rec)?;
                let key = if stage == Stage::One { base.ign_f1 } else { full.ign_f1 };
                if sidecar.best_score.is_none_or(|b| key > b) {
                    sidecar.best_score = Some(key);
                    sidecar.step = global as u32;
                    checkpoint::save(&out.dir.join("best"), model, sidecar, Some(trainer.moments()))?;
                }
            }
            sidecar.step = global as u32;
            checkpoint::save(&out.dir.join("last"), model, sidecar, Some(trainer.moments()))?;
            epochs_run += 1;
            if out.stop_after_epochs == Some(epochs_run) {
                return Ok(());
            }
        }
    }
    Ok(())
}

fn stage_no(s: Stage) -> u32 {
    match s {
        Stage::One => 1,
        Stage::Two => 2,
    }
}

