//! Input formats (DocRED-style JSON or JSON Lines, the EoG/ATLOP `.data` lines of CDR and GDA,
//! GDA's JSON variant) with their relation inventories, and featurizing documents into examples.

use std::path::Path;

use crate::data::docred::{Document, Relations};
use crate::data::features::{featurize, Example};
use crate::data::WordPieceTokenizer;
use crate::error::Result;

/// Input formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "wasm32"), derive(clap::ValueEnum))]
pub enum Format {
    /// DocRED / Re-DocRED json.
    Docred,
    /// CDR in the EoG/ATLOP `.data` line format.
    Cdr,
    /// GDA in the EoG/ATLOP `.data` line format.
    Gda,
    /// GDA in its DocRED-like json variant (document-level token offsets).
    GdaJson,
}

impl Format {
    /// The relation inventory: for DocRED the built-in one, or rel2id (+ rel_info) when given;
    /// [NA, relation] for the others.
    pub fn relations(self, rel2id: Option<&Path>, rel_info: Option<&Path>) -> Result<Relations> {
        match self {
            Format::Docred => match rel2id {
                Some(p) => Relations::load(p, rel_info),
                None => {
                    let mut r = Relations::docred();
                    if let Some(p) = rel_info {
                        r.add_names_from(p)?;
                    }
                    Ok(r)
                }
            },
            Format::Cdr => Ok(Relations::binary("CID")),
            Format::Gda | Format::GdaJson => Ok(Relations::binary("GDA")),
        }
    }

    /// The documents of `path` for prediction: its gold labels are never read, so a label
    /// naming a relation the checkpoint does not know is dropped with a warning, not refused.
    pub fn read_for_prediction(self, path: &Path, rels: &Relations) -> Result<Vec<Document>> {
        if self != Format::Docred {
            return self.read(path, rels);
        }
        let (docs, dropped) = crate::data::docred::read_docred_with(path, rels, crate::data::docred::UnknownRelations::Drop)?;
        if dropped > 0 {
            eprintln!("docre: {}: {dropped} gold label(s) name relations this checkpoint does not know; prediction does not use labels, so they are ignored", path.display());
        }
        Ok(docs)
    }

    pub fn read(self, path: &Path, rels: &Relations) -> Result<Vec<Document>> {
        match self {
            Format::Docred => crate::data::docred::read_docred(path, rels),
            Format::Cdr => crate::data::bio::read_bio(path, "1:CID:2"),
            Format::Gda => crate::data::bio::read_bio(path, "1:GDA:2"),
            Format::GdaJson => crate::data::bio::read_gda_json(path),
        }
    }
}

/// Featurizes documents; warnings (documents cut to `max_ids`) go to stderr.
pub fn examples(docs: &[Document], tok: &WordPieceTokenizer, classes: usize, max_ids: usize) -> Result<Vec<Example>> {
    docs.iter()
        .enumerate()
        .map(|(i, d)| {
            let (ex, warn) = featurize(i, d, tok, classes, max_ids)?;
            if let Some(w) = warn {
                eprintln!("warning: {w}");
            }
            Ok(ex)
        })
        .collect()
}
