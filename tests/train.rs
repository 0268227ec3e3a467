//! Training end to end on the bundled demo documents with the `tiny` preset: the frozen-encoder
//! cache equals the live frozen encoder and its disk store recomputes exactly what changed, a
//! checkpoint round-trips, a non-finite loss stops training with the step named, and the model
//! overfits four documents (train F1 > 0.9 after stage 1 and after stage 2).

mod common;

use common::gpu;
use common::tiny::setup;
use docre::gpu::Recorder;
use docre::model::checkpoint;
use docre::eval::threshold::candidates;
use docre::model::heads::batch::HeadBatch;
use docre::model::heads::Heads;
use docre::model::Pass;
use docre::model::encoder_cache::{CacheStats, EncoderCache, EncoderStore};
use docre::model::Batch;
use docre::train::trainer::{Stage, Trainer};
use docre::train::preset::preset;
use docre::eval::controls::evaluate;
use docre::workflow::run::{train, RunOutputs};

#[test]
fn frozen_encoder_cache_gives_the_live_gradients() {
    let s = setup();
    let g = gpu();
    let items: Vec<(usize, &docre::data::features::Example)> = s.exs.iter().enumerate().take(2).collect();
    let batch = Batch::new(&items);
    let heads_n = s.model.encoder.config.num_attention_heads;
    let mut rec = Recorder::new(&g);
    let out = s.model.encode(&mut rec, &batch, Pass::eval(), None).unwrap();
    let live = s.model.heads.stage1(&mut rec, &out.heads_batch, &out.hidden, &out.attention, &batch.gold).unwrap();
    rec.finish().unwrap();
    let cache = EncoderCache::build(&s.model.gpu, &s.model.encoder, &s.exs, None, |_| {}).unwrap().0;
    let (x, a) = cache.inputs(&g, &batch).unwrap();
    let hb = HeadBatch::new_compact(&g, batch.input.clone(), batch.tokens.len(), heads_n).unwrap();
    let mut rec = Recorder::new(&g);
    let cached = s.model.heads.stage1(&mut rec, &hb, &x, &a, &batch.gold).unwrap();
    rec.finish().unwrap();
    assert_eq!(live.losses.total(&g).unwrap(), cached.losses.total(&g).unwrap());
    let mut compared = 0;
    for (i, name) in s.model.heads.params.names().iter().enumerate() {
        if let Some(t) = live.grads.get(i) {
            let (l, c) = (t.read_f32(&g).unwrap(), cached.grads.get(i).unwrap().read_f32(&g).unwrap());
            let worst = l.iter().zip(&c).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            let scale = l.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(worst <= 1e-6 * scale.max(1.0), "{name}: cached and live gradients differ by {worst}");
            compared += 1;
        }
    }
    assert_eq!(compared, 9, "every base-module parameter has a gradient");
}

#[test]
fn non_finite_loss_stops_with_the_step_named() {
    let s = setup();
    let g = gpu();
    let id = s.model.heads.params.id("base.classifier.weight");
    let t = &s.model.heads.params.tensors()[id];
    t.write_f32(&g, &vec![f32::NAN; t.numel()]).unwrap();
    let items: Vec<(usize, &docre::data::features::Example)> = s.exs.iter().enumerate().take(1).collect();
    let mut trainer = Trainer::new(Stage::One, s.cfg.stage1.clone(), false, 10);
    let e = trainer.train_step(&s.model, &Batch::new(&items), 1, &mut docre::rng::Rng::new(1), None).unwrap_err().to_string();
    assert!(e.contains("step 1") && e.contains("NaN"), "{e}");
    assert_eq!(trainer.step, 0);
}

