//! The encoder on a tiny random config (2 layers, hidden 32, 4 heads, windows of 16 tokens)
//! against the f64 CPU reference of the whole encoder: forward outputs directly, every
//! parameter's gradient against central finite differences of the reference's loss, with and
//! without dropout, with and without the two-window scheme.

mod common;

use common::{assert_close, download, gpu, upload, Rng};
use docre::gpu::Recorder;
use docre::model::encoder::bert::param_specs;
use docre::model::encoder::reference::encoder_forward;
use docre::model::config::Family;
use docre::model::{Bert, BertConfig, Pass, TokenBatch};

fn tiny_config() -> BertConfig {
    BertConfig {
        family: Family::Bert,
        pad_token_id: 0,
        vocab_size: 40,
        hidden_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 64,
        max_position_embeddings: 16,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        hidden_dropout_prob: 0.1,
        attention_probs_dropout_prob: 0.1,
    }
}

/// Random parameters (f32-representable, so GPU and reference start from the same values).
fn tiny_params(c: &BertConfig, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = Rng::new(seed);
    param_specs(c)
        .iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let v = rng.vec(n);
            if name.ends_with("LayerNorm.weight") {
                v.iter().map(|x| (1.0 + 0.2 * x) as f32 as f64).collect()
            } else if name.contains("embeddings") || name.ends_with("bias") {
                v.iter().map(|x| (0.5 * x) as f32 as f64).collect()
            } else {
                // ~1/sqrt(fan_in) so activations stay O(1) through the layers.
                let fan_in = shape[1] as f64;
                v.iter().map(|x| (1.7 * x / fan_in.sqrt()) as f32 as f64).collect()
            }
        })
        .collect()
}

fn batch(rng: &mut Rng, lens: &[usize], vocab: usize) -> TokenBatch {
    TokenBatch {
        docs: lens
            .iter()
            .map(|&l| {
                let mut d: Vec<u32> = (0..l).map(|_| 3 + rng.below(vocab - 3) as u32).collect();
                d[0] = 1; // [CLS]
                d[l - 1] = 2; // [SEP]
                d
            })
            .collect(),
    }
}

/// Loss seeds as the golden fixtures define them: hidden seeds on valid rows only, attention
/// seeds on the valid block only.
struct Seeds {
    hidden: Vec<f64>,
    attention: Vec<f64>,
}

fn seeds(rng: &mut Rng, c: &BertConfig, b: &TokenBatch) -> Seeds {
    let (n, l, d, h) = (b.docs.len(), b.len(), c.hidden_size, c.num_attention_heads);
    let mut hidden = rng.vec(n * l * d);
    let mut attention = rng.vec(n * h * l * l);
    for (i, doc) in b.docs.iter().enumerate() {
        for p in doc.len()..l {
            hidden[(i * l + p) * d..(i * l + p + 1) * d].fill(0.0);
        }
        for hh in 0..h {
            for p in 0..l {
                for q in 0..l {
                    if p >= doc.len() || q >= doc.len() {
                        attention[((i * h + hh) * l + p) * l + q] = 0.0;
                    }
                }
            }
        }
    }
    Seeds { hidden, attention }
}

fn loss(s: &Seeds, hidden: &[f64], attention: &[f64]) -> f64 {
    s.hidden.iter().zip(hidden).map(|(a, b)| a * b).sum::<f64>() + s.attention.iter().zip(attention).map(|(a, b)| a * b).sum::<f64>()
}

/// Positions that matter: valid rows of hidden, the valid block of attention.
fn masked(b: &TokenBatch, c: &BertConfig, hidden: &[f64], attention: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let (l, d, h) = (b.len(), c.hidden_size, c.num_attention_heads);
    let mut hv = Vec::new();
    let mut av = Vec::new();
    for (i, doc) in b.docs.iter().enumerate() {
        for p in 0..doc.len() {
            hv.extend_from_slice(&hidden[(i * l + p) * d..(i * l + p + 1) * d]);
        }
        for hh in 0..h {
            for p in 0..doc.len() {
                let row = ((i * h + hh) * l + p) * l;
                av.extend_from_slice(&attention[row..row + doc.len()]);
            }
        }
    }
    (hv, av)
}

