//! PyTorch golden fixtures (../shared/golden, format in its README): every `*.safetensors` in
//! `$DOCRE_GOLDEN_DIR` (default `$DOCRE_SHARED/golden`) is one case, dispatched on its
//! `component` metadata. Encoder cases run the real all-MiniLM-L6-v2 weights forward and
//! backward and compare every stored output and gradient; components not built yet print
//! PENDING. Also: the fixtures' token ids rebuilt from Re-DocRED with our tokenizer, and the
//! model's published sentence-similarity behaviour.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{download, fixture_present, gpu, shared_dir, upload};
use docre::data::{Mention, WordPieceTokenizer};
use docre::gpu::Recorder;
use docre::model::heads::batch::{HeadBatch, HeadInput};
use docre::model::config::{HeadConfig, TestOutput};
use docre::model::heads::{BranchLabels, Heads, Stage2Input};
use docre::model::heads::params::ParamSet;
use docre::model::checkpoint::tensor_file::TensorFile;
use docre::model::{Bert, Pass, TokenBatch};
use docre::ops::eca::Attention;

fn golden_dir() -> PathBuf {
    docre::settings::golden_dir().unwrap_or_else(|| shared_dir().join("golden"))
}

fn fixtures(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "safetensors")).collect();
    v.sort();
    v
}

/// Worst element of `got` against `want` over `idx`, as (max |diff|, max |ref|, index).
fn worst(got: &[f64], want: &[f64], idx: impl Iterator<Item = usize>) -> (f64, f64, usize, usize) {
    let (mut md, mut mr, mut at, mut n) = (0.0f64, 0.0f64, 0usize, 0usize);
    for i in idx {
        n += 1;
        mr = mr.max(want[i].abs());
        let d = (got[i] - want[i]).abs();
        if d > md || d.is_nan() {
            md = if d.is_nan() { f64::INFINITY } else { d };
            at = i;
        }
    }
    (md, mr, at, n)
}

struct Report {
    lines: Vec<String>,
    failed: bool,
}

impl Report {
    /// Per-tensor rule from the fixture README: max|diff| ≤ tau · max|ref|.
    fn compare(&mut self, name: &str, got: &[f64], want: &[f64], idx: impl Iterator<Item = usize>, tau: f64) {
        if got.len() != want.len() {
            self.failed = true;
            self.lines.push(format!("  {name}: {} values, the fixture has {}", got.len(), want.len()));
            return;
        }
        let (md, mr, at, n) = worst(got, want, idx);
        let ok = md <= tau * mr;
        self.failed |= !ok;
        self.lines.push(format!(
            "  {} {name}: worst element {at} is {:.7e} vs {:.7e} (|diff| {md:.2e} = {:.2e} of max|ref| {mr:.3e}; limit {tau:.0e}; {n} compared)",
            if ok { "ok  " } else { "FAIL" },
            got.get(at).copied().unwrap_or(f64::NAN),
            want.get(at).copied().unwrap_or(f64::NAN),
            md / mr.max(1e-30)
        ));
    }
}

fn f64s(f: &TensorFile, name: &str) -> (Vec<usize>, Vec<f64>) {
    let t = f.f32(name).unwrap().unwrap_or_else(|| panic!("{}: tensor {name} is missing", f.path().display()));
    (t.shape, t.data.into_iter().map(f64::from).collect())
}

fn ints(f: &TensorFile, name: &str) -> (Vec<usize>, Vec<i64>) {
    f.ints(name).unwrap().unwrap_or_else(|| panic!("{}: tensor {name} is missing", f.path().display()))
}

fn load_model(name: &str) -> Option<Bert> {
    let dir = shared_dir().join("models").join(name);
    if !fixture_present(&dir.join("model.safetensors"), "golden") {
        return None;
    }
    Some(Bert::load(&gpu(), &dir).unwrap())
}

