//! `docre eval`: the controls of `eval::controls` for one or more checkpoints, and their
//! summary over seeds.

use std::path::{Path, PathBuf};

use crate::data::docred::{Document, Relations};
use crate::data::format::{examples, Format};
use crate::eval::train_facts as facts_of;
use crate::fsutil::{cache_root, check_writable, write_atomic};
use crate::gpu::Gpu;
use crate::model::checkpoint::{self, Sidecar};
use crate::model::encoder_cache::{frozen_outputs, EncoderCache, EncoderStore};
use crate::model::Model;
use crate::{Error, Result};

/// A checkpoint and a data file, featurized; for a model trained with its encoder frozen, also
/// the encoder's outputs for the documents, from the encoder cache where they are stored.
type Loaded = (Model, Sidecar, Relations, Vec<Document>, Vec<crate::data::features::Example>, Option<EncoderCache>);

fn load_for_data(checkpoint: &Path, data: &Path, format: Format) -> Result<Loaded> {
    let gpu = Gpu::new()?;
    let (model, side) = checkpoint::load(&gpu, checkpoint)?;
    let rels = side.relations();
    let (docs, exs, cache) = data_for(&model, &side, data, format)?;
    Ok((model, side, rels, docs, exs, cache))
}

/// A labelled file read for a loaded checkpoint: its documents, examples and, for a frozen
/// encoder, the encoder's outputs from the cache.
fn data_for(model: &Model, side: &Sidecar, data: &Path, format: Format) -> Result<(Vec<Document>, Vec<crate::data::features::Example>, Option<EncoderCache>)> {
    let docs = format.read(data, &side.relations())?;
    let tok = side.tokenizer.load()?;
    let exs = examples(&docs, &tok, side.relations.len(), model.encoder.config.max_ids())?;
    let cache = match side.frozen_encoder {
        true => {
            let store = EncoderStore::open(&cache_root(), &model.gpu, &model.encoder, tok.fingerprint())?;
            Some(frozen_outputs(&model.gpu, &model.encoder, &store, &exs, &data.display().to_string(), true)?)
        }
        false => None,
    };
    Ok((docs, exs, cache))
}

pub fn eval_cmd(checkpoints: &[PathBuf], data: &Path, format: Format, train: Option<&Path>, tune_on: Option<&Path>, json: Option<&Path>) -> Result<()> {
    use crate::eval::controls::{controls, table, thresholds, Split};
    if let Some(j) = json {
        check_writable(j, "--json")?;
    }
    let mut runs = Vec::new();
    let mut thresholds_of = Vec::new();
    for checkpoint in checkpoints {
        let (mut model, side, rels, docs, exs, cache) = load_for_data(checkpoint, data, format)?;
        if docs.iter().all(|d| !d.labelled) {
            return Err(Error::Input(format!("{}: the file has no labels (like DocRED test); use `docre predict` and submit result.json to CodaLab", data.display())));
        }
        let tf = train.map(|t| format.read(t, &rels).map(|d| facts_of(&d))).transpose()?;
        let tuned = match tune_on {
            Some(dev) => {
                let (dev_docs, dev_exs, dev_cache) = data_for(&model, &side, dev, format)?;
                if dev_docs.iter().all(|d| !d.labelled) {
                    return Err(Error::Input(format!("--tune-on {}: the file has no labels to tune a threshold on", dev.display())));
                }
                Some(thresholds(&model, &Split { docs: &dev_docs, examples: &dev_exs, cache: dev_cache.as_ref() })?)
            }
            None => None,
        };
        if side.init_seed.is_none() {
            eprintln!("note: {} does not record the seed its heads were initialised from (written before docre recorded it); the untrained-module control is left out", checkpoint.display());
        }
        let rows = controls(&mut model, &Split { docs: &docs, examples: &exs, cache: cache.as_ref() }, tf.as_ref(), tuned, side.init_seed)?;
        if checkpoints.len() > 1 {
            println!("{}", checkpoint.display());
        }
        print!("{}", table(&rows));
        runs.push((checkpoint.clone(), rows));
        thresholds_of.push(tuned);
    }
    let summary = (runs.len() > 1).then(|| crate::eval::summary::summarize(&runs));
    if let Some(s) = &summary {
        println!("\n{} checkpoints: mean ± sample sd [min–max]", runs.len());
        print!("{}", s.table());
    }
    if let Some(j) = json {
        let per: Vec<serde_json::Value> = runs.iter().zip(&thresholds_of).map(|((c, rows), t)| serde_json::json!({"checkpoint": c, "thresholds": t, "models": rows})).collect();
        let v = serde_json::json!({"data": data, "tuned_on": tune_on, "checkpoints": per, "summary": summary});
        write_atomic(j, serde_json::to_string_pretty(&v).expect("json").as_bytes())?;
        println!("wrote {}", j.display());
    }
    Ok(())
}
