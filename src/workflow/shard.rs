//! Corpus-scale prediction over many machines: `predict --shard K/N` takes the documents whose
//! index ≡ K (mod N) and writes one shard file; `merge` joins the N shard files into the
//! `result.json` and listing an unsharded `predict` writes, in document order. A scheduler (a
//! Slurm array, a Kubernetes indexed job, GNU parallel) runs the shards.

use std::path::{Path, PathBuf};

use crate::eval::output::{listing, result_facts, ResultFact};
use crate::data::docred::{Document, Relations};
use crate::eval::threshold::Scored;
use crate::error::{Error, Result};

/// Shard K of N (0 ≤ K < N), parsed from "K/N".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub k: usize,
    pub n: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Shard, String> {
        let (k, n) = s.split_once('/').ok_or_else(|| format!("`{s}` is not K/N"))?;
        let (k, n): (usize, usize) = (k.trim().parse().map_err(|_| format!("`{k}` in `{s}` is not a shard number"))?, n.trim().parse().map_err(|_| format!("`{n}` in `{s}` is not a shard count"))?);
        if n == 0 || k >= n {
            return Err(format!("shard {k}/{n}: K must be below N (shards are numbered 0..N-1)"));
        }
        Ok(Shard { k, n })
    }
}

impl Shard {
    pub fn holds(&self, index: usize) -> bool {
        index % self.n == self.k
    }

    /// The shard's output file name: `shard-K-of-N.json`.
    pub fn file_name(&self) -> String {
        format!("shard-{}-of-{}.json", self.k, self.n)
    }
}

/// Where a shard's predictions come from: the checkpoint's weights and the input file, by
/// content, so that `merge` joins only shards of one run, wherever their files lay.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Provenance {
    pub checkpoint_sha256: String,
    pub corpus_sha256: String,
}

/// One shard's predictions: per document of the shard, its index in the input, its result.json
/// entries and its listing.
#[derive(serde::Serialize, serde::Deserialize)]
struct ShardFile {
    shard: usize,
    shards: usize,
    /// The input file as given (for messages), and how many documents it holds in all.
    data: PathBuf,
    documents: usize,
    /// Absent from shard files of docre before it: those are refused.
    #[serde(default)]
    provenance: Provenance,
    results: Vec<DocResult>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct DocResult {
    index: usize,
    facts: Vec<ResultFact>,
    listing: String,
}

/// The shard file's JSON for `docs` (the shard's documents, with their input `indices`) and
/// their predicted facts.
#[allow(clippy::too_many_arguments)]
pub fn shard_json(shard: Shard, data: &Path, provenance: &Provenance, total: usize, indices: &[usize], docs: &[Document], facts: &[Vec<Scored>], rels: &Relations) -> String {
    let results = indices
        .iter()
        .zip(docs.iter().zip(facts))
        .map(|(&index, (d, fs))| {
            let (d, fs) = (std::slice::from_ref(d), std::slice::from_ref(fs));
            DocResult { index, facts: result_facts(d, fs, rels), listing: listing(d, fs, rels) }
        })
        .collect();
    let f = ShardFile { shard: shard.k, shards: shard.n, data: data.to_path_buf(), documents: total, provenance: provenance.clone(), results };
    serde_json::to_string(&f).expect("shard serializes")
}

/// Joins shard files into (result.json, listing) in document order. Refuses shards of
/// different runs (count, input or document total), a shard given twice, a missing shard, and
/// documents covered twice or not at all.
pub fn merge(paths: &[PathBuf]) -> Result<(String, String)> {
    let mut files = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(p).map_err(|source| Error::Io { context: format!("cannot read shard {}", p.display()), source })?;
        let f: ShardFile = serde_json::from_str(&text).map_err(|e| Error::Input(format!("{}: not a docre shard file: {e}", p.display())))?;
        files.push((p, f));
    }
    let Some((p0, first)) = files.first() else {
        return Err(Error::Input("no shard files given".into()));
    };
    let (n, data, total) = (first.shards, first.data.clone(), first.documents);
    let mut seen: Vec<Option<&Path>> = vec![None; n];
    for (p, f) in &files {
        if f.provenance.checkpoint_sha256.is_empty() || f.provenance.corpus_sha256.is_empty() {
            return Err(Error::Input(format!("{}: field `provenance` is missing (a shard file from an older docre): predict that shard again", p.display())));
        }
        let short = |h: &str| h.chars().take(12).collect::<String>();
        let mut differ = Vec::new();
        if f.shards != n {
            differ.push(format!("shard count ({} against {n})", f.shards));
        }
        if f.provenance.corpus_sha256 != first.provenance.corpus_sha256 || f.documents != total {
            differ.push(format!(
                "corpus ({}, {} documents, SHA-256 {}… against {}, {total} documents, {}…)",
                f.data.display(),
                f.documents,
                short(&f.provenance.corpus_sha256),
                data.display(),
                short(&first.provenance.corpus_sha256)
            ));
        }
        if f.provenance.checkpoint_sha256 != first.provenance.checkpoint_sha256 {
            differ.push(format!("checkpoint (weights SHA-256 {}… against {}…)", short(&f.provenance.checkpoint_sha256), short(&first.provenance.checkpoint_sha256)));
        }
        if !differ.is_empty() {
            return Err(Error::Input(format!("{} (shard {}/{}) and {} (shard {}/{n}) are shards of different runs: they differ in {}", p.display(), f.shard, f.shards, p0.display(), first.shard, differ.join(" and "))));
        }
        if f.shard >= n {
            return Err(Error::Input(format!("{}: shard {} of {n} is out of range", p.display(), f.shard)));
        }
        if let Some(other) = seen[f.shard] {
            return Err(Error::Input(format!("shard {}/{n} is given twice: {} and {}", f.shard, other.display(), p.display())));
        }
        seen[f.shard] = Some(p.as_path());
    }
    let missing: Vec<String> = (0..n).filter(|&k| seen[k].is_none()).map(|k| format!("{k}/{n}")).collect();
    if !missing.is_empty() {
        return Err(Error::Input(format!("shard(s) {} of {} missing", missing.join(", "), data.display())));
    }
    let mut by_doc: Vec<Option<&DocResult>> = vec![None; total];
    for (p, f) in &files {
        for r in &f.results {
            if r.index >= total || r.index % n != f.shard || by_doc[r.index].is_some() {
                return Err(Error::Input(format!("{}: document {} does not belong to shard {}/{n} of {total} documents, or is covered twice", p.display(), r.index, f.shard)));
            }
            by_doc[r.index] = Some(r);
        }
    }
    if let Some(i) = by_doc.iter().position(Option::is_none) {
        return Err(Error::Input(format!("document {i} of {} is in no shard", data.display())));
    }
    let docs: Vec<&DocResult> = by_doc.into_iter().map(|r| r.expect("checked above")).collect();
    let facts: Vec<&ResultFact> = docs.iter().flat_map(|r| &r.facts).collect();
    Ok((serde_json::to_string(&facts).expect("json"), docs.iter().map(|r| r.listing.as_str()).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_specs_parse_and_partition() {
        let s: Shard = "1/3".parse().unwrap();
        assert_eq!(s, Shard { k: 1, n: 3 });
        assert_eq!((0..7).filter(|&i| s.holds(i)).collect::<Vec<_>>(), [1, 4]);
        assert_eq!(s.file_name(), "shard-1-of-3.json");
        for bad in ["3/3", "1", "a/3", "0/0"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
