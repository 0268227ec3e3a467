//! The model (encoder and heads on one device) and the one place where a batch's encoder
//! outputs come from: the encoder run now, or a frozen encoder's cache. Training, evaluation
//! and prediction all go through `Model::encode`.

use crate::error::Result;
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::model::encoder_cache::EncoderCache;
use crate::model::heads::batch::{HeadBatch, HeadInput};
use crate::model::heads::Heads;
use crate::model::{Batch, Bert, Pass, Tape};

/// The encoder and the heads, on one device.
pub struct Model {
    pub gpu: Gpu,
    pub encoder: Bert,
    pub heads: Heads,
}

/// One batch's encoder outputs and the heads' view of the batch.
pub struct Encoded {
    /// X [B, L, d].
    pub hidden: Tensor,
    /// A [B, H, L, L] from the encoder, or the cache's compact rows of the mention markers.
    pub attention: Tensor,
    /// The encoder's tape, when `pass` trains it (None from the cache or in evaluation).
    pub tape: Option<Tape>,
    /// Built for the attention's layout.
    pub heads_batch: HeadBatch,
}

impl Model {
    /// The encoder's outputs for `batch`: read from `cache` when given (built over these
    /// examples by this model's frozen encoder), else computed with `pass`.
    pub fn encode(&self, rec: &mut Recorder, batch: &Batch, pass: Pass, cache: Option<&EncoderCache>) -> Result<Encoded> {
        let heads = self.encoder.config.num_attention_heads;
        match cache {
            Some(c) => {
                let (hidden, attention) = c.inputs(&self.gpu, batch)?;
                Ok(Encoded { hidden, attention, tape: None, heads_batch: HeadBatch::new_compact(&self.gpu, batch.input.clone(), batch.tokens.len(), heads)? })
            }
            None if !pass.grad && pass.dropout.is_none() && self.encoder.fused_attention_runs(&self.gpu)? => {
                // Checks the mention fields before their rows are formed from them.
                let heads_batch = HeadBatch::new_compact(&self.gpu, batch.input.clone(), batch.tokens.len(), heads)?;
                let rows = mention_token_rows(&batch.input, batch.tokens.len());
                let out = self.encoder.forward_mention_rows(rec, &batch.tokens, &rows)?;
                Ok(Encoded { hidden: out.hidden, attention: out.attention, tape: None, heads_batch })
            }
            None => {
                let (out, tape) = self.encoder.forward(rec, &batch.tokens, pass)?;
                Ok(Encoded { hidden: out.hidden, attention: out.attention, tape, heads_batch: HeadBatch::new(&self.gpu, batch.input.clone(), batch.tokens.len(), heads)? })
            }
        }
    }
}

/// Token row (document · L + position) of each mention's marker, in mention order.
fn mention_token_rows(input: &HeadInput, len: usize) -> Vec<u32> {
    let doc = input.entity_doc();
    input.mention_start.iter().zip(&input.mention_entity).map(|(&start, &e)| (doc[e] * len + start) as u32).collect()
}
