//! Plots: training curves and the ECA-vs-dense picture, decoded back from PNG (size, ink, the
//! series colours) and read back from SVG; bad outputs and logs are refused without a file.

mod common;

use std::path::PathBuf;

use docre::bench::{EcaRow, Outcome};
use docre::workflow::plot::{eca_benchmark, eca_benchmark_file, training_curves};

const STAGE1: [u8; 3] = [31, 119, 180];
const STAGE2: [u8; 3] = [255, 127, 14];
const GREEN: [u8; 3] = [44, 160, 44];

fn tmp(name: &str) -> PathBuf {
    let dir = common::scratch("plot");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    p
}

/// A two-stage log as `train` writes it: per-step loss and lr, per-epoch dev scores.
fn log() -> PathBuf {
    let mut text = String::from("{\"documents\":4,\"encoder_cache_seconds\":0.1,\"step\":0}\n");
    for step in 1..=60u32 {
        let stage = if step <= 40 { 1 } else { 2 };
        let loss = if stage == 1 { 50.0 / step as f64 } else { 3.0 - step as f64 / 40.0 };
        text += &format!("{{\"epoch\":1,\"loss\":{loss},\"lr\":{},\"stage\":{stage},\"step\":{step}}}\n", 1e-3 * (1.0 - step as f64 / 61.0));
        // Stage 1 scores the untrained inference module; stage 2 the trained full model.
        if step % 10 == 0 && stage == 1 {
            text += &format!("{{\"dev_base_f1\":{b},\"dev_untrained_module_f1\":{u},\"stage\":1,\"step\":{step}}}\n", b = step as f64 / 100.0, u = step as f64 / 90.0);
        } else if step % 10 == 0 {
            text += &format!("{{\"dev_base_f1\":{b},\"dev_f1\":{f},\"dev_ign_f1\":{i},\"stage\":2,\"step\":{step}}}\n", b = step as f64 / 100.0, f = step as f64 / 70.0, i = step as f64 / 80.0);
        }
    }
    let p = tmp("metrics.jsonl");
    std::fs::write(&p, text).unwrap();
    p
}

/// (width, height, RGB pixels) of a PNG file.
fn decode(path: &PathBuf) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let px = buf[..info.buffer_size()].chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
    (info.width, info.height, px)
}

fn ink(px: &[[u8; 3]]) -> f64 {
    px.iter().filter(|p| **p != [255, 255, 255]).count() as f64 / px.len() as f64
}

#[test]
fn training_curves_png_has_its_size_ink_and_both_stages() {
    let out = tmp("curves.png");
    training_curves(&log(), &out).unwrap();
    let (w, h, px) = decode(&out);
    assert_eq!((w, h), (900, 960));
    let ink = ink(&px);
    assert!(ink > 0.01 && ink < 0.5, "non-white fraction {ink}");
    for (name, color) in [("stage 1", STAGE1), ("stage 2", STAGE2), ("dev Ign F1", GREEN)] {
        let n = px.iter().filter(|p| **p == color).count();
        assert!(n > 200, "{name}: {n} pixels of its colour");
    }
}

#[test]
fn training_curves_svg_names_its_series() {
    let out = tmp("curves.svg");
    training_curves(&log(), &out).unwrap();
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
    for text in ["training loss", "learning rate", "stage 1", "stage 2", "dev F1", "dev Ign F1", "dev base F1", "dev base + untrained module F1", "<polyline"] {
        assert!(svg.contains(text), "the SVG lacks {text}");
    }
}

fn row(n: usize, case: &str, eca_ms: f64, dense: Outcome) -> EcaRow {
    let speedup = dense.seconds().map(|d| d / (eca_ms / 1e3));
    EcaRow { n, pairs: n * (n - 1), case: case.into(), eca: Outcome::Measured { seconds: eca_ms / 1e3, peak_extra_bytes: (n * n) as u64 * 4096 }, dense, flop_ratio: n as f64 / 2.0, speedup }
}

#[test]
fn eca_picture_png_and_json_round_trip() {
    let mut rows = Vec::new();
    for (i, n) in [16usize, 26, 42].into_iter().enumerate() {
        for (c, case) in ["core forward", "core fwd+bwd", "layer forward", "layer fwd+bwd"].into_iter().enumerate() {
            let eca = (n * n) as f64 * (c + 1) as f64 / 100.0;
            // The largest N's dense run is over the budget: it is left out, not an error.
            let dense = if i == 2 { Outcome::OverBudget { estimated_seconds: 500.0 } } else { Outcome::Measured { seconds: eca * n as f64 / 4e3, peak_extra_bytes: (n * n * n) as u64 * 4096 } };
            rows.push(row(n, case, eca, dense));
        }
    }
    let out = tmp("eca.png");
    eca_benchmark(&rows, &out).unwrap();
    let (w, h, px) = decode(&out);
    assert_eq!((w, h), (1400, 1000));
    assert!(ink(&px) > 0.01);
    for color in [STAGE1, STAGE2, GREEN] {
        let n = px.iter().filter(|p| **p == color).count();
        assert!(n > 50, "{color:?}: {n} pixels");
    }
    // `plot --eca` reads what `bench eca --json` writes.
    let json = tmp("eca.json");
    std::fs::write(&json, serde_json::to_string(&rows).unwrap()).unwrap();
    let svg = tmp("eca.svg");
    eca_benchmark_file(&json, &svg).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    for t in ["attention core: time", "inference layer: time", "peak extra GPU memory", "core fwd+bwd, dense", "layer forward, FLOPs"] {
        assert!(text.contains(t), "the SVG lacks {t}");
    }
}

#[test]
fn bad_outputs_and_logs_are_refused_without_a_file() {
    let log = log();
    let out = tmp("curves.jpg");
    let e = training_curves(&log, &out).unwrap_err().to_string();
    assert!(e.contains("curves.jpg") && e.contains(".png or .svg"), "{e}");
    assert!(!out.exists());

    let bad = tmp("bad.jsonl");
    std::fs::write(&bad, "{\"loss\":1.0,\"stage\":1,\"step\":1}\n{\"loss\": oops}\n").unwrap();
    let out = tmp("bad.png");
    let e = training_curves(&bad, &out).unwrap_err().to_string();
    assert!(e.contains("bad.jsonl") && e.contains("line 2"), "{e}");
    std::fs::write(&bad, "{\"dev_f1\":0.5,\"step\":3}\n").unwrap();
    let e = training_curves(&bad, &out).unwrap_err().to_string();
    assert!(e.contains("no loss values"), "{e}");
    assert!(!out.exists());

    let json = tmp("notrows.json");
    std::fs::write(&json, "{\"n\": 3}").unwrap();
    let e = eca_benchmark_file(&json, &out).unwrap_err().to_string();
    assert!(e.contains("notrows.json") && e.contains("bench eca --json"), "{e}");
    let e = eca_benchmark(&[], &out).unwrap_err().to_string();
    assert!(e.contains("no measured case"), "{e}");
    assert!(!out.exists());
}

#[test]
fn cli_plot_writes_png_and_exits_2_on_a_bad_extension() {
    let log = log();
    let out = tmp("cli.png");
    let run = |out: &PathBuf| std::process::Command::new(env!("CARGO_BIN_EXE_docre")).arg("plot").arg(&log).arg("--out").arg(out).output().unwrap();
    let o = run(&out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(decode(&out).0, 900);
    let o = run(&tmp("cli.gif"));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains(".png or .svg"));
}
