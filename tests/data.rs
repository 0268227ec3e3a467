//! Readers, features and the CLI's handling of bad input: every error names the file, the
//! document and the field, exits with code 2 and writes nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use docre::data::docred::{read_docred, Relations};
use docre::data::features::featurize;
use docre::data::WordPieceTokenizer;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("docre-data-{}", std::process::id()));
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
    // [CLS] * Paris * is in * France * . * It * is big ... : markers around every mention.
    assert_eq!(ex.mention_starts, vec![vec![1, 10], vec![6], vec![14]]);
    assert_eq!(ex.ids[1], tok.marker);
    assert_eq!(ex.pairs.len(), 6);
    assert_eq!(&ex.labels[0..3], &[0.0, 1.0, 1.0], "pair (0, 1) has both relations and no NA");
    assert_eq!(&ex.labels[3..6], &[1.0, 0.0, 0.0], "pair (0, 2) is NA");
    // A cut: 8 ids keep [SEP] and drop the mentions past the cut, with a warning naming the doc.
    let (ex, warn) = featurize(0, &docs[0], &tok, rels.len(), 8).unwrap();
    assert_eq!(ex.ids.len(), 8);
    assert_eq!(*ex.ids.last().unwrap(), tok.sep);
    assert!(warn.unwrap().contains("Doc A"));
    assert_eq!(ex.mention_starts, vec![vec![1], vec![6], vec![]]);
}

fn expect_error(json: &str, needles: &[&str]) {
    let (_, rels) = rels("errors");
    let p = tmp("bad.json");
    std::fs::write(&p, json).unwrap();
    let e = read_docred(&p, &rels).err().expect("must fail").to_string();
    assert!(e.contains("bad.json"), "{e}");
    for n in needles {
        assert!(e.contains(n), "`{n}` missing from: {e}");
    }
}

#[test]
fn bad_input_errors_name_file_document_and_field() {
    expect_error("[{", &["malformed JSON"]);
    expect_error(r#"{"title": "x"}"#, &["list of documents"]);
    expect_error(&GOOD.replace(r#""sents":"#, r#""sentences":"#), &["Doc A", "`sents` is missing"]);
    expect_error(&GOOD.replace(r#""pos": [3, 4]"#, r#""pos": [3, 9]"#), &["document 0", "Doc A", "vertexSet[1][0]", "[3, 9]", "sentence 0"]);
    expect_error(&GOOD.replace(r#""sent_id": 1, "type": "MISC""#, r#""sent_id": 7, "type": "MISC""#), &["vertexSet[2][0]", "sent_id 7"]);
    expect_error(&GOOD.replace(r#"[{"name": "big", "pos": [2, 3], "sent_id": 1, "type": "MISC"}]"#, "[]"), &["vertexSet[2]", "no mentions"]);
    expect_error(&GOOD.replace(r#""r": "P131""#, r#""r": "P9999""#), &["labels[1]", "P9999"]);
    expect_error(&GOOD.replace(r#""t": 1, "r": "P17""#, r#""t": 5, "r": "P17""#), &["labels[0].t", "5"]);
    expect_error(r#"[{"title": "E", "sents": [], "vertexSet": []}]"#, &["E", "no words"]);
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
