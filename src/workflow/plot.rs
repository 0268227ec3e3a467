//! `docre plot`: loss and dev F1 against steps from a metrics.jsonl log, as an SVG.

use std::path::Path;

use crate::error::{Error, Result};

/// Reads (step, value) series for `loss` and `dev_f1` from a JSON-lines log.
fn series(log: &Path) -> Result<(Vec<(f64, f64)>, Vec<(f64, f64)>)> {
    let text = std::fs::read_to_string(log).map_err(|source| Error::Io { context: format!("cannot read {}", log.display()), source })?;
    let (mut loss, mut f1) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| Error::Input(format!("{}: line {}: {e}", log.display(), i + 1)))?;
        let step = v["step"].as_f64().ok_or_else(|| Error::Input(format!("{}: line {} has no step", log.display(), i + 1)))?;
        if let Some(l) = v["loss"].as_f64() {
            loss.push((step, l));
        }
        if let Some(f) = v["dev_f1"].as_f64() {
            f1.push((step, f));
        }
    }
    if loss.is_empty() {
        return Err(Error::Input(format!("{}: no loss values to plot", log.display())));
    }
    Ok((loss, f1))
}

fn polyline(points: &[(f64, f64)], x0: f64, x1: f64, y0: f64, y1: f64, left: f64, top: f64, w: f64, h: f64, color: &str) -> String {
    let pts: Vec<String> = points
        .iter()
        .map(|&(x, y)| format!("{:.1},{:.1}", left + (x - x0) / (x1 - x0).max(1e-12) * w, top + h - (y - y0) / (y1 - y0).max(1e-12) * h))
        .collect();
    format!(r##"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"##, pts.join(" "))
}

/// The SVG: loss (left axis, blue) and dev F1 (right axis, orange) against steps.
pub fn plot_svg(log: &Path) -> Result<String> {
    let (loss, f1) = series(log)?;
    let (w, h, left, top) = (640.0, 360.0, 60.0, 30.0);
    let x1 = loss.iter().chain(&f1).map(|p| p.0).fold(1.0, f64::max);
    let (lmin, lmax) = loss.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let mut s = format!(r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="12">"#, w + 2.0 * left, h + 2.0 * top);
    s += &format!(r##"<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#888"/>"##);
    s += &polyline(&loss, 0.0, x1, lmin, lmax, left, top, w, h, "#1f77b4");
    s += &format!(r##"<text x="{left}" y="{}" fill="#1f77b4">loss {lmin:.3} – {lmax:.3}</text>"##, top - 10.0);
    if !f1.is_empty() {
        s += &polyline(&f1, 0.0, x1, 0.0, 1.0, left, top, w, h, "#ff7f0e");
        s += &format!(r##"<text x="{}" y="{}" fill="#ff7f0e" text-anchor="end">dev F1 (0 – 1)</text>"##, left + w, top - 10.0);
    }
    s += &format!(r#"<text x="{}" y="{}" text-anchor="middle">step (0 – {x1:.0})</text></svg>"#, left + w / 2.0, top + h + 20.0);
    Ok(s)
}
