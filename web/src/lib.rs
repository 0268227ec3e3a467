//! docre in the browser: a checkpoint made by `docre train`, given as its files' bytes, predicts
//! relations in DocRED-format documents on the page's WebGPU adapter. The same library and WGSL
//! kernels as the native binary; readbacks are futures (the browser resolves buffer mappings
//! from its event loop) and kernel parameters travel in a uniform buffer (WebGPU has no
//! immediates).

use std::rc::Rc;

use docre::data::docred::{read_json_str_with, Document, UnknownRelations};
use docre::data::format::examples;
use docre::data::WordPieceTokenizer;
use docre::eval::predict::predict_async;
use docre::eval::output::result_facts;
use docre::gpu::Gpu;
use docre::model::checkpoint::{self, Sidecar, TokenizerSource};
use docre::model::Model;
use wasm_bindgen::prelude::*;

/// Documents per GPU batch, as `docre predict` runs them.
const BATCH: usize = 4;

struct Loaded {
    model: Model,
    side: Sidecar,
    tok: WordPieceTokenizer,
}

/// A checkpoint on this page's GPU.
#[wasm_bindgen]
pub struct Predictor(Rc<Loaded>);

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

fn js(e: docre::Error) -> JsError {
    JsError::new(&e.to_string())
}

/// The adapter the browser offers and what docre makes of it, as JSON (name, backend, limits,
/// subgroups, parameter passing); an error says why no device opened.
#[wasm_bindgen]
pub async fn adapter() -> Result<String, JsError> {
    let gpu = Gpu::open(None).await.map_err(js)?;
    Ok(report(&gpu))
}

fn report(gpu: &Gpu) -> String {
    let mut v = serde_json::to_value(gpu.report()).expect("the report serializes");
    v["subgroup_size"] = serde_json::json!(gpu.subgroup_size().ok().flatten());
    v.to_string()
}

/// `docre selftest` in the page: every kernel family and variant this adapter can run, forward
/// and backward, against its f64 reference (the tiny-model training check is native-only).
/// `progress` is called with each row as it finishes; resolves to all rows, as JSON: family,
/// variant, outcome ("pass", "fail" or "skip"), message, seconds.
#[wasm_bindgen]
pub async fn selftest(progress: js_sys::Function) -> Result<String, JsError> {
    let gpu = Gpu::open(None).await.map_err(js)?;
    let row_json = |r: &docre::selftest::Row| {
        let (outcome, message) = match &r.outcome {
            docre::selftest::Outcome::Pass => ("pass", String::new()),
            docre::selftest::Outcome::Fail(m) => ("fail", m.clone()),
            docre::selftest::Outcome::Skip(m) => ("skip", m.clone()),
        };
        serde_json::json!({"family": r.family, "variant": r.variant, "outcome": outcome, "message": message, "seconds": r.seconds})
    };
    let rows = docre::selftest::run_async(&gpu, None, |r| {
        let _ = progress.call1(&JsValue::NULL, &JsValue::from_str(&row_json(r).to_string()));
    })
    .await;
    Ok(serde_json::Value::from(rows.iter().map(row_json).collect::<Vec<_>>()).to_string())
}

#[wasm_bindgen]
impl Predictor {
    /// Opens the GPU and loads the checkpoint from its files: `checkpoint.json` (text),
    /// `model.safetensors` (bytes, checked against the SHA-256 the sidecar records) and, when
    /// the checkpoint's tokenizer is a tokenizer.json, that file's bytes.
    pub async fn open(checkpoint_json: String, model: Vec<u8>, tokenizer_json: Option<Vec<u8>>) -> Result<Predictor, JsError> {
        let side = checkpoint::sidecar_from_str(&checkpoint_json, "checkpoint.json").map_err(js)?;
        let tok = match (&side.tokenizer, tokenizer_json) {
            (TokenizerSource::Words { .. }, _) => side.tokenizer.load().map_err(js)?,
            (TokenizerSource::Hf { .. }, Some(bytes)) => WordPieceTokenizer::from_bytes(&bytes, "tokenizer.json").map_err(js)?,
            (TokenizerSource::Hf { path }, None) => {
                return Err(JsError::new(&format!("checkpoint.json: field `tokenizer` names {}; add that tokenizer.json to the files", path.display())));
            }
        };
        let gpu = Gpu::open(None).await.map_err(js)?;
        let file = checkpoint::checked_bytes(&side, "checkpoint.json", "model.safetensors", std::path::Path::new("model.safetensors"), model).map_err(js)?;
        let model = checkpoint::from_parts(&gpu, &side, "checkpoint.json", &file).map_err(js)?;
        Ok(Predictor(Rc::new(Loaded { model, side, tok })))
    }

    /// The adapter this checkpoint runs on, as `adapter()` gives it.
    pub fn adapter(&self) -> String {
        report(&self.0.model.gpu)
    }

    /// Predicts the documents of `text` (a JSON list or JSON Lines in DocRED's format; `origin`
    /// names it in errors). Resolves to JSON: `documents` (title, sentences, entities with their
    /// mentions) and `facts`: `docre predict`'s result.json entries in its order (title, h_idx,
    /// t_idx, r, evidence, score = the logit's margin over the threshold class), each with its
    /// relation's name as `relation`.
    pub fn predict(&self, text: String, origin: String) -> js_sys::Promise {
        let this = self.0.clone();
        wasm_bindgen_futures::future_to_promise(async move { this.predict(&text, &origin).await.map(JsValue::from).map_err(|e| JsError::new(&e.to_string()).into()) })
    }
}

impl Loaded {
    async fn predict(&self, text: &str, origin: &str) -> docre::Result<String> {
        let rels = self.side.relations();
        // Prediction never reads gold labels: ones naming unknown relations are dropped.
        let (docs, _) = read_json_str_with(text, origin, &rels, UnknownRelations::Drop)?;
        let exs = examples(&docs, &self.tok, rels.len(), self.model.encoder.config.max_ids())?;
        let pred = predict_async(&self.model, &exs, BATCH, None).await?;
        // `docre predict`'s result.json entries, each with its relation's name for the table.
        let scored = pred.full_scored(&exs);
        let facts: Vec<serde_json::Value> = result_facts(&docs, &scored, &rels)
            .into_iter()
            .zip(scored.iter().flatten())
            .map(|(entry, s)| {
                let mut v = serde_json::to_value(entry).expect("a result entry serializes");
                v["relation"] = rels.name(s.fact.r).into();
                v
            })
            .collect();
        Ok(serde_json::json!({"documents": docs.iter().map(document).collect::<Vec<_>>(), "facts": facts}).to_string())
    }
}

fn document(d: &Document) -> serde_json::Value {
    let entities: Vec<serde_json::Value> = d
        .entities
        .iter()
        .map(|ms| serde_json::json!({"name": ms[0].name, "type": ms[0].kind, "mentions": ms.iter().map(|m| serde_json::json!({"sent": m.sent, "start": m.start, "end": m.end})).collect::<Vec<_>>()}))
        .collect();
    serde_json::json!({"title": d.title, "sents": d.sents, "entities": entities})
}