#[test]
fn tiny_model_overfits_four_documents_and_round_trips() {
    let mut s = setup();
    let dir = common::scratch("train");
    let dev = Some((s.docs.clone(), s.exs.clone()));
    let out = RunOutputs { dir: dir.clone(), dev, tokenizer: s.tokenizer, progress: false, stop_after_epochs: None };
    let mut cfg = s.cfg.clone();
    cfg.stage2_epochs = 0;
    train(&s.model, &mut s.sidecar, &cfg, &s.exs, &out, None).unwrap();
    let (base, _, _) = evaluate(&s.model, &s.docs, &s.exs, 4, None, None).unwrap();
    assert!(base.f1 > 0.9, "train F1 after stage 1: {base:?}");
    // Stage 1 leaves the inference module exactly as initialised, so what its log scores as the
    // full model is the untrained-module control, and says so.
    let fresh = Heads::random(&gpu(), s.model.heads.config.clone(), s.cfg.seed).unwrap();
    let infer = |h: &Heads| -> Vec<Vec<f32>> { h.params.names().iter().zip(h.params.tensors()).filter(|(n, _)| n.starts_with("infer.")).map(|(_, t)| t.read_f32(&gpu()).unwrap()).collect() };
    assert!(infer(&s.model.heads) == infer(&fresh), "stage 1 changed the inference module");
    let log = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let dev: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).filter(|v| v.get("dev_base_f1").is_some()).collect();
    assert!(!dev.is_empty() && dev.iter().all(|v| v.get("dev_untrained_module_f1").is_some() && v.get("dev_f1").is_none() && v.get("dev_base_tuned_f1").is_some()), "{log}");
    let mut cfg = s.cfg.clone();
    cfg.stage1_epochs = 0;
    train(&s.model, &mut s.sidecar, &cfg, &s.exs, &out, None).unwrap();
    let (base2, full, preds) = evaluate(&s.model, &s.docs, &s.exs, 4, None, None).unwrap();
    assert!(full.f1 > 0.9, "train F1 after stage 2: {full:?} (base module: {base2:?})");
    // The untrained control: the trained base module beside the initial inference module.
    let untrained = s.model.heads.with_untrained_inference(&gpu(), s.cfg.seed).unwrap();
    let base_of = |h: &Heads| -> Vec<Vec<f32>> { h.params.names().iter().zip(h.params.tensors()).filter(|(n, _)| !n.starts_with("infer.")).map(|(_, t)| t.read_f32(&gpu()).unwrap()).collect() };
    assert!(infer(&untrained) == infer(&fresh) && base_of(&untrained) == base_of(&s.model.heads));
    assert!(infer(&s.model.heads) != infer(&fresh), "stage 2 trained the inference module");
    // The host's decisions (from which tuned thresholds re-decide) are the GPU's get_label.
    let items: Vec<(usize, &docre::data::features::Example)> = s.exs.iter().enumerate().collect();
    let batch = Batch::new(&items);
    let mut rec = Recorder::new(&gpu());
    let (enc, _) = s.model.encoder.forward(&mut rec, &batch.tokens, Pass::eval()).unwrap();
    let hb = HeadBatch::new(&gpu(), batch.input.clone(), batch.tokens.len(), s.model.encoder.config.num_attention_heads).unwrap();
    let pred = s.model.heads.predict(&mut rec, &hb, &enc.hidden, &enc.attention).unwrap();
    rec.finish().unwrap();
    let classes = s.model.heads.config.classes;
    for (logits, labels) in pred.iterations.iter().map(|(l, y)| (l.read_f32(&gpu()).unwrap(), y.read_f32(&gpu()).unwrap())) {
        let host: Vec<(usize, usize)> = candidates(&logits, classes, s.model.heads.config.top_k).iter().filter(|c| c.margin > 0.0).map(|c| (c.pair, c.r)).collect();
        let device: Vec<(usize, usize)> = (0..labels.len()).filter(|&i| i % classes > 0 && labels[i] > 0.5).map(|i| (i / classes, i % classes)).collect();
        assert!(!device.is_empty());
        assert_eq!(host, device);
    }
    // The checkpoint written at the end predicts the same facts.
    let (loaded, side) = checkpoint::load(&gpu(), &dir.join("last")).unwrap();
    assert_eq!(side.relations, s.sidecar.relations);
    let again = docre::eval::predict::predict(&loaded, &s.exs, 4, None).unwrap();
    assert_eq!(again.full, preds.full);
    let _ = std::fs::remove_dir_all(&dir);
}

