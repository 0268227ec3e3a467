//! Pictures through plotters, PNG or SVG by the output's extension: training curves from a
//! `metrics.jsonl` log (`docre plot`, the demo's `curves.png`) and the ECA-vs-dense benchmark
//! (`docre plot --eca`, `docre bench eca --plot`). Text is drawn with the embedded DejaVu Sans
//! (data/fonts), so a PNG renders the same on a machine without system fonts.

use std::path::Path;
use std::sync::Once;

use plotters::chart::MeshStyle;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::bench::EcaRow;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

const FONT: &[u8] = include_bytes!("../../data/fonts/DejaVuSans.ttf");
const STAGE_COLORS: [RGBColor; 2] = [RGBColor(31, 119, 180), RGBColor(255, 127, 14)];
const CASE_COLORS: [RGBColor; 5] = [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44), RGBColor(214, 39, 40), RGBColor(148, 103, 189)];

/// Output encodings, chosen by extension so one verb serves reports (SVG) and chat/CI (PNG).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Svg,
}

impl ImageFormat {
    pub fn of(path: &Path) -> Result<ImageFormat> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("png") => Ok(ImageFormat::Png),
            Some("svg") => Ok(ImageFormat::Svg),
            _ => Err(Error::Input(format!("{}: a plot is written as .png or .svg; name the output with one of those extensions", path.display()))),
        }
    }
}

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// One picture, drawable on any plotters backend.
trait Picture {
    const SIZE: (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static;
}

/// Renders `picture` in memory and writes it atomically, so a failed plot leaves no file.
fn render<P: Picture>(picture: &P, format: ImageFormat, out: &Path) -> Result<()> {
    static FONT_ONCE: Once = Once::new();
    FONT_ONCE.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).unwrap_or_else(|_| panic!("the embedded DejaVu Sans is a valid font"));
    });
    let fail = |e: Box<dyn std::error::Error>| Error::Input(format!("cannot draw {}: {e}", out.display()));
    let (w, h) = P::SIZE;
    let bytes = match format {
        ImageFormat::Png => {
            let mut rgb = vec![0u8; (w * h * 3) as usize];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
                picture.draw(&root).map_err(fail)?;
                root.present().map_err(|e| fail(e.into()))?;
            }
            encode_png(&rgb, w, h)?
        }
        ImageFormat::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
                picture.draw(&root).map_err(fail)?;
                root.present().map_err(|e| fail(e.into()))?;
            }
            svg.into_bytes()
        }
    };
    write_atomic(out, &bytes)
}

fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let err = |e: png::EncodingError| Error::Input(format!("cannot encode the PNG: {e}"));
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Best);
    let mut writer = enc.write_header().map_err(err)?;
    writer.write_image_data(rgb).map_err(err)?;
    writer.finish().map_err(err)?;
    Ok(out)
}

/// The series of a training log: per-step loss and learning rate by stage, dev scores by step.
#[derive(Default)]
struct Curves {
    loss: [Vec<(f64, f64)>; 2],
    lr: [Vec<(f64, f64)>; 2],
    /// (name, points): dev F1, Ign F1, the base module's F1 and (stage 1) the base module's with
    /// the untrained inference module, where logged.
    dev: Vec<(&'static str, Vec<(f64, f64)>)>,
}

fn read_curves(log: &Path) -> Result<Curves> {
    let text = std::fs::read_to_string(log).map_err(|source| Error::Io { context: format!("cannot read {}", log.display()), source })?;
    let mut c = Curves { dev: vec![("dev F1", Vec::new()), ("dev Ign F1", Vec::new()), ("dev base F1", Vec::new()), ("dev base + untrained module F1", Vec::new())], ..Curves::default() };
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = || format!("{}: line {}", log.display(), i + 1);
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| Error::Input(format!("{}: {e}", at())))?;
        let step = v["step"].as_f64().ok_or_else(|| Error::Input(format!("{}: no `step`", at())))?;
        if let Some(loss) = v["loss"].as_f64() {
            let stage = match v["stage"].as_u64() {
                Some(s @ 1..=2) => s as usize - 1,
                _ => return Err(Error::Input(format!("{}: a loss without `stage` 1 or 2", at()))),
            };
            c.loss[stage].push((step, loss));
            if let Some(lr) = v["lr"].as_f64() {
                c.lr[stage].push((step, lr));
            }
        }
        for (key, (_, points)) in ["dev_f1", "dev_ign_f1", "dev_base_f1", "dev_untrained_module_f1"].iter().zip(c.dev.iter_mut()) {
            if let Some(f) = v[*key].as_f64() {
                points.push((step, f));
            }
        }
    }
    if c.loss.iter().all(Vec::is_empty) {
        return Err(Error::Input(format!("{}: no loss values to plot", log.display())));
    }
    c.dev.retain(|(_, p)| !p.is_empty());
    Ok(c)
}

/// `lo..hi` widened so that a single value still gives a drawable axis.
fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi > lo {
        (lo, hi)
    } else {
        (lo - 0.5 * lo.abs().max(1e-9), hi + 0.5 * hi.abs().max(1e-9))
    }
}