/// One encoder fixture: forward, loss, backward, every stored tensor compared.
fn run_encoder(f: &TensorFile, meta: &HashMap<String, String>) -> Option<Report> {
    let bert = load_model(meta.get("model").map(String::as_str).unwrap_or("all-MiniLM-L6-v2"))?;
    let g = gpu();
    let (shape, ids) = ints(f, "input.input_ids");
    let (b, l) = (shape[0], shape[1]);
    let (_, mask) = ints(f, "input.attention_mask");
    let lens: Vec<usize> = (0..b).map(|i| mask[i * l..(i + 1) * l].iter().filter(|&&m| m == 1).count()).collect();
    let docs = TokenBatch { docs: (0..b).map(|i| ids[i * l..i * l + lens[i]].iter().map(|&x| x as u32).collect()).collect() };
    let (d, h) = (bert.config.hidden_size, bert.config.num_attention_heads);
    let (_, seed_h) = f64s(f, "input.seed_hidden");
    let (_, seed_a) = f64s(f, "input.seed_attention");
    let d_hidden: Vec<f64> = seed_h.iter().enumerate().map(|(i, v)| v * mask[i / d] as f64).collect();

    let mut rec = Recorder::new(&g);
    let (out, tape) = bert.forward(&mut rec, &docs, Pass { dropout: None, grad: true }).unwrap();
    let dh = upload(&g, "d_hidden", &[b, l, d], &d_hidden);
    let da = upload(&g, "d_attention", &[b, h, l, l], &seed_a);
    let grads = bert.backward(&mut rec, tape.unwrap(), &dh, Some(&da)).unwrap();
    rec.finish().unwrap();

    let mut rep = Report { lines: Vec::new(), failed: false };
    let hidden = download(&g, &out.hidden);
    let attention = download(&g, &out.attention);
    let valid_rows = |i: usize| lens[i / (l * d)] > (i / d) % l;
    let valid_block = |i: usize| {
        let (q, p, doc) = (i % l, (i / l) % l, i / (h * l * l));
        p < lens[doc] && q < lens[doc]
    };
    rep.compare("output.hidden", &hidden, &f64s(f, "output.hidden").1, (0..hidden.len()).filter(|&i| valid_rows(i)), 1e-4);
    rep.compare("output.attention", &attention, &f64s(f, "output.attention").1, (0..attention.len()).filter(|&i| valid_block(i)), 1e-4);
    // The loss in f64 from our outputs (it is a sum with heavy cancellation).
    let loss: f64 = d_hidden.iter().zip(&hidden).map(|(a, x)| a * x).sum::<f64>() + seed_a.iter().zip(&attention).map(|(a, x)| a * x).sum::<f64>();
    let ref_loss = f64s(f, "output.loss").1[0];
    let ok = (loss - ref_loss).abs() <= 1e-3;
    rep.failed |= !ok;
    rep.lines.push(format!("  {} output.loss: {loss:.6} vs {ref_loss:.6} (limit 1e-3 absolute)", if ok { "ok  " } else { "FAIL" }));

    let by_name: HashMap<&str, usize> = bert.names().iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let word = "embeddings.word_embeddings.weight";
    let mut compared = 0;
    for name in f.names() {
        let Some(param) = name.strip_prefix("grad.") else { continue };
        if param.starts_with(word) {
            continue;
        }
        let Some(&i) = by_name.get(param) else {
            rep.failed = true;
            rep.lines.push(format!("  FAIL {name}: no such encoder parameter"));
            continue;
        };
        let got = download(&g, &grads[i]);
        let want = f64s(f, &name).1;
        rep.compare(&name, &got, &want, 0..want.len(), 1e-4);
        compared += 1;
    }
    // Word embeddings: the stored rows must match, and every other row must be exactly 0.
    let (_, rows) = ints(f, &format!("grad.{word}.rows"));
    let (_, values) = f64s(f, &format!("grad.{word}.values"));
    let full = download(&g, &grads[by_name[word]]);
    let got: Vec<f64> = rows.iter().flat_map(|&r| full[r as usize * d..(r as usize + 1) * d].to_vec()).collect();
    rep.compare(&format!("grad.{word} ({} stored rows)", rows.len()), &got, &values, 0..values.len(), 1e-4);
    let listed: std::collections::HashSet<usize> = rows.iter().map(|&r| r as usize).collect();
    let stray = (0..full.len() / d).filter(|r| !listed.contains(r)).find(|&r| full[r * d..(r + 1) * d].iter().any(|&v| v != 0.0));
    if let Some(r) = stray {
        rep.failed = true;
        rep.lines.push(format!("  FAIL grad.{word}: row {r} is not in the fixture but has a nonzero gradient"));
    }
    if compared < 17 {
        rep.failed = true;
        rep.lines.push(format!("  FAIL only {compared} parameter gradients found in the fixture, expected 17"));
    }
    Some(rep)
}

