//! The whole head stack (base module, inference module, predictor, both objectives, test loop)
//! on tiny random dimensions against the f64 CPU reference (src/model/heads/reference.rs):
//! outputs and losses directly, every parameter's gradient and the encoder-output gradients
//! against central finite differences of the reference losses. Covered: ECA with the gated fusion
//! and no dropout (the golden fixtures' setting); `dense` + `no_fusion` with head dropout and
//! without the contrastive term; ECA with head dropout and noise on predicted labels.

mod common;

use std::collections::HashMap;

use common::{download, gpu, upload, Rng};
use docre::eval::test_loop::{self, LoopWork};
use docre::gpu::Recorder;
use docre::model::heads::base::BaseNeeds;
use docre::model::heads::batch::{HeadBatch, HeadInput};
use docre::model::config::{HeadConfig, TestOutput};
use docre::model::heads::{is_buffer, Heads, Stage2Input};
use docre::train::sampling::Noise;
use docre::model::heads::reference as href;
use docre::ops::eca::Attention;
use docre::ops::reference as r;

const HEADS: usize = 2;
const LEN: usize = 12;

/// One configuration under test.
#[derive(Clone, Copy)]
struct Variant {
    attention: Attention,
    fusion: bool,
    dropout: f64,
    contrastive: bool,
    noise: Noise,
}

fn config(v: Variant) -> HeadConfig {
    let Variant { attention, fusion, dropout, contrastive, .. } = v;
    HeadConfig {
        hidden: 8,
        emb: 8,
        block: 4,
        classes: 4,
        width: 8,
        layers: 2,
        eca_heads: 4,
        ffn_inner: 16,
        iterations: 2,
        top_k: 2,
        attention,
        fusion,
        test_output: TestOutput::Sum,
        ln_eps: 1e-12,
        bn_eps: 1e-5,
        bn_momentum: 0.1,
        head_dropout: dropout,
        contrastive,
    }
}

struct Case {
    input: HeadInput,
    x: Vec<f64>,
    a: Vec<f64>,
    gold: Vec<f32>,
}

/// Two documents (3 and 4 entities, lengths 9 and 12); A rows are softmaxes over each
/// document's own tokens, zero elsewhere, as an encoder produces.
fn case(rng: &mut Rng, c: &HeadConfig) -> Case {
    documents(rng, c, vec![9, LEN], vec![3, 4])
}

/// Documents of these lengths (at most LEN) and entity counts, every ordered pair of each.
fn documents(rng: &mut Rng, c: &HeadConfig, doc_len: Vec<usize>, entity_counts: Vec<usize>) -> Case {
    let b = doc_len.len();
    let (mut mention_start, mut mention_entity) = (Vec::new(), Vec::new());
    let mut e = 0;
    for (b, &n) in entity_counts.iter().enumerate() {
        for _ in 0..n {
            for _ in 0..1 + rng.below(2) {
                mention_start.push(1 + rng.below(doc_len[b] - 2));
                mention_entity.push(e);
            }
            e += 1;
        }
    }
    let mut pairs = Vec::new();
    for (b, &n) in entity_counts.iter().enumerate() {
        for s in 0..n {
            for o in 0..n {
                if s != o {
                    pairs.push((b, s, o));
                }
            }
        }
    }
    let x = rng.vec(b * LEN * c.hidden);
    let mut a = vec![0.0; b * HEADS * LEN * LEN];
    for (b, &l) in doc_len.iter().enumerate() {
        for h in 0..HEADS {
            for q in 0..l {
                let row: Vec<f64> = (0..l).map(|_| 2.0 * rng.uniform(-1.0, 1.0)).collect();
                let p = r::softmax(&row, l, None, 1.0);
                for k in 0..l {
                    a[((b * HEADS + h) * LEN + q) * LEN + k] = p[k] as f32 as f64;
                }
            }
        }
    }
    let mut gold = vec![0.0f32; pairs.len() * c.classes];
    for i in 0..pairs.len() {
        let row = &mut gold[i * c.classes..(i + 1) * c.classes];
        match rng.below(3) {
            0 => row[0] = 1.0,
            _ => {
                row[1 + rng.below(c.classes - 1)] = 1.0;
                if rng.below(3) == 0 {
                    row[1 + rng.below(c.classes - 1)] = 1.0;
                }
            }
        }
    }
    Case { input: HeadInput { doc_len, entity_counts, mention_start, mention_entity, pairs }, x, a, gold }
}