fn losses(dir: &std::path::Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|v| Some((v["step"].as_u64()?, v.get("loss")?.as_f64()?)))
        .collect()
}

#[test]
fn resumed_run_repeats_the_uninterrupted_losses_bit_for_bit() {
    let base = common::scratch("resume");
    let mut cfg = preset("tiny").unwrap();
    cfg.stage1_epochs = 2;
    cfg.stage2_epochs = 2;
    let run = |dir: &std::path::Path, stop: Option<usize>| {
        let mut s = setup();
        let out = RunOutputs { dir: dir.to_path_buf(), dev: None, tokenizer: s.tokenizer, progress: false, stop_after_epochs: stop };
        train(&s.model, &mut s.sidecar, &cfg, &s.exs, &out, None).unwrap();
        s
    };
    let whole = base.join("whole");
    run(&whole, None);
    let parts = base.join("parts");
    let s = run(&parts, Some(3)); // interrupted after stage 1 and one epoch of stage 2
    assert_eq!(losses(&parts).len(), 6);
    let last = parts.join("last");
    let (model, mut side) = checkpoint::load(&gpu(), &last).unwrap();
    let progress = side.progress.clone().expect("the checkpoint records its progress");
    assert_eq!((progress.stage, progress.epoch), (2, 1));
    // A process killed inside the next epoch has logged steps past its checkpoint and may have
    // torn its last line; the resumed run must log those steps once.
    use std::io::Write;
    let mut log = std::fs::OpenOptions::new().append(true).open(parts.join("metrics.jsonl")).unwrap();
    write!(log, "{}\n{{\"stage\":2,\"ep", serde_json::json!({"stage": 2, "epoch": 2, "step": progress.global_step + 1, "loss": 1.0})).unwrap();
    drop(log);
    let moments = checkpoint::load_moments(&gpu(), &last).unwrap().unwrap();
    let out = RunOutputs { dir: parts.clone(), dev: None, tokenizer: setup().tokenizer, progress: false, stop_after_epochs: None };
    train(&model, &mut side, &cfg, &s.exs, &out, Some((progress, moments))).unwrap();
    let (a, b) = (losses(&whole), losses(&parts));
    assert_eq!(a.len(), 8);
    assert_eq!(a.iter().map(|x| x.1.to_bits()).collect::<Vec<_>>(), b.iter().map(|x| x.1.to_bits()).collect::<Vec<_>>(), "losses differ: {a:?} vs {b:?}");
    let _ = std::fs::remove_dir_all(&base);
}