impl Picture for Curves {
    const SIZE: (u32, u32) = (900, 960);

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let panels = root.split_evenly((3, 1));
        let steps = span(self.loss.iter().chain(&self.lr).flatten().map(|p| p.0).chain(std::iter::once(0.0)));
        let x = steps.0..steps.1;

        // Loss spans orders of magnitude between the stages, hence log scale (a step with a zero
        // loss, which a log axis cannot place, is left out).
        let (lo, hi) = span(self.loss.iter().flatten().map(|p| p.1).filter(|&l| l > 0.0));
        let mut ch = panel(&panels[0], "training loss").build_cartesian_2d(x.clone(), (lo..hi).log_scale())?;
        mesh(&mut ch.configure_mesh(), "loss (log)").y_labels(8).y_label_formatter(&|v| tick(*v)).draw()?;
        for (stage, points) in self.loss.iter().enumerate().filter(|(_, p)| !p.is_empty()) {
            let color = STAGE_COLORS[stage];
            ch.draw_series(LineSeries::new(points.iter().copied().filter(|p| p.1 > 0.0), color.stroke_width(1)))?.label(format!("stage {}", stage + 1)).legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
        }
        legend(&mut ch, SeriesLabelPosition::MiddleRight)?;

        let (lo, hi) = span(self.lr.iter().flatten().map(|p| p.1).chain(std::iter::once(0.0)));
        let mut ch = panel(&panels[1], "learning rate (heads)").build_cartesian_2d(x.clone(), lo..hi)?;
        mesh(&mut ch.configure_mesh(), "lr").y_label_formatter(&|v| format!("{v:.1e}")).draw()?;
        for (stage, points) in self.lr.iter().enumerate().filter(|(_, p)| !p.is_empty()) {
            let color = STAGE_COLORS[stage];
            ch.draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))?.label(format!("stage {}", stage + 1)).legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
        }
        legend(&mut ch, SeriesLabelPosition::MiddleRight)?;

        let mut ch = panel(&panels[2], "dev scores").build_cartesian_2d(x, 0.0..1.0)?;
        mesh(&mut ch.configure_mesh(), "F1").draw()?;
        for (i, (name, points)) in self.dev.iter().enumerate() {
            // Drawn thinner each time: on data without Ign pairs (CDR) Ign F1 equals F1.
            let color = CASE_COLORS[(i + 1) % CASE_COLORS.len()];
            ch.draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(3 - i.min(2) as u32)))?.label(*name).legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
            ch.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        if !self.dev.is_empty() {
            legend(&mut ch, SeriesLabelPosition::MiddleRight)?;
        }
        Ok(())
    }
}

/// A titled chart area with room for both axes' labels: every panel of both pictures.
fn panel<'a, 'b, DB: DrawingBackend>(area: &'a DrawingArea<DB, Shift>, title: &str) -> ChartBuilder<'a, 'b, DB> {
    let mut builder = ChartBuilder::on(area);
    builder.caption(title, ("sans-serif", 20)).margin(10).x_label_area_size(35).y_label_area_size(70);
    builder
}

/// The series' legend, boxed on a translucent white ground.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(ch: &mut ChartContext<'a, DB, CT>, position: SeriesLabelPosition) -> DrawResult
where
    DB::ErrorType: 'static,
{
    ch.configure_series_labels().position(position).border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;
    Ok(())
}

/// A log axis' tick: as many decimals as its magnitude needs.
fn tick(v: f64) -> String {
    match v.abs() {
        a if a >= 10.0 => format!("{v:.0}"),
        a if a >= 1.0 => format!("{v:.1}"),
        a if a >= 0.01 => format!("{v:.2}"),
        _ => format!("{v:.1e}"),
    }
}