fn host_params(heads: &Heads) -> HashMap<String, Vec<f64>> {
    let g = gpu();
    heads.params.names().iter().zip(heads.params.tensors()).map(|(n, t)| (n.clone(), download(&g, t))).collect()
}

fn check_fd(what: &str, got: &[f64], picks: &[usize], f: &mut dyn FnMut(usize, f64) -> f64) {
    let scale = got.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let eps = 1e-6;
    for &i in picks {
        let fd = (f(i, eps) - f(i, -eps)) / (2.0 * eps);
        let tol = 2e-4 * scale + 2e-3 * fd.abs() + 1e-5;
        assert!((got[i] - fd).abs() <= tol, "{what}[{i}]: GPU gradient {} vs finite difference {fd} (tolerance {tol:e}, max |grad| {scale:e})", got[i]);
    }
}

fn picks(rng: &mut Rng, n: usize, k: usize) -> Vec<usize> {
    (0..k).map(|_| rng.below(n)).collect()
}

fn run(v: Variant, seed: u64) {
    let g = gpu();
    let c = config(v);
    let fusion = v.fusion;
    // The training steps' dropout (None at p = 0); the test loop runs without.
    let drop = Heads::random(&g, c.clone(), seed).unwrap().dropout(seed);
    assert_eq!(drop.is_some(), v.dropout > 0.0);
    let mut rng = Rng::new(seed);
    let cs = case(&mut rng, &c);
    let heads = Heads::random(&g, c.clone(), seed).unwrap();
    let mut p = host_params(&heads);
    let hb = HeadBatch::new(&g, cs.input.clone(), LEN, HEADS).unwrap();
    let xt = upload(&g, "X", &[2, LEN, c.hidden], &cs.x);
    let at = upload(&g, "A", &[2, HEADS, LEN, LEN], &cs.a);

    // Forward: base logits and the test loop against the reference.
    let mut rec = Recorder::new(&g);
    let pred = heads.predict(&mut rec, &hb, &xt, &at).unwrap();
    rec.finish().unwrap();
    let (base_logits, features) = href::base(&p, &c, &cs.input, &cs.x, &cs.a, HEADS, LEN, None);
    common::assert_close("base logits", &download(&g, &pred.iterations[0].0), &base_logits, 1e-5, 1e-4);
    let f0 = r::linear(&features, &p["infer.reduce.weight"], None, features.len() / c.emb, c.emb, c.width);
    let coords = href::coords(&cs.input);
    let mut s = base_logits.clone();
    for k in 1..=c.iterations {
        let labels: Vec<f64> = s.chunks(c.classes).flat_map(|row| r::get_label(row, c.top_k)).collect();
        assert_eq!(download(&g, &pred.iterations[k - 1].1), labels, "labels before iteration {k}");
        let r0 = r::matmul(&labels, &p["infer.relation_embedding"], labels.len() / c.classes, c.classes, c.width);
        let (logits, _) = href::module(&p, &c, &coords, &f0, &r0, None);
        s = s.iter().zip(&logits).map(|(a, b)| a + b).collect();
        common::assert_close(&format!("test logits after iteration {k}"), &download(&g, &pred.iterations[k].0), &s, 1e-4, 1e-4);
    }

    // Stage 1: loss and every base gradient, X and A.
    let mut rec = Recorder::new(&g);
    let step = heads.stage1_with(&mut rec, &hb, &xt, &at, &cs.gold, true, drop).unwrap();
    rec.finish().unwrap();
    let loss1 = |p: &HashMap<String, Vec<f64>>, x: &[f64], a: &[f64]| href::stage1_loss(p, &c, &cs.input, x, a, HEADS, LEN, &cs.gold, drop);
    let want = loss1(&p, &cs.x, &cs.a);
    let got = step.losses.total(&g).unwrap();
    assert!((got - want).abs() <= 1e-4 * want.abs(), "stage-1 loss {got} vs reference {want}");
    if drop.is_some() {
        let plain = href::stage1_loss(&p, &c, &cs.input, &cs.x, &cs.a, HEADS, LEN, &cs.gold, None);
        assert!((plain - want).abs() > 1e-6 * want.abs(), "dropout left the stage-1 loss unchanged ({want})");
    }
    let names: Vec<String> = heads.params.names().to_vec();
    for (id, name) in names.iter().enumerate() {
        let Some(t) = step.grads.get(id) else { continue };
        assert!(name.starts_with("base."), "stage 1 produced a gradient for {name}");
        let grad = download(&g, t);
        let pk = picks(&mut rng, grad.len(), 3);
        check_fd(&format!("stage 1 {name}"), &grad, &pk, &mut |i, e| {
            let mut q = p.clone();
            q.get_mut(name).unwrap()[i] += e;
            loss1(&q, &cs.x, &cs.a)
        });
    }
    let dx = download(&g, step.dx.as_ref().unwrap());
    let valid_x: Vec<usize> = (0..dx.len()).filter(|&i| (i / c.hidden) % LEN < cs.input.doc_len[i / (LEN * c.hidden)]).collect();
    let pk: Vec<usize> = picks(&mut rng, valid_x.len(), 6).into_iter().map(|i| valid_x[i]).collect();
    check_fd("stage 1 X", &dx, &pk, &mut |i, e| {
        let mut x = cs.x.clone();
        x[i] += e;
        loss1(&p, &x, &cs.a)
    });
    let da = download(&g, step.da.as_ref().unwrap());
    // Rows of mention markers are the ones the loss reads.
    let marked: Vec<usize> = (0..da.len()).filter(|&i| da[i] != 0.0).collect();
    assert!(!marked.is_empty(), "no attention gradient at all");
    let pk: Vec<usize> = picks(&mut rng, marked.len(), 6).into_iter().map(|i| marked[i]).collect();
    check_fd("stage 1 A", &da, &pk, &mut |i, e| {
        let mut a = cs.a.clone();
        a[i] += e;
        loss1(&p, &cs.x, &a)
    });

    // Stage 2: loss and every trainable gradient (the swapped passes held constant), X and A.
    let s2 = Stage2Input::sample(&cs.gold, c.classes, v.noise, &mut docre::rng::Rng::new(seed));
    let heads = Heads::random(&g, c.clone(), seed).unwrap();
    let mut rec = Recorder::new(&g);
    let step = heads.stage2_with(&mut rec, &hb, &xt, &at, &s2, BaseNeeds::ALL, None, drop).unwrap();
    rec.finish().unwrap();
    let zswap = href::swapped(&p, &c, &cs.input, &cs.x, &cs.a, HEADS, LEN, &s2, drop);
    let loss2 = |p: &HashMap<String, Vec<f64>>, x: &[f64], a: &[f64]| href::stage2_loss(p, &c, &cs.input, x, a, HEADS, LEN, &s2, &zswap, drop);
    let want = loss2(&p, &cs.x, &cs.a);
    let got = step.losses.total(&g).unwrap();
    assert!((got - want).abs() <= 1e-4 * want.abs(), "stage-2 loss {got} vs reference {want}");
    let terms: Vec<&str> = step.losses.read(&g).unwrap().iter().map(|t| t.0).collect();
    assert_eq!(terms.contains(&"contrastive"), v.contrastive, "loss terms {terms:?}");
    assert_eq!(step.branches.iter().all(|b| b.predictor.is_some() && b.swapped.is_some()), v.contrastive, "predictor and swapped passes run exactly with the contrastive term");
    for (id, name) in names.iter().enumerate() {
        let untrained = is_buffer(name) || (!fusion && name.contains(".gate.")) || (!v.contrastive && name.contains(".predictor."));
        if untrained {
            assert!(step.grads.get(id).is_none(), "{name} is not trained in this configuration but got a gradient");
            continue;
        }
        let grad = download(&g, step.grads.get(id).unwrap_or_else(|| panic!("stage 2 gave no gradient for {name}")));
        let pk = picks(&mut rng, grad.len(), 2);
        check_fd(&format!("stage 2 {name}"), &grad, &pk, &mut |i, e| {
            let mut q = p.clone();
            q.get_mut(name).unwrap()[i] += e;
            loss2(&q, &cs.x, &cs.a)
        });
    }
    let dx = download(&g, step.dx.as_ref().unwrap());
    let pk: Vec<usize> = picks(&mut rng, valid_x.len(), 6).into_iter().map(|i| valid_x[i]).collect();
    check_fd("stage 2 X", &dx, &pk, &mut |i, e| {
        let mut x = cs.x.clone();
        x[i] += e;
        loss2(&p, &x, &cs.a)
    });
    let da = download(&g, step.da.as_ref().unwrap());
    let pk: Vec<usize> = picks(&mut rng, marked.len(), 6).into_iter().map(|i| marked[i]).collect();
    check_fd("stage 2 A", &da, &pk, &mut |i, e| {
        let mut a = cs.a.clone();
        a[i] += e;
        loss2(&p, &cs.x, &a)
    });

    // A frozen encoder and base head: the step forms no X/A gradients and gives the bilinear
    // weight's gradient as its squared norm only. Every formed gradient is bit-identical to the
    // full step's, and the squared norm matches ‖dW‖².
    let mut rec = Recorder::new(&g);
    let needs = BaseNeeds { inputs: false, bilinear_norm_only: true };
    let lean = heads.stage2_with(&mut rec, &hb, &xt, &at, &s2, needs, None, drop).unwrap();
    rec.finish().unwrap();
    // The same step given the bilinear output the first one left: the layer is skipped and
    // every loss term, gradient and squared norm is bit-identical.
    let mut rec = Recorder::new(&g);
    let reused = heads.stage2_with(&mut rec, &hb, &xt, &at, &s2, needs, lean.bilinear_output.as_ref(), drop).unwrap();
    rec.finish().unwrap();
    assert_eq!(lean.losses.read(&g).unwrap(), reused.losses.read(&g).unwrap(), "loss terms with the reused bilinear output");
    for (id, name) in names.iter().enumerate() {
        if let Some(a) = lean.grads.get(id) {
            assert_eq!(download(&g, a), download(&g, reused.grads.get(id).unwrap()), "{name}: gradient with the reused bilinear output");
        }
    }
    let sq = |s: &docre::model::heads::Step| -> Vec<Vec<f64>> { s.grads.norm_sq().iter().map(|t| download(&g, t)).collect() };
    assert_eq!(sq(&lean), sq(&reused), "squared norms with the reused bilinear output");
    let mut rec = Recorder::new(&g);
    let wrong = docre::gpu::Tensor::zeros(&g, "wrong", &[hb.pairs + 1, heads.config.emb]).unwrap();
    assert!(heads.stage2_with(&mut rec, &hb, &xt, &at, &s2, needs, Some(&wrong), drop).is_err(), "a cached bilinear output of the wrong shape was accepted");
    assert!(lean.dx.is_none() && lean.da.is_none(), "a frozen encoder needs no X/A gradients");
    let wid = names.iter().position(|n| n == "base.bilinear.weight").unwrap();
    assert!(lean.grads.get(wid).is_none(), "the frozen bilinear weight's gradient was formed");
    for (id, name) in names.iter().enumerate() {
        if id != wid {
            if let (Some(a), Some(b)) = (step.grads.get(id), lean.grads.get(id)) {
                assert_eq!(download(&g, a), download(&g, b), "{name}: the lean step's gradient differs");
            }
        }
    }
    let full: f64 = download(&g, step.grads.get(wid).unwrap()).iter().map(|v| v * v).sum();
    let sq: f64 = lean.grads.norm_sq().iter().map(|t| download(&g, t)[0]).sum();
    assert!((sq - full).abs() <= 1e-5 * full.max(1e-12), "‖dW‖² {sq} from Gram matrices vs {full} from dW");
    p.clear();
}

