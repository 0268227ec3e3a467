//! Readers, features and the CLI's handling of bad input: every error names the file, the
//! document and the field, exits with code 2 and writes nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use docre::data::docred::{read_docred, Relations};
use docre::data::features::{featurize, input_len};
use docre::data::WordPieceTokenizer;

fn tmp(name: &str) -> PathBuf {
    let d = common::scratch("data");
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// A relation inventory in a file of its own per caller (tests run in parallel).
fn rels(tag: &str) -> (PathBuf, Relations) {
    let p = tmp(&format!("rel2id_{tag}.json"));
    std::fs::write(&p, r#"{"Na": 0, "P17": 1, "P131": 2}"#).unwrap();
    let r = Relations::load(&p, None).unwrap();
    (p, r)
}

const GOOD: &str = r#"[{"title": "Doc A", "sents": [["Paris", "is", "in", "France", "."], ["It", "is", "big", "."]],
  "vertexSet": [[{"name": "Paris", "pos": [0, 1], "sent_id": 0, "type": "LOC"}, {"name": "It", "pos": [0, 1], "sent_id": 1, "type": "LOC"}],
                [{"name": "France", "pos": [3, 4], "sent_id": 0, "type": "LOC"}],
                [{"name": "big", "pos": [2, 3], "sent_id": 1, "type": "MISC"}]],
  "labels": [{"h": 0, "t": 1, "r": "P17", "evidence": [0]}, {"h": 0, "t": 1, "r": "P131"}]}]"#;

#[test]
fn reads_and_featurizes_a_document() {
    let (_, rels) = rels("features");
    let p = tmp("good.json");
    std::fs::write(&p, GOOD).unwrap();
    let docs = read_docred(&p, &rels).unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].facts.len(), 2);
    let words: Vec<&str> = docs[0].sents.iter().flatten().map(String::as_str).collect();
    let tok = WordPieceTokenizer::word_level(words);
    let (ex, warn) = featurize(0, &docs[0], &tok, rels.len(), 1022).unwrap();
    assert!(warn.is_none());
    assert_eq!(input_len(&docs[0], &tok, 1022).unwrap(), ex.ids.len(), "the length prediction orders a corpus by");
    // [CLS] * Paris * is in * France * . * It * is big ... : markers around every mention.
    assert_eq!(ex.mention_starts, vec![vec![1, 10], vec![6], vec![14]]);
    assert_eq!(ex.ids[1], tok.marker);
    assert_eq!(ex.pairs.len(), 6);
    assert_eq!(&ex.labels[0..3], &[0.0, 1.0, 1.0], "pair (0, 1) has both relations and no NA");
    assert_eq!(&ex.labels[3..6], &[1.0, 0.0, 0.0], "pair (0, 2) is NA");
    // A cut: 8 ids keep [SEP] and drop the mentions past the cut, with a warning naming the doc.
    let (ex, warn) = featurize(0, &docs[0], &tok, rels.len(), 8).unwrap();
    assert_eq!(ex.ids.len(), 8);
    assert_eq!(input_len(&docs[0], &tok, 8).unwrap(), 8);
    assert_eq!(*ex.ids.last().unwrap(), tok.sep);
    assert!(warn.unwrap().contains("Doc A"));
    assert_eq!(ex.mention_starts, vec![vec![1], vec![6], vec![]]);
}

fn expect_error(json: &str, needles: &[&str]) {
    // Files of their own per call: tests calling this run in parallel.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let (_, rels) = rels(&format!("errors-{n}"));
    let p = tmp(&format!("bad-{n}.json"));
    std::fs::write(&p, json).unwrap();
    let e = read_docred(&p, &rels).err().expect("must fail").to_string();
    assert!(e.contains(&format!("bad-{n}.json")), "{e}");
    for n in needles {
        assert!(e.contains(n), "`{n}` missing from: {e}");
    }
}

