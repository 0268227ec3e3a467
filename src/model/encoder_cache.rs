//! Encoder outputs of a frozen encoder, computed once: in memory for a run (`EncoderCache`), and
//! on disk across runs and commands (`EncoderStore`), so that training, every dev evaluation,
//! `eval` and `predict` of a frozen-encoder model run the encoder at most once per document.
//!
//! A disk entry is addressed by what determines it: the store's directory by a hash of the
//! encoder's weights and configuration, the tokenizer and this crate's version; each file by a
//! hash of the document's features (input ids and mention positions). A changed weight, a
//! different tokenizer or an edited document therefore misses and is recomputed; a stale entry
//! is never read.

// The browser reads cached outputs (`EncoderCache::inputs`) but builds none: building reads the
// encoder back with blocking readbacks, so those parts are native-only and their imports idle there.
#![cfg_attr(target_arch = "wasm32", allow(unused_imports))]

use std::path::{Path, PathBuf};
use web_time::Instant;

use sha2::{Digest, Sha256};

use crate::data::features::Example;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::model::{Batch, Bert, Pass, TokenBatch};
use crate::progress::Progress;

/// One document's frozen-encoder outputs: hidden states [L, d] and the attention rows of its
/// mention markers [M·H, L] (mentions in entity order, heads inner), the only part of A the
/// heads read.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    hidden: Vec<f32>,
    rows: Vec<f32>,
}

/// How `EncoderCache::build` obtained its entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Documents run through the encoder.
    pub computed: usize,
    /// Documents read from the disk store.
    pub loaded: usize,
}

/// The on-disk store for one encoder and tokenizer.
#[cfg(not(target_arch = "wasm32"))]
pub struct EncoderStore {
    dir: PathBuf,
}

#[cfg(not(target_arch = "wasm32"))]
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(not(target_arch = "wasm32"))]
impl EncoderStore {
    /// The store under `root` for `model`'s encoder (its weights read back once) and the
    /// tokenizer with this `WordPieceTokenizer::fingerprint`.
    pub fn open(root: &Path, gpu: &Gpu, encoder: &Bert, tokenizer: [u8; 32]) -> Result<EncoderStore> {
        let mut h = Sha256::new();
        h.update(concat!("docre ", env!("CARGO_PKG_VERSION"), " frozen encoder\n").as_bytes());
        h.update(serde_json::to_string(&encoder.config).expect("config serializes").as_bytes());
        h.update(tokenizer);
        for (name, t) in encoder.names().iter().zip(encoder.params()) {
            h.update(name.as_bytes());
            h.update(format!("{:?}", t.shape()).as_bytes());
            h.update(bytemuck::cast_slice::<f32, u8>(&t.read_f32(gpu)?));
        }
        let dir = root.join("encoder").join(&hex(&h.finalize())[..32]);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io { context: format!("cannot create the encoder cache {}", dir.display()), source })?;
        Ok(EncoderStore { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, ex: &Example) -> PathBuf {
        let mut h = Sha256::new();
        h.update(bytemuck::cast_slice::<u32, u8>(&ex.ids));
        for starts in &ex.mention_starts {
            h.update((starts.len() as u64).to_le_bytes());
            for &s in starts {
                h.update((s as u64).to_le_bytes());
            }
        }
        self.dir.join(format!("{}.f32", &hex(&h.finalize())[..32]))
    }

    /// The entry of `ex`, if stored and whole (a torn or foreign file is a miss).
    fn get(&self, ex: &Example, dim: usize, heads: usize) -> Option<Entry> {
        let bytes = std::fs::read(self.path(ex)).ok()?;
        let l = ex.ids.len();
        let m: usize = ex.mention_starts.iter().map(Vec::len).sum();
        let (nh, nr) = (l * dim, m * heads * l);
        if bytes.len() != 4 * (nh + nr) {
            return None;
        }
        let v: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
        Some(Entry { hidden: v[..nh].to_vec(), rows: v[nh..].to_vec() })
    }

    fn put(&self, ex: &Example, e: &Entry) -> Result<()> {
        write_atomic(&self.path(ex), &[bytemuck::cast_slice::<f32, u8>(&e.hidden), bytemuck::cast_slice(&e.rows)].concat())
    }
}

/// Frozen-encoder outputs (evaluation mode, no dropout) of a list of examples, in memory.
/// Training or predicting the heads from it equals doing so on the live frozen encoder.
pub struct EncoderCache {
    entries: Vec<Entry>,
    dim: usize,
}

#[cfg(not(target_arch = "wasm32"))]
fn encode(gpu: &Gpu, encoder: &Bert, ex: &Example) -> Result<Entry> {
    let heads = encoder.config.num_attention_heads;
    let mut rec = Recorder::new(gpu);
    let batch = TokenBatch { docs: vec![ex.ids.clone()] };
    // As the live evaluation path (Model::encode) runs it, so that the cache equals it.
    if encoder.fused_attention_runs(gpu)? {
        let starts: Vec<u32> = ex.mention_starts.iter().flatten().map(|&s| s as u32).collect();
        let out = encoder.forward_mention_rows(&mut rec, &batch, &starts)?;
        rec.finish()?;
        return Ok(Entry { hidden: out.hidden.read_f32(gpu)?, rows: out.attention.read_f32(gpu)? });
    }
    let (out, _) = encoder.forward(&mut rec, &batch, Pass::eval())?;
    rec.finish()?;
    let l = ex.ids.len();
    let att = out.attention.read_f32(gpu)?;
    let mut rows = Vec::new();
    for &s in ex.mention_starts.iter().flatten() {
        for h in 0..heads {
            rows.extend_from_slice(&att[(h * l + s) * l..(h * l + s + 1) * l]);
        }
    }
    Ok(Entry { hidden: out.hidden.read_f32(gpu)?, rows })
}

impl EncoderCache {
    /// Encodes `examples`, reading and filling `store` when given; `progress` gets the number
    /// of documents done.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn build(gpu: &Gpu, encoder: &Bert, examples: &[Example], store: Option<&EncoderStore>, mut progress: impl FnMut(usize)) -> Result<(EncoderCache, CacheStats)> {
        let (dim, heads) = (encoder.config.hidden_size, encoder.config.num_attention_heads);
        let mut stats = CacheStats::default();
        let mut entries = Vec::with_capacity(examples.len());
        for (i, ex) in examples.iter().enumerate() {
            let entry = match store.and_then(|s| s.get(ex, dim, heads)) {
                Some(e) => {
                    stats.loaded += 1;
                    e
                }
                None => {
                    let e = encode(gpu, encoder, ex)?;
                    if let Some(s) = store {
                        s.put(ex, &e)?;
                    }
                    stats.computed += 1;
                    e
                }
            };
            entries.push(entry);
            progress(i + 1);
        }
        Ok((EncoderCache { entries, dim }, stats))
    }