#[test]
fn eca_with_fusion_matches_reference_and_finite_differences() {
    run(Variant { attention: Attention::Eca, fusion: true, dropout: 0.0, contrastive: true, noise: Noise::Gold }, 3);
}

#[test]
fn dense_without_fusion_or_contrastive_term_with_dropout_matches_reference_and_finite_differences() {
    run(Variant { attention: Attention::Dense, fusion: false, dropout: 0.2, contrastive: false, noise: Noise::Gold }, 4);
}

#[test]
fn eca_with_dropout_and_noisy_predictions_matches_reference_and_finite_differences() {
    run(Variant { attention: Attention::Eca, fusion: true, dropout: 0.2, contrastive: true, noise: Noise::Predictions }, 5);
}

/// How DocRE-II's PyTorch modules initialise each head parameter (its code calls no init
/// function but xavier_uniform_ on the relation embedding, so everything else is PyTorch's
/// default for its layer type), stated here from the reference's layer list rather than from
/// docre's parameter table.
#[derive(Debug, PartialEq)]
enum Rule {
    /// nn.Linear weight or bias: U(±1/√fan_in).
    Linear { fan_in: usize },
    /// nn.LayerNorm / nn.BatchNorm1d affine weight, and BatchNorm's running variance.
    Ones,
    /// Their bias, and BatchNorm's running mean.
    Zeros,
    /// xavier_uniform_: U(±√(6 / (fan_in + fan_out))).
    Xavier { fan_in: usize, fan_out: usize },
}

