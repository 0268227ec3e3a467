//! Documents longer than one encoder pass: ATLOP's two-window scheme (SPEC 1.6), planned on the
//! host and re-assembled on the GPU by shaders/windows.wgsl, forward and backward.
//!
//! A batch whose longest document fits one window runs as is. Otherwise every document becomes
//! one or two windows ("segments") of exactly `win` ids: a short document is its first `win`
//! ids (padded), a long one is `ids[0..win-e] + e × [SEP]` and `[CLS] + ids[l-win+1..l]`, with
//! e = 1 end token for BERT and 2 (`</s></s>`) for RoBERTa, as ATLOP's `process_long_input`. The
//! segments' hidden rows are averaged where they overlap and their attention blocks are added and
//! renormalized per row; the dropped [SEP]/[CLS] rows feed nothing.

use crate::error::{Error, Result};
use crate::gpu::{Access, DType, Gpu, Imm, Kernel, Recorder, Shader, Tensor};
use crate::ops::launch_flat;

const NONE: u32 = u32::MAX;

/// How a batch of documents maps onto encoder segments.
#[derive(Clone, Debug)]
pub struct WindowPlan {
    /// Documents in the batch and their padded output length.
    pub batch: usize,
    pub len: usize,
    /// Segment length actually run through the encoder (== `len` when nothing is split).
    pub win: usize,
    /// Segment ids, [segments * win], right-padded with 0.
    pub seg_ids: Vec<u32>,
    /// Valid (unpadded) length of each segment: its key mask.
    pub seg_lens: Vec<usize>,
    /// True when segments differ from documents and the output must be re-assembled.
    pub windowed: bool,
    /// See shaders/windows.wgsl: [batch*len, 2] sources per output position, [segments*win]
    /// destination per segment row, [batch] split flags.
    pub pos_src: Vec<u32>,
    pub seg_dst: Vec<u32>,
    pub renorm: Vec<u32>,
}

impl WindowPlan {
    /// Plans `docs` (each `[CLS] ... [SEP]`) for an encoder that takes at most `window` ids and
    /// ends a split document's first window with `end_tokens` copies of its [SEP]. A document
    /// longer than two windows cover (2·window − 1 − end_tokens ids) is an error naming it.
    pub fn new(docs: &[Vec<u32>], window: usize, end_tokens: usize) -> Result<WindowPlan> {
        let most = 2 * window - 1 - end_tokens;
        let batch = docs.len();
        let len = docs.iter().map(Vec::len).max().unwrap_or(0);
        for (i, d) in docs.iter().enumerate() {
            if d.len() < 2 {
                return Err(Error::Input(format!("document {i} has {} token ids; it needs at least [CLS] and [SEP]", d.len())));
            }
            if d.len() > most {
                return Err(Error::Input(format!("document {i} has {} token ids, more than the {most} that two encoder windows of {window} cover; shorten it", d.len())));
            }
        }
        if len <= window {
            let mut seg_ids = vec![0u32; batch * len];
            for (b, d) in docs.iter().enumerate() {
                seg_ids[b * len..b * len + d.len()].copy_from_slice(d);
            }
            return Ok(WindowPlan {
                batch,
                len,
                win: len,
                seg_ids,
                seg_lens: docs.iter().map(Vec::len).collect(),
                windowed: false,
                pos_src: Vec::new(),
                seg_dst: Vec::new(),
                renorm: Vec::new(),
            });
        }
        let win = window;
        let mut plan = WindowPlan {
            batch,
            len,
            win,
            seg_ids: Vec::new(),
            seg_lens: Vec::new(),
            windowed: true,
            pos_src: vec![NONE; batch * len * 2],
            seg_dst: Vec::new(),
            renorm: vec![0; batch],
        };
        for (b, d) in docs.iter().enumerate() {
            let l = d.len();
            if l <= win {
                let mut ids = d.clone();
                ids.resize(win, 0);
                // Rows past the document are padding; like ATLOP they still land in the output
                // (inside the window), where the caller's mask ignores them.
                let rows: Vec<(usize, usize)> = (0..win).map(|r| (r, r)).collect();
                plan.push_segment(b, &ids, l, &rows);
            } else {
                plan.renorm[b] = 1;
                let (cls, sep) = (d[0], d[l - 1]);
                let mut first = d[..win - end_tokens].to_vec();
                first.extend(std::iter::repeat_n(sep, end_tokens));
                let rows: Vec<(usize, usize)> = (0..win - end_tokens).map(|r| (r, r)).collect();
                plan.push_segment(b, &first, win, &rows);
                let mut second = vec![cls];
                second.extend_from_slice(&d[l - win + 1..]);
                let rows: Vec<(usize, usize)> = (1..win).map(|r| (r, l - win + r)).collect();
                plan.push_segment(b, &second, win, &rows);
            }
        }
        Ok(plan)
    }

