//! The end-to-end part of the self-test: the `tiny` model on the bundled demo documents, trained
//! for a few stage-1 and stage-2 steps (encoder trained, dropout on), twice from the same seed.
//! Both runs must give the same losses and parameters bit for bit, and the steps must change the
//! parameters and keep the losses finite.

use super::harness::{ensure, Check, Checked};
use crate::data::WordPieceTokenizer;
use crate::gpu::Gpu;
use crate::model::heads::Heads;
use crate::model::Bert;
use crate::model::{Batch, Model};
use crate::train::trainer::{Stage, Trainer};
use crate::data::sample::{documents, relations, TRAIN_DOCS};
use crate::train::preset::preset;
use crate::data::format::examples;

pub(super) fn check() -> Check {
    Check::new("training", "tiny model, stages 1 and 2, run twice", |g| Box::pin(std::future::ready(deterministic_training(g))))
}

/// Losses of every step and every parameter's bits after the steps.
fn train_tiny(gpu: &Gpu) -> crate::Result<(Vec<u64>, Vec<Vec<u32>>, Vec<Vec<u32>>)> {
    let rels = relations();
    let docs = documents(&rels)?;
    let cfg = preset("tiny")?;
    let tok = WordPieceTokenizer::word_level(docs.iter().flat_map(|d| d.sents.iter().flatten().map(String::as_str)));
    let encoder = Bert::random(gpu, cfg.tiny_encoder(tok.vocab_size()), cfg.seed)?;
    let heads = Heads::random(gpu, cfg.head_config(encoder.config.hidden_size, rels.len()), cfg.seed)?;
    let exs = examples(&docs[..TRAIN_DOCS], &tok, rels.len(), cfg.max_ids)?;
    let model = Model { gpu: gpu.clone(), encoder, heads };
    let bits = |m: &Model| -> crate::Result<Vec<Vec<u32>>> {
        m.encoder.params().iter().chain(m.heads.params.tensors().iter()).map(|t| Ok(t.read_f32(gpu)?.iter().map(|v| v.to_bits()).collect())).collect()
    };
    let before = bits(&model)?;
    let mut rng = crate::rng::Rng::new(cfg.seed);
    let mut losses = Vec::new();
    let items: Vec<(usize, &crate::data::features::Example)> = exs.iter().enumerate().collect();
    let batches: Vec<Batch> = items.chunks(2).map(Batch::new).collect();
    for (stage, hyper, steps) in [(Stage::One, &cfg.stage1, 3u64), (Stage::Two, &cfg.stage2, 2)] {
        let mut trainer = Trainer::new(stage, hyper.clone(), false, 10);
        for s in 0..steps {
            let l = trainer.train_step(&model, &batches[s as usize % batches.len()], s, &mut rng, None)?;
            losses.extend(l.iter().map(|(_, v)| v.to_bits()));
        }
    }
    Ok((losses, before, bits(&model)?))
}

fn deterministic_training(gpu: &Gpu) -> Checked {
    let (la, before, a) = train_tiny(gpu)?;
    let (lb, _, b) = train_tiny(gpu)?;
    ensure(la.iter().all(|&l| f64::from_bits(l).is_finite()), || format!("a loss is not finite: {:?}", la.iter().map(|&l| f64::from_bits(l)).collect::<Vec<_>>()))?;
    ensure(a != before, || "the training steps left every parameter unchanged".into())?;
    ensure(la == lb, || format!("the two runs' losses differ: {:?} vs {:?}", la.iter().map(|&l| f64::from_bits(l)).collect::<Vec<_>>(), lb.iter().map(|&l| f64::from_bits(l)).collect::<Vec<_>>()))?;
    let differing = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    ensure(differing == 0, || format!("{differing} parameter tensors differ between the two runs"))
}
