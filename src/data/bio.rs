//! The EoG / ATLOP line format of CDR and GDA (SPEC 1.7): one document per line, `pmid`, text
//! (sentences joined by `|`, tokens by spaces), then 17 tab-separated fields per candidate pair
//! with document-level token offsets. Only the file's candidate pairs are classified; labels are
//! [no relation, relation].

use std::collections::HashMap;
use std::path::Path;

use super::docred::{Document, EntityMention, Fact};
use crate::error::{Error, Result};

const FIELDS_PER_PAIR: usize = 17;

/// Parses `:`-joined mention starts and ends into document-level word spans [start, end).
fn spans(starts: &str, ends: &str, words: usize) -> std::result::Result<Vec<(usize, usize)>, String> {
    let (ss, es): (Vec<&str>, Vec<&str>) = (starts.split(':').collect(), ends.split(':').collect());
    if ss.len() != es.len() {
        return Err(format!("{} mention starts but {} ends", ss.len(), es.len()));
    }
    ss.iter()
        .zip(&es)
        .enumerate()
        .map(|(k, (a, b))| match (a.parse::<usize>(), b.parse::<usize>()) {
            (Ok(a), Ok(b)) if a < b && b <= words => Ok((a, b)),
            (Ok(a), Ok(b)) => Err(format!("mention {k} span [{a}, {b}) is outside the document's {words} words")),
            _ => Err(format!("mention {k} span {a}-{b} is not numeric")),
        })
        .collect()
}

/// Reads a `.data` file as ATLOP's `read_cdr` / `read_gda` do (SPEC 1.7); `positive` is the
/// relation's label (`1:CID:2` for CDR, `1:GDA:2` for GDA). Every span of every pair is marked,
/// `not_include` pairs too, but only the other pairs are classified; entities are numbered in
/// order of first appearance, each pair's head (arg1 for L2R, arg2 for R2L) before its tail. A
/// pair listed twice is one candidate whose labels merge. Documents without candidates are
/// skipped.
pub fn read_bio(path: &Path, positive: &str) -> Result<Vec<Document>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { context: format!("cannot read {}", path.display()), source })?;
    let mut docs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (ln, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = |m: String| Error::Input(format!("{}: line {} (document {}): {m}", path.display(), ln + 1, line.split('\t').next().unwrap_or("?")));
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 2 || (f.len() - 2) % FIELDS_PER_PAIR != 0 {
            return Err(at(format!("{} tab-separated fields; expected pmid, text and 17 per candidate pair", f.len())));
        }
        if !seen.insert(f[0].to_string()) {
            continue;
        }
        let sents: Vec<Vec<String>> = f[1].split('|').map(|s| s.split(' ').filter(|w| !w.is_empty()).map(str::to_string).collect()).collect();
        // Document-level word offset → (sentence, word).
        let mut where_ = Vec::new();
        for (s, words) in sents.iter().enumerate() {
            for w in 0..words.len() {
                where_.push((s, w));
            }
        }
        let pairs: Vec<&[&str]> = f[2..].chunks(FIELDS_PER_PAIR).collect();
        // ATLOP's marker set: distinct (start, end, type) over both arguments of every pair.
        let mut marks: Vec<(usize, usize, &str)> = Vec::new();
        for (k, g) in pairs.iter().enumerate() {
            for (starts, ends, kind) in [(g[8], g[9], g[7]), (g[14], g[15], g[13])] {
                for (a, b) in spans(starts, ends, where_.len()).map_err(|m| at(format!("pair {k}: {m}")))? {
                    if !marks.contains(&(a, b, kind)) {
                        marks.push((a, b, kind));
                    }
                }
            }
        }
        let mut ids: HashMap<String, usize> = HashMap::new();
        let mut entities: Vec<Vec<EntityMention>> = Vec::new();
        let mut candidates = Vec::new();
        let mut facts: Vec<Fact> = Vec::new();
        for g in &pairs {
            let label = g[0];
            if label == "not_include" {
                continue;
            }
            if label.is_empty() {
                // The published CDR dev file has one such pair (document 14704468).
                eprintln!("warning: {}: line {} (document {}): a candidate pair has an empty label; it is skipped", path.display(), ln + 1, f[0]);
                continue;
            }
            let mut arg = |kb: &str, names: &str, kind: &str, starts: &str, ends: &str| -> Result<usize> {
                if let Some(&e) = ids.get(kb) {
                    return Ok(e);
                }
                let names: Vec<&str> = names.split('|').collect();
                let mut ms = Vec::new();
                for (k, (a, b)) in spans(starts, ends, where_.len()).map_err(|m| at(format!("entity {kb}: {m}")))?.into_iter().enumerate() {
                    let (s, w) = where_[a];
                    if where_[b - 1].0 != s {
                        return Err(at(format!("entity {kb}: mention {k} span [{a}, {b}) crosses a sentence boundary")));
                    }
                    ms.push(EntityMention { sent: s, start: w, end: w + (b - a), name: names.get(k).unwrap_or(&kb).to_string(), kind: kind.to_string() });
                }
                ids.insert(kb.to_string(), entities.len());
                entities.push(ms);
                Ok(entities.len() - 1)
            };
            let (arg1, arg2) = ((g[5], g[6], g[7], g[8], g[9]), (g[11], g[12], g[13], g[14], g[15]));
            let (head, tail) = match g[1] {
                "L2R" => (arg1, arg2),
                "R2L" => (arg2, arg1),
                d => return Err(at(format!("direction {d:?} is neither L2R nor R2L"))),
            };
            let h = arg(head.0, head.1, head.2, head.3, head.4)?;
            let t = arg(tail.0, tail.1, tail.2, tail.3, tail.4)?;
            if label != positive && !label.contains(":NR:") {
                return Err(at(format!("label {label:?} is neither {positive:?} nor a no-relation label")));
            }
            if h == t {
                continue;
            }
            if !candidates.contains(&(h, t)) {
                candidates.push((h, t));
            }
            if label == positive && !facts.iter().any(|x| (x.h, x.t) == (h, t)) {
                facts.push(Fact { h, t, r: 1 });
            }
        }
        if candidates.is_empty() {
            continue;
        }
        let marker_spans = Some(marks.into_iter().map(|(a, b, _)| (a, b)).collect());
        docs.push(Document { title: f[0].to_string(), sents, entities, facts, labelled: true, candidates: Some(candidates), marker_spans });
    }
    Ok(docs)
}