fn reference_rule(name: &str, c: &HeadConfig) -> Rule {
    let (d, e, k, w, f, cl) = (c.hidden, c.emb, c.block, c.width, c.ffn_inner, c.classes);
    let norm = ["base.classifier.norm.", "infer.head.norm.", "infer.predictor.bn.", "combine_norm.", "_ffn.norm."].iter().any(|m| name.contains(m));
    if name == "infer.relation_embedding" {
        return Rule::Xavier { fan_in: w, fan_out: cl };
    }
    if norm {
        return if name.ends_with(".weight") || name.ends_with("running_var") { Rule::Ones } else { Rule::Zeros };
    }
    let module = name.trim_end_matches(".weight").trim_end_matches(".bias");
    let fan_in = match module {
        "base.head_proj" | "base.tail_proj" => 3 * d, // the entity, its context and [CLS]
        "base.bilinear" => e * k,
        "base.classifier" | "infer.reduce" => e,
        m if m.ends_with(".combine") || m.ends_with(".gate") || m == "infer.head.proj" => 2 * w,
        m if m.ends_with(".ffn.down") || m.ends_with("_ffn.down") => f,
        m if m.ends_with(".query") || m.ends_with(".key") || m.ends_with(".value") || m.ends_with(".output") || m.ends_with("_ffn.up") => w,
        "infer.head.classifier" | "infer.predictor.up" | "infer.predictor.down" => w,
        m => panic!("{m}: no layer of DocRE-II's heads is known by this name; state its initialisation here"),
    };
    Rule::Linear { fan_in }
}