#[test]
fn bad_input_errors_name_file_document_and_field() {
    expect_error("[{", &["malformed JSON"]);
    // Not a list: read as JSON Lines, one document per line.
    expect_error(r#"{"title": "x"}"#, &["line 1", "\"x\"", "`sents` is missing"]);
    expect_error("{\"title\":\n \"x\"}", &["line 1", "malformed JSON", "one document object per line"]);
    expect_error(&GOOD.replace(r#""sents":"#, r#""sentences":"#), &["Doc A", "`sents` is missing"]);
    expect_error(&GOOD.replace(r#""pos": [3, 4]"#, r#""pos": [3, 9]"#), &["document 0", "Doc A", "vertexSet[1][0]", "[3, 9]", "sentence 0"]);
    expect_error(&GOOD.replace(r#""sent_id": 1, "type": "MISC""#, r#""sent_id": 7, "type": "MISC""#), &["vertexSet[2][0]", "sent_id 7"]);
    expect_error(&GOOD.replace(r#"[{"name": "big", "pos": [2, 3], "sent_id": 1, "type": "MISC"}]"#, "[]"), &["vertexSet[2]", "no mentions"]);
    expect_error(&GOOD.replace(r#""r": "P131""#, r#""r": "P9999""#), &["labels[1]", "P9999"]);
    expect_error(&GOOD.replace(r#""t": 1, "r": "P17""#, r#""t": 5, "r": "P17""#), &["labels[0].t", "5"]);
    expect_error(r#"[{"title": "E", "sents": [], "vertexSet": []}]"#, &["E", "no words"]);
}

#[test]
fn strict_input_refuses_what_it_used_to_guess_with_exact_messages() {
    // A document must be an object, and a title a string.
    for (doc, kind) in [(r#""text""#, "a string"), ("5", "a number"), ("null", "null"), ("[1]", "a list"), ("true", "a boolean")] {
        expect_error(&format!("[{doc}]"), &["document 0 is", kind, "expected an object"]);
    }
    for (title, kind) in [("null", "null"), ("5", "a number"), (r#"["a"]"#, "a list")] {
        expect_error(&GOOD.replace(r#""title": "Doc A""#, &format!(r#""title": {title}"#)), &["`title` must be a string", kind]);
    }
    // Duplicate keys: refused with where the second one is, not the last one kept.
    expect_error(&GOOD.replace(r#""title": "Doc A","#, r#""title": "Doc A", "title": "Doc B","#), &["duplicate key `title`", "line 1"]);
    expect_error(&GOOD.replace(r#""labels": ["#, "\"labels\": [], \"labels\": ["), &["duplicate key `labels`"]);
    // Labels: null is not a list; a number is not a relation name.
    expect_error(&GOOD.replace(r#""labels": [{"h""#, r#""labels": null, "x": [{"h""#), &["`labels` must be a list, found null"]);
    expect_error(&GOOD.replace(r#""r": "P17""#, r#""r": 17"#), &["labels[0].r is 17", "a number where a relation name"]);
    // Positions: negative, and an end before the start, say so.
    expect_error(&GOOD.replace(r#""pos": [3, 4]"#, r#""pos": [-1, 1]"#), &["vertexSet[1][0].pos [-1, 1]", "negative"]);
    expect_error(&GOOD.replace(r#""pos": [3, 4]"#, r#""pos": [3, 1]"#), &["vertexSet[1][0].pos [3, 1]", "end is not after the start"]);
    // Not UTF-8: the byte offset of the first bad byte.
    let (_, rels) = rels("utf8");
    let p = tmp("latin1.json");
    let mut bytes = GOOD.as_bytes().to_vec();
    let at = GOOD.find("Paris").unwrap();
    bytes[at] = 0xE9;
    std::fs::write(&p, &bytes).unwrap();
    let e = read_docred(&p, &rels).err().expect("must fail").to_string();
    assert!(e.contains("latin1.json") && e.contains("not UTF-8") && e.contains(&format!("byte offset {at}")), "{e}");
    // A byte-order mark is skipped, for a JSON list and for JSON Lines.
    let p = tmp("bom.json");
    std::fs::write(&p, format!("\u{feff}{GOOD}")).unwrap();
    assert_eq!(read_docred(&p, &rels).unwrap().len(), 1);
    let line: serde_json::Value = serde_json::from_str(GOOD).unwrap();
    std::fs::write(&p, format!("\u{feff}{}\n", line[0])).unwrap();
    assert_eq!(read_docred(&p, &rels).unwrap().len(), 1);
    // Prediction does not read labels: an unknown relation is dropped, counted, not refused.
    let p = tmp("unknown-relation.json");
    std::fs::write(&p, GOOD.replace(r#""r": "P131""#, r#""r": "P9999""#)).unwrap();
    let (docs, dropped) = docre::data::docred::read_docred_with(&p, &rels, docre::data::docred::UnknownRelations::Drop).unwrap();
    assert_eq!((docs[0].facts.len(), dropped), (1, 1));
}

#[test]
fn config_tables_refuse_unknown_keys_at_every_level() {
    let p = tmp("typo.toml");
    std::fs::write(&p, "preset = \"tiny\"\n[stage1]\nhead_lrr = 5.0\n").unwrap();
    let e = docre::train::preset::RunConfig::from_toml(&p, "tiny").err().expect("a misspelt key must be refused").to_string();
    assert!(e.contains("typo.toml") && e.contains("head_lrr"), "{e}");
    std::fs::write(&p, "preset = \"tiny\"\n[stage2]\nhead_lr = 5.0\n").unwrap();
    assert_eq!(docre::train::preset::RunConfig::from_toml(&p, "tiny").unwrap().stage2.head_lr, 5.0);
}

fn docre(args: &[&str]) -> std::process::Output {
    let dir = std::env::temp_dir().join("docre-xdg");
    let _ = std::fs::create_dir_all(&dir);
    Command::new(env!("CARGO_BIN_EXE_docre")).args(args).env("XDG_RUNTIME_DIR", dir).output().unwrap()
}

#[test]
fn cli_check_and_score_exit_codes() {
    let (rel2id, _) = rels("cli");
    let good = tmp("cli_good.json");
    std::fs::write(&good, GOOD).unwrap();
    let r2 = rel2id.to_str().unwrap();
    let out = docre(&["check", "--data", good.to_str().unwrap(), "--rel2id", r2]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 documents") && text.contains("labelled facts 2"), "{text}");

    let bad = tmp("cli_bad.json");
    std::fs::write(&bad, GOOD.replace(r#""r": "P131""#, r#""r": "P9999""#)).unwrap();
    let out = docre(&["check", "--data", bad.to_str().unwrap(), "--rel2id", r2]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("P9999"));

    // Scoring: a perfect prediction, then an unlabelled gold file (refused, exit 2).
    let pred = tmp("result.json");
    std::fs::write(&pred, r#"[{"title": "Doc A", "h_idx": 0, "t_idx": 1, "r": "P17"}, {"title": "Doc A", "h_idx": 0, "t_idx": 1, "r": "P131"}]"#).unwrap();
    let out = docre(&["score", "--gold", good.to_str().unwrap(), "--pred", pred.to_str().unwrap(), "--rel2id", r2]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["f1"], 1.0);
    let unlabelled = tmp("unlabelled.json");
    let mut doc: serde_json::Value = serde_json::from_str(GOOD).unwrap();
    doc[0].as_object_mut().unwrap().remove("labels");
    std::fs::write(&unlabelled, doc.to_string()).unwrap();
    let out = docre(&["score", "--gold", unlabelled.to_str().unwrap(), "--pred", pred.to_str().unwrap(), "--rel2id", r2]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no labels"));
    let missing = Path::new("/nonexistent/x.json");
    let out = docre(&["check", "--data", missing.to_str().unwrap(), "--rel2id", r2]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.json"));
}

#[test]
fn biomedical_readers_on_the_real_files() {
    use docre::data::bio::{read_bio, read_gda_json};
    let shared = common::shared_dir().join("data");
    let dev = shared.join("cdr/atlop_filter/dev_filter.data");
    let gda = shared.join("gda/convert_test.json");
    if !common::fixture_present(&dev, "bio readers") || !common::fixture_present(&gda, "bio readers") {
        return;
    }
    // Counts published with the files (../shared/data/SOURCES.md).
    let docs = read_bio(&dev, "1:CID:2").unwrap();
    assert_eq!(docs.len(), 500);
    assert_eq!(docs.iter().map(|d| d.facts.len()).sum::<usize>(), 1011);
    let docs = read_gda_json(&gda).unwrap();
    assert_eq!(docs.len(), 1000);
    assert_eq!(docs.iter().map(|d| d.facts.len()).sum::<usize>(), 1502);
    assert_eq!(docs.iter().map(|d| d.candidates.as_ref().unwrap().len()).sum::<usize>(), 5222);
    // A broken line names the file, the line and the document.
    let bad = tmp("bad.data");
    std::fs::write(&bad, "123\tA b .\t1:CID:2\tL2R\n").unwrap();
    let e = read_bio(&bad, "1:CID:2").unwrap_err().to_string();
    assert!(e.contains("bad.data") && e.contains("line 1") && e.contains("123"), "{e}");
}

/// One CDR line in the EoG / ATLOP format: pmid, text, then per pair label, direction, cross,
/// two closest-mention fields, and per argument KB id, names, type, starts, ends, sentences.
const CDR_LINE: &str = concat!(
    "900\tAspirin causes pain .|Pain relief by aspirin .",
    // A: no relation, R2L, so the head is arg2 (pain) and the tail arg1 (aspirin).
    "\t1:NR:2\tR2L\tCROSS\t0-1\t2-3\tD1\tAspirin|aspirin\tChemical\t0:7\t1:8\t0:1\tD2\tpain|Pain\tDisease\t2:4\t3:5\t0:1",
    // B: a relation from aspirin (arg1, L2R) to "Pain relief", which starts where a D2 mention does.
    "\t1:CID:2\tL2R\tCROSS\t0-1\t4-6\tD1\tAspirin|aspirin\tChemical\t0:7\t1:8\t0:1\tD3\tPain relief\tDisease\t4\t6\t1",
    // C: filtered out (not_include): not classified, its entity D4 ("relief") not numbered, but
    // its spans are marked.
    "\tnot_include\tL2R\tNON-CROSS\t5-6\t4-5\tD4\trelief\tChemical\t5\t6\t1\tD2\tpain|Pain\tDisease\t2:4\t3:5\t0:1\n",
);

#[test]
fn cdr_features_follow_atlop_read_cdr() {
    use docre::data::bio::read_bio;
    let p = tmp("atlop.data");
    std::fs::write(&p, CDR_LINE).unwrap();
    let docs = read_bio(&p, "1:CID:2").unwrap();
    assert_eq!(docs.len(), 1);
    let d = &docs[0];
    // Entities by first appearance among included pairs, head before tail: pair A's head D2
    // (pain) is entity 0, its tail D1 (aspirin) 1, pair B's tail D3 2; D4 only in C is none.
    let names: Vec<&str> = d.entities.iter().map(|e| e[0].name.as_str()).collect();
    assert_eq!(names, ["pain", "Aspirin", "Pain relief"]);
    assert_eq!(d.candidates.as_deref(), Some(&[(0, 1), (1, 2)][..]));
    assert_eq!(d.facts.iter().map(|f| (f.h, f.t, f.r)).collect::<Vec<_>>(), [(1, 2, 1)]);
    let words: Vec<&str> = d.sents.iter().flatten().map(String::as_str).collect();
    let tok = WordPieceTokenizer::word_level(words);
    let (ex, _) = featurize(0, d, &tok, 2, 1022).unwrap();
    let w = |x: &str| tok.pieces(x).unwrap()[0];
    let m = tok.marker;
    // Derived by hand from read_cdr: the marked spans are {(0,1), (7,8)} Chemical, {(2,3),
    // (4,5)} and {(4,6)} Disease, and C's (5,6) Chemical; every span gets its own `*` on each
    // side, so word 4 ("Pain") gets two in front and word 5 ("relief") two behind.
    #[rustfmt::skip]
    let want = vec![
        tok.cls, m, w("Aspirin"), m, w("causes"), m, w("pain"), m, w("."),
        m, m, w("Pain"), m, m, w("relief"), m, m, w("by"), m, w("aspirin"), m, w("."), tok.sep,
    ];
    assert_eq!(ex.ids, want);
    // Mention starts sit at each start word's first `*`.
    assert_eq!(ex.mention_starts, vec![vec![5, 9], vec![1, 18], vec![9]]);
    assert_eq!(ex.pairs, vec![(0, 1), (1, 2)]);
    assert_eq!(ex.labels, vec![1.0, 0.0, 0.0, 1.0]);
}

#[test]
fn cdr_marks_not_include_spans_in_the_real_files() {
    use docre::data::bio::read_bio;
    let dir = common::shared_dir().join("data/cdr/atlop_filter");
    // (file, documents, of the first `take` documents how many have such spans)
    let files = [("train_filter.data", 500, 200, 21), ("dev_filter.data", 500, 500, 44), ("test_filter.data", 500, 500, 49)];
    for (name, docs_expected, take, extra_expected) in files {
        let p = dir.join(name);
        if !common::fixture_present(&p, "CDR files") {
            return;
        }
        let docs = read_bio(&p, "1:CID:2").unwrap();
        assert_eq!(docs.len(), docs_expected, "{name}");
        // Documents where a marked span is no mention of a classified entity: only spans of
        // not_include pairs can be.
        let offsets = |d: &docre::data::docred::Document| d.sents.iter().scan(0, |a, s| { let o = *a; *a += s.len(); Some(o) }).collect::<Vec<_>>();
        let extra = docs
            .iter()
            .take(take)
            .filter(|d| {
                let off = offsets(d);
                let mentions: Vec<(usize, usize)> = d.entities.iter().flatten().map(|m| (off[m.sent] + m.start, off[m.sent] + m.end)).collect();
                d.marker_spans.as_ref().unwrap().iter().any(|s| !mentions.contains(s))
            })
            .count();
        assert_eq!(extra, extra_expected, "{name}: documents among the first {take} with spans marked only for not_include pairs");
    }
}

#[test]
fn cli_trains_several_seeds_and_summarizes_their_scores() {
    let (rel2id, _) = rels("seeds");
    let good = tmp("seeds_good.json");
    std::fs::write(&good, GOOD).unwrap();
    let out_dir = tmp("seeds_run");
    let cache = tmp("seeds_cache");
    let _ = std::fs::remove_dir_all(&out_dir);
    let run = |args: &[&str]| {
        let dir = std::env::temp_dir().join("docre-xdg");
        let _ = std::fs::create_dir_all(&dir);
        Command::new(env!("CARGO_BIN_EXE_docre")).args(args).env("XDG_RUNTIME_DIR", dir).env("DOCRE_CACHE_DIR", &cache).output().unwrap()
    };
    let (g, r, o) = (good.to_str().unwrap(), rel2id.to_str().unwrap(), out_dir.to_str().unwrap());
    let out = run(&["train", "--preset", "tiny", "--train", g, "--rel2id", r, "--seeds", "3,4", "--stage1-epochs", "1", "--stage2-epochs", "1", "--freeze-encoder", "--out", o]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("== seed 3 (1 of 2)") && stdout.contains("== seed 4 (2 of 2)"), "{stdout}");
    let (a, b) = (out_dir.join("seed-3/last"), out_dir.join("seed-4/last"));
    let json = tmp("seeds_eval.json");
    let out = run(&["eval", "--checkpoint", a.to_str().unwrap(), b.to_str().unwrap(), "--data", g, "--tune-on", g, "--json", json.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2 checkpoints: mean ± sample sd [min–max]"), "{stdout}");
    // Every control, for each checkpoint and in the summary.
    for model in ["base module ", "base module, dev threshold", "base + untrained inference module", "full model ", "full model, dev threshold"] {
        assert_eq!(stdout.matches(model).count(), 2 + 4, "{model:?} in {stdout}");
    }
    // A frozen-encoder checkpoint's documents come from the encoder cache that training filled.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("0 documents encoded, 1 read from"), "{stderr}");
    // Progress goes to logs as plain lines when stderr is not a terminal, as in training.
    assert!(stderr.contains(": 1/1 documents ("), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let f1s: Vec<f64> = v["checkpoints"].as_array().unwrap().iter().map(|c| c["models"].as_array().unwrap().iter().find(|m| m["model"] == "full model").unwrap()["scores"]["f1"].as_f64().unwrap()).collect();
    assert_eq!(f1s.len(), 2);
    let row = v["summary"]["rows"].as_array().unwrap().iter().find(|r| r[0] == "full model" && r[1] == "F1").unwrap().clone();
    assert!((row[2]["mean"].as_f64().unwrap() - (f1s[0] + f1s[1]) / 2.0).abs() < 1e-12, "{row}");
    // A missing checkpoint is named, exit 2.
    let out = run(&["eval", "--checkpoint", a.to_str().unwrap(), "/nonexistent/ckpt", "--data", g]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ckpt"), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&out_dir);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn the_docred_relation_inventory_is_built_in() {
    let rels = Relations::docred();
    assert_eq!(rels.len(), 97);
    assert_eq!((rels.codes[0].as_str(), rels.ids["P17"]), ("Na", rels.ids["P17"]));
    assert_eq!(rels.name(rels.ids["P17"]), "country");
    assert!((1..rels.len()).all(|r| rels.name(r) != rels.codes[r]), "every relation has a name");
    // The same inventory as DocRED's meta files.
    let meta = common::shared_dir().join("data/docred_meta");
    if common::fixture_present(&meta.join("rel2id.json"), "built-in inventory") {
        let files = Relations::load(&meta.join("rel2id.json"), Some(&meta.join("rel_info.json"))).unwrap();
        assert_eq!(files.codes, rels.codes);
        assert_eq!(files.names, rels.names);
    }
    // The demo's inventory: its documents' relations, named from it.
    let demo = docre::data::sample::relations();
    assert!(demo.len() > 10 && (1..demo.len()).all(|r| demo.name(r) != demo.codes[r]));

    // Commands take DocRED data without --rel2id; an unknown relation is still named.
    let good = tmp("builtin_good.json");
    std::fs::write(&good, GOOD).unwrap();
    let out = docre(&["check", "--data", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("of 96"), "{}", String::from_utf8_lossy(&out.stdout));
    let bad = tmp("builtin_bad.json");
    std::fs::write(&bad, GOOD.replace(r#""r": "P131""#, r#""r": "P9999""#)).unwrap();
    let out = docre(&["check", "--data", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("P9999") && err.contains("builtin_bad.json") && err.contains("Doc A"), "{err}");
}

#[test]
fn three_shards_merge_to_the_unsharded_prediction_and_json_lines_read_alike() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo/redocred_sample.json");
    let root = tmp("shards");
    let _ = std::fs::remove_dir_all(&root);
    let (ck, s) = (root.join("run"), sample.to_str().unwrap());
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        out
    };
    // Enough stage-1 epochs that the model predicts facts (about 250 on these 6 documents).
    let out = ok(docre(&["train", "--preset", "tiny", "--train", s, "--stage1-epochs", "12", "--stage2-epochs", "0", "--out", ck.to_str().unwrap()]));
    // Off a terminal, progress comes as plain lines (one per epoch here), not carriage returns.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains('\r'), "carriage returns in a non-terminal log: {err:?}");
    let epochs: Vec<&str> = err.lines().filter(|l| l.starts_with("stage 1 epoch")).collect();
    assert_eq!(epochs.len(), 12, "{err}");
    assert!(epochs[11].contains("12/12") && epochs[11].contains("docs/s") && epochs[11].contains("loss") && epochs[11].contains("lr"), "{}", epochs[11]);
    let last = ck.join("last");
    let l = last.to_str().unwrap();
    let whole = root.join("whole");
    ok(docre(&["predict", "--checkpoint", l, "--data", s, "--out", whole.to_str().unwrap()]));
    let parts = root.join("parts");
    for k in 0..3 {
        let out = ok(docre(&["predict", "--checkpoint", l, "--data", s, "--shard", &format!("{k}/3"), "--out", parts.to_str().unwrap()]));
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("shard {k}/3")));
    }
    let shard = |k: usize| parts.join(format!("shard-{k}-of-3.json")).to_str().unwrap().to_string();
    let merged = root.join("merged");
    ok(docre(&["merge", &shard(2), &shard(0), &shard(1), "--out", merged.to_str().unwrap()]));
    for f in ["result.json", "predictions.txt"] {
        let (a, b) = (std::fs::read_to_string(whole.join(f)).unwrap(), std::fs::read_to_string(merged.join(f)).unwrap());
        assert_eq!(a, b, "{f}: merged shards differ from the unsharded prediction");
    }
    assert!(std::fs::read_to_string(whole.join("predictions.txt")).unwrap().matches("# ").count() == 6, "every document is listed");
    // A document cut at the encoder's limit is named by its place in the file, also in a shard
    // and whatever round it is predicted in: here the file's second document, the shard's first.
    let docs: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&sample).unwrap()).unwrap();
    let mut long = docs[1].clone();
    long["title"] = "Long doc".into();
    let sents = long["sents"].as_array().unwrap().clone();
    long["sents"] = (0..40).flat_map(|_| sents.iter().cloned()).collect::<Vec<_>>().into();
    let file = root.join("with_long.json");
    std::fs::write(&file, serde_json::to_string(&vec![docs[0].clone(), long]).unwrap()).unwrap();
    let out = ok(docre(&["predict", "--checkpoint", l, "--data", file.to_str().unwrap(), "--shard", "1/2", "--out", root.join("long").to_str().unwrap()]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: document 1 (\"Long doc\")") && err.contains("cut to"), "{err}");
    // Two predicts into one folder at the same time: each either writes the whole set or is
    // refused naming the other process; the folder never holds a mix or a temporary.
    let both = root.join("both");
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_docre"))
            .args(["predict", "--checkpoint", l, "--data", s, "--out", both.to_str().unwrap()])
            .env("XDG_RUNTIME_DIR", std::env::temp_dir().join("docre-xdg"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let runs = [spawn(), spawn()].map(|c| c.wait_with_output().unwrap());
    for r in &runs {
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(r.status.success() || (r.status.code() == Some(2) && err.contains("is being written by docre process")), "{err}");
    }
    assert!(runs.iter().any(|r| r.status.success()), "one of the two runs writes the set");
    for f in ["result.json", "predictions.txt"] {
        assert_eq!(std::fs::read(both.join(f)).unwrap(), std::fs::read(whole.join(f)).unwrap(), "{f} after two concurrent runs");
    }
    let left = common::output_strays(&both);
    assert!(left.is_empty(), "{left:?}");
    let facts: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(whole.join("result.json")).unwrap()).unwrap();
    assert!(!facts.is_empty(), "the model predicts no facts, so the merge of facts goes untested");
    // Each fact carries its score, a positive margin over the threshold class (the merge above
    // carried the scores through the shard files unchanged).
    for f in &facts {
        let score = f["score"].as_f64().unwrap_or_else(|| panic!("no score in {f}"));
        assert!(score.is_finite() && score > 0.0, "{f}");
    }

    // Missing, duplicate and mismatched shards are refused, naming them.
    let refused = |args: &[&str], needle: &str| {
        let out = docre(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains(needle), "{args:?}: {e}");
    };
    let m = merged.to_str().unwrap();
    refused(&["merge", &shard(0), &shard(2), "--out", m], "1/3");
    refused(&["merge", &shard(0), &shard(1), &shard(1), &shard(2), "--out", m], "given twice");
    let other = root.join("other");
    ok(docre(&["predict", "--checkpoint", l, "--data", s, "--shard", "0/2", "--out", other.to_str().unwrap()]));
    refused(&["merge", &shard(0), other.join("shard-0-of-2.json").to_str().unwrap(), &shard(1), &shard(2), "--out", m], "different runs");
    // Shards know their provenance: the same corpus by another path merges; another checkpoint
    // or another corpus at the same path is refused, naming what differs.
    let copy = root.join("copy-of-sample.json");
    std::fs::copy(&sample, &copy).unwrap();
    let moved = root.join("moved");
    ok(docre(&["predict", "--checkpoint", l, "--data", copy.to_str().unwrap(), "--shard", "1/3", "--out", moved.to_str().unwrap()]));
    let moved1 = moved.join("shard-1-of-3.json");
    let remerged = root.join("remerged");
    ok(docre(&["merge", &shard(0), moved1.to_str().unwrap(), &shard(2), "--out", remerged.to_str().unwrap()]));
    assert_eq!(std::fs::read_to_string(remerged.join("result.json")).unwrap(), std::fs::read_to_string(whole.join("result.json")).unwrap());
    let ck2 = root.join("run2");
    ok(docre(&["train", "--preset", "tiny", "--train", s, "--stage1-epochs", "1", "--stage2-epochs", "0", "--seed", "9", "--out", ck2.to_str().unwrap()]));
    let elsewhere = root.join("elsewhere");
    ok(docre(&["predict", "--checkpoint", ck2.join("last").to_str().unwrap(), "--data", s, "--shard", "1/3", "--out", elsewhere.to_str().unwrap()]));
    refused(&["merge", &shard(0), elsewhere.join("shard-1-of-3.json").to_str().unwrap(), &shard(2), "--out", m], "checkpoint (weights SHA-256");
    let mut edited: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&sample).unwrap()).unwrap();
    edited[0]["title"] = "A retitled document".into();
    std::fs::write(&copy, serde_json::to_string(&edited).unwrap()).unwrap();
    ok(docre(&["predict", "--checkpoint", l, "--data", copy.to_str().unwrap(), "--shard", "1/3", "--out", moved.to_str().unwrap()]));
    refused(&["merge", &shard(0), moved1.to_str().unwrap(), &shard(2), "--out", m], "differ in corpus");

    // JSON Lines: the same documents, one per line, predict the same.
    let docs: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&sample).unwrap()).unwrap();
    let jsonl = root.join("sample.jsonl");
    std::fs::write(&jsonl, docs.iter().map(|d| d.to_string() + "\n").collect::<String>()).unwrap();
    let lines = root.join("lines");
    ok(docre(&["predict", "--checkpoint", l, "--data", jsonl.to_str().unwrap(), "--out", lines.to_str().unwrap()]));
    assert_eq!(std::fs::read_to_string(lines.join("result.json")).unwrap(), std::fs::read_to_string(whole.join("result.json")).unwrap());
    // A broken line is named.
    std::fs::write(&jsonl, format!("{}\n{{\"title\": 1,\n", docs[0])).unwrap();
    refused(&["predict", "--checkpoint", l, "--data", jsonl.to_str().unwrap(), "--out", lines.to_str().unwrap()], "line 2");
    let _ = std::fs::remove_dir_all(&root);
}

/// Random mutations of the bundled Re-DocRED documents (bytes flipped, cut, duplicated,
/// numbers made negative or huge, values swapped for other JSON types): every one parses and
/// featurizes, or is refused with a message naming its origin; none panics.
#[test]
fn mutated_real_documents_parse_or_fail_clearly_and_never_panic() {
    let sample = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo/redocred_sample.json")).unwrap();
    let docs: Vec<serde_json::Value> = serde_json::from_str(&sample).unwrap();
    let rels = Relations::docred();
    let mut rng = common::Rng::new(23);
    let (mut parsed, mut refused) = (0, 0);
    let replacements = ["null", "-1", "4294967296", "1e309", "\"\"", "[]", "{}", "true", "\"P17\"", "[-3, 2]", "[2, 1]", "0"];
    for round in 0..400 {
        let base = docs[rng.below(docs.len())].to_string();
        let mut text = base.clone().into_bytes();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(text.len());
            match rng.below(6) {
                0 => text[at] = (rng.next_u64() & 0xff) as u8,
                1 => text.truncate(at),
                2 => {
                    let end = (at + rng.below(40)).min(text.len());
                    text.drain(at..end);
                }
                3 => {
                    let end = (at + rng.below(40)).min(text.len());
                    let piece = text[at..end].to_vec();
                    text.splice(at..at, piece);
                }
                _ => {
                    // Replace one JSON scalar (a run of digits, or a quoted string) with another type.
                    let s = String::from_utf8_lossy(&text).into_owned();
                    let starts: Vec<usize> = s.char_indices().filter(|(i, c)| (c.is_ascii_digit() || *c == '"') && (*i == 0 || !s.as_bytes()[i - 1].is_ascii_digit())).map(|(i, _)| i).collect();
                    if let Some(&i) = starts.get(rng.below(starts.len().max(1))) {
                        let end = if s.as_bytes()[i] == b'"' { s[i + 1..].find('"').map_or(s.len(), |e| i + e + 2) } else { i + s[i..].find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len() - i) };
                        text = format!("{}{}{}", &s[..i], replacements[rng.below(replacements.len())], &s[end.min(s.len())..]).into_bytes();
                    }
                }
            }
        }
        let wrapped = [b"[".as_slice(), &text, b"]"].concat();
        let origin = format!("mutation {round}");
        let outcome = std::panic::catch_unwind(|| {
            let t = docre::data::strict_json::text(&wrapped).map_err(|e| format!("{origin}: {e}"))?;
            let docs = docre::data::docred::read_json_str(t, &origin, &rels).map_err(|e| e.to_string())?;
            for (i, d) in docs.iter().enumerate() {
                let tok = WordPieceTokenizer::word_level(d.sents.iter().flatten().map(String::as_str));
                featurize(i, d, &tok, rels.len(), 512).map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        });
        match outcome {
            Ok(Ok(())) => parsed += 1,
            Ok(Err(e)) => {
                assert!(e.contains(&origin), "{e}");
                refused += 1;
            }
            Err(_) => panic!("mutation {round} panicked: {}", String::from_utf8_lossy(&text)),
        }
    }
    assert!(parsed > 20 && refused > 100, "{parsed} parsed, {refused} refused: the mutations should exercise both");
}
