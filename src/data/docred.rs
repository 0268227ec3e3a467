//! DocRED-format documents (DocRED, Re-DocRED; SPEC 1.1), the relation inventory of the meta
//! files, and validation whose errors name the file, the document and the field.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use super::strict_json;
use crate::error::{Error, Result};

/// A mention: words [start, end) of sentence `sent`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntityMention {
    pub sent: usize,
    pub start: usize,
    pub end: usize,
    pub name: String,
    pub kind: String,
}

/// A relation fact between entities h and t (indices into `entities`), relation id r ≥ 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fact {
    pub h: usize,
    pub t: usize,
    pub r: usize,
}

#[derive(Clone, Debug, Default)]
pub struct Document {
    pub title: String,
    pub sents: Vec<Vec<String>>,
    pub entities: Vec<Vec<EntityMention>>,
    pub facts: Vec<Fact>,
    /// False for unlabelled files (DocRED test): they can be predicted but not scored.
    pub labelled: bool,
    /// The pairs to classify, when the file lists them (CDR, GDA); otherwise every ordered pair.
    pub candidates: Option<Vec<(usize, usize)>>,
    /// ATLOP's biomedical marking (SPEC 1.7): document-level word spans [start, end), one per
    /// distinct (start, end, type) of any pair in the file (`not_include` ones too), each given a
    /// `*` before and after. None: DocRED's rule, one `*` per side of every word where an entity
    /// mention starts or ends.
    pub marker_spans: Option<Vec<(usize, usize)>>,
}

/// Relation ids (0 = the threshold / NA class) and their readable names.
#[derive(Clone, Debug)]
pub struct Relations {
    /// Code of each id ("Na" or "NA" for 0, Wikidata P-codes for DocRED).
    pub codes: Vec<String>,
    pub ids: HashMap<String, usize>,
    pub names: HashMap<String, String>,
}

/// DocRED's relation inventory (data/docred_meta: ATLOP's rel2id.json and the Wikidata names of
/// rel_info.json), built in.
const DOCRED_REL2ID: &str = include_str!("../../data/docred_meta/rel2id.json");
const DOCRED_REL_INFO: &str = include_str!("../../data/docred_meta/rel_info.json");

impl Relations {
    /// Reads `rel2id.json` (code → id, NA = 0) and optionally `rel_info.json` (code → name);
    /// codes `rel_info` does not name keep their built-in DocRED names.
    pub fn load(rel2id: &Path, rel_info: Option<&Path>) -> Result<Relations> {
        let mut r = Relations::from_json(&read_json(rel2id)?, &rel2id.display().to_string())?;
        r.names = Relations::docred().names;
        if let Some(p) = rel_info {
            r.add_names_from(p)?;
        }
        Ok(r)
    }

    /// Names from a `rel_info.json` (code → name), over the ones already known.
    pub fn add_names_from(&mut self, rel_info: &Path) -> Result<()> {
        self.add_names(&read_json(rel_info)?, &rel_info.display().to_string())
    }

    /// DocRED's 96 relations plus `Na`, with their Wikidata names: the default inventory of the
    /// DocRED format.
    pub fn docred() -> Relations {
        let parse = |text: &str| serde_json::from_str::<Value>(text).expect("the built-in inventory is valid JSON");
        let mut r = Relations::from_json(&parse(DOCRED_REL2ID), "built-in rel2id.json").expect("the built-in rel2id is valid");
        r.add_names(&parse(DOCRED_REL_INFO), "built-in rel_info.json").expect("the built-in rel_info is valid");
        r
    }

    fn from_json(v: &Value, source: &str) -> Result<Relations> {
        let map = v.as_object().ok_or_else(|| Error::Input(format!("{source}: expected an object of relation code → id")))?;
        let mut codes = vec![String::new(); map.len()];
        let mut ids = HashMap::new();
        for (code, id) in map {
            let id = id.as_u64().map(|x| x as usize).filter(|&x| x < map.len()).ok_or_else(|| Error::Input(format!("{source}: relation `{code}` has id {id}, not an integer below {}", map.len())))?;
            if !codes[id].is_empty() {
                return Err(Error::Input(format!("{source}: id {id} is used twice")));
            }
            codes[id] = code.clone();
            ids.insert(code.clone(), id);
        }
        Ok(Relations { codes, ids, names: HashMap::new() })
    }

    fn add_names(&mut self, v: &Value, source: &str) -> Result<()> {
        let obj = v.as_object().ok_or_else(|| Error::Input(format!("{source}: expected an object of relation code → name")))?;
        for (k, v) in obj {
            self.names.insert(k.clone(), v.as_str().unwrap_or(k).to_string());
        }
        Ok(())
    }

