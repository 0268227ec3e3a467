//! Checkpoints: `model.safetensors` with every parameter under its SPEC 0.3 name (`encoder.*`
//! keeps the HF BERT names), `checkpoint.json` beside it (configurations, vocabulary source,
//! relation inventory, training state), and `optimizer.safetensors` with the AdamW moments.
//! Every file is written to a temporary name and renamed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};


pub mod tensor_file;

use self::tensor_file::TensorFile;
use super::config::{BertConfig, HeadConfig};
use super::encoder::bert::param_specs as encoder_specs;
use super::encoder::Bert;
use super::heads::params::ParamSet;
use super::heads::{self, Heads};
use crate::data::docred::Relations;
use crate::data::WordPieceTokenizer;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::gpu::{Gpu, Tensor};
use crate::model::Model;

/// Where the tokenizer comes from.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TokenizerSource {
    /// A Hugging Face tokenizer.json (path as given when training).
    Hf { path: PathBuf },
    /// A word-level vocabulary (random `tiny` encoders), stored here.
    Words { words: Vec<String> },
}

impl TokenizerSource {
    pub fn load(&self) -> Result<WordPieceTokenizer> {
        match self {
            TokenizerSource::Hf { path } => WordPieceTokenizer::load(path),
            TokenizerSource::Words { words } => Ok(WordPieceTokenizer::word_level(words.iter().map(String::as_str))),
        }
    }
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Sidecar {
    pub encoder: BertConfig,
    pub heads: HeadConfig,
    pub tokenizer: TokenizerSource,
    /// Relation codes by id (0 = NA) and readable names.
    pub relations: Vec<String>,
    pub relation_names: HashMap<String, String>,
    /// Training state: optimizer steps taken, the best dev score and when it was reached.
    pub step: u32,
    pub best_score: Option<f64>,
    /// Free-form description of the run (preset, data).
    pub note: String,
    /// Where training stood when this checkpoint was written (None for finished or foreign runs).
    #[serde(default)]
    pub progress: Option<Progress>,
    /// Trained with the encoder frozen at its loaded weights: evaluation and prediction may then
    /// read its outputs from the encoder cache (`model::encoder_cache`).
    #[serde(default)]
    pub frozen_encoder: bool,
    /// The hub repository, revision and commit of an encoder named by id (`--encoder ID`).
    #[serde(default)]
    pub encoder_hub: Option<crate::model::encoder::HubRef>,
    /// The kernel variant each shape class ran (gpu::tuning), so that a resumed run or a
    /// prediction from this checkpoint runs the same ones and gets the same bits.
    #[serde(default)]
    pub kernel_choices: BTreeMap<String, String>,
    /// SHA-256 of each tensor file written with this sidecar: a checkpoint whose files do not
    /// match is torn or mixed and is refused. Written by `save`; empty in checkpoints written
    /// before it existed, which load unchecked.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// The seed `Heads::random` initialised the heads from: rebuilds the untrained inference
    /// module for `docre eval`'s control. None in checkpoints written before it was recorded.
    #[serde(default)]
    pub init_seed: Option<u64>,
}

/// Training position at an epoch boundary: enough to continue bit for bit.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// 1 or 2, and the epochs of that stage already done.
    pub stage: u32,
    pub epoch: usize,
    /// Batches done over both stages, optimizer steps of the current stage.
    pub global_step: u64,
    pub stage_step: u32,
    /// State of the run's RNG (batch order, stage-2 sampling).
    pub rng: u64,
}

impl Sidecar {
    pub fn relations(&self) -> Relations {
        Relations { ids: self.relations.iter().enumerate().map(|(i, c)| (c.clone(), i)).collect(), codes: self.relations.clone(), names: self.relation_names.clone() }
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn serialize(tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Result<Vec<u8>> {
    use safetensors::{tensor::TensorView, Dtype};
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, _, d)| d.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), b).map_err(|e| Error::Input(format!("tensor {n}: {e}")))?)))
        .collect::<Result<_>>()?;
    safetensors::serialize(views, None).map_err(|e| Error::Input(format!("cannot serialize the checkpoint: {e}")))
}

#[cfg(not(target_arch = "wasm32"))]
fn download(gpu: &Gpu, name: String, t: &Tensor) -> Result<(String, Vec<usize>, Vec<f32>)> {
    Ok((name, t.shape().to_vec(), t.read_f32(gpu)?))
}

