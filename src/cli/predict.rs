//! `docre predict` and `docre merge`: a corpus in rounds, whole or as one shard of N, and the
//! output set.

use std::path::{Path, PathBuf};

use crate::data::docred::Document;
use crate::data::features::{featurize, input_len};
use crate::data::format::Format;
use crate::eval::output;
use crate::eval::test_loop::LoopWork;
use crate::eval::threshold::Scored;
use crate::fsutil::{cache_root, OutputDir};
use crate::gpu::Gpu;
use crate::model::checkpoint::{self, Sidecar};
use crate::model::encoder_cache::{frozen_outputs, EncoderStore};
use crate::model::Model;
use crate::workflow::shard::{merge, shard_json, Provenance, Shard};
use crate::{Error, Result};

/// Documents predicted per round: examples (with their label grids) and, for a frozen encoder,
/// its outputs exist for one round at a time, so memory stays flat over a corpus.
const PREDICT_CHUNK: usize = 256;

/// The full model's scored facts for each of `docs` (`indices`: their places in the file),
/// predicted in rounds of PREDICT_CHUNK documents taken longest first over the whole corpus.
/// Rounds in file order each met their own longest batch, so the working set, and with it the
/// resident set on CPU adapters, grew whenever a round held a longer document than any before
/// (7 to 19 % above the value at 500 of 5,000 documents); in this order the first round holds the
/// largest, and later rounds reuse its buffers.
fn predict_in_rounds(model: &Model, side: &Sidecar, docs: &[Document], indices: &[usize], data: &Path) -> Result<(Vec<Vec<Scored>>, LoopWork)> {
    let tok = side.tokenizer.load()?;
    let classes = side.relations.len();
    let max_ids = model.encoder.config.max_ids();
    let store = side.frozen_encoder.then(|| EncoderStore::open(&cache_root(), &model.gpu, &model.encoder, tok.fingerprint())).transpose()?;
    let lengths = docs.iter().map(|d| input_len(d, &tok, max_ids)).collect::<Result<Vec<_>>>()?;
    let mut order: Vec<usize> = (0..docs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    let mut full = vec![Vec::new(); docs.len()];
    let mut work = LoopWork::default();
    for (round, chunk) in order.chunks(PREDICT_CHUNK).enumerate() {
        let exs = chunk
            .iter()
            .map(|&i| {
                let (ex, warning) = featurize(indices[i], &docs[i], &tok, classes, max_ids)?;
                if let Some(w) = warning {
                    eprintln!("warning: {w}");
                }
                Ok(ex)
            })
            .collect::<Result<Vec<_>>>()?;
        let cache = store.as_ref().map(|s| frozen_outputs(&model.gpu, &model.encoder, s, &exs, &format!("{} (round {} of {})", data.display(), round + 1, order.len().div_ceil(PREDICT_CHUNK)), false)).transpose()?;
        let predictions = crate::eval::predict::predict(model, &exs, 4, cache.as_ref())?;
        work.absorb(predictions.work);
        for (&i, facts) in chunk.iter().zip(predictions.full_scored(&exs)) {
            full[i] = facts;
        }
    }
    Ok((full, work))
}

pub fn predict_cmd(checkpoint: &Path, data: &Path, format: Format, out: &Path, zip: bool, shard: Option<Shard>) -> Result<()> {
    // A set goes to a folder no other docre process is writing; shards are one file each,
    // written atomically, since the shards of one corpus may share --out and run at once.
    let mut dir = shard.is_none().then(|| OutputDir::open(out)).transpose()?;
    let gpu = Gpu::new()?;
    let (model, side) = checkpoint::load(&gpu, checkpoint)?;
    let rels = side.relations();
    let all = format.read_for_prediction(data, &rels)?;
    let total = all.len();
    let (indices, docs): (Vec<usize>, Vec<Document>) = all.into_iter().enumerate().filter(|(i, _)| shard.is_none_or(|s| s.holds(*i))).unzip();
    let (full, work) = predict_in_rounds(&model, &side, &docs, &indices, data)?;
    if work.document_passes_full > 0 {
        eprintln!("test-time loop: {} of {} document passes ran; the others' labels were those of their last pass, so their logits were reused", work.document_passes, work.document_passes_full);
    }
    if let Some(s) = shard {
        let provenance = Provenance { checkpoint_sha256: checkpoint::weights_sha256(checkpoint, &side)?, corpus_sha256: crate::fsutil::file_sha256(data)? };
        let json = shard_json(s, data, &provenance, total, &indices, &docs, &full, &rels);
        std::fs::create_dir_all(out).map_err(|source| Error::Io { context: format!("cannot create {}", out.display()), source })?;
        let path = output::write_output(out, &s.file_name(), &json)?;
        println!("shard {}/{}: {} facts over {} of {total} documents; wrote {}", s.k, s.n, full.iter().map(Vec::len).sum::<usize>(), docs.len(), path.display());
        return Ok(());
    }
    let json = output::result_json(&docs, &full, &rels);
    let written = output::write_set(dir.as_mut().expect("opened above"), &json, &output::listing(&docs, &full, &rels), zip)?;
    println!("{} facts over {} documents; wrote {}", full.iter().map(Vec::len).sum::<usize>(), docs.len(), written);
    Ok(())
}

pub fn merge_cmd(shards: &[PathBuf], out: &Path, zip: bool) -> Result<()> {
    let (json, list) = merge(shards)?;
    let mut dir = OutputDir::open(out)?;
    let written = output::write_set(&mut dir, &json, &list, zip)?;
    println!("merged {} shards; wrote {written}", shards.len());
    Ok(())
}
