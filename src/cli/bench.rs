//! `docre bench`: the subcommands and their tables.

use std::path::{Path, PathBuf};

use crate::fsutil::{check_writable, write_atomic};
use crate::gpu::{Gpu, GpuTimer};
use crate::model::{Bert, BertConfig};
use crate::workflow::{self};
use crate::{bench, Error, Result};

use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchWhat {
    /// This adapter's roofline from probe kernels: FMA throughput (GFLOP/s) and streaming read
    /// and copy bandwidth (GB/s).
    Peak {
        /// Also write the measurements as a JSON list to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Timed runs per probe (the median is reported).
        #[arg(long, default_value_t = 5)]
        samples: usize,
    },
    /// matmul (256³ to 1024³ and BERT-layer shapes), softmax, layernorm and the bilinear layer,
    /// each with its share of the adapter's peak (the probes of `bench peak` run first).
    Kernels {
        /// Also write the measurements as a JSON list to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Timed runs per case (the median is reported).
        #[arg(long, default_value_t = 5)]
        samples: usize,
        /// Skip the 1024³ matmul.
        #[arg(long)]
        quick: bool,
        /// Only cases whose kernel name contains this text (e.g. `matmul`, `softmax`).
        #[arg(long)]
        only: Option<String>,
    },
    /// ECA against dense attention: the attention core and one whole inference layer, forward
    /// and forward+backward, for one document of N entities.
    Eca {
        /// Entity counts N (one document, P = N(N−1) pairs).
        #[arg(long, value_delimiter = ',', default_value = "16,26,42,64,128,256")]
        n: Vec<usize>,
        /// Inference-module width D (4 heads of D/4).
        #[arg(long, default_value_t = 512)]
        width: usize,
        /// Timed runs per case (the median is reported; runs longer than a quarter of
        /// --max-seconds are timed once).
        #[arg(long, default_value_t = 3)]
        samples: usize,
        /// Skip a run whose time, estimated from the previous N, exceeds this many seconds.
        #[arg(long, default_value_t = 60.0)]
        max_seconds: f64,
        /// Only cases whose name contains this text (`core`, `layer`, `fwd+bwd`, ...).
        #[arg(long)]
        only: Option<String>,
        /// Also write the rows as a JSON list to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Also draw the rows (as `docre plot --eca` does), PNG or SVG by extension.
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// One whole training step on real Re-DocRED documents (encoder, heads, losses, both
    /// backward passes, clipping, AdamW), stage 1 and 2: wall time, GPU time per phase, peak
    /// GPU memory.
    Step {
        /// DocRED-format file the documents come from [default: ../shared/data/redocred/dev_revised.json].
        #[arg(long)]
        data: Option<PathBuf>,
        /// Document indices in --data; a batch of B takes the first B.
        #[arg(long, value_delimiter = ',', default_value = "8,276,0,1")]
        docs: Vec<usize>,
        /// rel2id.json [default: the built-in DocRED inventory].
        #[arg(long)]
        rel2id: Option<PathBuf>,
        /// Encoder folder with config.json, tokenizer.json and model.safetensors, or a hub id
        /// [default: ../shared/models/all-MiniLM-L6-v2].
        #[arg(long)]
        encoder: Option<PathBuf>,
        /// Random weights of the encoder's shapes instead of its checkpoint (the same speed).
        #[arg(long)]
        random_weights: bool,
        /// Training stages to time.
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        stages: Vec<u32>,
        /// Batch sizes to time.
        #[arg(long, value_delimiter = ',', default_value = "1,4")]
        batch: Vec<usize>,
        /// Freeze the encoder (`train --freeze-encoder`: its outputs are computed once).
        #[arg(long)]
        freeze_encoder: bool,
        /// Inference layers N_I.
        #[arg(long, default_value_t = 2)]
        layers: usize,
        /// Timed steps per case (median, min and max are reported).
        #[arg(long, default_value_t = 3)]
        samples: usize,
        /// Also write the rows as a JSON list to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// The whole encoder, batch 1: forward and forward+backward tokens/s and peak GPU memory.
    Encoder {
        /// Encoder folder (config.json + model.safetensors) or hub id. Default: random weights
        /// with the shapes of all-MiniLM-L6-v2, which run exactly as fast.
        #[arg(long)]
        encoder: Option<PathBuf>,
        /// Document lengths in tokens (above 512 the two-window scheme runs).
        #[arg(long, value_delimiter = ',', default_value = "128,512")]
        lengths: Vec<usize>,
        /// Timed runs per case (the median is reported).
        #[arg(long, default_value_t = 3)]
        samples: usize,
        /// Also write the measurements as a JSON list to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn bench_kernels(json: Option<&Path>, samples: usize, quick: bool, only: Option<&str>) -> Result<()> {
    if let Some(path) = json {
        check_writable(path, "--json")?;
    }
    let gpu = Gpu::new()?;
    let timer = GpuTimer::new(&gpu);
    let peak = bench::measure_peak(&gpu, &timer, samples)?;
    println!("peak (bench peak): {:.2} GFLOP/s FMA, {:.2} GB/s streaming; share = rate / that peak", peak.gflops, peak.gbps);
    let cases = bench::kernel_cases(&gpu, quick)?.into_iter().filter(|c| only.is_none_or(|o| c.kernel.contains(o))).collect();
    print_table(&gpu, cases, samples, json, false, Some(peak))
}

fn bench_peak(json: Option<&Path>, samples: usize) -> Result<()> {
    if let Some(path) = json {
        check_writable(path, "--json")?;
    }
    let gpu = Gpu::new()?;
    print_table(&gpu, bench::peak_cases(&gpu)?, samples, json, false, None)
}

fn bench_encoder(encoder: Option<&Path>, lengths: &[usize], samples: usize, json: Option<&Path>) -> Result<()> {
    if let Some(path) = json {
        check_writable(path, "--json")?;
    }
    if let Some(&l) = lengths.iter().find(|&&l| l < 2) {
        return Err(Error::Input(format!("--lengths: {l} is too short (a document has at least [CLS] and [SEP])")));
    }
    let gpu = Gpu::new()?;
    let (bert, source) = match encoder {
        Some(spec) => (Bert::load(&gpu, &crate::model::encoder::hub::locate(spec)?.dir)?, spec.display().to_string()),
        None => (Bert::random(&gpu, BertConfig::minilm_l6(), 0)?, "random weights, all-MiniLM-L6-v2 shapes".to_string()),
    };
    let c = &bert.config;
    if let Some(&l) = lengths.iter().find(|&&l| l > c.max_ids()) {
        return Err(Error::Input(format!("--lengths: {l} tokens is more than two windows of {} cover ({})", c.window(), c.max_ids())));
    }
    let weights: u64 = bert.params().iter().map(|t| t.bytes()).sum();
    println!(
        "encoder: {source} ({} layers, hidden {}, {} heads, FFN {}; weights {:.1} MiB, not counted in peak MiB)",
        c.num_hidden_layers,
        c.hidden_size,
        c.num_attention_heads,
        c.intermediate_size,
        weights as f64 / (1 << 20) as f64
    );
    let cases = bench::encoder_cases(&gpu, &std::sync::Arc::new(bert), lengths)?;
    print_table(&gpu, cases, samples, json, true, None)
}

fn bench_step(cfg: &bench::StepBenchConfig, json: Option<&Path>) -> Result<()> {
    if let Some(path) = json {
        check_writable(path, "--json")?;
    }
    let gpu = Gpu::new()?;
    println!("adapter: {} ({}); encoder {}{}, {} inference layer(s), encoder {}", gpu.report().name, gpu.report().backend, cfg.encoder.display(),
        if cfg.random_weights { " (random weights)" } else { "" }, cfg.layers, if cfg.frozen { "frozen" } else { "trained" });
    println!("step s = median wall time [min-max]; phase columns = GPU kernel ms from one profiled step; peak = MiB beyond model and optimizer state");
    let short = ["enc fwd", "heads fwd", "losses", "heads bwd", "enc bwd", "optim"];
    print!("{:>5} {:>5} {:>6} {:>6} {:>24}", "stage", "batch", "pairs", "tokens", "step s");
    for s in short {
        print!(" {s:>9}");
    }
    println!(" {:>9}", "peak MiB");
    let rows = bench::step_bench(&gpu, cfg, |r| {
        print!("{:>5} {:>5} {:>6} {:>6} {:>24}", r.stage, r.batch, r.pairs, r.tokens, format!("{:.3} [{:.3}-{:.3}]", r.seconds, r.min_seconds, r.max_seconds));
        for (_, s) in &r.phases {
            print!(" {:>9.1}", s * 1e3);
        }
        println!(" {:>9.1}", r.peak_bytes as f64 / (1 << 20) as f64);
    })?;
    if let Some(path) = json {
        write_atomic(path, serde_json::to_string_pretty(&rows).expect("rows serialize").as_bytes())?;
    }
    Ok(())
}

fn bench_eca(cfg: bench::EcaBenchConfig, json: Option<&Path>, plot: Option<&Path>) -> Result<()> {
    if let Some(path) = json {
        check_writable(path, "--json")?;
    }
    if let Some(path) = plot {
        check_writable(path, "--plot")?;
        workflow::plot::ImageFormat::of(path)?;
    }
    let gpu = Gpu::new()?;
    println!("adapter: {} ({}), timing: {}", gpu.report().name, gpu.report().backend, GpuTimer::new(&gpu).method());
    println!("one document, D = {}, 4 heads; extra MiB = peak GPU memory a run allocates beyond its inputs", cfg.width);
    println!("{:>4} {:>6} {:<14} {:>22} {:>22} {:>8} {:>8} {:>12} {:>12}", "N", "P", "case", "ECA ms", "dense ms", "speedup", "FLOPs×", "ECA MiB", "dense MiB");
    let rows = bench::eca_vs_dense(&gpu, &cfg, |r| {
        let speedup = r.speedup.map(|s| format!("{s:.1}")).unwrap_or_else(|| "-".into());
        println!(
            "{:>4} {:>6} {:<14} {:>22} {:>22} {:>8} {:>8.1} {:>12} {:>12}",
            r.n, r.pairs, r.case, r.eca.time_cell(), r.dense.time_cell(), speedup, r.flop_ratio, r.eca.memory_cell(), r.dense.memory_cell()
        );
    })?;
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&rows).expect("rows serialize");
        write_atomic(path, text.as_bytes())?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = plot {
        workflow::plot::eca_benchmark(&rows, path)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Measures `cases` and prints one row each (and the JSON list with `--json`).
/// With `peak`, each row also gets its share of it.
fn print_table(gpu: &Gpu, cases: Vec<bench::Case>, samples: usize, json: Option<&Path>, memory: bool, peak: Option<bench::Peak>) -> Result<()> {
    let timer = GpuTimer::new(gpu);
    println!("adapter: {} ({}), timing: {}", gpu.report().name, gpu.report().backend, timer.method());
    let mem_col = if memory { format!(" {:>14}", "peak MiB") } else { String::new() };
    let share_col = if peak.is_some() { format!(" {:>6}", "share") } else { String::new() };
    println!("{:<20} {:<22} {:>12}{mem_col}{share_col}  rate", "case", "shape", "ms");
    let mut rows = Vec::new();
    for case in cases {
        let mut m = case.measure(gpu, &timer, samples)?;
        m.peak_share = peak.and_then(|p| p.share(&m));
        let mem = if memory { format!(" {:>14.1}", m.peak_bytes as f64 / (1 << 20) as f64) } else { String::new() };
        let share = if peak.is_some() { format!(" {:>6}", m.peak_share.map_or("-".to_string(), |s| format!("{:.0}%", 100.0 * s))) } else { String::new() };
        println!("{:<20} {:<22} {:>12.3}{mem}{share}  {}", m.kernel, m.shape, m.seconds * 1e3, m.rate());
        rows.push(m);
    }
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&rows).expect("measurements serialize");
        write_atomic(path, text.as_bytes())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Runs one `docre bench` subcommand.
pub fn run(what: BenchWhat) -> Result<()> {
    match what {
        BenchWhat::Peak { json, samples } => bench_peak(json.as_deref(), samples),
        BenchWhat::Kernels { json, samples, quick, only } => bench_kernels(json.as_deref(), samples, quick, only.as_deref()),
        BenchWhat::Encoder { encoder, lengths, samples, json } => bench_encoder(encoder.as_deref(), &lengths, samples, json.as_deref()),
        BenchWhat::Step { data, docs, rel2id, encoder, random_weights, stages, batch, freeze_encoder, layers, samples, json } => {
            let (d, e) = bench::step_default_paths();
            let cfg = bench::StepBenchConfig { data: data.unwrap_or(d), docs, rel2id, encoder: crate::model::encoder::hub::locate(&encoder.unwrap_or(e))?.dir, random_weights, stages, batches: batch, frozen: freeze_encoder, layers, samples };
            bench_step(&cfg, json.as_deref())
        }
        BenchWhat::Eca { n, width, samples, max_seconds, only, json, plot } => bench_eca(bench::EcaBenchConfig { ns: n, only, width, samples, max_seconds }, json.as_deref(), plot.as_deref()),
    }
}
