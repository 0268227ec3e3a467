//! Training batches: which documents go together in one step.

use crate::data::features::Example;
use crate::rng::Rng;

/// Batches of `size` documents: shuffled by `rng`, then sorted by entity count inside windows of
/// four batches (so grids are not padded needlessly), batch order shuffled again. A batch whose
/// [B, H, L, L] attention would hold more than `max_attention` elements is split in halves.
pub fn batches(examples: &[Example], size: usize, max_attention: usize, rng: &mut Rng) -> Vec<Vec<usize>> {
    let mut idx: Vec<usize> = (0..examples.len()).filter(|&i| examples[i].entities() >= 2).collect();
    for i in (1..idx.len()).rev() {
        idx.swap(i, rng.below(i + 1));
    }
    let size = size.max(1);
    for w in idx.chunks_mut(4 * size) {
        w.sort_by_key(|&i| (examples[i].entities(), examples[i].ids.len()));
    }
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut todo: Vec<Vec<usize>> = idx.chunks(size).rev().map(<[usize]>::to_vec).collect();
    while let Some(b) = todo.pop() {
        let l = b.iter().map(|&i| examples[i].ids.len()).max().unwrap_or(0);
        if b.len() > 1 && b.len() * l * l > max_attention {
            let (x, y) = b.split_at(b.len() / 2);
            todo.push(y.to_vec());
            todo.push(x.to_vec());
        } else {
            out.push(b);
        }
    }
    for i in (1..out.len()).rev() {
        let j = rng.below(i + 1);
        out.swap(i, j);
    }
    out
}
