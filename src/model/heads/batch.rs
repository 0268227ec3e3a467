//! One batch of documents as the heads see it: mentions, entities and entity pairs, checked on
//! the host and turned into the index tensors the kernels read.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};
use crate::ops::eca::PairIndex;
use crate::ops::embedding::RowScatter;
use crate::ops::pair::PairEntities;
use crate::ops::softmax::RowSets;

/// Host description of a batch (SPEC 1.2, 1.4): everything but the encoder outputs.
#[derive(Clone, Debug)]
pub struct HeadInput {
    /// Token count of each document, [CLS] and [SEP] included.
    pub doc_len: Vec<usize>,
    /// Entities per document (N_b).
    pub entity_counts: Vec<usize>,
    /// Input index of each mention's leading `*`, and its global entity (entities numbered
    /// document by document).
    pub mention_start: Vec<usize>,
    pub mention_entity: Vec<usize>,
    /// Pairs as (document, head, tail) with entity indices local to the document, grouped by
    /// document in batch order.
    pub pairs: Vec<(usize, usize, usize)>,
}

impl HeadInput {
    pub fn entities(&self) -> usize {
        self.entity_counts.iter().sum()
    }

    /// First global entity index of each document.
    pub fn entity_offsets(&self) -> Vec<usize> {
        self.entity_counts.iter().scan(0, |acc, &n| {
            let o = *acc;
            *acc += n;
            Some(o)
        }).collect()
    }

    /// Document of each global entity.
    pub fn entity_doc(&self) -> Vec<usize> {
        self.entity_counts.iter().enumerate().flat_map(|(b, &n)| std::iter::repeat_n(b, n)).collect()
    }
}

/// The index tensors of a batch for encoder outputs of padded length `len` and `heads` heads.
pub struct HeadBatch {
    pub input: HeadInput,
    pub docs: usize,
    pub len: usize,
    pub heads: usize,
    pub pairs: usize,
    pub entities: usize,
    /// Mention rows of X [B*L, d] and of A [B*H*L, L].
    pub mention_x: Tensor,
    pub mention_x_scatter: RowScatter,
    pub mention_a: Tensor,
    pub mention_a_scatter: RowScatter,
    /// [CLS] rows of X, one per document.
    pub cls: Tensor,
    pub cls_scatter: RowScatter,
    /// Mentions of each entity (logsumexp pooling) and the [Ne, M] averaging matrix (attention).
    pub entity_mentions: RowSets,
    pub entity_mean: Tensor,
    /// Per pair: global head / tail entity and document, as gather ids and scatters.
    pub head_ids: Tensor,
    pub tail_ids: Tensor,
    pub doc_ids: Tensor,
    pub head_scatter: RowScatter,
    pub tail_scatter: RowScatter,
    pub doc_scatter: RowScatter,
    pub pair_entities: PairEntities,
    pub grid: PairIndex,
    /// A is given as its mention rows only ([M·H, L], mention-major), as a frozen-encoder cache
    /// stores it, instead of [B, H, L, L].
    pub compact_attention: bool,
}

impl HeadBatch {
    /// Like `new`, for attention given as the mention rows only ([M·H, L]; see
    /// `compact_attention`).
    pub fn new_compact(gpu: &Gpu, input: HeadInput, len: usize, heads: usize) -> Result<HeadBatch> {
        let m = input.mention_start.len();
        let mut hb = HeadBatch::new(gpu, input, len, heads)?;
        let rows: Vec<u32> = (0..(m * heads) as u32).collect();
        hb.mention_a = Tensor::from_u32(gpu, "mention_a_rows", &[rows.len().max(1)], if rows.is_empty() { &[0] } else { &rows })?;
        hb.mention_a_scatter = RowScatter::new(gpu, &rows, m * heads)?;
        hb.compact_attention = true;
        Ok(hb)
    }

