//! Scores of several checkpoints of one setting (seeds): mean, sample standard deviation and
//! range of each measure, for the base module and the full model.

use std::path::PathBuf;

use super::Scores;

/// Mean, sample standard deviation (n − 1) and range of one measure.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Spread {
    pub mean: f64,
    pub sd: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Spread {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let sd = if values.len() > 1 { (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { 0.0 };
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Spread { mean, sd, min, max }
    }
}

/// P, R, F1 and Ign F1 over the checkpoints, for the base module and the full model.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    pub checkpoints: usize,
    /// (model, measure, spread), model "base module" or "full model".
    pub rows: Vec<(String, String, Spread)>,
}

pub fn summarize(runs: &[(PathBuf, Scores, Scores)]) -> Summary {
    let mut rows = Vec::new();
    for (model, pick) in [("base module", 0usize), ("full model", 1)] {
        let scores: Vec<&Scores> = runs.iter().map(|(_, b, f)| if pick == 0 { b } else { f }).collect();
        let measures: [(&str, fn(&Scores) -> f64); 4] = [("P", |s| s.precision), ("R", |s| s.recall), ("F1", |s| s.f1), ("Ign F1", |s| s.ign_f1)];
        for (name, get) in measures {
            rows.push((model.to_string(), name.to_string(), Spread::of(&scores.iter().map(|s| get(s)).collect::<Vec<_>>())));
        }
    }
    Summary { checkpoints: runs.len(), rows }
}

impl Summary {
    /// One line per model and measure: mean ± sd [min–max].
    pub fn table(&self) -> String {
        self.rows.iter().map(|(m, n, s)| format!("{m:<12} {n:<7} {:.4} ± {:.4} [{:.4}–{:.4}]\n", s.mean, s.sd, s.min, s.max)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_the_sample_statistics() {
        let s = Spread::of(&[0.30, 0.40, 0.35]);
        assert!((s.mean - 0.35).abs() < 1e-12);
        assert!((s.sd - 0.05).abs() < 1e-12, "sample sd of 0.30, 0.40, 0.35 is 0.05, got {}", s.sd);
        assert_eq!((s.min, s.max), (0.30, 0.40));
        assert_eq!(Spread::of(&[0.5]).sd, 0.0);
    }

    #[test]
    fn summary_covers_both_models_and_four_measures() {
        let sc = |f1: f64| Scores { precision: f1, recall: f1, f1, ign_f1: f1, ..Default::default() };
        let runs = vec![(PathBuf::from("a"), sc(0.2), sc(0.4)), (PathBuf::from("b"), sc(0.3), sc(0.6))];
        let s = summarize(&runs);
        assert_eq!(s.rows.len(), 8);
        let full_f1 = s.rows.iter().find(|r| r.0 == "full model" && r.1 == "F1").unwrap().2;
        assert!((full_f1.mean - 0.5).abs() < 1e-12 && (full_f1.min, full_f1.max) == (0.4, 0.6));
        assert!(s.table().contains("full model   F1      0.5000 ± 0.1414 [0.4000–0.6000]"), "{}", s.table());
    }
}
