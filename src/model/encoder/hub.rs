//! Encoders named by Hugging Face hub id (`bert-base-cased`, `allenai/scibert_scivocab_cased`,
//! optionally `@revision`) as well as by folder. Only the three files docre reads are fetched,
//! into the hub's standard cache (`HF_HOME`, default ~/.cache/huggingface, or `HF_HUB_CACHE`),
//! so transformers and docre share downloads. `HF_ENDPOINT` points at a mirror, `HF_TOKEN` (or
//! the cache's token file) opens private repositories, and `HF_HUB_OFFLINE=1` reads the cache
//! only. A revision whose files are all cached is used without asking the hub.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError};
use hf_hub::{Cache, Repo, RepoType};

use crate::error::{Error, Result};

/// What an encoder folder must hold.
pub const FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

pub use super::HubRef;

/// The hub settings, from the environment in the CLI and explicit in tests.
#[derive(Clone, Debug)]
pub struct HubEnv {
    pub endpoint: String,
    /// The `hub` cache folder itself (`$HF_HOME/hub`).
    pub cache: PathBuf,
    pub offline: bool,
    pub token: Option<String>,
}

impl HubEnv {
    pub fn from_env() -> HubEnv {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            let base = var("XDG_CACHE_HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(var("HOME").unwrap_or_else(|| ".".into())).join(".cache"));
            base.join("huggingface")
        });
        let cache = var("HF_HUB_CACHE").map(PathBuf::from).unwrap_or_else(|| home.join("hub"));
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "on" | "yes" | "true"));
        let token = var("HF_TOKEN").or_else(|| std::fs::read_to_string(home.join("token")).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()));
        HubEnv { endpoint: var("HF_ENDPOINT").unwrap_or_else(|| "https://huggingface.co".into()).trim_end_matches('/').to_string(), cache, offline, token }
    }
}

/// An encoder's folder, and its hub origin when it was named by id.
#[derive(Clone, Debug)]
pub struct EncoderDir {
    pub dir: PathBuf,
    pub hub: Option<HubRef>,
}

/// `--encoder`: an existing folder as it is, otherwise a hub id fetched (or found) in the cache.
pub fn locate(spec: &Path) -> Result<EncoderDir> {
    locate_with(spec, &HubEnv::from_env())
}

/// [`locate`] with explicit hub settings.
pub fn locate_with(spec: &Path, env: &HubEnv) -> Result<EncoderDir> {
    if spec.is_dir() {
        return Ok(EncoderDir { dir: spec.to_path_buf(), hub: None });
    }
    let (id, revision) = parse_id(spec)?;
    let repo = Repo::with_revision(id.clone(), RepoType::Model, revision.clone());
    let cached = Cache::new(env.cache.clone()).repo(repo.clone());
    let found: Vec<Option<PathBuf>> = FILES.iter().map(|f| cached.get(f)).collect();
    let paths: Vec<PathBuf> = if found.iter().all(Option::is_some) {
        found.into_iter().flatten().collect()
    } else if env.offline {
        let missing: Vec<&str> = FILES.iter().zip(&found).filter(|(_, p)| p.is_none()).map(|(f, _)| *f).collect();
        return Err(Error::Input(format!(
            "--encoder {id}@{revision}: HF_HUB_OFFLINE is set and the hub cache {} lacks {}; run once online (or unset HF_HUB_OFFLINE)",
            env.cache.display(),
            missing.join(", ")
        )));
    } else {
        download(&id, &revision, repo, env)?
    };
    let dir = paths[0].parent().expect("a cached file lies in a snapshot folder").to_path_buf();
    // The cache keeps each commit's files in snapshots/<commit>/.
    let commit = dir.file_name().and_then(|c| c.to_str()).unwrap_or_default().to_string();
    Ok(EncoderDir { dir, hub: Some(HubRef { id, revision, commit }) })
}

/// `name`, `org/name`, each optionally `@revision`; anything else is a missing folder.
fn parse_id(spec: &Path) -> Result<(String, String)> {
    let text = spec.to_string_lossy();
    let (id, revision) = match text.split_once('@') {
        Some((id, rev)) => (id, rev),
        None => (text.as_ref(), "main"),
    };
    let part_ok = |p: &str| !p.is_empty() && !p.starts_with(['.', '-']) && p.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    let parts: Vec<&str> = id.split('/').collect();
    if parts.len() > 2 || !parts.iter().all(|p| part_ok(p)) || revision.is_empty() || spec.exists() {
        return Err(Error::Input(format!(
            "--encoder {}: no such folder (with {}), and not a hub repository id (`name` or `org/name`, optionally `@revision`)",
            spec.display(),
            FILES.join(", ")
        )));
    }
    Ok((id.to_string(), revision.to_string()))
}

/// Asks the hub what the revision holds, so that a repository without safetensors weights is
/// named before anything is downloaded, then fetches the missing files.
fn download(id: &str, revision: &str, repo: Repo, env: &HubEnv) -> Result<Vec<PathBuf>> {
    let what = format!("--encoder {id}@{revision}");
    let api = ApiBuilder::from_cache(Cache::new(env.cache.clone()))
        .with_endpoint(env.endpoint.clone())
        .with_token(env.token.clone())
        .with_progress(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .build()
        .map_err(|e| Error::Input(format!("{what}: cannot set up the hub client: {e}")))?;
    let repo = api.repo(repo);
    let info = repo.info().map_err(|e| request_error(&what, env, None, e))?;
    let has = |f: &str| info.siblings.iter().any(|s| s.rfilename == f);
    for file in FILES {
        if has(file) {
            continue;
        }
        if file == "model.safetensors" && has("pytorch_model.bin") {
            return Err(Error::Input(format!(
                "{what}: the repository publishes its weights only as pytorch_model.bin; docre reads model.safetensors. Convert them once with transformers (`AutoModel.from_pretrained(\"{id}\").save_pretrained(DIR, safe_serialization=True)`, then copy tokenizer.json into DIR) and pass --encoder DIR"
            )));
        }
        return Err(Error::Input(format!("{what}: the repository (commit {}) has no {file}; docre needs {}", info.sha, FILES.join(", "))));
    }
    FILES.iter().map(|f| repo.get(f).map_err(|e| request_error(&what, env, Some(f), e))).collect()
}

/// The hub's answer in words: which of id, revision, file or network went wrong.
fn request_error(what: &str, env: &HubEnv, file: Option<&str>, e: ApiError) -> Error {
    let endpoint = &env.endpoint;
    let msg = match &e {
        ApiError::RequestError(inner) => match inner.as_ref() {
            ureq::Error::Status(status, response) => match (response.header("x-error-code"), status) {
                (Some("RepositoryNotFound"), _) | (None, 401) => format!("no such repository on {endpoint} (a private or gated one needs HF_TOKEN), and no folder of that name here"),
                (Some("RevisionNotFound"), _) => format!("the repository on {endpoint} has no such revision"),
                (Some("EntryNotFound"), _) | (None, 404) => format!("{} is not in the repository on {endpoint}", file.unwrap_or("the repository information")),
                (code, status) => format!("{endpoint} answered HTTP {status}{}", code.map(|c| format!(" ({c})")).unwrap_or_default()),
            },
            ureq::Error::Transport(t) => format!("cannot reach {endpoint}: {t}; with the files already cached, set HF_HUB_OFFLINE=1"),
        },
        other => format!("{}{other}", file.map(|f| format!("{f}: ")).unwrap_or_default()),
    };
    Error::Input(format!("{what}: {msg}"))
}