    /// Appends one segment whose row r feeds output position p for every (r, p) in `rows`.
    fn push_segment(&mut self, b: usize, ids: &[u32], valid: usize, rows: &[(usize, usize)]) {
        let s = self.seg_lens.len();
        self.seg_ids.extend_from_slice(ids);
        self.seg_lens.push(valid);
        let mut dst = vec![NONE; self.win];
        for &(r, p) in rows {
            let bp = b * self.len + p;
            dst[r] = bp as u32;
            let slot = if self.pos_src[2 * bp] == NONE { 2 * bp } else { 2 * bp + 1 };
            self.pos_src[slot] = (s * self.win + r) as u32;
        }
        self.seg_dst.extend(dst);
    }

    pub fn segments(&self) -> usize {
        self.seg_lens.len()
    }

    /// The additive key mask of the segments, [segments, win]: 0 for real tokens, -1e30 for
    /// padding (HF adds finfo.min; any value that makes exp underflow gives the same result).
    pub fn key_mask(&self) -> Vec<f32> {
        let mut m = vec![0.0f32; self.segments() * self.win];
        for (s, &l) in self.seg_lens.iter().enumerate() {
            m[s * self.win + l..(s + 1) * self.win].fill(-1e30);
        }
        m
    }
}

static SHADER: Shader = Shader { name: "windows", source: include_str!("../../../shaders/windows.wgsl") };
static MERGE_HIDDEN: Kernel = Kernel { shader: &SHADER, entry: "merge_hidden", bindings: &[Access::Read, Access::Read, Access::Write] };
static SPLIT_HIDDEN: Kernel = Kernel { shader: &SHADER, entry: "split_hidden", bindings: &[Access::Read, Access::Read, Access::Read, Access::Write] };
static MERGE_ATTENTION: Kernel = Kernel {
    shader: &SHADER,
    entry: "merge_attention",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::Write, Access::Write],
};
static MERGE_ATTENTION_ROWS: Kernel = Kernel {
    shader: &SHADER,
    entry: "merge_attention_rows",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::Write, Access::Read],
};
static ROWS_BACKWARD: Kernel = Kernel {
    shader: &SHADER,
    entry: "attention_rows_backward",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::Read, Access::Write],
};
static SPLIT_ATTENTION: Kernel = Kernel { shader: &SHADER, entry: "split_attention", bindings: &[Access::Read, Access::Read, Access::Write] };

/// A windowed plan's index tables on the GPU.
pub struct Windows {
    pub plan: WindowPlan,
    pos_src: Tensor,
    seg_dst: Tensor,
    renorm: Tensor,
}

impl Windows {
    pub fn upload(gpu: &Gpu, plan: WindowPlan) -> Result<Windows> {
        Ok(Windows {
            pos_src: Tensor::from_u32(gpu, "window_pos_src", &[plan.pos_src.len()], &plan.pos_src)?,
            seg_dst: Tensor::from_u32(gpu, "window_seg_dst", &[plan.seg_dst.len()], &plan.seg_dst)?,
            renorm: Tensor::from_u32(gpu, "window_renorm", &[plan.renorm.len()], &plan.renorm)?,
            plan,
        })
    }

    fn imm(&self, count: usize, dim: usize, heads: usize) -> Imm {
        Imm::new().u(count).u(dim).u(heads).u(self.plan.win).u(self.plan.len)
    }

    /// Segment hidden states [segments*win, d] → document hidden states [batch, len, d].
    pub fn merge_hidden(&self, rec: &mut Recorder, src: &Tensor) -> Result<Tensor> {
        let d = src.numel() / (self.plan.segments() * self.plan.win);
        let out = Tensor::uninit(rec.gpu(), "hidden", &[self.plan.batch, self.plan.len, d], DType::F32)?;
        let n = out.numel();
        launch_flat(rec, &MERGE_HIDDEN, &[], &[src, &self.pos_src, &out], &self.imm(n, d, 0), n)?;
        Ok(out)
    }

    pub fn split_hidden(&self, rec: &mut Recorder, dout: &Tensor, d: usize) -> Result<Tensor> {
        let dsrc = Tensor::uninit(rec.gpu(), "segment_hidden_grad", &[self.plan.segments() * self.plan.win, d], DType::F32)?;
        let n = dsrc.numel();
        launch_flat(rec, &SPLIT_HIDDEN, &[], &[dout, &self.pos_src, &self.seg_dst, &dsrc], &self.imm(n, d, 0), n)?;
        Ok(dsrc)
    }

