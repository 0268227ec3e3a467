//! Scores of several checkpoints of one setting (seeds): mean, sample standard deviation and
//! range of each measure, for every model the controls report.

use std::path::PathBuf;

use super::controls::Row;
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

/// P, R, F1 and Ign F1 over the checkpoints, for each model of the controls.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    pub checkpoints: usize,
    /// (model, measure, spread), models in the controls' order.
    pub rows: Vec<(String, String, Spread)>,
}

/// Summarizes each model that every checkpoint reports.
pub fn summarize(runs: &[(PathBuf, Vec<Row>)]) -> Summary {
    let mut rows = Vec::new();
    let Some((_, first)) = runs.first() else { return Summary { checkpoints: 0, rows } };
    for model in first.iter().map(|r| r.model) {
        let scores: Option<Vec<&Scores>> = runs.iter().map(|(_, rs)| rs.iter().find(|r| r.model == model).map(|r| &r.scores)).collect();
        let Some(scores) = scores else { continue };
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
        self.rows.iter().map(|(m, n, s)| format!("{m:<34} {n:<7} {:.4} ± {:.4} [{:.4}–{:.4}]\n", s.mean, s.sd, s.min, s.max)).collect()
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
    fn summary_covers_every_model_all_checkpoints_report() {
        let sc = |f1: f64| Scores { precision: f1, recall: f1, f1, ign_f1: f1, ..Default::default() };
        let row = |model, f1| Row { model, threshold: 0.0, scores: sc(f1) };
        let runs = vec![
            (PathBuf::from("a"), vec![row("base module", 0.2), row("base + untrained inference module", 0.1), row("full model", 0.4)]),
            (PathBuf::from("b"), vec![row("base module", 0.3), row("full model", 0.6)]),
        ];
        let s = summarize(&runs);
        assert_eq!(s.rows.len(), 8, "the untrained row is missing from b: left out");
        let full_f1 = s.rows.iter().find(|r| r.0 == "full model" && r.1 == "F1").unwrap().2;
        assert!((full_f1.mean - 0.5).abs() < 1e-12 && (full_f1.min, full_f1.max) == (0.4, 0.6));
        assert!(s.table().contains(&format!("{:<34} F1      0.5000 ± 0.1414 [0.4000–0.6000]", "full model")), "{}", s.table());
    }
}
