//! The encoder on a tiny random config (2 layers, hidden 32, 4 heads, windows of 16 tokens)
//! against the f64 CPU reference of the whole encoder: forward outputs directly, every
//! parameter's gradient against central finite differences of the reference's loss, with and
//! without dropout, with and without the two-window scheme.

mod common;

use common::{assert_close, download, gpu, upload, Rng};
use docre::gpu::Recorder;
use docre::model::bert::param_specs;
use docre::model::reference::encoder_forward;
use docre::model::{Bert, BertConfig, Pass, TokenBatch};

fn tiny_config() -> BertConfig {
    BertConfig {
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

fn check_forward(lens: &[usize], dropout: Option<u64>) {
    let c = tiny_config();
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
    check_forward(&[9, 5, 16], None);
}

#[test]
fn forward_matches_reference_with_two_windows() {
    // 24 and 30 (= 2·16 − 2, the longest two windows cover) are split; 11 fits one window.
    check_forward(&[24, 11, 30], None);
}

#[test]
fn dropout_forward_matches_reference() {
    check_forward(&[9, 5], Some(42));
    check_forward(&[24, 11], Some(43));
}

/// Every parameter's GPU gradient against central differences of the f64 reference loss at a
/// few elements per tensor, plus an exactly-zero check on an embedding row no token uses.
fn check_gradients(lens: &[usize], dropout: Option<u64>) {
    let c = tiny_config();
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
    check_gradients(&[9, 5], None);
}

#[test]
fn gradients_match_finite_differences_with_windows_and_dropout() {
    check_gradients(&[24, 11], Some(7));
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