    /// Segment attention [segments, heads, win, win] → document attention [batch, heads, len, len]
    /// and the per-row divisors the backward needs.
    pub fn merge_attention(&self, rec: &mut Recorder, att: &Tensor, heads: usize) -> Result<(Tensor, Tensor)> {
        let (b, c) = (self.plan.batch, self.plan.len);
        let out = Tensor::uninit(rec.gpu(), "attention", &[b, heads, c, c], DType::F32)?;
        let z = Tensor::uninit(rec.gpu(), "attention_row_sums", &[b * heads * c], DType::F32)?;
        let rows = b * heads * c;
        launch_flat(rec, &MERGE_ATTENTION, &[], &[att, &self.pos_src, &self.renorm, &out, &z], &self.imm(rows, 0, heads), rows)?;
        Ok((out, z))
    }

    /// The segment rows whose probabilities `merge_attention_rows` reads for output positions
    /// `at` (b·len + p): two per position, the second a repeat of the first where only one
    /// window holds it (the merge skips it).
    pub fn segment_rows(&self, at: &[u32]) -> Vec<u32> {
        at.iter()
            .flat_map(|&bp| {
                let (a, b) = (self.plan.pos_src[2 * bp as usize], self.plan.pos_src[2 * bp as usize + 1]);
                [a, if b == NONE { a } else { b }]
            })
            .collect()
    }

    /// `merge_attention` for the output rows at positions `at` [R] (b·len + p) only, from the
    /// probability rows of `segment_rows(at)` [2R·heads, win]: [R·heads, len], row r·heads + h.
    pub fn merge_attention_rows(&self, rec: &mut Recorder, rows: &Tensor, at: &Tensor, heads: usize) -> Result<Tensor> {
        let r = at.numel();
        rows.expect_shape("merge attention rows", &[2 * r * heads, self.plan.win])?;
        let out = Tensor::uninit(rec.gpu(), "attention_rows", &[r * heads, self.plan.len], DType::F32)?;
        launch_flat(rec, &MERGE_ATTENTION_ROWS, &[], &[rows, &self.pos_src, &self.renorm, &out, at], &self.imm(r * heads, 0, heads), r * heads)?;
        Ok(out)
    }

    pub fn split_attention(&self, rec: &mut Recorder, out: &Tensor, dout: &Tensor, z: &Tensor, heads: usize) -> Result<Tensor> {
        let (b, c, w) = (self.plan.batch, self.plan.len, self.plan.win);
        let draw = Tensor::uninit(rec.gpu(), "attention_raw_grad", out.shape(), DType::F32)?;
        let rows = b * heads * c;
        launch_flat(rec, &ROWS_BACKWARD, &[], &[out, dout, &self.renorm, z, &draw], &self.imm(rows, 0, heads), rows)?;
        let datt = Tensor::uninit(rec.gpu(), "segment_attention_grad", &[self.plan.segments(), heads, w, w], DType::F32)?;
        let n = datt.numel();
        launch_flat(rec, &SPLIT_ATTENTION, &[], &[&draw, &self.seg_dst, &datt], &self.imm(n, 0, heads), n)?;
        Ok(datt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ATLOP's `process_long_input` with RoBERTa's start [0] and end [2, 2]: segment 1 is
    /// ids[0..win-2] + [2, 2], segment 2 is [0] + ids[l-win+1..l]; segment-1 rows [0, win-2) and
    /// segment-2 rows [1, win) land on their document positions.
    #[test]
    fn roberta_split_ends_the_first_window_with_two_end_tokens() {
        let win = 8;
        let doc: Vec<u32> = std::iter::once(0).chain(10..21).chain(std::iter::once(2)).collect(); // 13 ids
        let plan = WindowPlan::new(&[doc.clone()], win, 2).unwrap();
        assert_eq!(plan.segments(), 2);
        assert_eq!(&plan.seg_ids[..win], &[0, 10, 11, 12, 13, 14, 2, 2]);
        assert_eq!(&plan.seg_ids[win..], &[0, 15, 16, 17, 18, 19, 20, 2]);
        let l = doc.len();
        let dst: Vec<Option<usize>> = plan.seg_dst.iter().map(|&d| (d != NONE).then_some(d as usize)).collect();
        assert_eq!(&dst[..win], &[Some(0), Some(1), Some(2), Some(3), Some(4), Some(5), None, None]);
        assert_eq!(&dst[win..], &[None, Some(l - 7), Some(l - 6), Some(l - 5), Some(l - 4), Some(l - 3), Some(l - 2), Some(l - 1)]);
        // BERT keeps one more id in the first window; RoBERTa covers one id less in all.
        let bert = WindowPlan::new(&[doc.clone()], win, 1).unwrap();
        assert_eq!(&bert.seg_ids[..win], &[0, 10, 11, 12, 13, 14, 15, 2]);
        assert!(WindowPlan::new(&[(0..14).collect()], win, 1).is_ok());
        let e = WindowPlan::new(&[(0..14).collect()], win, 2).unwrap_err().to_string();
        assert!(e.contains("more than the 13"), "{e}");
    }
}