/// The GDA json variant (DocRED-like, but `pos` are document-level token offsets, `name` is a
/// token list, and `labels` list every candidate pair with r = 1 (GDA) or 0 (no relation)).
pub fn read_gda_json(path: &Path) -> Result<Vec<Document>> {
    let v = super::docred::read_json(path)?;
    let list = v.as_array().ok_or_else(|| Error::Input(format!("{}: expected a JSON list of documents", path.display())))?;
    let mut docs = Vec::new();
    for (i, d) in list.iter().enumerate() {
        let at = |m: String| Error::Input(format!("{}: document {i} ({}): {m}", path.display(), d.get("title").map(|t| t.to_string()).unwrap_or_default()));
        let sents: Vec<Vec<String>> = d["sents"]
            .as_array()
            .ok_or_else(|| at("`sents` must be a list of sentences".into()))?
            .iter()
            .map(|s| s.as_array().map(|w| w.iter().map(|x| x.as_str().unwrap_or_default().to_string()).collect()))
            .collect::<Option<_>>()
            .ok_or_else(|| at("`sents` must hold lists of words".into()))?;
        let offsets = super::sentence_offsets(&sents);
        let mut entities = Vec::new();
        for (e, ent) in d["vertexSet"].as_array().ok_or_else(|| at("`vertexSet` must be a list".into()))?.iter().enumerate() {
            let mut ms = Vec::new();
            for (k, m) in ent.as_array().ok_or_else(|| at(format!("vertexSet[{e}] must be a list")))?.iter().enumerate() {
                let sent = m["sent_id"].as_u64().ok_or_else(|| at(format!("vertexSet[{e}][{k}].sent_id is missing")))? as usize;
                let pos: Vec<usize> = m["pos"].as_array().map(|p| p.iter().filter_map(|x| x.as_u64().map(|v| v as usize)).collect()).unwrap_or_default();
                let (Some(&o), [a, b]) = (offsets.get(sent), pos.as_slice()) else {
                    return Err(at(format!("vertexSet[{e}][{k}]: sent_id {sent} or pos {pos:?} is invalid")));
                };
                if *a < o || a >= b || *b > o + sents[sent].len() {
                    return Err(at(format!("vertexSet[{e}][{k}].pos {pos:?} is outside sentence {sent}")));
                }
                let name = m["name"].as_array().map(|n| n.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(" ")).unwrap_or_default();
                ms.push(EntityMention { sent, start: a - o, end: b - o, name, kind: m["type"].to_string() });
            }
            if ms.is_empty() {
                return Err(at(format!("vertexSet[{e}] has no mentions")));
            }
            entities.push(ms);
        }
        let mut candidates = Vec::new();
        let mut facts = Vec::new();
        for (k, l) in d["labels"].as_array().ok_or_else(|| at("`labels` must be a list".into()))?.iter().enumerate() {
            let (h, t, r) = (l["h"].as_u64(), l["t"].as_u64(), l["r"].as_u64());
            let (Some(h), Some(t), Some(r)) = (h, t, r) else { return Err(at(format!("labels[{k}] needs integer h, t and r"))) };
            let (h, t) = (h as usize, t as usize);
            if h >= entities.len() || t >= entities.len() || h == t || r > 1 {
                return Err(at(format!("labels[{k}] = ({h}, {t}, r {r}) is not a pair of two entities with r 0 or 1")));
            }
            if !candidates.contains(&(h, t)) {
                candidates.push((h, t));
            }
            if r == 1 {
                facts.push(Fact { h, t, r: 1 });
            }
        }
        if candidates.is_empty() {
            continue;
        }
        docs.push(Document { title: d["title"].as_str().map(str::to_string).unwrap_or_else(|| d["title"].to_string()), sents, entities, facts, labelled: true, candidates: Some(candidates), marker_spans: None });
    }
    Ok(docs)
}