fn meta_num(meta: &HashMap<String, String>, key: &str) -> f64 {
    meta.get(key).unwrap_or_else(|| panic!("fixture metadata has no `{key}`")).parse().unwrap_or_else(|_| panic!("metadata `{key}` is not a number"))
}

fn f32s(f: &TensorFile, name: &str) -> Vec<f32> {
    f.f32(name).unwrap().unwrap_or_else(|| panic!("{}: tensor {name} is missing", f.path().display())).data
}

/// One heads fixture: stage 1, stage 2, the test loop and a single inference pass, every stored
/// output, loss, gradient and intermediate compared (README tolerances).
fn run_heads(f: &TensorFile, meta: &HashMap<String, String>) -> Report {
    let g = gpu();
    let n = |k: &str| meta_num(meta, k) as usize;
    let cfg = HeadConfig {
        hidden: n("d"),
        emb: n("E"),
        block: n("block"),
        classes: n("C"),
        width: n("D"),
        layers: n("N_I"),
        eca_heads: n("heads"),
        ffn_inner: n("ffn_inner"),
        iterations: n("K"),
        top_k: n("top_k"),
        attention: Attention::Eca,
        fusion: true,
        test_output: TestOutput::Sum,
        ln_eps: meta_num(meta, "ln_eps"),
        bn_eps: meta_num(meta, "bn_eps"),
        bn_momentum: meta_num(meta, "bn_momentum"),
        // The fixtures are made without dropout; stage1/stage2 below run without it too.
        head_dropout: 0.0,
        contrastive: true,
    };
    let load_params = || {
        let list = f.names().into_iter().filter_map(|name| {
            let p = name.strip_prefix("param.")?.to_string();
            let t = f.f32(&name).unwrap().unwrap();
            Some((p, t.shape, t.data))
        });
        Heads::new(cfg.clone(), ParamSet::new(&g, list.collect()).unwrap()).unwrap()
    };
    let ints1 = |name: &str| ints(f, name).1.into_iter().map(|v| v as usize).collect::<Vec<usize>>();
    let hts = ints1("input.hts");
    let pair_doc = ints1("input.pair_doc");
    let input = HeadInput {
        doc_len: ints1("input.doc_len"),
        entity_counts: ints1("input.entity_count"),
        mention_start: ints1("input.mention_start"),
        mention_entity: ints1("input.mention_entity"),
        pairs: pair_doc.iter().enumerate().map(|(i, &d)| (d, hts[2 * i], hts[2 * i + 1])).collect(),
    };
    let (xs, x) = f64s(f, "input.X");
    let (as_, a) = f64s(f, "input.A");
    let hb = HeadBatch::new(&g, input, xs[1], as_[1]).unwrap();
    let xt = upload(&g, "X", &xs, &x);
    let at = upload(&g, "A", &as_, &a);
    let mut rep = Report { lines: Vec::new(), failed: false };
    let all = |v: &[f64]| 0..v.len();
    let cmp = |rep: &mut Report, name: &str, t: &docre::gpu::Tensor, tau: f64| {
        let want = f64s(f, name).1;
        rep.compare(name, &download(&g, t), &want, 0..want.len(), tau);
    };
    let loss = |rep: &mut Report, name: &str, got: f64| {
        let want = f64s(f, name).1[0];
        let ok = (got - want).abs() <= 1e-5 * want.abs().max(1e-3);
        rep.failed |= !ok;
        rep.lines.push(format!("  {} {name}: {got:.8} vs {want:.8} (limit relative 1e-5)", if ok { "ok  " } else { "FAIL" }));
    };
    let grad_rule = |rep: &mut Report, name: &str, got: &[f64]| {
        let want = f64s(f, name).1;
        if name.ends_with("_eca.key.bias") || name.ends_with("predictor.up.bias") {
            // Structurally zero (README point 15): compare absolutely.
            let worst = got.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let ok = worst <= 1e-5;
            rep.failed |= !ok;
            rep.lines.push(format!("  {} {name}: structurally zero, max |got| {worst:.2e} (limit 1e-5 absolute)", if ok { "ok  " } else { "FAIL" }));
        } else {
            rep.compare(name, got, &want, all(&want), 5e-5);
        }
    };

    // Stage 1.
    let heads = load_params();
    let gold = f32s(f, "input.labels");
    let mut rec = Recorder::new(&g);
    let step = heads.stage1(&mut rec, &hb, &xt, &at, &gold).unwrap();
    rec.finish().unwrap();
    cmp(&mut rep, "output.base_logits", &step.base_logits, 1e-5);
    loss(&mut rep, "output.loss_stage1", step.losses.total(&g).unwrap());
    for (i, name) in heads.params.names().iter().enumerate() {
        if let Some(t) = step.grads.get(i) {
            grad_rule(&mut rep, &format!("grad1.{name}"), &download(&g, t));
        }
    }
    grad_rule(&mut rep, "grad1.input.X", &download(&g, step.dx.as_ref().unwrap()));
    grad_rule(&mut rep, "grad1.input.A", &download(&g, step.da.as_ref().unwrap()));

    // Stage 2 (fresh parameters: its BatchNorm calls update the running buffers).
    let heads = load_params();
    let s2 = Stage2Input {
        gold,
        labels_a: BranchLabels::Gold(f32s(f, "input.labels_a")),
        labels_b: BranchLabels::Gold(f32s(f, "input.labels_b")),
        mask_base: f32s(f, "input.mask_base"),
        mask_a: f32s(f, "input.mask_a"),
        mask_b: f32s(f, "input.mask_b"),
    };
    let mut rec = Recorder::new(&g);
    let step = heads.stage2(&mut rec, &hb, &xt, &at, &s2).unwrap();
    rec.finish().unwrap();
    for (name, v) in step.losses.read(&g).unwrap() {
        loss(&mut rep, &format!("output.loss_{name}"), v);
    }
    loss(&mut rep, "output.loss_stage2", step.losses.total(&g).unwrap());
    let mut reported = 0;
    for (i, name) in heads.params.names().iter().enumerate() {
        if let Some(t) = step.grads.get(i) {
            grad_rule(&mut rep, &format!("grad2.{name}"), &download(&g, t));
            reported += 1;
        }
    }
    let expected = f.names().iter().filter(|n| n.starts_with("grad2.") && !n.starts_with("grad2.input")).count();
    if reported != expected {
        rep.failed = true;
        rep.lines.push(format!("  FAIL stage 2 produced {reported} parameter gradients, the fixture has {expected}"));
    }
    grad_rule(&mut rep, "grad2.input.X", &download(&g, step.dx.as_ref().unwrap()));
    grad_rule(&mut rep, "grad2.input.A", &download(&g, step.da.as_ref().unwrap()));
    for (branch, b) in ["A", "B"].iter().zip(&step.branches) {
        cmp(&mut rep, &format!("aux.stage2.logits_{branch}"), &b.logits, 1e-5);
        cmp(&mut rep, &format!("aux.stage2.p_{branch}"), b.predictor.as_ref().unwrap(), 1e-5);
        cmp(&mut rep, &format!("aux.stage2.Zswap_{branch}"), b.swapped.as_ref().unwrap(), 1e-5);
    }
    cmp(&mut rep, "aux.stage2.bn_running_mean", heads.params.get("infer.predictor.bn.running_mean"), 1e-5);
    cmp(&mut rep, "aux.stage2.bn_running_var", heads.params.get("infer.predictor.bn.running_var"), 1e-5);

    // Test loop and one inference pass with the given relation labels.
    let heads = load_params();
    let mut rec = Recorder::new(&g);
    let pred = heads.predict(&mut rec, &hb, &xt, &at).unwrap();
    let (base_out, tape) = heads.base_forward(&mut rec, &hb, &xt, &at).unwrap();
    let rel = upload(&g, "relation_labels", &[hb.pairs, cfg.classes], &f64s(f, "input.relation_labels").1);
    let module = heads.inference_pass(&mut rec, &hb, &base_out.features, &rel).unwrap();
    rec.finish().unwrap();
    cmp(&mut rep, "output.test_logits", &pred.logits, 1e-5);
    let exact = |rep: &mut Report, name: &str, t: &docre::gpu::Tensor| {
        let ok = download(&g, t) == f64s(f, name).1;
        rep.failed |= !ok;
        rep.lines.push(format!("  {} {name}: {}", if ok { "ok  " } else { "FAIL" }, if ok { "identical" } else { "labels differ" }));
    };
    exact(&mut rep, "output.test_labels", &pred.labels);
    for (k, (logits, labels)) in pred.iterations.iter().enumerate() {
        cmp(&mut rep, &format!("aux.test.logits_iter{k}"), logits, 1e-5);
        exact(&mut rep, &format!("aux.test.labels_iter{k}"), labels);
    }
    cmp(&mut rep, "output.inference_logits", &module.logits, 1e-5);
    cmp(&mut rep, "aux.entity_emb", tape.entities(), 1e-5);
    cmp(&mut rep, "aux.entity_att", tape.entity_attention(), 1e-5);
    cmp(&mut rep, "aux.context", tape.context(), 1e-5);
    cmp(&mut rep, "aux.z_s", tape.z().0, 1e-5);
    cmp(&mut rep, "aux.z_o", tape.z().1, 1e-5);
    cmp(&mut rep, "aux.pair_feature", &base_out.features, 1e-5);
    for (l, v) in module.layers.iter().enumerate() {
        for (name, t) in [("M", &v.m), ("feature_eca", &v.feature_eca), ("relation_eca", &v.relation_eca), ("gate", &v.gate), ("fused", &v.fused), ("F", &v.f), ("R", &v.r)] {
            cmp(&mut rep, &format!("aux.infer.layers.{l}.{name}"), t, 1e-5);
        }
    }
    rep
}