    /// X [B, L, d] and the compact mention attention rows [M·H, L] of `batch` (whose example
    /// indices index this cache).
    pub fn inputs(&self, gpu: &Gpu, batch: &Batch) -> Result<(Tensor, Tensor)> {
        let (b, l) = (batch.examples.len(), batch.tokens.len());
        let mut x = vec![0.0f32; b * l * self.dim];
        let mut a = Vec::new();
        for (k, &i) in batch.examples.iter().enumerate() {
            let h = &self.entries[i].hidden;
            x[k * l * self.dim..k * l * self.dim + h.len()].copy_from_slice(h);
            let li = h.len() / self.dim;
            for row in self.entries[i].rows.chunks(li) {
                a.extend_from_slice(row);
                a.extend(std::iter::repeat_n(0.0, l - li));
            }
        }
        let m = a.len() / l.max(1);
        Ok((Tensor::from_f32(gpu, "cached_hidden", &[b, l, self.dim], &x)?, Tensor::from_f32(gpu, "cached_mention_attention", &[m, l], &a)?))
    }

    /// The hidden states of example `i` (tests compare them).
    pub fn hidden(&self, i: usize) -> &[f32] {
        &self.entries[i].hidden
    }
}

/// The frozen encoder's outputs for `examples`, through `store` (computed where missing); `what`
/// names the documents in the progress line and the log.
#[cfg(not(target_arch = "wasm32"))]
pub fn frozen_outputs(gpu: &Gpu, encoder: &Bert, store: &EncoderStore, examples: &[Example], what: &str, progress: bool) -> Result<EncoderCache> {
    let started = Instant::now();
    let bar = Progress::new(examples.len() as u64, format!("frozen encoder, {what}:"), progress);
    let (cache, stats) = EncoderCache::build(gpu, encoder, examples, Some(store), |i| bar.update(i as u64, &format!("documents ({:.1} s)", started.elapsed().as_secs_f64())))?;
    bar.finish(&format!("documents ({:.1} s)", started.elapsed().as_secs_f64()));
    eprintln!("frozen encoder, {what}: {} documents encoded, {} read from {}", stats.computed, stats.loaded, store.dir().display());
    Ok(cache)
}
