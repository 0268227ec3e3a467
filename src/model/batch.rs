//! Examples gathered into one batch: what the encoder reads and what the heads read.

use crate::data::features::Example;
use crate::model::heads::batch::HeadInput;
use crate::model::TokenBatch;

/// Examples gathered into one batch: encoder ids, the heads' description, gold labels.
pub struct Batch {
    pub tokens: TokenBatch,
    pub input: HeadInput,
    pub gold: Vec<f32>,
    /// Indices of the examples, in batch order.
    pub examples: Vec<usize>,
}

impl Batch {
    pub fn new(examples: &[(usize, &Example)]) -> Batch {
        let mut input = HeadInput { doc_len: Vec::new(), entity_counts: Vec::new(), mention_start: Vec::new(), mention_entity: Vec::new(), pairs: Vec::new() };
        let mut gold = Vec::new();
        let mut first_entity = 0;
        for (b, (_, ex)) in examples.iter().enumerate() {
            input.doc_len.push(ex.ids.len());
            input.entity_counts.push(ex.entities());
            for (e, starts) in ex.mention_starts.iter().enumerate() {
                for &s in starts {
                    input.mention_start.push(s);
                    input.mention_entity.push(first_entity + e);
                }
            }
            first_entity += ex.entities();
            input.pairs.extend(ex.pairs.iter().map(|&(h, t)| (b, h, t)));
            gold.extend_from_slice(&ex.labels);
        }
        Batch {
            tokens: TokenBatch { docs: examples.iter().map(|(_, ex)| ex.ids.clone()).collect() },
            input,
            gold,
            examples: examples.iter().map(|(i, _)| *i).collect(),
        }
    }
}