/// The step axis and a light grid shared by the three training panels.
fn mesh<'a, 'b, DB: DrawingBackend, Y: Ranged>(m: &'b mut MeshStyle<'a, 'b, RangedCoordf64, Y, DB>, y_desc: &str) -> &'b mut MeshStyle<'a, 'b, RangedCoordf64, Y, DB> {
    m.x_desc("step").y_desc(y_desc).x_label_formatter(&|v| format!("{v:.0}")).light_line_style(WHITE.mix(0.0))
}

/// Training curves of a `metrics.jsonl` log: loss per stage, learning rate, dev F1 / Ign F1.
pub fn training_curves(log: &Path, out: &Path) -> Result<()> {
    let format = ImageFormat::of(out)?;
    render(&read_curves(log)?, format, out)
}

/// One benchmark case's two compared series of (N, value) points.
type CaseSeries = (String, Vec<(f64, f64)>, Vec<(f64, f64)>);

/// Per case: ECA and dense time in ms, ECA and dense peak extra MiB, and the dense/ECA FLOP
/// ratio with the measured speedup.
struct EcaPicture {
    time: Vec<CaseSeries>,
    memory: Vec<CaseSeries>,
    ratios: Vec<CaseSeries>,
}

impl EcaPicture {
    fn new(rows: &[EcaRow]) -> Result<EcaPicture> {
        let mut cases: Vec<String> = Vec::new();
        for r in rows {
            if !cases.contains(&r.case) {
                cases.push(r.case.clone());
            }
        }
        let mut p = EcaPicture { time: Vec::new(), memory: Vec::new(), ratios: Vec::new() };
        for case in cases {
            let of = |f: &dyn Fn(&EcaRow) -> Option<f64>| -> Vec<(f64, f64)> { rows.iter().filter(|r| r.case == case).filter_map(|r| f(r).map(|v| (r.n as f64, v))).collect() };
            p.time.push((case.clone(), of(&|r| r.eca.seconds().map(|s| s * 1e3)), of(&|r| r.dense.seconds().map(|s| s * 1e3))));
            p.memory.push((case.clone(), of(&|r| r.eca.peak_mib()), of(&|r| r.dense.peak_mib())));
            p.ratios.push((case.clone(), of(&|r| Some(r.flop_ratio)), of(&|r| r.speedup)));
        }
        if p.time.iter().all(|(_, e, d)| e.is_empty() && d.is_empty()) {
            return Err(Error::Input("the ECA benchmark has no measured case to draw".into()));
        }
        Ok(p)
    }
}

/// One log-log panel: per case, ECA solid with dots, the second series dashed with squares.
fn loglog<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, title: &str, y_desc: &str, series: &[CaseSeries], names: [&str; 2]) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let all = || series.iter().flat_map(|(_, a, b)| a.iter().chain(b)).filter(|p| p.1 > 0.0);
    let (x0, x1) = span(all().map(|p| p.0));
    // A log axis ticks only at powers of ten; the measured N are the ticks worth reading.
    let mut ns: Vec<f64> = all().map(|p| p.0).collect();
    ns.sort_by(f64::total_cmp);
    ns.dedup();
    let (y0, y1) = span(all().map(|p| p.1));
    let mut ch = panel(area, title).build_cartesian_2d((x0 * 0.9..x1 * 1.1).log_scale().with_key_points(ns), (y0 * 0.8..y1 * 1.25).log_scale())?;
    ch.configure_mesh().light_line_style(WHITE.mix(0.0)).x_desc("entities N (log)").y_desc(y_desc).x_label_formatter(&|v| format!("{v:.0}")).y_label_formatter(&|v| tick(*v)).draw()?;
    for (i, (case, first, second)) in series.iter().enumerate() {
        let color = CASE_COLORS[i % CASE_COLORS.len()];
        let first: Vec<(f64, f64)> = first.iter().copied().filter(|p| p.1 > 0.0).collect();
        let second: Vec<(f64, f64)> = second.iter().copied().filter(|p| p.1 > 0.0).collect();
        if !first.is_empty() {
            ch.draw_series(LineSeries::new(first.iter().copied(), color.stroke_width(2)))?.label(format!("{case}, {}", names[0])).legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
            ch.draw_series(first.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        if !second.is_empty() {
            ch.draw_series(DashedLineSeries::new(second.iter().copied(), 6, 4, color.stroke_width(1)))?.label(format!("{case}, {}", names[1])).legend(move |(x, y)| PathElement::new([(x, y), (x + 8, y)], color));
            ch.draw_series(second.iter().map(|&(x, y)| Rectangle::new([(x * 0.985, y * 0.97), (x * 1.015, y * 1.03)], color.filled())))?;
        }
    }
    legend(&mut ch, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}

impl Picture for EcaPicture {
    const SIZE: (u32, u32) = (1400, 1000);

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let panels = root.split_evenly((2, 2));
        let (core, layer): (Vec<_>, Vec<_>) = self.time.iter().cloned().partition(|(c, _, _)| c.starts_with("core"));
        loglog(&panels[0], "attention core: time", "ms (log)", &core, ["ECA", "dense"])?;
        loglog(&panels[1], "inference layer: time", "ms (log)", &layer, ["ECA", "dense"])?;
        loglog(&panels[2], "peak extra GPU memory", "MiB (log)", &self.memory, ["ECA", "dense"])?;
        loglog(&panels[3], "dense / ECA", "ratio (log)", &self.ratios, ["FLOPs", "measured time"])?;
        Ok(())
    }
}

/// The ECA-vs-dense picture of `bench eca` rows: time against N (log-log) for the core and the
/// layer, peak memory, and the FLOP ratio beside the measured speedup.
pub fn eca_benchmark(rows: &[EcaRow], out: &Path) -> Result<()> {
    let format = ImageFormat::of(out)?;
    render(&EcaPicture::new(rows)?, format, out)
}

/// As [`eca_benchmark`], from the JSON `docre bench eca --json` wrote.
pub fn eca_benchmark_file(json: &Path, out: &Path) -> Result<()> {
    let text = std::fs::read_to_string(json).map_err(|source| Error::Io { context: format!("cannot read {}", json.display()), source })?;
    let rows: Vec<EcaRow> = serde_json::from_str(&text).map_err(|e| Error::Input(format!("{}: not the JSON of `docre bench eca --json`: {e}", json.display())))?;
    eca_benchmark(&rows, out)
}
