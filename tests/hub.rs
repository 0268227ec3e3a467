//! `--encoder` by hub id against a fake hub: a local HTTP server (the `HF_ENDPOINT` protocol:
//! `/api/models/ID/revision/REV` and ranged `/ID/resolve/REV/FILE`) serving
//! ../shared/models/roberta-tiny-random. Download, cache reuse without requests, offline mode,
//! a repository with only pytorch_model.bin, a missing file, a wrong id or revision, an
//! unreachable hub, and the id and revision recorded in a trained checkpoint.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use docre::model::encoder::hub::{locate_with, HubEnv, FILES};
use sha2::Digest;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const TINY: &str = "docre-test/roberta-tiny";

struct FakeHub {
    endpoint: String,
    requests: Arc<AtomicUsize>,
}

/// Repository id → files (all at revision `main`, commit `COMMIT`).
fn serve(repos: HashMap<String, HashMap<String, Vec<u8>>>) -> FakeHub {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line.split_whitespace().nth(1).unwrap_or("/").split('?').next().unwrap().to_string();
            let mut range = None;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap() == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    let (a, b) = v.trim().split_once('-').unwrap();
                    range = Some((a.parse::<usize>().unwrap(), b.parse::<usize>().ok()));
                }
            }
            let (status, headers, body) = answer(&repos, &path, range);
            let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
            for (k, v) in headers {
                head += &format!("{k}: {v}\r\n");
            }
            head += "\r\n";
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    FakeHub { endpoint, requests }
}

fn error(status: &str, code: &str) -> (String, Vec<(String, String)>, Vec<u8>) {
    (status.into(), vec![("X-Error-Code".into(), code.into())], code.as_bytes().to_vec())
}

fn answer(repos: &HashMap<String, HashMap<String, Vec<u8>>>, path: &str, range: Option<(usize, Option<usize>)>) -> (String, Vec<(String, String)>, Vec<u8>) {
    if let Some(rest) = path.strip_prefix("/api/models/") {
        let (id, rev) = rest.rsplit_once("/revision/").unwrap_or((rest, "main"));
        let Some(files) = repos.get(id) else { return error("401 Unauthorized", "RepositoryNotFound") };
        if rev != "main" && rev != COMMIT {
            return error("404 Not Found", "RevisionNotFound");
        }
        let mut names: Vec<&String> = files.keys().collect();
        names.sort();
        let info = serde_json::json!({ "sha": COMMIT, "siblings": names.iter().map(|n| serde_json::json!({ "rfilename": n })).collect::<Vec<_>>() });
        return ("200 OK".into(), vec![("Content-Type".into(), "application/json".into())], info.to_string().into_bytes());
    }
    let Some((id, rest)) = path[1..].split_once("/resolve/") else { return error("404 Not Found", "EntryNotFound") };
    let Some(files) = repos.get(id) else { return error("401 Unauthorized", "RepositoryNotFound") };
    let (rev, file) = rest.split_once('/').unwrap();
    if rev != "main" && rev != COMMIT {
        return error("404 Not Found", "RevisionNotFound");
    }
    let Some(data) = files.get(file) else { return error("404 Not Found", "EntryNotFound") };
    let etag = format!("\"{:x}\"", sha2::Sha256::digest(data));
    let mut headers = vec![("ETag".to_string(), etag), ("X-Repo-Commit".to_string(), COMMIT.to_string())];
    let (a, b) = range.map(|(a, b)| (a, b.unwrap_or(data.len() - 1).min(data.len() - 1))).unwrap_or((0, data.len() - 1));
    headers.push(("Content-Range".into(), format!("bytes {a}-{b}/{}", data.len())));
    ("206 Partial Content".into(), headers, data[a..=b].to_vec())
}

fn source() -> Option<PathBuf> {
    let dir = common::shared_dir().join("models/roberta-tiny-random");
    common::fixture_present(&dir.join("model.safetensors"), "hub").then_some(dir)
}

fn repos(src: &Path) -> HashMap<String, HashMap<String, Vec<u8>>> {
    let read = |f: &str| std::fs::read(src.join(f)).unwrap();
    let full: HashMap<String, Vec<u8>> = FILES.iter().chain(&["vocab.json", "merges.txt"]).map(|f| (f.to_string(), read(f))).collect();
    let mut bin_only = full.clone();
    let weights = bin_only.remove("model.safetensors").unwrap();
    bin_only.insert("pytorch_model.bin".into(), weights);
    let mut no_tokenizer = full.clone();
    no_tokenizer.remove("tokenizer.json");
    HashMap::from([(TINY.to_string(), full), ("docre-test/bin-only".to_string(), bin_only), ("docre-test/no-tokenizer".to_string(), no_tokenizer)])
}