fn forward_gpu(bert: &Bert, b: &TokenBatch, pass: Pass) -> (Vec<f64>, Vec<f64>) {
    let g = gpu();
    let mut rec = Recorder::new(&g);
    let (out, _) = bert.forward(&mut rec, b, pass).unwrap();
    rec.finish().unwrap();
    (download(&g, &out.hidden), download(&g, &out.attention))
}

/// A RoBERTa of the same sizes: positions from pad_token_id + 1 = 2 (window 16 of 18 rows) and
/// a first window ending in two `</s>`, so 29 ids is the longest two windows cover.
fn tiny_roberta() -> BertConfig {
    BertConfig { family: Family::Roberta, pad_token_id: 1, max_position_embeddings: 18, type_vocab_size: 1, layer_norm_eps: 1e-5, ..tiny_config() }
}

fn check_forward(c: BertConfig, lens: &[usize], dropout: Option<u64>) {
    let params = tiny_params(&c, 7);
    let host: Vec<Vec<f32>> = params.iter().map(|p| p.iter().map(|&x| x as f32).collect()).collect();
    let bert = Bert::from_host(&gpu(), c.clone(), &host).unwrap();
    let b = batch(&mut Rng::new(11), lens, c.vocab_size);
    let (h, a) = forward_gpu(&bert, &b, Pass { dropout, grad: false });
    let (rh, ra) = encoder_forward(&c, &params, &b, dropout).unwrap();
    let (h, a) = masked(&b, &c, &h, &a);
    let (rh, ra) = masked(&b, &c, &rh, &ra);
    assert_close("hidden", &h, &rh, 2e-5, 2e-5);
    assert_close("attention", &a, &ra, 2e-6, 2e-5);
}

#[test]
fn forward_matches_reference_in_one_window() {
    check_forward(tiny_config(), &[9, 5, 16], None);
}

#[test]
fn forward_matches_reference_with_two_windows() {
    // 24 and 30 (= 2·16 − 2, the longest two windows cover) are split; 11 fits one window.
    check_forward(tiny_config(), &[24, 11, 30], None);
}

#[test]
fn roberta_forward_matches_reference_in_one_and_two_windows() {
    assert_eq!((tiny_roberta().window(), tiny_roberta().max_ids()), (16, 29));
    check_forward(tiny_roberta(), &[9, 16], None);
    check_forward(tiny_roberta(), &[24, 11, 29], None);
}

/// The evaluation forward with the fused attention (`forward_mention_rows`) against the same
/// reference: hidden states, and the attention rows it keeps, on one window and on documents
/// split into two (whose rows are merged from both windows where they overlap). Skipped, saying
/// why, where the adapter cannot run the fused attention.
fn check_fused_rows(c: BertConfig, lens: &[usize]) {
    let g = gpu();
    if let Err(why) = docre::ops::attention::fused_lanes(&g, c.hidden_size, c.head_dim()) {
        eprintln!("skipped on this adapter: {why}");
        return;
    }
    let params = tiny_params(&c, 7);
    let host: Vec<Vec<f32>> = params.iter().map(|p| p.iter().map(|&x| x as f32).collect()).collect();
    let bert = Bert::from_host(&g, c.clone(), &host).unwrap();
    assert!(bert.fused_attention_runs(&g).unwrap());
    let b = batch(&mut Rng::new(11), lens, c.vocab_size);
    let (l, heads) = (b.len(), c.num_attention_heads);
    // First, last and middle tokens of each document, in no particular order, one twice.
    let mut picks: Vec<(usize, usize)> = Vec::new();
    for (i, doc) in b.docs.iter().enumerate().rev() {
        picks.extend([(i, doc.len() - 1), (i, 0), (i, doc.len() / 2), (i, doc.len() * 2 / 3)]);
    }
    picks.push(picks[1]);
    let rows: Vec<u32> = picks.iter().map(|&(i, p)| (i * l + p) as u32).collect();
    let mut rec = Recorder::new(&g);
    let out = bert.forward_mention_rows(&mut rec, &b, &rows).unwrap();
    rec.finish().unwrap();
    let (h, a) = (download(&g, &out.hidden), download(&g, &out.attention));
    assert_eq!(a.len(), rows.len() * heads * l, "one row of {l} per pick and head");
    let (rh, ra) = encoder_forward(&c, &params, &b, None).unwrap();
    let want: Vec<f64> = picks.iter().flat_map(|&(i, p)| (0..heads).flat_map(move |hh| (0..l).map(move |q| (i, hh, p, q)))).map(|(i, hh, p, q)| if q < b.docs[i].len() { ra[((i * heads + hh) * l + p) * l + q] } else { 0.0 }).collect();
    let (h, _) = masked(&b, &c, &h, &ra);
    let (rh, _) = masked(&b, &c, &rh, &ra);
    assert_close("hidden (fused attention)", &h, &rh, 2e-5, 2e-5);
    assert_close("attention rows (fused attention)", &a, &want, 2e-6, 2e-5);
}