    /// A two-class inventory for the biomedical sets (0 = no relation, 1 = the relation).
    pub fn binary(code: &str) -> Relations {
        let codes = vec!["NA".to_string(), code.to_string()];
        let ids = codes.iter().enumerate().map(|(i, c)| (c.clone(), i)).collect();
        Relations { codes, ids, names: HashMap::new() }
    }

    pub fn len(&self) -> usize {
        self.codes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// Readable name of relation id `r` (its code when rel_info does not list it).
    pub fn name(&self, r: usize) -> &str {
        let code = &self.codes[r];
        self.names.get(code).map(String::as_str).unwrap_or(code)
    }
}

pub(crate) fn read_json(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io { context: format!("cannot read {}", path.display()), source })?;
    let text = strict_json::text(&bytes).map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
    strict_json::parse(text).map_err(|e| Error::Input(format!("{}: malformed JSON: {e}", path.display())))
}

/// What a label whose relation the inventory lacks does: refuse the file (training, scoring),
/// or drop the label and count it (prediction, which never reads labels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownRelations {
    Refuse,
    Drop,
}

/// Reads and validates a DocRED-format file. `rels` maps relation codes; a label with an unknown
/// code is an error.
pub fn read_docred(path: &Path, rels: &Relations) -> Result<Vec<Document>> {
    read_docred_with(path, rels, UnknownRelations::Refuse).map(|(docs, _)| docs)
}

/// `read_docred`, and how many labels were dropped for naming unknown relations.
pub fn read_docred_with(path: &Path, rels: &Relations, unknown: UnknownRelations) -> Result<(Vec<Document>, usize)> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io { context: format!("cannot read {}", path.display()), source })?;
    let text = strict_json::text(&bytes).map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
    read_json_str_with(text, &path.display().to_string(), rels, unknown)
}

/// `read_docred` on JSON text: a JSON list of documents, or JSON Lines (one document object per
/// non-empty line, for corpora too large to hold as one list); `origin` names it in errors.
pub fn read_json_str(text: &str, origin: &str, rels: &Relations) -> Result<Vec<Document>> {
    read_json_str_with(text, origin, rels, UnknownRelations::Refuse).map(|(docs, _)| docs)
}

/// `read_json_str`, choosing what a label with an unknown relation does; also returns how many
/// labels were dropped.
pub fn read_json_str_with(text: &str, origin: &str, rels: &Relations, unknown: UnknownRelations) -> Result<(Vec<Document>, usize)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut dropped = 0;
    if !text.trim_start().starts_with('[') {
        let mut docs = Vec::new();
        for (ln, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let d: Value = strict_json::parse(line).map_err(|e| Error::Input(format!("{origin}: line {}: malformed JSON (a JSON Lines file holds one document object per line): {e}", ln + 1)))?;
            let i = docs.len();
            docs.push(parse_doc(&d, i, rels, unknown, &mut dropped).map_err(|m| Error::Input(format!("{origin}: line {}: {m}", ln + 1)))?);
        }
        if docs.is_empty() {
            return Err(Error::Input(format!("{origin}: no documents (expected a JSON list or JSON Lines)")));
        }
        return Ok((docs, dropped));
    }
    let v: Value = strict_json::parse(text).map_err(|e| Error::Input(format!("{origin}: malformed JSON: {e}")))?;
    let docs = v.as_array().ok_or_else(|| Error::Input(format!("{origin}: expected a JSON list of documents")))?;
    let docs = docs.iter().enumerate().map(|(i, d)| parse_doc(d, i, rels, unknown, &mut dropped).map_err(|m| Error::Input(format!("{origin}: {m}")))).collect::<Result<_>>()?;
    Ok((docs, dropped))
}

/// "a string", "null", ...: what a JSON value is, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The document's own description for error messages: index and title when there is one.
fn doc_label(i: usize, d: &Value) -> String {
    match d.get("title") {
        Some(Value::String(t)) => format!("document {i} ({t:?})"),
        Some(t) if !t.is_null() => format!("document {i} ({t})"),
        _ => format!("document {i}"),
    }
}