fn fresh_cache(name: &str) -> PathBuf {
    let dir = common::scratch(&format!("hub-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn env(endpoint: &str, cache: &Path, offline: bool) -> HubEnv {
    HubEnv { endpoint: endpoint.to_string(), cache: cache.join("hub"), offline, token: None }
}

#[test]
fn downloads_then_reuses_the_cache_and_works_offline() {
    let Some(src) = source() else { return };
    let hub = serve(repos(&src));
    let cache = fresh_cache("reuse");
    let got = locate_with(Path::new(TINY), &env(&hub.endpoint, &cache, false)).unwrap();
    let h = got.hub.clone().unwrap();
    assert_eq!((h.id.as_str(), h.revision.as_str(), h.commit.as_str()), (TINY, "main", COMMIT));
    assert!(got.dir.starts_with(cache.join("hub/models--docre-test--roberta-tiny/snapshots")), "{}", got.dir.display());
    for f in FILES {
        assert_eq!(std::fs::read(got.dir.join(f)).unwrap(), std::fs::read(src.join(f)).unwrap(), "{f}");
    }
    // Only the three files: the repository's vocab.json and merges.txt stay on the hub.
    assert!(!got.dir.join("vocab.json").exists());
    docre::model::BertConfig::load(&got.dir.join("config.json")).unwrap();
    docre::data::WordPieceTokenizer::load(&got.dir.join("tokenizer.json")).unwrap();

    let before = hub.requests.load(Ordering::SeqCst);
    assert!(before >= 4, "info and three files: {before} requests");
    let again = locate_with(Path::new(TINY), &env(&hub.endpoint, &cache, false)).unwrap();
    assert_eq!(again.dir, got.dir);
    assert_eq!(hub.requests.load(Ordering::SeqCst), before, "a cached revision is used without asking the hub");
    let offline = locate_with(Path::new(TINY), &env("http://127.0.0.1:9", &cache, true)).unwrap();
    assert_eq!(offline.dir, got.dir);
    // A commit id names the same snapshot.
    let pinned = locate_with(Path::new(&format!("{TINY}@{COMMIT}")), &env(&hub.endpoint, &cache, false)).unwrap();
    assert_eq!(pinned.hub.unwrap().revision, COMMIT);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn offline_without_the_files_names_them() {
    let cache = fresh_cache("offline");
    let e = locate_with(Path::new(TINY), &env("http://127.0.0.1:9", &cache, true)).unwrap_err().to_string();
    assert!(e.contains(TINY) && e.contains("HF_HUB_OFFLINE") && e.contains("model.safetensors") && e.contains("tokenizer.json"), "{e}");
}

#[test]
fn pytorch_bin_only_missing_file_wrong_id_and_revision_are_named() {
    let Some(src) = source() else { return };
    let hub = serve(repos(&src));
    let cache = fresh_cache("errors");
    let e = |spec: &str| locate_with(Path::new(spec), &env(&hub.endpoint, &cache, false)).unwrap_err().to_string();

    let m = e("docre-test/bin-only");
    assert!(m.contains("docre-test/bin-only") && m.contains("pytorch_model.bin") && m.contains("model.safetensors") && m.contains("safe_serialization"), "{m}");
    assert!(!cache.join("hub/models--docre-test--bin-only/blobs").exists(), "nothing is downloaded from a repository docre cannot read");
    let m = e("docre-test/no-tokenizer");
    assert!(m.contains("no tokenizer.json") && m.contains(COMMIT), "{m}");
    let m = e("docre-test/nope");
    assert!(m.contains("docre-test/nope") && m.contains("no such repository") && m.contains(&hub.endpoint), "{m}");
    let m = e(&format!("{TINY}@v9"));
    assert!(m.contains("@v9") && m.contains("no such revision"), "{m}");
    let m = e("./no/such/folder");
    assert!(m.contains("./no/such/folder") && m.contains("no such folder"), "{m}");
    let m = locate_with(Path::new(TINY), &env("http://127.0.0.1:9", &fresh_cache("unreachable"), false)).unwrap_err().to_string();
    assert!(m.contains("cannot reach http://127.0.0.1:9") && m.contains("HF_HUB_OFFLINE"), "{m}");
    let _ = std::fs::remove_dir_all(&cache);
}

/// `docre train --encoder ID` through `HF_ENDPOINT` and `HF_HOME`: the checkpoint records the
/// id, revision and commit.
#[test]
fn cli_train_by_hub_id_records_it_in_the_checkpoint() {
    let Some(src) = source() else { return };
    common::gpu(); // the no-adapter message rather than an exit code when there is no device
    let hub = serve(repos(&src));
    let home = fresh_cache("cli");
    let out = home.join("run");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo/redocred_sample.json");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_docre"))
        .args(["train", "--preset", "tiny", "--stage1-epochs", "1", "--stage2-epochs", "1", "--freeze-encoder", "--encoder", TINY, "--train"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .env("HF_ENDPOINT", &hub.endpoint)
        .env("HF_HOME", &home)
        .env_remove("HF_HUB_OFFLINE")
        .env("DOCRE_CACHE_DIR", home.join("encoder-cache"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let side: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("last/checkpoint.json")).unwrap()).unwrap();
    assert_eq!(side["encoder_hub"], serde_json::json!({ "id": TINY, "revision": "main", "commit": COMMIT }), "{side}");
    let _ = std::fs::remove_dir_all(&home);
}
