//! Stage-2 sampling (SPEC 4.3, DocRE-II's `create_sample`): 1:5 negative sampling and corrupted
//! gold labels, or the paper's noise on the base module's predictions, as a pure function of the
//! gold labels and a seeded RNG.

use crate::model::heads::{BranchLabels, Stage2Input};
use crate::rng::Rng;

/// Where stage 2's relation input comes from (SPEC 0.1 `noise`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Noise {
    /// Corrupted gold labels (DocRE-II's code).
    #[default]
    Gold,
    /// The base module's predicted labels with a fraction r ~ U(0, 0.4) of the pairs given a
    /// one-hot wrong label (the paper).
    Predictions,
}

/// One `create_sample` draw over a batch's pairs.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Positives ∪ sampled negatives (`train_mask`).
    pub mask: Vec<f32>,
    /// Positives ∪ about 20 % of the sampled negatives ∪ corrupted pairs (`train_mask1`).
    pub mask1: Vec<f32>,
    /// Gold labels with the corrupted pairs replaced by a one-hot wrong class.
    pub labels: Vec<f32>,
}

/// k distinct items of `from`, uniformly (partial Fisher–Yates).
fn choose(rng: &mut Rng, from: &[usize], k: usize) -> Vec<usize> {
    let mut v = from.to_vec();
    let k = k.min(v.len());
    for i in 0..k {
        let j = i + rng.below(v.len() - i);
        v.swap(i, j);
    }
    v.truncate(k);
    v
}

/// Draws one sample for gold labels [P, C] (NA pairs are [1, 0, …]).
pub fn create_sample(gold: &[f32], classes: usize, rng: &mut Rng) -> Sample {
    let p = gold.len() / classes;
    let is_pos = |i: usize| gold[i * classes + 1..(i + 1) * classes].iter().any(|&v| v > 0.5);
    let pos: Vec<usize> = (0..p).filter(|&i| is_pos(i)).collect();
    let na: Vec<usize> = (0..p).filter(|&i| !is_pos(i)).collect();
    // 1:5 negatives; the original raises when there are too few NA pairs, here they are all taken.
    let neg = choose(rng, &na, 5 * pos.len());
    let mut mask = vec![0.0f32; p];
    let mut mask1 = vec![0.0f32; p];
    for &i in pos.iter().chain(&neg) {
        mask[i] = 1.0;
    }
    for &i in &pos {
        mask1[i] = 1.0;
    }
    for &i in &neg {
        if rng.uniform() < 0.2 {
            mask1[i] = 1.0;
        }
    }
    let r_pos = 0.2 + 0.3 * rng.uniform();
    let r_neg = 0.05 + 0.1 * rng.uniform();
    let mut corrupt = choose(rng, &pos, (r_pos * pos.len() as f64 + 1.0) as usize);
    corrupt.extend(choose(rng, &neg, (r_neg * neg.len() as f64 + 1.0) as usize));
    let mut labels = gold.to_vec();
    for &i in &corrupt {
        let row = &mut labels[i * classes..(i + 1) * classes];
        // A class the gold vector does not contain (NA counts as class 0 of NA pairs only).
        let wrong: Vec<usize> = (0..classes).filter(|&c| gold[i * classes + c] < 0.5 && !(c == 0 && !is_pos(i))).collect();
        if wrong.is_empty() {
            continue;
        }
        let c = wrong[rng.below(wrong.len())];
        row.fill(0.0);
        row[c] = 1.0;
        mask1[i] = 1.0;
    }
    Sample { mask, mask1, labels }
}

/// Noise on predicted labels over `pairs` pairs: r ~ U(0, 0.4), ⌊r·pairs⌋ pairs chosen uniformly
/// without replacement get u ~ U(0, 1) (which wrong class they take, `ops::loss::corrupt_labels`),
/// the others −1 (kept).
pub fn prediction_picks(pairs: usize, rng: &mut Rng) -> Vec<f32> {
    let r = 0.4 * rng.uniform();
    let all: Vec<usize> = (0..pairs).collect();
    let mut picks = vec![-1.0f32; pairs];
    for i in choose(rng, &all, (r * pairs as f64) as usize) {
        picks[i] = rng.uniform() as f32;
    }
    picks
}