#[test]
fn fresh_heads_are_initialised_as_docre2s_pytorch_modules_are() {
    // The preset's shape at a small encoder width: every layer type, sizes large enough for
    // moments to mean something.
    let c = HeadConfig { hidden: 64, emb: 64, block: 16, classes: 97, width: 128, layers: 2, eca_heads: 4, ffn_inner: 256, iterations: 3, top_k: 4, attention: Attention::Eca, fusion: true, test_output: TestOutput::Sum, ln_eps: 1e-12, bn_eps: 1e-5, bn_momentum: 0.1, head_dropout: 0.1, contrastive: true };
    let g = gpu();
    let heads = Heads::random(&g, c.clone(), 66).unwrap();
    let mut checked = 0;
    for (name, t) in heads.params.names().iter().zip(heads.params.tensors()) {
        let x: Vec<f64> = t.read_f32(&g).unwrap().into_iter().map(f64::from).collect();
        let n = x.len() as f64;
        let bound = match reference_rule(name, &c) {
            Rule::Ones => {
                assert!(x.iter().all(|&v| v == 1.0), "{name}: not all ones");
                continue;
            }
            Rule::Zeros => {
                assert!(x.iter().all(|&v| v == 0.0), "{name}: not all zeros");
                continue;
            }
            Rule::Linear { fan_in } => 1.0 / (fan_in as f64).sqrt(),
            Rule::Xavier { fan_in, fan_out } => (6.0 / (fan_in + fan_out) as f64).sqrt(),
        };
        // Uniform on ±b: inside the bounds, reaching near them, mean 0 and variance b²/3 within
        // four standard errors (the sample variance of a uniform has relative sd √(0.8/n)).
        let max = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let mean = x.iter().sum::<f64>() / n;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        assert!(max <= bound * (1.0 + 1e-6), "{name}: |x| up to {max}, bound {bound}");
        assert!(max >= bound * 0.8, "{name}: |x| only up to {max} of bound {bound}: scale too small");
        assert!(mean.abs() <= 4.0 * bound / (3.0 * n).sqrt(), "{name}: mean {mean} for bound {bound}");
        let want = bound * bound / 3.0;
        assert!((var / want - 1.0).abs() <= 4.0 * (0.8 / n).sqrt(), "{name}: variance {var}, a uniform on ±{bound} has {want}");
        checked += 1;
    }
    // Every Linear weight and bias and the relation embedding were checked against their bounds.
    assert_eq!(checked, heads.params.names().iter().filter(|n| matches!(reference_rule(n, &c), Rule::Linear { .. } | Rule::Xavier { .. })).count());
    assert!(checked > 40, "{checked} tensors");
}