#[test]
fn fused_attention_forward_matches_reference_in_one_and_two_windows() {
    check_fused_rows(tiny_config(), &[9, 5, 16]);
    check_fused_rows(tiny_config(), &[24, 11, 30]);
    check_fused_rows(tiny_roberta(), &[24, 11, 29]);
}

#[test]
fn dropout_forward_matches_reference() {
    check_forward(tiny_config(), &[9, 5], Some(42));
    check_forward(tiny_config(), &[24, 11], Some(43));
}

/// Every parameter's GPU gradient against central differences of the f64 reference loss at a
/// few elements per tensor, plus an exactly-zero check on an embedding row no token uses.
fn check_gradients(c: BertConfig, lens: &[usize], dropout: Option<u64>) {
    let mut params = tiny_params(&c, 5);
    let host: Vec<Vec<f32>> = params.iter().map(|p| p.iter().map(|&x| x as f32).collect()).collect();
    let g = gpu();
    let bert = Bert::from_host(&g, c.clone(), &host).unwrap();
    let mut rng = Rng::new(99);
    let b = batch(&mut rng, lens, c.vocab_size - 1); // id vocab-1 never occurs
    let s = seeds(&mut rng, &c, &b);
    let (n, l, h) = (b.docs.len(), b.len(), c.num_attention_heads);

    let mut rec = Recorder::new(&g);
    let (_, tape) = bert.forward(&mut rec, &b, Pass { dropout, grad: true }).unwrap();
    let dh = upload(&g, "d_hidden", &[n, l, c.hidden_size], &s.hidden);
    let da = upload(&g, "d_attention", &[n, h, l, l], &s.attention);
    let grads = bert.backward(&mut rec, tape.unwrap(), &dh, Some(&da)).unwrap();
    rec.finish().unwrap();

    let specs = param_specs(&c);
    let eps = 1e-5;
    for (t, (name, _)) in specs.iter().enumerate() {
        let got = download(&g, &grads[t]);
        let scale = got.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let mut picks: Vec<usize> = (0..3).map(|_| rng.below(got.len())).collect();
        if t == 0 {
            // Word embeddings: rows of tokens that occur, and the unused last row must be 0.
            picks = vec![b.docs[0][1] as usize * c.hidden_size + 3, b.docs[0][0] as usize * c.hidden_size + 7];
            let unused = (c.vocab_size - 1) * c.hidden_size;
            assert!(got[unused..].iter().all(|&v| v == 0.0), "{name}: an unused row has a nonzero gradient");
        }
        for i in picks {
            let orig = params[t][i];
            params[t][i] = orig + eps;
            let (ph, pa) = encoder_forward(&c, &params, &b, dropout).unwrap();
            params[t][i] = orig - eps;
            let (mh, ma) = encoder_forward(&c, &params, &b, dropout).unwrap();
            params[t][i] = orig;
            let fd = (loss(&s, &ph, &pa) - loss(&s, &mh, &ma)) / (2.0 * eps);
            // The absolute floor covers structurally zero gradients (key biases: softmax is
            // shift-invariant), where the GPU returns f32 round-off.
            let tol = 2e-4 * scale + 1e-3 * fd.abs() + 2e-6;
            assert!((got[i] - fd).abs() <= tol, "{name}[{i}]: GPU gradient {} vs finite difference {fd} (tolerance {tol:e}, max |grad| {scale:e})", got[i]);
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    check_gradients(tiny_config(), &[9, 5], None);
}

#[test]
fn gradients_match_finite_differences_with_windows_and_dropout() {
    check_gradients(tiny_config(), &[24, 11], Some(7));
}

#[test]
fn roberta_gradients_match_finite_differences_with_windows() {
    check_gradients(tiny_roberta(), &[24, 11], None);
}

#[test]
fn training_pass_is_deterministic_and_seeded() {
    let c = tiny_config();
    let host: Vec<Vec<f32>> = tiny_params(&c, 3).iter().map(|p| p.iter().map(|&x| x as f32).collect()).collect();
    let bert = Bert::from_host(&gpu(), c.clone(), &host).unwrap();
    let b = batch(&mut Rng::new(1), &[20, 7], c.vocab_size);
    let (h1, a1) = forward_gpu(&bert, &b, Pass::train(5));
    let (h2, a2) = forward_gpu(&bert, &b, Pass::train(5));
    let (h3, _) = forward_gpu(&bert, &b, Pass::train(6));
    let (h4, _) = forward_gpu(&bert, &b, Pass::eval());
    assert!(h1.iter().zip(&h2).all(|(x, y)| x.to_bits() == y.to_bits()) && a1 == a2, "same seed, different bits");
    assert!(h1 != h3, "a different seed gave the same dropout masks");
    assert!(h1 != h4, "dropout changed nothing in training mode");
}

#[test]
fn bad_inputs_are_errors() {
    let c = tiny_config();
    let host: Vec<Vec<f32>> = tiny_params(&c, 3).iter().map(|p| p.iter().map(|&x| x as f32).collect()).collect();
    let bert = Bert::from_host(&gpu(), c.clone(), &host).unwrap();
    let mut rec = Recorder::new(&gpu());
    let too_long = TokenBatch { docs: vec![vec![1; 31]] };
    let e = bert.forward(&mut rec, &too_long, Pass::eval()).err().expect("31 ids > 2·16 − 2 must fail").to_string();
    assert!(e.contains("document 0") && e.contains("31"), "{e}");
    let bad_id = TokenBatch { docs: vec![vec![1, 2], vec![1, 40, 2]] };
    let e = bert.forward(&mut rec, &bad_id, Pass::eval()).err().expect("id 40 is outside a 40-word vocabulary").to_string();
    assert!(e.contains("document 1") && e.contains("token 1"), "{e}");
}

/// Writes the tiny config as an HF checkpoint directory: `bert.`-prefixed names, F16 weights,
/// plus a pooler tensor the loader must ignore. `edit` may drop or reshape tensors.
fn write_checkpoint(dir: &std::path::Path, c: &BertConfig, params: &[Vec<f64>], edit: impl Fn(&str, Vec<usize>) -> Option<Vec<usize>>) {
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;
    std::fs::create_dir_all(dir).unwrap();
    let config = serde_json::json!({
        "model_type": "bert", "vocab_size": c.vocab_size, "hidden_size": c.hidden_size,
        "num_hidden_layers": c.num_hidden_layers, "num_attention_heads": c.num_attention_heads,
        "intermediate_size": c.intermediate_size, "max_position_embeddings": c.max_position_embeddings,
        "type_vocab_size": c.type_vocab_size, "layer_norm_eps": c.layer_norm_eps, "hidden_act": "gelu",
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let mut blobs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for ((name, shape), data) in param_specs(c).into_iter().zip(params) {
        let Some(shape) = edit(&name, shape) else { continue };
        let n: usize = shape.iter().product();
        let bytes: Vec<u8> = (0..n).flat_map(|i| half::f16::from_f64(data[i % data.len()]).to_le_bytes()).collect();
        blobs.push((format!("bert.{name}"), shape, bytes));
    }
    blobs.push(("bert.pooler.dense.bias".into(), vec![c.hidden_size], vec![0u8; 2 * c.hidden_size]));
    let views: Vec<(String, TensorView)> = blobs.iter().map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F16, s.clone(), b).unwrap())).collect();
    std::fs::write(dir.join("model.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
}

#[test]
fn checkpoints_load_with_prefix_and_f16_and_bad_ones_are_named() {
    let c = tiny_config();
    // Values rounded to f16, so the loaded model must equal the from_host one exactly.
    let params: Vec<Vec<f64>> = tiny_params(&c, 21).iter().map(|p| p.iter().map(|&x| half::f16::from_f64(x).to_f64()).collect()).collect();
    let root = common::scratch("ckpt");
    let good = root.join("good");
    write_checkpoint(&good, &c, &params, |_, s| Some(s));
    let loaded = Bert::load(&gpu(), &good).unwrap();
    assert_eq!(loaded.config, c);
    let host: Vec<Vec<f32>> = params.iter().map(|p| p.iter().map(|&x| x as f32).collect()).collect();
    let direct = Bert::from_host(&gpu(), c.clone(), &host).unwrap();
    let b = batch(&mut Rng::new(4), &[7, 12], c.vocab_size);
    assert_eq!(forward_gpu(&loaded, &b, Pass::eval()).0, forward_gpu(&direct, &b, Pass::eval()).0);

    let missing = root.join("missing");
    write_checkpoint(&missing, &c, &params, |n, s| (n != "encoder.layer.1.attention.self.key.bias").then_some(s));
    let e = Bert::load(&gpu(), &missing).err().unwrap().to_string();
    assert!(e.contains("encoder.layer.1.attention.self.key.bias") && e.contains("[32]") && e.contains("missing"), "{e}");

    // A NaN weight is refused at load, named with its tensor and first bad index.
    let mut poisoned = params.clone();
    let k = param_specs(&c).iter().position(|(n, _)| n == "encoder.layer.1.output.dense.weight").unwrap();
    poisoned[k][5] = f64::NAN;
    let nan = root.join("nan");
    write_checkpoint(&nan, &c, &poisoned, |_, s| Some(s));
    let e = Bert::load(&gpu(), &nan).err().expect("a NaN weight must be refused").to_string();
    assert!(e.contains("encoder.layer.1.output.dense.weight") && e.contains("index 5") && e.contains("NaN"), "{e}");

    let shaped = root.join("shaped");
    write_checkpoint(&shaped, &c, &params, |n, s| Some(if n == "encoder.layer.0.intermediate.dense.weight" { vec![32, 64] } else { s }));
    let e = Bert::load(&gpu(), &shaped).err().unwrap().to_string();
    assert!(e.contains("encoder.layer.0.intermediate.dense.weight") && e.contains("[32, 64]") && e.contains("[64, 32]"), "{e}");

    std::fs::write(good.join("config.json"), r#"{"vocab_size": 40, "hidden_size": 30, "num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 8, "max_position_embeddings": 16}"#).unwrap();
    let e = Bert::load(&gpu(), &good).err().unwrap().to_string();
    assert!(e.contains("config.json") && e.contains("hidden_size"), "{e}");
    std::fs::write(good.join("config.json"), r#"{"vocab_size": 40, "hidden_size": 32, "hidden_act": "gelu_new"}"#).unwrap();
    let e = Bert::load(&gpu(), &good).err().unwrap().to_string();
    assert!(e.contains("hidden_act"), "{e}");
    let e = Bert::load(&gpu(), &root.join("nowhere")).err().unwrap().to_string();
    assert!(e.contains("nowhere") && e.contains("config.json"), "{e}");
    let _ = std::fs::remove_dir_all(&root);
}
