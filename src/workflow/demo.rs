//! `docre demo`: the whole pipeline on the six short Re-DocRED documents bundled in the binary
//! (`data::sample`): a `tiny` random encoder (or `--encoder DIR`), stage 1 and stage 2 on four of
//! them, base-only against full-model scores, predicted triples, and every output file.

use std::path::Path;

use crate::train::preset::{preset, RunConfig};
use super::run::{start_encoder, train, RunOutputs};
use crate::data::format::examples;
use crate::data::sample::{documents, relations, TRAIN_DOCS};
use crate::error::Result;
use crate::eval::controls::evaluate;
use crate::eval::output::{listing, result_json, write_output};
use crate::gpu::Gpu;
use crate::model::checkpoint::Sidecar;
use crate::model::heads::Heads;
use crate::model::Model;

pub fn run(out_dir: &Path, encoder: Option<&Path>, cfg: Option<RunConfig>) -> Result<()> {
    let t0 = std::time::Instant::now();
    let gpu = Gpu::new()?;
    println!("adapter: {} ({})", gpu.report().name, gpu.report().backend);
    let rels = relations();
    let docs = documents(&rels)?;
    let mut cfg = cfg.unwrap_or(preset("tiny")?);
    cfg.encoder = encoder.map(Path::to_path_buf);
    let (encoder, tokenizer, source, encoder_hub) = start_encoder(&gpu, &cfg, docs.iter().flat_map(|d| d.sents.iter().flatten().map(String::as_str)))?;
    let hc = cfg.head_config(encoder.config.hidden_size, rels.len());
    let heads = Heads::random(&gpu, hc.clone(), cfg.seed)?;
    println!(
        "encoder: {} ({} layers, hidden {}); heads: E {}, D {}, {} inference layers, K = {}; {} relation classes",
        cfg.encoder.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "tiny, random".into()),
        encoder.config.num_hidden_layers,
        encoder.config.hidden_size,
        hc.emb,
        hc.width,
        hc.layers,
        hc.iterations,
        rels.len()
    );
    let exs = examples(&docs, &tokenizer, rels.len(), cfg.max_ids)?;
    let train_docs = &docs[..TRAIN_DOCS];
    let train_ex = &exs[..TRAIN_DOCS];
    println!("training on {} documents ({} entity pairs, {} facts): stage 1 for {} epochs, stage 2 for {}", TRAIN_DOCS, train_ex.iter().map(|e| e.pairs.len()).sum::<usize>(), train_docs.iter().map(|d| d.facts.len()).sum::<usize>(), cfg.stage1_epochs, cfg.stage2_epochs);
    let model = Model { gpu: gpu.clone(), encoder, heads };
    let mut sidecar = Sidecar {
        encoder: model.encoder.config.clone(),
        heads: hc,
        tokenizer: source,
        relations: rels.codes.clone(),
        relation_names: rels.names.clone(),
        step: 0,
        best_score: None,
        note: format!("docre demo, preset {}", cfg.preset),
        progress: None,
        frozen_encoder: cfg.freeze_encoder,
        encoder_hub,
        kernel_choices: Default::default(),
        files: Default::default(),
        init_seed: Some(cfg.seed),
    };
    let outputs = RunOutputs { dir: out_dir.to_path_buf(), dev: Some((train_docs.to_vec(), train_ex.to_vec())), tokenizer: tokenizer.fingerprint(), progress: true, stop_after_epochs: None };
    train(&model, &mut sidecar, &cfg, train_ex, &outputs, None)?;

    let (base, full, preds) = evaluate(&model, train_docs, train_ex, 4, None, None)?;
    println!("on the training documents: base module F1 {:.3} (P {:.3} R {:.3}); full model F1 {:.3} (P {:.3} R {:.3}; intra {:.3}, inter {:.3})", base.f1, base.precision, base.recall, full.f1, full.precision, full.recall, full.intra_f1, full.inter_f1);
    let unseen = &docs[TRAIN_DOCS..];
    let (ubase, ufull, _) = evaluate(&model, unseen, &exs[TRAIN_DOCS..], 4, None, None)?;
    println!("on {} unseen documents: base F1 {:.3}, full F1 {:.3} (four training documents teach little beyond them)", unseen.len(), ubase.f1, ufull.f1);
    println!("predicted triples of {:?}:", train_docs[0].title);
    let scored = preds.full_scored(train_ex);
    for line in listing(&train_docs[..1], &scored[..1], &rels).lines().skip(1).take(12) {
        println!("  {line}");
    }
    write_output(out_dir, "result.json", &result_json(train_docs, &scored, &rels))?;
    write_output(out_dir, "predictions.txt", &listing(train_docs, &scored, &rels))?;
    super::plot::training_curves(&out_dir.join("metrics.jsonl"), &out_dir.join("curves.png"))?;
    println!("wrote {}/{{best,last}}/ (checkpoints), metrics.jsonl, curves.png, result.json, predictions.txt in {:.0} s", out_dir.display(), t0.elapsed().as_secs_f64());
    Ok(())
}
