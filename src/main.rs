//! The `docre` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use docre::gpu::{Gpu, GpuTimer};
use docre::model::{Bert, BertConfig};
use docre::{bench, Error, Result};

#[derive(Parser)]
#[command(name = "docre", version, about = "DocRE-II relation extraction on any GPU through wgpu")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the chosen adapter: name, backend, device type, limits and features.
    Info {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run benchmarks and print a table.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Subcommand)]
enum BenchWhat {
    /// matmul (256³ to 1024³ and BERT-layer shapes), softmax and layernorm.
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
        /// Also write the rows as a JSON list to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// The whole encoder, batch 1: forward and forward+backward tokens/s and peak GPU memory.
    Encoder {
        /// Checkpoint directory (config.json + model.safetensors). Default: random weights with
        /// the shapes of all-MiniLM-L6-v2, which run exactly as fast.
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(match e {
                Error::Input(_) | Error::Io { .. } => 2,
                _ => 1,
            })
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Info { json } => info(json),
        Command::Bench { what: BenchWhat::Kernels { json, samples, quick, only } } => bench_kernels(json.as_deref(), samples, quick, only.as_deref()),
        Command::Bench { what: BenchWhat::Encoder { encoder, lengths, samples, json } } => bench_encoder(encoder.as_deref(), &lengths, samples, json.as_deref()),
        Command::Bench { what: BenchWhat::Eca { n, width, samples, max_seconds, json } } => bench_eca(bench::EcaBenchConfig { ns: n, width, samples, max_seconds }, json.as_deref()),
    }
}

fn info(json: bool) -> Result<()> {
    let gpu = Gpu::new()?;
    let r = gpu.report();
    if json {
        println!("{}", serde_json::to_string_pretty(r).expect("adapter report serializes"));
        return Ok(());
    }
    println!("adapter      {}", r.name);
    println!("backend      {}", r.backend);
    println!("device type  {} (kernels tuned for {:?})", r.device_type, gpu.kind());
    println!("driver       {} {}", r.driver, r.driver_info);
    println!("limits       storage binding {} MiB, buffer {} MiB, workgroup memory {} KiB, {} invocations/workgroup, {} workgroups/dimension, {} bytes immediates",
        r.max_storage_buffer_binding_size >> 20, r.max_buffer_size >> 20, r.max_compute_workgroup_storage_size >> 10,
        r.max_compute_invocations_per_workgroup, r.max_compute_workgroups_per_dimension, r.max_immediate_size);
    println!("features     shader-f16 {}, timestamp queries {}, subgroups {}", yes(r.shader_f16), yes(r.timestamp_query), yes(r.subgroups));
    Ok(())
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn bench_kernels(json: Option<&Path>, samples: usize, quick: bool, only: Option<&str>) -> Result<()> {
    if let Some(path) = json {
        check_writable(path, "--json")?;
    }
    let gpu = Gpu::new()?;
    let cases = bench::kernel_cases(&gpu, quick)?.into_iter().filter(|c| only.is_none_or(|o| c.kernel.contains(o))).collect();
    print_table(&gpu, cases, samples, json, false)
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
        Some(dir) => (Bert::load(&gpu, dir)?, dir.display().to_string()),
        None => (Bert::random(&gpu, BertConfig::minilm_l6(), 0)?, "random weights, all-MiniLM-L6-v2 shapes".to_string()),
    };
    let c = &bert.config;
    if let Some(&l) = lengths.iter().find(|&&l| l > 2 * c.window() - 2) {
        return Err(Error::Input(format!("--lengths: {l} tokens is more than two windows of {} cover ({})", c.window(), 2 * c.window() - 2)));
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
    print_table(&gpu, cases, samples, json, true)
}

fn bench_eca(cfg: bench::EcaBenchConfig, json: Option<&Path>) -> Result<()> {
    if let Some(path) = json {
        check_writable(path, "--json")?;
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
    Ok(())
}

/// Measures `cases` and prints one row each (and the JSON list with `--json`).
fn print_table(gpu: &Gpu, cases: Vec<bench::Case>, samples: usize, json: Option<&Path>, memory: bool) -> Result<()> {
    let timer = GpuTimer::new(gpu);
    println!("adapter: {} ({}), timing: {}", gpu.report().name, gpu.report().backend, timer.method());
    let mem_col = if memory { format!(" {:>14}", "peak MiB") } else { String::new() };
    println!("{:<20} {:<22} {:>12}{mem_col}  rate", "case", "shape", "ms");
    let mut rows = Vec::new();
    for case in cases {
        let m = case.measure(gpu, &timer, samples)?;
        let mem = if memory { format!(" {:>14.1}", m.peak_bytes as f64 / (1 << 20) as f64) } else { String::new() };
        println!("{:<20} {:<22} {:>12.3}{mem}  {}", m.kernel, m.shape, m.seconds * 1e3, m.rate());
        rows.push(m);
    }
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&rows).expect("measurements serialize");
        write_atomic(path, text.as_bytes())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Fail before any long work when an output file cannot be created.
fn check_writable(path: &Path, flag: &str) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Error::Input(format!("{flag} {}: directory {} does not exist", path.display(), dir.display())));
    }
    Ok(())
}

/// Write to a temporary file beside `path`, then rename, so no half-written file is left.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let io = |context: String| move |source| Error::Io { context, source };
    std::fs::write(&tmp, bytes).map_err(io(format!("cannot write {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("cannot move {} to {}", tmp.display(), path.display())))
}