/// The loop `docre predict` runs (eval::test_loop) runs a pass only over the documents whose
/// labels changed since their last pass; its base and final logits must equal those of
/// `Heads::predict`, which runs every pass over every pair, bit for bit: with the running output
/// summed or the last pass's, ECA or dense. Over the seeds each setting must also have run a pass
/// over some documents only and left work out, or the comparison would not test the subsets.
#[test]
fn the_test_loop_passes_over_settled_documents_and_matches_every_pass_bit_for_bit() {
    let g = gpu();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    for (attention, output) in [(Attention::Eca, TestOutput::Sum), (Attention::Eca, TestOutput::Last), (Attention::Dense, TestOutput::Sum)] {
        let mut work = LoopWork::default();
        for seed in 0..6 {
            let mut c = config(Variant { attention, fusion: true, dropout: 0.0, contrastive: true, noise: Noise::Gold });
            c.iterations = 4;
            c.test_output = output;
            let mut rng = Rng::new(40 + seed);
            let cs = documents(&mut rng, &c, vec![9, LEN, 7, LEN, 10, 6], vec![3, 4, 2, 5, 3, 2]);
            let heads = Heads::random(&g, c.clone(), seed).unwrap();
            let hb = HeadBatch::new(&g, cs.input.clone(), LEN, HEADS).unwrap();
            let xt = upload(&g, "X", &[6, LEN, c.hidden], &cs.x);
            let at = upload(&g, "A", &[6, HEADS, LEN, LEN], &cs.a);
            let mut rec = Recorder::new(&g);
            let every = heads.predict(&mut rec, &hb, &xt, &at).unwrap();
            rec.finish().unwrap();
            let got = pollster::block_on(test_loop::run(&g, &heads, Recorder::new(&g), &hb, &xt, &at)).unwrap();
            let what = format!("{attention:?}, {output:?}, seed {seed}");
            assert_eq!(bits(&got.base_logits), bits(&every.iterations[0].0.read_f32(&g).unwrap()), "{what}: base logits");
            assert_eq!(bits(&got.full_logits), bits(&every.logits.read_f32(&g).unwrap()), "{what}: final logits ({:?})", got.work);
            work.absorb(got.work);
        }
        assert!(work.partial_passes > 0 && work.document_passes < work.document_passes_full, "{attention:?}, {output:?}: no pass ran a subset, or none was left out: {work:?}");
    }
}