#[test]
fn golden_fixtures() {
    let dir = golden_dir();
    if !fixture_present(&dir, "golden") {
        return;
    }
    // The RoBERTa fixtures sit in a subfolder of their own.
    let mut files = fixtures(&dir);
    assert!(!files.is_empty(), "no *.safetensors fixtures in {}", dir.display());
    let roberta = dir.join("roberta");
    if fixture_present(&roberta, "golden RoBERTa") {
        let more = fixtures(&roberta);
        assert!(!more.is_empty(), "no *.safetensors fixtures in {}", roberta.display());
        files.extend(more);
    }
    let mut failures = Vec::new();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let f = TensorFile::open(&path).unwrap();
        let meta = f.metadata().unwrap();
        let component = meta.get("component").cloned().unwrap_or_else(|| "encoder".into());
        match component.as_str() {
            "encoder" => {
                let Some(rep) = run_encoder(&f, &meta) else { return };
                println!("golden {file}: {}", if rep.failed { "FAIL" } else { "PASS" });
                for line in &rep.lines {
                    println!("{line}");
                }
                if rep.failed {
                    failures.push(file);
                }
            }
            "heads" => {
                let rep = run_heads(&f, &meta);
                println!("golden {file}: {}", if rep.failed { "FAIL" } else { "PASS" });
                for line in &rep.lines {
                    println!("{line}");
                }
                if rep.failed {
                    failures.push(file);
                }
            }
            other => {
                println!("golden {file}: FAIL unknown component `{other}`");
                failures.push(file);
            }
        }
    }
    assert!(failures.is_empty(), "golden fixtures failed: {failures:?} (run with --nocapture for the per-tensor report)");
}