/// Writes the model (and, when given, the optimizer moments) as the checkpoint `dir`, replacing
/// any checkpoint there as a whole (`fsutil::replace_dir`): readers see the old files or the new,
/// never a mix, whenever the process stops.
#[cfg(not(target_arch = "wasm32"))]
pub fn save(dir: &Path, model: &Model, sidecar: &Sidecar, moments: Option<&HashMap<String, (Tensor, Tensor)>>) -> Result<()> {
    let g = &model.gpu;
    let mut tensors = Vec::new();
    for (n, t) in model.encoder.names().iter().zip(model.encoder.params()) {
        tensors.push(download(g, format!("encoder.{n}"), t)?);
    }
    for (n, t) in model.heads.params.names().iter().zip(model.heads.params.tensors()) {
        tensors.push(download(g, n.clone(), t)?);
    }
    let mut files = vec![("model.safetensors", serialize(&tensors)?)];
    if let Some(m) = moments {
        let mut names: Vec<&String> = m.keys().collect();
        names.sort();
        let mut t = Vec::new();
        for n in names {
            t.push(download(g, format!("m.{n}"), &m[n].0)?);
            t.push(download(g, format!("v.{n}"), &m[n].1)?);
        }
        files.push(("optimizer.safetensors", serialize(&t)?));
    }
    let mut sidecar = sidecar.clone();
    sidecar.kernel_choices.extend(g.choices());
    sidecar.files = files.iter().map(|(n, b)| (n.to_string(), fsutil::sha256_hex(b))).collect();
    let json = serde_json::to_string_pretty(&sidecar).expect("sidecar serializes");
    fsutil::replace_dir(dir, |stage| {
        for (name, bytes) in &files {
            fsutil::write_staged(&stage.join(name), bytes)?;
        }
        fsutil::write_staged(&stage.join("checkpoint.json"), json.as_bytes())
    })
}

/// The sidecar of the checkpoint `dir`. A process stopped between the two renames of `save`
/// leaves no `dir` but a complete staged version beside it: the newest one whose files all match
/// its sidecar is moved into place (finishing that save).
fn read_sidecar(dir: &Path) -> Result<Sidecar> {
    if !dir.exists() {
        let complete = |d: &Path| parse_sidecar(d).and_then(|side| side.files.keys().try_for_each(|name| checked_file(d, &side, name).map(drop)));
        for candidate in fsutil::staged_versions(dir) {
            if complete(&candidate).is_ok() {
                eprintln!("docre: {} was being replaced when its writer stopped; using the complete copy {}", dir.display(), candidate.display());
                std::fs::rename(&candidate, dir).map_err(|source| Error::Io { context: format!("cannot move {} to {}", candidate.display(), dir.display()), source })?;
                break;
            }
        }
    }
    parse_sidecar(dir)
}

fn parse_sidecar(dir: &Path) -> Result<Sidecar> {
    let side_path = dir.join("checkpoint.json");
    let text = std::fs::read_to_string(&side_path).map_err(|source| Error::Io { context: format!("cannot read {} (is {} a docre checkpoint?)", side_path.display(), dir.display()), source })?;
    sidecar_from_str(&text, &side_path.display().to_string())
}

/// A `checkpoint.json` from its text; `origin` names it in errors.
pub fn sidecar_from_str(text: &str, origin: &str) -> Result<Sidecar> {
    serde_json::from_str(text).map_err(|e| Error::Input(format!("{origin}: {e}")))
}

/// `bytes` as the checkpoint's tensor file `name`, checked against the SHA-256 its sidecar
/// (read from `side_origin`) records: files from different saves are refused.
pub fn checked_bytes(sidecar: &Sidecar, side_origin: &str, name: &str, path: &Path, bytes: Vec<u8>) -> Result<TensorFile> {
    if let Some(want) = sidecar.files.get(name) {
        if &fsutil::sha256_hex(&bytes) != want {
            return Err(Error::Input(format!("{side_origin}: {name} does not match the SHA-256 that field `files` records for it: the checkpoint is torn or mixed (its files come from different saves) and cannot be used")));
        }
    }
    TensorFile::from_bytes(path, bytes)
}