/// `best/` is what eval and predict load, and they report the full model: once stage 2 runs it
/// must select by the full model's score alone, even when every stage-2 score is below the base
/// module's best in stage 1 (here stage 2 learns nothing: its learning rates are 0).
#[test]
fn stage_two_keeps_its_own_best_below_stage_one_scores() {
    let dir = common::scratch("best");
    let mut s = setup();
    let mut cfg = s.cfg.clone();
    cfg.stage1_epochs = 3;
    cfg.stage2_epochs = 2;
    cfg.stage2.head_lr = 0.0;
    cfg.stage2.encoder_lr = 0.0;
    let out = RunOutputs { dir: dir.clone(), dev: Some((s.docs.clone(), s.exs.clone())), tokenizer: s.tokenizer, progress: false, stop_after_epochs: None };
    train(&s.model, &mut s.sidecar, &cfg, &s.exs, &out, None).unwrap();
    let dev: Vec<(u64, f64)> = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|v| Some((v["stage"].as_u64()?, if v["stage"] == 1 { v.get("dev_base_f1")?.as_f64()? } else { v.get("dev_ign_f1")?.as_f64()? })))
        .collect();
    let best_of = |stage| dev.iter().filter(|d| d.0 == stage).map(|d| d.1).fold(f64::NEG_INFINITY, f64::max);
    assert!(best_of(1) >= best_of(2), "the premise: stage 1's base module scores at least stage 2's full model ({dev:?})");
    let side: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("best/checkpoint.json")).unwrap()).unwrap();
    assert_eq!(side["progress"]["stage"], 2, "best/ is a stage-1 checkpoint: {dev:?}");
    assert_eq!(side["best_score"].as_f64().unwrap(), best_of(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn accumulated_step_uses_the_mean_gradient() {
    // The same batch twice, encoder frozen and head dropout off (each accumulated batch draws its
    // own masks): the mean gradient is the gradient, so one accumulated step must leave exactly
    // the parameters of one plain step.
    let g = gpu();
    let params_after = |accumulate: bool| {
        let mut s = setup();
        s.model.heads.config.head_dropout = 0.0;
        let items: Vec<(usize, &docre::data::features::Example)> = s.exs.iter().enumerate().take(2).collect();
        let batch = Batch::new(&items);
        let mut trainer = Trainer::new(Stage::One, s.cfg.stage1.clone(), true, 10);
        let mut rng = docre::rng::Rng::new(3);
        if accumulate {
            trainer.train_steps(&s.model, &[&batch, &batch], 9, &mut rng, None).unwrap();
        } else {
            trainer.train_step(&s.model, &batch, 9, &mut rng, None).unwrap();
        }
        s.model.heads.params.tensors().iter().map(|t| t.read_f32(&g).unwrap()).collect::<Vec<_>>()
    };
    let (a, b) = (params_after(false), params_after(true));
    assert!(a.iter().zip(&b).all(|(x, y)| x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())), "accumulated step differs");
    assert_ne!(a, setup().model.heads.params.tensors().iter().map(|t| t.read_f32(&g).unwrap()).collect::<Vec<_>>(), "the step changed nothing");
}

#[test]
fn stage2_on_the_encoder_cache_reuses_the_base_bilinear_output_bit_for_bit() {
    // Stage 2 with a frozen encoder: the trainer keeps each example's bilinear output after its
    // first step and skips the layer afterwards. Batches that mix kept and new examples, and the
    // kept rows split back per example, must give the losses and parameters of a trainer that
    // recomputes every time.
    let g = gpu();
    let run = |reuse: bool| {
        let s = setup();
        let cache = EncoderCache::build(&s.model.gpu, &s.model.encoder, &s.exs, None, |_| {}).unwrap().0;
        let mut trainer = Trainer::new(Stage::Two, s.cfg.stage2.clone(), true, 10);
        if !reuse {
            trainer.base_cache = None;
        }
        let pick = |ids: &[usize]| Batch::new(&ids.iter().map(|&i| (i, &s.exs[i])).collect::<Vec<_>>());
        let mut rng = docre::rng::Rng::new(5);
        let mut losses = Vec::new();
        for ids in [&[0usize, 1][..], &[1, 2], &[0, 1], &[2, 0]] {
            let terms = trainer.train_step(&s.model, &pick(ids), 7, &mut rng, Some(&cache)).unwrap();
            losses.extend(terms.iter().map(|t| t.1.to_bits()));
        }
        let kept = trainer.base_cache.as_ref().map_or(0, |k| k.len());
        (losses, s.model.heads.params.tensors().iter().map(|t| t.read_f32(&g).unwrap()).collect::<Vec<_>>(), kept)
    };
    let (with, without) = (run(true), run(false));
    assert_eq!(with.2, 3, "every example's bilinear output is kept");
    assert_eq!(with.0, without.0, "stage-2 losses differ when the bilinear output is reused");
    assert!(with.1 == without.1, "parameters differ when the bilinear output is reused");
}

#[test]
fn encoder_store_recomputes_exactly_what_changed_and_cached_prediction_is_live_prediction() {
    let s = setup();
    let g = gpu();
    let root = common::scratch("encoder-store");
    let _ = std::fs::remove_dir_all(&root);
    let store = EncoderStore::open(&root, &s.model.gpu, &s.model.encoder, s.tokenizer).unwrap();
    let n = s.exs.len();
    let (first, stats) = EncoderCache::build(&s.model.gpu, &s.model.encoder, &s.exs, Some(&store), |_| {}).unwrap();
    assert_eq!(stats, CacheStats { computed: n, loaded: 0 });
    let (again, stats) = EncoderCache::build(&s.model.gpu, &s.model.encoder, &s.exs, Some(&store), |_| {}).unwrap();
    assert_eq!(stats, CacheStats { computed: 0, loaded: n }, "a second build reads every document");
    for i in 0..n {
        assert_eq!(first.hidden(i), again.hidden(i), "document {i}: stored outputs differ from computed ones");
    }
    // Prediction from the cache is prediction through the live frozen encoder.
    let live = docre::eval::predict::predict(&s.model, &s.exs, 4, None).unwrap();
    let cached = docre::eval::predict::predict(&s.model, &s.exs, 4, Some(&again)).unwrap();
    assert_eq!((live.base, live.full), (cached.base, cached.full));

    // One edited document (one word replaced by another): only it is encoded again.
    let mut exs = s.exs.clone();
    let ids = &mut exs[1].ids;
    let w = (1..ids.len() - 1).find(|&k| ids[k] != s.sidecar.tokenizer.load().unwrap().marker && ids[k] != ids[k + 1]).unwrap();
    ids[w] = ids[w + 1];
    let (edited, stats) = EncoderCache::build(&s.model.gpu, &s.model.encoder, &exs, Some(&store), |_| {}).unwrap();
    assert_eq!(stats, CacheStats { computed: 1, loaded: n - 1 });
    assert_ne!(edited.hidden(1), first.hidden(1), "the edited document kept its old outputs");
    assert_eq!(edited.hidden(1), EncoderCache::build(&s.model.gpu, &s.model.encoder, &exs[1..2], None, |_| {}).unwrap().0.hidden(0), "the edited document's outputs are not the live ones");

    // One changed encoder weight: a different store, every document encoded again.
    let p = &s.model.encoder.params()[0];
    let mut v = p.read_f32(&g).unwrap();
    v[0] += 0.5;
    p.write_f32(&g, &v).unwrap();
    let store2 = EncoderStore::open(&root, &s.model.gpu, &s.model.encoder, s.tokenizer).unwrap();
    assert_ne!(store2.dir(), store.dir());
    let (_, stats) = EncoderCache::build(&s.model.gpu, &s.model.encoder, &s.exs, Some(&store2), |_| {}).unwrap();
    assert_eq!(stats, CacheStats { computed: n, loaded: 0 }, "a changed weight must not read the old entries");
    // Another tokenizer: another store too.
    let mut other = s.tokenizer;
    other[0] ^= 1;
    assert_ne!(EncoderStore::open(&root, &s.model.gpu, &s.model.encoder, other).unwrap().dir(), store2.dir());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_checkpoint_with_a_nan_weight_is_refused_naming_the_tensor() {
    let s = setup();
    let g = gpu();
    let dir = common::scratch("nan");
    let t = s.model.heads.params.get("infer.head.classifier.weight");
    let mut v = t.read_f32(&g).unwrap();
    v[3] = f32::NAN;
    t.write_f32(&g, &v).unwrap();
    checkpoint::save(&dir, &s.model, &s.sidecar, None).unwrap();
    let e = checkpoint::load(&g, &dir).err().expect("a NaN weight must be refused").to_string();
    assert!(e.contains("infer.head.classifier.weight") && e.contains("index 3") && e.contains("model.safetensors"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_checkpoint_records_its_kernel_choices_and_refuses_unknown_ones() {
    let s = setup();
    let g = gpu();
    let dir = common::scratch("choices");
    // Any GEMM on the shared device resolves at least one shape class.
    let exs: Vec<_> = s.exs.iter().take(1).cloned().collect();
    docre::eval::predict::predict(&s.model, &exs, 1, None).unwrap();
    checkpoint::save(&dir, &s.model, &s.sidecar, None).unwrap();
    let path = dir.join("checkpoint.json");
    let side: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let recorded = side["kernel_choices"].as_object().expect("kernel_choices recorded");
    assert!(recorded.keys().any(|c| c.starts_with("matmul ")), "{recorded:?}");
    for (class, v) in recorded {
        assert_eq!(g.choices().get(class).map(String::as_str), v.as_str(), "{class}");
    }
    let (_, loaded) = checkpoint::load(&g, &dir).unwrap();
    assert_eq!(&loaded.kernel_choices, &g.choices().into_iter().filter(|(c, _)| recorded.contains_key(c)).collect());
    let class = recorded.keys().next().unwrap().clone();
    let mut bad = side.clone();
    bad["kernel_choices"][&class] = "fastest".into();
    std::fs::write(&path, serde_json::to_string(&bad).unwrap()).unwrap();
    let e = checkpoint::load(&g, &dir).err().expect("an unknown variant must be refused").to_string();
    assert!(e.contains("checkpoint.json") && e.contains("kernel_choices") && e.contains(&class) && e.contains("fastest"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stage_two_starts_from_stage_one_best_when_asked() {
    // The base head is frozen in stage 2, so stage 2's base-module dev F1 is that of the state
    // it started from: stage 1's last epoch by default, its best epoch with stage2_from = best.
    let dev_base = |dir: &std::path::Path| -> Vec<(u64, f64)> {
        std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).filter_map(|v| Some((v["stage"].as_u64()?, v.get("dev_base_f1")?.as_f64()?))).collect()
    };
    let mut results = Vec::new();
    for from in [docre::train::preset::Stage2From::Last, docre::train::preset::Stage2From::Best] {
        let mut s = setup();
        let dir = common::scratch(&format!("stage2-from-{from:?}"));
        let _ = std::fs::remove_dir_all(&dir);
        let mut cfg = s.cfg.clone();
        // A high learning rate makes stage 1's dev score move from epoch to epoch.
        (cfg.stage1_epochs, cfg.stage2_epochs, cfg.stage2_from, cfg.stage1.head_lr) = (20, 1, from, 2e-2);
        let out = RunOutputs { dir: dir.clone(), dev: Some((s.docs.clone(), s.exs.clone())), tokenizer: s.tokenizer, progress: false, stop_after_epochs: None };
        train(&s.model, &mut s.sidecar, &cfg, &s.exs, &out, None).unwrap();
        results.push(dev_base(&dir));
        let log = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
        assert_eq!(log.contains("\"stage2_from\":\"best\""), from == docre::train::preset::Stage2From::Best, "{log}");
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert_ne!(results[0].iter().find(|r| r.0 == 2), results[1].iter().find(|r| r.0 == 2), "the two starts must differ for this test to tell them apart");
    for (from, r) in ["last", "best"].iter().zip(&results) {
        let stage1: Vec<f64> = r.iter().filter(|(s, _)| *s == 1).map(|x| x.1).collect();
        let stage2 = r.iter().find(|(s, _)| *s == 2).expect("stage 2 evaluated").1;
        // best/ keeps the first epoch that reached the best score.
        let want = if *from == "last" { *stage1.last().unwrap() } else { stage1.iter().copied().fold(f64::NEG_INFINITY, f64::max) };
        assert_eq!(stage2, want, "stage2_from = {from}: stage 2's base F1 {stage2}, stage 1's per epoch {stage1:?}");
    }
}