/// The encoder fixtures' input ids and mention positions, rebuilt from the Re-DocRED documents
/// they name (in the split their metadata gives, else whichever of dev and test holds them) with
/// our word-by-word marker tokenization (SPEC 1.2) and the fixture model's tokenizer.
#[test]
fn fixture_inputs_retokenize_from_redocred() {
    let split = |name: &str| shared_dir().join(format!("data/redocred/{name}_revised.json"));
    if !fixture_present(&split("dev"), "retokenize") || !fixture_present(&split("test"), "retokenize") || !fixture_present(&golden_dir(), "retokenize") {
        return;
    }
    let read = |name: &str| -> Vec<serde_json::Value> { serde_json::from_str(&std::fs::read_to_string(split(name)).unwrap()).unwrap() };
    let (dev, test) = (read("dev"), read("test"));
    let mut paths = fixtures(&golden_dir());
    if golden_dir().join("roberta").is_dir() {
        paths.extend(fixtures(&golden_dir().join("roberta")));
    }
    let mut checked = 0;
    let mut models = std::collections::BTreeSet::new();
    for path in paths {
        let f = TensorFile::open(&path).unwrap();
        let meta = f.metadata().unwrap();
        if meta.get("component").is_some_and(|c| c != "encoder") {
            continue;
        }
        let model = meta.get("model").map(String::as_str).unwrap_or("all-MiniLM-L6-v2");
        let tok_path = shared_dir().join("models").join(model).join("tokenizer.json");
        if !fixture_present(&tok_path, "retokenize") {
            continue;
        }
        let tok = WordPieceTokenizer::load(&tok_path).unwrap();
        let docs: Vec<&serde_json::Value> = match meta.get("split").map(String::as_str) {
            Some("dev") => dev.iter().collect(),
            Some("test") => test.iter().collect(),
            _ => dev.iter().chain(&test).collect(),
        };
        let titles: Vec<&str> = meta["docs"].split(',').collect();
        let starts: Vec<Vec<usize>> = serde_json::from_str(&meta["mention_starts"]).unwrap();
        let (shape, ids) = ints(&f, "input.input_ids");
        let (_, mask) = ints(&f, "input.attention_mask");
        let l = shape[1];
        // Titles may themselves contain commas: match the joined string greedily per document.
        let mut titles_iter = titles.iter().peekable();
        for (i, want_starts) in starts.iter().enumerate() {
            let mut title = titles_iter.next().unwrap().to_string();
            while !docs.iter().any(|d| d["title"] == title.as_str()) {
                title = format!("{title},{}", titles_iter.next().expect("title not found in Re-DocRED dev or test"));
            }
            let doc = docs.iter().find(|d| d["title"] == title.as_str()).unwrap();
            let want_len = mask[i * l..(i + 1) * l].iter().filter(|&&m| m == 1).count();
            let want: Vec<u32> = ids[i * l..i * l + want_len].iter().map(|&x| x as u32).collect();
            let sents: Vec<Vec<String>> = doc["sents"].as_array().unwrap().iter().map(|s| s.as_array().unwrap().iter().map(|w| w.as_str().unwrap().to_string()).collect()).collect();
            // The README cuts some documents to their first sentences: find the cut that fits.
            let rebuilt = (1..=sents.len())
                .map(|k| {
                    let mentions: Vec<Mention> = doc["vertexSet"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .flat_map(|e| e.as_array().unwrap().iter())
                        .filter_map(|m| {
                            let sent = m["sent_id"].as_u64().unwrap() as usize;
                            let pos = m["pos"].as_array().unwrap();
                            (sent < k).then(|| Mention { sent, start: pos[0].as_u64().unwrap() as usize, end: pos[1].as_u64().unwrap() as usize })
                        })
                        .collect();
                    tok.encode_marked(&sents[..k], &mentions, None).unwrap()
                })
                .find(|m| m.ids.len() == want_len)
                .unwrap_or_else(|| panic!("{title}: no sentence cut gives {want_len} ids"));
            assert_eq!(rebuilt.ids, want, "{title}: token ids differ");
            assert_eq!(&rebuilt.mention_starts, want_starts, "{title}: mention starts differ");
            checked += 1;
            models.insert(model.to_string());
        }
    }
    assert!(checked >= 3, "only {checked} documents checked");
    if docre::settings::require_fixtures() {
        assert!(models.contains("roberta-tiny-random") && models.len() >= 2, "retokenized only for {models:?}");
    }
}

fn mean_pooled(bert: &Bert, ids: Vec<Vec<u32>>) -> Vec<Vec<f64>> {
    let g = gpu();
    let batch = TokenBatch { docs: ids };
    let mut rec = Recorder::new(&g);
    let (out, _) = bert.forward(&mut rec, &batch, Pass::eval()).unwrap();
    rec.finish().unwrap();
    let hidden = download(&g, &out.hidden);
    let (l, d) = (batch.len(), bert.config.hidden_size);
    batch
        .docs
        .iter()
        .enumerate()
        .map(|(i, doc)| {
            let mut v = vec![0.0; d];
            for p in 0..doc.len() {
                for e in 0..d {
                    v[e] += hidden[(i * l + p) * d + e] / doc.len() as f64;
                }
            }
            let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            v.iter().map(|x| x / n).collect()
        })
        .collect()
}

/// all-MiniLM-L6-v2's published behaviour: mean-pooled, normalized embeddings of these two
/// sentences have cosine 0.7553; the fixture README also gives the [CLS] hidden state.
#[test]
fn sentence_similarity_matches_the_published_model() {
    let dir = shared_dir().join("models/all-MiniLM-L6-v2");
    if !fixture_present(&dir.join("tokenizer.json"), "sentence similarity") {
        return;
    }
    let tok = WordPieceTokenizer::load(&dir.join("tokenizer.json")).unwrap();
    let a = tok.encode_text("A man is eating food.").unwrap();
    assert_eq!(a, [101, 1037, 2158, 2003, 5983, 2833, 1012, 102]);
    let b = tok.encode_text("A man is eating a piece of bread.").unwrap();
    let bert = load_model("all-MiniLM-L6-v2").unwrap();

    let g = gpu();
    let mut rec = Recorder::new(&g);
    let (out, _) = bert.forward(&mut rec, &TokenBatch { docs: vec![a.clone()] }, Pass::eval()).unwrap();
    rec.finish().unwrap();
    let cls = &download(&g, &out.hidden)[..5];
    let want = [-0.00255, 0.117697, 0.003738, 0.244708, -0.517231];
    for (x, y) in cls.iter().zip(want) {
        assert!((x - y).abs() < 2e-5, "[CLS] hidden {cls:?}, expected {want:?}");
    }
    let e = mean_pooled(&bert, vec![a, b]);
    let cos: f64 = e[0].iter().zip(&e[1]).map(|(x, y)| x * y).sum();
    assert!((cos - 0.7553).abs() < 5e-4, "cosine {cos}, the model gives 0.7553");
}