/// The tensor file `name` of the checkpoint `dir`, read once and checked against the SHA-256
/// its sidecar records (field `files`); None when the file is absent and not recorded.
fn checked_file(dir: &Path, sidecar: &Sidecar, name: &str) -> Result<Option<TensorFile>> {
    let (path, side_path) = (dir.join(name), dir.join("checkpoint.json"));
    if !sidecar.files.contains_key(name) {
        return if path.exists() { TensorFile::open(&path).map(Some) } else { Ok(None) };
    }
    let bytes = std::fs::read(&path).map_err(|source| Error::Io { context: format!("{}: field `files` lists {name}, which cannot be read: the checkpoint is incomplete", side_path.display()), source })?;
    checked_bytes(sidecar, &side_path.display().to_string(), name, &path, bytes).map(Some)
}

/// Loads a checkpoint directory written by `save`.
pub fn load(gpu: &Gpu, dir: &Path) -> Result<(Model, Sidecar)> {
    let sidecar = read_sidecar(dir)?;
    let file = checked_file(dir, &sidecar, "model.safetensors")?.ok_or_else(|| Error::Input(format!("{}: model.safetensors is missing", dir.display())))?;
    let model = from_parts(gpu, &sidecar, &dir.join("checkpoint.json").display().to_string(), &file)?;
    Ok((model, sidecar))
}

/// The model of a checkpoint whose sidecar (read from `side_origin`) and weights are in memory:
/// `load` reads them from a folder, the browser from files the reader picked.
pub fn from_parts(gpu: &Gpu, sidecar: &Sidecar, side_origin: &str, file: &TensorFile) -> Result<Model> {
    if let Some((class, v)) = sidecar.kernel_choices.iter().find(|(_, v)| !crate::ops::matmul::BODY_NAMES.contains(&v.as_str())) {
        return Err(Error::Input(format!("{side_origin}: field `kernel_choices`, class `{class}`: `{v}` is not one of {}", crate::ops::matmul::BODY_NAMES.join(", "))));
    }
    gpu.pin(&sidecar.kernel_choices);
    let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
        let t = file.weights(name)?.ok_or_else(|| Error::Input(format!("{}: tensor `{name}` is missing", file.path().display())))?;
        if t.shape != shape {
            return Err(Error::Input(format!("{}: tensor `{name}` has shape {:?}, expected {shape:?}", file.path().display(), t.shape)));
        }
        Ok(t.data)
    };
    let enc: Vec<Vec<f32>> = encoder_specs(&sidecar.encoder).iter().map(|(n, s)| get(&format!("encoder.{n}"), s)).collect::<Result<_>>()?;
    let encoder = Bert::from_host(gpu, sidecar.encoder.clone(), &enc)?;
    let heads: Vec<(String, Vec<usize>, Vec<f32>)> = heads::param_specs(&sidecar.heads).into_iter().map(|(n, s)| Ok((n.clone(), s.clone(), get(&n, &s)?))).collect::<Result<_>>()?;
    let heads = Heads::new(sidecar.heads.clone(), ParamSet::new(gpu, heads)?)?;
    Ok(Model { gpu: gpu.clone(), encoder, heads })
}

/// The SHA-256 of the weights of the checkpoint `dir` that `load` returned `sidecar` for: what
/// its predictions depend on, wherever it lies.
pub fn weights_sha256(dir: &Path, sidecar: &Sidecar) -> Result<String> {
    match sidecar.files.get("model.safetensors") {
        Some(h) => Ok(h.clone()),
        None => fsutil::file_sha256(&dir.join("model.safetensors")),
    }
}

/// The AdamW moments saved with a checkpoint, if any.
pub fn load_moments(gpu: &Gpu, dir: &Path) -> Result<Option<HashMap<String, (Tensor, Tensor)>>> {
    let Some(f) = checked_file(dir, &read_sidecar(dir)?, "optimizer.safetensors")? else {
        return Ok(None);
    };
    let path = dir.join("optimizer.safetensors");
    let mut out = HashMap::new();
    for name in f.names() {
        let Some(p) = name.strip_prefix("m.") else { continue };
        let up = |n: &str| -> Result<Tensor> {
            let t = f.f32(n)?.ok_or_else(|| Error::Input(format!("{}: `{n}` is missing", path.display())))?;
            Tensor::from_f32(gpu, n, &t.shape, &t.data)
        };
        out.insert(p.to_string(), (up(&name)?, up(&format!("v.{p}"))?));
    }
    Ok(Some(out))
}