    /// Checks `input` against encoder outputs of length `len` with `heads` heads; errors name the
    /// document and the field.
    pub fn new(gpu: &Gpu, input: HeadInput, len: usize, heads: usize) -> Result<HeadBatch> {
        let b = input.doc_len.len();
        if input.entity_counts.len() != b {
            return Err(Error::Input(format!("{} documents have lengths but {} have entity counts", b, input.entity_counts.len())));
        }
        if input.mention_start.len() != input.mention_entity.len() {
            return Err(Error::Input("mention_start and mention_entity differ in length".into()));
        }
        let ne = input.entities();
        let edoc = input.entity_doc();
        let eoff = input.entity_offsets();
        for (m, (&s, &e)) in input.mention_start.iter().zip(&input.mention_entity).enumerate() {
            if e >= ne {
                return Err(Error::Input(format!("mention {m}: entity {e} does not exist ({ne} entities)")));
            }
            let doc = edoc[e];
            if s >= input.doc_len[doc] || s >= len {
                return Err(Error::Input(format!("document {doc}, mention {m}: start index {s} is outside the document's {} tokens", input.doc_len[doc])));
            }
        }
        let mut mentions_of: Vec<Vec<u32>> = vec![Vec::new(); ne];
        for (m, &e) in input.mention_entity.iter().enumerate() {
            mentions_of[e].push(m as u32);
        }
        let mcount = input.mention_start.len();
        let mut mean = vec![0.0f32; ne * mcount];
        for (e, ms) in mentions_of.iter().enumerate() {
            for &m in ms {
                mean[e * mcount + m as usize] = 1.0 / ms.len() as f32;
            }
        }
        let x_rows: Vec<u32> = input.mention_start.iter().zip(&input.mention_entity).map(|(&s, &e)| (edoc[e] * len + s) as u32).collect();
        let a_rows: Vec<u32> = input
            .mention_start
            .iter()
            .zip(&input.mention_entity)
            .flat_map(|(&s, &e)| {
                let doc = edoc[e];
                (0..heads).map(move |h| ((doc * heads + h) * len + s) as u32)
            })
            .collect();
        let cls: Vec<u32> = (0..b).map(|d| (d * len) as u32).collect();
        let mut heads_g = Vec::new();
        let mut tails_g = Vec::new();
        let mut docs_g = Vec::new();
        let mut local = Vec::new();
        for (i, &(d, s, o)) in input.pairs.iter().enumerate() {
            if d >= b || s >= input.entity_counts[d] || o >= input.entity_counts[d] || s == o {
                return Err(Error::Input(format!("pair {i}: (document {d}, head {s}, tail {o}) is not a pair of two different entities of that document")));
            }
            heads_g.push((eoff[d] + s) as u32);
            tails_g.push((eoff[d] + o) as u32);
            docs_g.push(d as u32);
            local.push((d as u32, s as u32, o as u32));
        }
        if input.pairs.is_empty() {
            return Err(Error::Input("the batch has no entity pairs (every document needs at least two entities)".into()));
        }
        let pe: Vec<(u32, u32, u32)> = (0..heads_g.len()).map(|i| (heads_g[i], tails_g[i], docs_g[i])).collect();
        let u = |name: &str, v: &[u32]| Tensor::from_u32(gpu, name, &[v.len()], v);
        Ok(HeadBatch {
            docs: b,
            len,
            heads,
            pairs: input.pairs.len(),
            entities: ne,
            mention_x: u("mention_x_rows", &x_rows)?,
            mention_x_scatter: RowScatter::new(gpu, &x_rows, b * len)?,
            mention_a: u("mention_a_rows", &a_rows)?,
            mention_a_scatter: RowScatter::new(gpu, &a_rows, b * heads * len)?,
            cls: u("cls_rows", &cls)?,
            cls_scatter: RowScatter::new(gpu, &cls, b * len)?,
            entity_mentions: RowSets::new(gpu, &mentions_of, mcount)?,
            entity_mean: Tensor::from_f32(gpu, "entity_mean", &[ne, mcount], &mean)?,
            head_ids: u("pair_heads", &heads_g)?,
            tail_ids: u("pair_tails", &tails_g)?,
            doc_ids: u("pair_docs", &docs_g)?,
            head_scatter: RowScatter::new(gpu, &heads_g, ne)?,
            tail_scatter: RowScatter::new(gpu, &tails_g, ne)?,
            doc_scatter: RowScatter::new(gpu, &docs_g, b)?,
            pair_entities: PairEntities::new(gpu, ne, &pe)?,
            grid: PairIndex::new(gpu, &input.entity_counts, &local)?,
            compact_attention: false,
            input,
        })
    }
}