impl Stage2Input {
    /// Three independent draws, wired as DocRE-II does: the base loss uses the first draw's
    /// `mask`, branch A the second draw's labels and `mask`, branch B the third draw's labels and
    /// `mask1`. With `Noise::Predictions` the branches' labels are the base module's predictions
    /// under `prediction_picks` instead, and branch B's `mask1` also takes the pairs so corrupted.
    pub fn sample(gold: &[f32], classes: usize, noise: Noise, rng: &mut Rng) -> Stage2Input {
        let s1 = create_sample(gold, classes, rng);
        let s2 = create_sample(gold, classes, rng);
        let s3 = create_sample(gold, classes, rng);
        let (labels_a, labels_b, mask_b) = match noise {
            Noise::Gold => (BranchLabels::Gold(s2.labels), BranchLabels::Gold(s3.labels), s3.mask1),
            Noise::Predictions => {
                let p = gold.len() / classes;
                let (pa, pb) = (prediction_picks(p, rng), prediction_picks(p, rng));
                let mask_b = s3.mask1.iter().zip(&pb).map(|(&m, &u)| if u >= 0.0 { 1.0 } else { m }).collect();
                (BranchLabels::Predicted(pa), BranchLabels::Predicted(pb), mask_b)
            }
        };
        Stage2Input { gold: gold.to_vec(), labels_a, labels_b, mask_base: s1.mask, mask_a: s2.mask, mask_b }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gold(p: usize, c: usize, positives: &[(usize, usize)]) -> Vec<f32> {
        let mut g = vec![0.0; p * c];
        for i in 0..p {
            g[i * c] = 1.0;
        }
        for &(i, r) in positives {
            g[i * c] = 0.0;
            g[i * c + r] = 1.0;
        }
        g
    }

    #[test]
    fn sample_follows_the_rules_and_the_seed() {
        let (p, c) = (60, 6);
        let positives: Vec<(usize, usize)> = (0..7).map(|i| (i * 8, 1 + i % 5)).chain([(0, 2)]).collect();
        let g = gold(p, c, &positives);
        let pos: Vec<usize> = positives.iter().map(|&(i, _)| i).collect();
        let s = create_sample(&g, c, &mut Rng::new(5));
        assert_eq!(s, create_sample(&g, c, &mut Rng::new(5)), "same seed, same sample");
        assert_ne!(s, create_sample(&g, c, &mut Rng::new(6)), "a different seed changes the sample");
        let npos = 7;
        assert_eq!(s.mask.iter().filter(|&&m| m == 1.0).count(), npos + 5 * npos, "positives plus 1:5 negatives");
        for &i in &pos {
            assert_eq!((s.mask[i], s.mask1[i]), (1.0, 1.0), "positive pair {i} must be selected");
        }
        let mut corrupted = 0;
        for i in 0..p {
            let (got, want) = (&s.labels[i * c..(i + 1) * c], &g[i * c..(i + 1) * c]);
            if got != want {
                corrupted += 1;
                assert_eq!(got.iter().sum::<f32>(), 1.0, "pair {i}: a corrupted label is one-hot");
                let k = got.iter().position(|&v| v == 1.0).unwrap();
                assert_eq!(want[k], 0.0, "pair {i}: the corrupted class must be wrong");
                assert!(k != 0 || pos.contains(&i), "pair {i}: an NA pair cannot be corrupted to NA");
                assert_eq!(s.mask1[i], 1.0, "pair {i}: corrupted pairs are in mask1");
                assert_eq!(s.mask[i], 1.0, "pair {i}: corrupted pairs come from the sampled ones");
            }
        }
        // ⌊r₊·7 + 1⌋ ∈ [2, 4] positives and ⌊r₋·35 + 1⌋ ∈ [2, 6] negatives.
        assert!((4..=10).contains(&corrupted), "{corrupted} corrupted pairs");
    }

    #[test]
    fn too_few_negatives_take_them_all_and_no_positives_select_nothing() {
        let g = gold(6, 3, &[(0, 1), (1, 2)]);
        let s = create_sample(&g, 3, &mut Rng::new(1));
        assert!(s.mask.iter().all(|&m| m == 1.0));
        let g = gold(4, 3, &[]);
        let s = create_sample(&g, 3, &mut Rng::new(1));
        assert!(s.mask.iter().all(|&m| m == 0.0) && s.labels == g);
    }
}
