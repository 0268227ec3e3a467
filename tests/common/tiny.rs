//! The tiny model on the bundled demo documents, untrained, with its sidecar: what the training
//! and fault tests start from.

use docre::data::WordPieceTokenizer;
use docre::model::checkpoint::{Sidecar, TokenizerSource};
use docre::model::heads::Heads;
use docre::model::Bert;
use docre::model::Model;
use docre::data::sample::{documents, relations, TRAIN_DOCS};
use docre::train::preset::preset;
use docre::data::format::examples;

use super::gpu;

pub struct Setup {
    pub model: Model,
    pub docs: Vec<docre::data::docred::Document>,
    pub exs: Vec<docre::data::features::Example>,
    pub sidecar: Sidecar,
    pub cfg: docre::train::preset::RunConfig,
    pub tokenizer: [u8; 32],
}

pub fn setup() -> Setup {
    let g = gpu();
    let rels = relations();
    let docs = documents(&rels).unwrap()[..TRAIN_DOCS].to_vec();
    let cfg = preset("tiny").unwrap();
    let tok = WordPieceTokenizer::word_level(docs.iter().flat_map(|d| d.sents.iter().flatten().map(String::as_str)));
    let encoder = Bert::random(&g, cfg.tiny_encoder(tok.vocab_size()), cfg.seed).unwrap();
    let hc = cfg.head_config(encoder.config.hidden_size, rels.len());
    let heads = Heads::random(&g, hc.clone(), cfg.seed).unwrap();
    let exs = examples(&docs, &tok, rels.len(), cfg.max_ids).unwrap();
    let sidecar = Sidecar { encoder: encoder.config.clone(), heads: hc, tokenizer: TokenizerSource::Words { words: tok.word_list().unwrap() }, relations: rels.codes.clone(), relation_names: rels.names.clone(), step: 0, best_score: None, note: "test".into(), progress: None, frozen_encoder: false, encoder_hub: None, kernel_choices: Default::default(), files: Default::default(), init_seed: Some(cfg.seed) };
    Setup { model: Model { gpu: g, encoder, heads }, docs, exs, sidecar, cfg, tokenizer: tok.fingerprint() }
}