fn parse_doc(d: &Value, i: usize, rels: &Relations, unknown: UnknownRelations, dropped: &mut usize) -> std::result::Result<Document, String> {
    if !d.is_object() {
        return Err(format!("document {i} is {}, expected an object with `title`, `sents` and `vertexSet`", kind(d)));
    }
    let at = doc_label(i, d);
    let field = |k: &str| d.get(k).ok_or_else(|| format!("{at}: field `{k}` is missing"));
    let title = match field("title")? {
        Value::String(s) => s.clone(),
        other => return Err(format!("{at}: `title` must be a string, found {}", kind(other))),
    };
    let sents_v = field("sents")?.as_array().ok_or_else(|| format!("{at}: `sents` must be a list of sentences"))?;
    let mut sents = Vec::new();
    for (s, sent) in sents_v.iter().enumerate() {
        let words = sent.as_array().ok_or_else(|| format!("{at}: `sents[{s}]` must be a list of words"))?;
        let words: Vec<String> = words.iter().enumerate().map(|(w, x)| x.as_str().map(str::to_string).ok_or_else(|| format!("{at}: `sents[{s}][{w}]` must be a string"))).collect::<std::result::Result<_, _>>()?;
        sents.push(words);
    }
    if sents.iter().all(Vec::is_empty) {
        return Err(format!("{at}: the document has no words"));
    }
    let vs = field("vertexSet")?.as_array().ok_or_else(|| format!("{at}: `vertexSet` must be a list of entities"))?;
    let mut entities = Vec::new();
    for (e, ent) in vs.iter().enumerate() {
        let ms = ent.as_array().ok_or_else(|| format!("{at}: `vertexSet[{e}]` must be a list of mentions"))?;
        if ms.is_empty() {
            return Err(format!("{at}: `vertexSet[{e}]` has no mentions"));
        }
        let mut mentions = Vec::new();
        for (k, m) in ms.iter().enumerate() {
            let f = format!("{at}: vertexSet[{e}][{k}]");
            let sent = m.get("sent_id").and_then(Value::as_u64).ok_or_else(|| format!("{f}.sent_id is missing or not an integer"))? as usize;
            let pos = m.get("pos").and_then(Value::as_array).filter(|p| p.len() == 2).ok_or_else(|| format!("{f}.pos must be [start, end]"))?;
            let (start, end) = match (pos[0].as_i64(), pos[1].as_i64()) {
                (Some(a), Some(b)) if a < 0 || b < 0 => return Err(format!("{f}.pos [{a}, {b}]: a position is negative")),
                (Some(a), Some(b)) => (a as usize, b as usize),
                _ => return Err(format!("{f}.pos must hold two integers, found {} and {}", kind(&pos[0]), kind(&pos[1]))),
            };
            let words = sents.get(sent).ok_or_else(|| format!("{f}.sent_id {sent} is outside the document's {} sentences", sents.len()))?.len();
            if start >= end {
                return Err(format!("{f}.pos [{start}, {end}]: the end is not after the start (pos is [first word, one past the last])"));
            }
            if end > words {
                return Err(format!("{f}.pos [{start}, {end}] is outside sentence {sent} ({words} words)"));
            }
            let name = m.get("name").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| sents[sent][start..end].join(" "));
            let kind = m.get("type").and_then(Value::as_str).unwrap_or("").to_string();
            mentions.push(EntityMention { sent, start, end, name, kind });
        }
        entities.push(mentions);
    }
    let (facts, labelled) = match d.get("labels") {
        None => (Vec::new(), false),
        Some(Value::Array(ls)) => {
            let mut facts = Vec::new();
            for (k, l) in ls.iter().enumerate() {
                let f = format!("{at}: labels[{k}]");
                if !l.is_object() {
                    return Err(format!("{f} is {}, expected an object with h, t and r", kind(l)));
                }
                let idx = |key: &str| -> std::result::Result<usize, String> {
                    let x = l.get(key).and_then(Value::as_u64).ok_or_else(|| format!("{f}.{key} is missing or not an integer"))? as usize;
                    if x >= entities.len() {
                        return Err(format!("{f}.{key} = {x} but the document has {} entities", entities.len()));
                    }
                    Ok(x)
                };
                let (h, t) = (idx("h")?, idx("t")?);
                let code = match l.get("r") {
                    Some(Value::String(s)) => s.clone(),
                    Some(v @ Value::Number(_)) => return Err(format!("{f}.r is {v}: a number where a relation name (such as \"P17\") is expected")),
                    Some(other) => return Err(format!("{f}.r is {}: a relation name (such as \"P17\") is expected", kind(other))),
                    None => return Err(format!("{f}.r is missing")),
                };
                let Some(&r) = rels.ids.get(&code) else {
                    if unknown == UnknownRelations::Drop {
                        *dropped += 1;
                        continue;
                    }
                    return Err(format!("{f}.r = {code:?} is not a known relation (rel2id has {})", rels.len()));
                };
                if r == 0 {
                    continue;
                }
                facts.push(Fact { h, t, r });
            }
            facts.sort();
            facts.dedup();
            (facts, true)
        }
        Some(other) => return Err(format!("{at}: `labels` must be a list, found {} (leave the field out for an unlabelled document)", kind(other))),
    };
    Ok(Document { title, sents, entities, facts, labelled, candidates: None, marker_spans: None })
}
