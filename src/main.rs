//! The `docre` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use docre::gpu::{Gpu, GpuTimer};
use docre::data::docred::{read_docred, Document, Fact, Relations};
use docre::data::WordPieceTokenizer;
use docre::eval::{score, train_facts as facts_of};
use docre::model::checkpoint::{self, Sidecar};
use docre::model::heads::Heads;
use docre::model::{Bert, BertConfig};
use docre::fsutil::cache_root;
use docre::model::encoder_cache::{EncoderCache, EncoderStore};
use docre::model::Model;
use docre::workflow::shard::{merge, shard_json, Provenance, Shard};
use docre::data::format::{examples, Format};
use docre::eval::output;
use docre::model::encoder_cache::frozen_outputs;
use docre::workflow::{self, preset::RunConfig, run as wf};
use docre::fsutil::{check_writable, write_atomic, OutputDir};
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
    /// Check this adapter: every kernel variant it can run against the f64 reference, then a
    /// tiny model trained twice with identical bits. Needs no files; exits 1 on any failure.
    Selftest {
        /// Only the checks whose family or variant contains this text (e.g. matmul, subgroup).
        #[arg(long)]
        only: Option<String>,
        /// Also write the results as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Run benchmarks and print a table.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
    /// Train a tiny model on bundled Re-DocRED documents and show everything it produces.
    Demo {
        /// Output directory (checkpoints, metrics.jsonl, curves.png, result.json).
        #[arg(long, default_value = "demo-out")]
        out: PathBuf,
        /// A real BERT-family encoder instead of the tiny random one: a folder (config.json,
        /// model.safetensors, tokenizer.json) or a hub id (`bert-base-cased`, `org/name@revision`).
        #[arg(long)]
        encoder: Option<PathBuf>,
        /// TOML file overriding the `tiny` preset.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate a DocRED-format file and print its statistics.
    Check {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, value_enum, default_value = "docred")]
        format: Format,
        /// rel2id.json of the relation inventory (DocRED format only) [default: the built-in
        /// DocRED inventory, 96 relations and Na].
        #[arg(long)]
        rel2id: Option<PathBuf>,
        /// tokenizer.json for word-piece length statistics.
        #[arg(long)]
        tokenizer: Option<PathBuf>,
    },
    /// Train both stages and keep the best checkpoint by dev Ign F1.
    Train {
        #[arg(long)]
        train: PathBuf,
        #[arg(long)]
        dev: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "docred")]
        format: Format,
        #[arg(long)]
        rel2id: Option<PathBuf>,
        #[arg(long)]
        rel_info: Option<PathBuf>,
        /// docred, cdr, gda or tiny.
        #[arg(long, default_value = "docred")]
        preset: String,
        /// TOML file on top of the preset (flags win over both).
        #[arg(long)]
        config: Option<PathBuf>,
        /// BERT-family encoder: a folder (config.json, model.safetensors, tokenizer.json) or a
        /// Hugging Face hub id (`bert-base-cased`, `org/name@revision`), fetched into the hub cache.
        #[arg(long)]
        encoder: Option<PathBuf>,
        #[arg(long, default_value = "run")]
        out: PathBuf,
        #[arg(long)]
        stage1_epochs: Option<usize>,
        #[arg(long)]
        stage2_epochs: Option<usize>,
        #[arg(long)]
        batch_size: Option<usize>,
        #[arg(long, conflicts_with = "seeds")]
        seed: Option<u64>,
        /// One training per seed, into OUT/seed-N/ (comma-separated); evaluate them together
        /// with `docre eval --checkpoint OUT/seed-*/best`.
        #[arg(long, value_delimiter = ',', conflicts_with = "resume")]
        seeds: Vec<u64>,
        /// Keep the encoder fixed (forward only, no dropout) and train the heads.
        #[arg(long)]
        freeze_encoder: bool,
        /// Continue an interrupted run from RUN_DIR/last with RUN_DIR/config.toml; the continued
        /// run gives the same losses, bit for bit, as an uninterrupted one.
        #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["config", "encoder", "preset"])]
        resume: Option<PathBuf>,
    },
    /// Predict a labelled file with one or more checkpoints and score it; with several (seeds of
    /// one setting), also their mean, sample standard deviation and range.
    Eval {
        #[arg(long, num_args = 1.., required = true)]
        checkpoint: Vec<PathBuf>,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, value_enum, default_value = "docred")]
        format: Format,
        /// Training file whose facts Ign F1 ignores.
        #[arg(long)]
        train_facts: Option<PathBuf>,
        /// A labelled split (usually dev) to tune each model's decision threshold on; the tuned
        /// thresholds are then applied to --data, beside the models' own decisions.
        #[arg(long)]
        tune_on: Option<PathBuf>,
        /// Also write every checkpoint's scores and the summary as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Predict relations: result.json (CodaLab) and a readable listing. DocRED-format data may
    /// be a JSON list or JSON Lines (one document per line).
    Predict {
        #[arg(long)]
        checkpoint: PathBuf,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, value_enum, default_value = "docred")]
        format: Format,
        #[arg(long, default_value = "predictions")]
        out: PathBuf,
        /// Also write result.zip (result.json inside), ready to upload to CodaLab.
        #[arg(long, conflicts_with = "shard")]
        zip: bool,
        /// Predict only the documents whose index ≡ K (mod N), into OUT/shard-K-of-N.json;
        /// `docre merge` joins the N shards.
        #[arg(long, value_name = "K/N")]
        shard: Option<Shard>,
    },
    /// Join `predict --shard` outputs into one result.json and listing, in document order.
    Merge {
        /// The shard files (OUT/shard-K-of-N.json), every K of one N exactly once.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        #[arg(long, default_value = "predictions")]
        out: PathBuf,
        /// Also write result.zip.
        #[arg(long)]
        zip: bool,
    },
    /// Score a result.json against a labelled file, like the official evaluator.
    Score {
        #[arg(long)]
        gold: PathBuf,
        #[arg(long)]
        pred: PathBuf,
        /// rel2id.json [default: the built-in DocRED inventory].
        #[arg(long)]
        rel2id: Option<PathBuf>,
        #[arg(long)]
        train_facts: Option<PathBuf>,
    },
    /// Draw training curves (loss per stage, learning rate, dev F1 / Ign F1) from a metrics.jsonl
    /// log, or with --eca the ECA-vs-dense benchmark; PNG or SVG by the extension of --out.
    Plot {
        /// A run's metrics.jsonl.
        #[arg(required_unless_present = "eca", conflicts_with = "eca")]
        log: Option<PathBuf>,
        /// The JSON of `docre bench eca --json` instead of a training log.
        #[arg(long)]
        eca: Option<PathBuf>,
        /// curves.png, curves.svg, ...
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum BenchWhat {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = run(cli);
    if docre::gpu::profile::enabled() {
        let table = docre::gpu::profile::take();
        eprintln!("\nGPU time per kernel (DOCRE_PROFILE):\n{}", table.render());
    }
    match result {
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
        Command::Demo { out, encoder, config } => {
            let cfg = config.map(|c| RunConfig::from_toml(&c, "tiny")).transpose()?;
            workflow::demo::run(&out, encoder.as_deref(), cfg)
        }
        Command::Check { data, format, rel2id, tokenizer } => check(&data, format, rel2id.as_deref(), tokenizer.as_deref()),
        Command::Train { train, dev, format, rel2id, rel_info, preset, config, encoder, out, stage1_epochs, stage2_epochs, batch_size, seed, seeds, freeze_encoder, resume } => {
            let mut cfg = match (&resume, config) {
                (Some(dir), _) => RunConfig::from_toml(&dir.join("config.toml"), &preset)?,
                (None, Some(c)) => RunConfig::from_toml(&c, &preset)?,
                (None, None) => workflow::preset::preset(&preset)?,
            };
            let out = resume.clone().unwrap_or(out);
            cfg.encoder = encoder.or(cfg.encoder);
            cfg.stage1_epochs = stage1_epochs.unwrap_or(cfg.stage1_epochs);
            cfg.stage2_epochs = stage2_epochs.unwrap_or(cfg.stage2_epochs);
            cfg.batch_size = batch_size.unwrap_or(cfg.batch_size);
            cfg.seed = seed.unwrap_or(cfg.seed);
            cfg.freeze_encoder |= freeze_encoder;
            if seeds.is_empty() {
                return train_cmd(&cfg, &train, dev.as_deref(), format, rel2id.as_deref(), rel_info.as_deref(), &out, resume.is_some());
            }
            for (i, &s) in seeds.iter().enumerate() {
                println!("== seed {s} ({} of {})", i + 1, seeds.len());
                let started = std::time::Instant::now();
                train_cmd(&RunConfig { seed: s, ..cfg.clone() }, &train, dev.as_deref(), format, rel2id.as_deref(), rel_info.as_deref(), &out.join(format!("seed-{s}")), false)?;
                println!("seed {s} trained in {:.0} s", started.elapsed().as_secs_f64());
            }
            Ok(())
        }
        Command::Eval { checkpoint, data, format, train_facts, tune_on, json } => eval_cmd(&checkpoint, &data, format, train_facts.as_deref(), tune_on.as_deref(), json.as_deref()),
        Command::Predict { checkpoint, data, format, out, zip, shard } => predict_cmd(&checkpoint, &data, format, &out, zip, shard),
        Command::Merge { shards, out, zip } => merge_cmd(&shards, &out, zip),
        Command::Score { gold, pred, rel2id, train_facts } => score_cmd(&gold, &pred, rel2id.as_deref(), train_facts.as_deref()),
        Command::Plot { log, eca, out } => {
            check_writable(&out, "--out")?;
            match (log, eca) {
                (_, Some(eca)) => workflow::plot::eca_benchmark_file(&eca, &out)?,
                (Some(log), None) => workflow::plot::training_curves(&log, &out)?,
                (None, None) => unreachable!("clap requires a log or --eca"),
            }
            println!("wrote {}", out.display());
            Ok(())
        }
        Command::Info { json } => info(json),
        Command::Selftest { only, json } => selftest(only.as_deref(), json.as_deref()),
        Command::Bench { what: BenchWhat::Peak { json, samples } } => bench_peak(json.as_deref(), samples),
        Command::Bench { what: BenchWhat::Kernels { json, samples, quick, only } } => bench_kernels(json.as_deref(), samples, quick, only.as_deref()),
        Command::Bench { what: BenchWhat::Encoder { encoder, lengths, samples, json } } => bench_encoder(encoder.as_deref(), &lengths, samples, json.as_deref()),
        Command::Bench { what: BenchWhat::Step { data, docs, rel2id, encoder, random_weights, stages, batch, freeze_encoder, layers, samples, json } } => {
            let (d, e) = bench::step_default_paths();
            let cfg = bench::StepBenchConfig { data: data.unwrap_or(d), docs, rel2id, encoder: docre::model::encoder::hub::locate(&encoder.unwrap_or(e))?.dir, random_weights, stages, batches: batch, frozen: freeze_encoder, layers, samples };
            bench_step(&cfg, json.as_deref())
        }
        Command::Bench { what: BenchWhat::Eca { n, width, samples, max_seconds, only, json, plot } } => bench_eca(bench::EcaBenchConfig { ns: n, only, width, samples, max_seconds }, json.as_deref(), plot.as_deref()),
    }
}

fn info(json: bool) -> Result<()> {
    let gpu = Gpu::new()?;
    let r = gpu.report();
    let variants = docre::ops::chosen_variants(&gpu)?;
    if json {
        let mut v = serde_json::to_value(r).expect("adapter report serializes");
        v["subgroup_size"] = serde_json::json!(docre::ops::matmul::subgroup_size(&gpu)?);
        v["kernels"] = variants.iter().map(|(f, k)| (f.to_string(), serde_json::Value::String(k.clone()))).collect::<serde_json::Map<_, _>>().into();
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return Ok(());
    }
    println!("adapter      {}", r.name);
    println!("backend      {}", r.backend);
    println!("device type  {} (kernels tuned for {:?})", r.device_type, gpu.kind());
    println!("driver       {} {}", r.driver, r.driver_info);
    println!("limits       {} (DOCRE_LIMITS): storage binding {} MiB, buffer {} MiB, {} storage buffers/stage, workgroup memory {} KiB, {} invocations/workgroup, {} workgroups/dimension, {} bytes immediates",
        r.limits, r.max_storage_buffer_binding_size >> 20, r.max_buffer_size >> 20, r.max_storage_buffers_per_shader_stage, r.max_compute_workgroup_storage_size >> 10,
        r.max_compute_invocations_per_workgroup, r.max_compute_workgroups_per_dimension, r.max_immediate_size);
    println!("features     shader-f16 {}, timestamp queries {}, subgroups {}", yes(r.shader_f16), yes(r.timestamp_query), yes(r.subgroups));
    for (family, variant) in variants {
        println!("kernel       {family:<10} {variant}");
    }
    Ok(())
}

fn selftest(only: Option<&str>, json: Option<&Path>) -> Result<()> {
    use docre::selftest::Outcome;
    if let Some(path) = json {
        check_writable(path, "--json")?;
    }
    let gpu = Gpu::new()?;
    let r = gpu.report();
    println!("adapter: {} ({}, {}), limits {}", r.name, r.backend, r.driver, r.limits);
    let rows = docre::selftest::run(&gpu, only, |row| {
        let (word, why) = match &row.outcome {
            Outcome::Pass => ("PASS", String::new()),
            Outcome::Fail(m) => ("FAIL", format!(": {m}")),
            Outcome::Skip(m) => ("SKIP", format!(": {m}")),
        };
        println!("{word}  {:<12} {:<40} {:>6.1} s{why}", row.family, row.variant, row.seconds);
    });
    let count = |f: fn(&Outcome) -> bool| rows.iter().filter(|r| f(&r.outcome)).count();
    let (pass, fail, skip) = (count(|o| *o == Outcome::Pass), count(|o| matches!(o, Outcome::Fail(_))), count(|o| matches!(o, Outcome::Skip(_))));
    println!("{pass} passed, {fail} failed, {skip} skipped");
    if let Some(path) = json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                let (outcome, message) = match &r.outcome {
                    Outcome::Pass => ("pass", ""),
                    Outcome::Fail(m) => ("fail", m.as_str()),
                    Outcome::Skip(m) => ("skip", m.as_str()),
                };
                serde_json::json!({"family": r.family, "variant": r.variant, "outcome": outcome, "message": message, "seconds": r.seconds})
            })
            .collect();
        let doc = serde_json::json!({"adapter": gpu.report(), "checks": v});
        docre::fsutil::write_atomic(path, serde_json::to_string_pretty(&doc).expect("json").as_bytes())?;
    }
    if rows.is_empty() {
        return Err(docre::Error::Input(format!("--only {:?} matches no check", only.unwrap_or_default())));
    }
    if fail > 0 {
        return Err(docre::Error::SelfTest(format!("{fail} self-test check(s) failed on {}", r.name)));
    }
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
        Some(spec) => (Bert::load(&gpu, &docre::model::encoder::hub::locate(spec)?.dir)?, spec.display().to_string()),
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

fn check(data: &Path, format: Format, rel2id: Option<&Path>, tokenizer: Option<&Path>) -> Result<()> {
    let rels = format.relations(rel2id, None)?;
    let docs = format.read(data, &rels)?;
    let entities: usize = docs.iter().map(|d| d.entities.len()).sum();
    let mentions: usize = docs.iter().flat_map(|d| &d.entities).map(Vec::len).sum();
    let pairs: usize = docs.iter().map(|d| d.candidates.as_ref().map(Vec::len).unwrap_or(d.entities.len() * d.entities.len().saturating_sub(1))).sum();
    let facts: usize = docs.iter().map(|d| d.facts.len()).sum();
    println!("{}: {} documents{}", data.display(), docs.len(), if docs.iter().all(|d| !d.labelled) { " (unlabelled)" } else { "" });
    println!("entities {entities}, mentions {mentions}, entity pairs {pairs}, labelled facts {facts}");
    let mut counts = vec![0usize; rels.len()];
    for f in docs.iter().flat_map(|d| &d.facts) {
        counts[f.r] += 1;
    }
    let mut top: Vec<(usize, usize)> = counts.iter().copied().enumerate().filter(|&(_, c)| c > 0).collect();
    top.sort_by_key(|&(_, c)| std::cmp::Reverse(c));
    let shown: Vec<String> = top.iter().take(10).map(|&(r, c)| format!("{} {c}", rels.codes[r])).collect();
    println!("relations used: {} of {}; most frequent: {}", top.len(), rels.len() - 1, shown.join(", "));
    if let Some(t) = tokenizer {
        let tok = WordPieceTokenizer::load(t)?;
        let exs = examples(&docs, &tok, rels.len(), usize::MAX)?;
        let mut lens: Vec<usize> = exs.iter().map(|e| e.ids.len()).collect();
        lens.sort();
        let pct = |q: f64| lens[((lens.len() - 1) as f64 * q) as usize];
        println!("input ids with markers: median {}, 90th percentile {}, max {}; {} documents above 512, {} above 1022", pct(0.5), pct(0.9), pct(1.0), lens.iter().filter(|&&l| l > 512).count(), lens.iter().filter(|&&l| l > 1022).count());
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn train_cmd(cfg: &RunConfig, train: &Path, dev: Option<&Path>, format: Format, rel2id: Option<&Path>, rel_info: Option<&Path>, out: &Path, resume: bool) -> Result<()> {
    let rels = format.relations(rel2id, rel_info)?;
    let train_docs = format.read(train, &rels)?;
    if train_docs.iter().all(|d| !d.labelled) {
        return Err(Error::Input(format!("{}: the training file has no labels", train.display())));
    }
    let dev_docs = dev.map(|d| format.read(d, &rels)).transpose()?;
    let gpu = Gpu::new()?;
    if resume {
        let last = out.join("last");
        let (model, mut sidecar) = checkpoint::load(&gpu, &last)?;
        let progress = sidecar.progress.clone().ok_or_else(|| Error::Input(format!("{}: the checkpoint records no training progress to resume from", last.display())))?;
        let moments = checkpoint::load_moments(&gpu, &last)?.unwrap_or_default();
        let tok = sidecar.tokenizer.load()?;
        let max_ids = cfg.max_ids.min(model.encoder.config.max_ids());
        let train_ex = examples(&train_docs, &tok, rels.len(), max_ids)?;
        let dev = dev_docs.map(|d| examples(&d, &tok, rels.len(), max_ids).map(|e| (d, e))).transpose()?;
        println!("resuming after stage {} epoch {} (step {})", progress.stage, progress.epoch, progress.global_step);
        wf::train(&model, &mut sidecar, cfg, &train_ex, &wf::RunOutputs { dir: out.to_path_buf(), dev, tokenizer: tok.fingerprint(), progress: true, stop_after_epochs: None }, Some((progress, moments)))?;
        println!("wrote {}/last (and best, when a dev file was given), metrics.jsonl", out.display());
        return Ok(());
    }
    let (encoder, tok, source, encoder_hub) = wf::start_encoder(&gpu, cfg, train_docs.iter().flat_map(|d| d.sents.iter().flatten().map(String::as_str)))?;
    let hc = cfg.head_config(encoder.config.hidden_size, rels.len());
    let heads = Heads::random(&gpu, hc.clone(), cfg.seed)?;
    let model = Model { gpu, encoder, heads };
    // The encoder's two windows bound the length (RoBERTa's cover one id less than BERT's).
    let max_ids = cfg.max_ids.min(model.encoder.config.max_ids());
    let train_ex = examples(&train_docs, &tok, rels.len(), max_ids)?;
    let dev = match dev_docs {
        Some(d) => {
            let e = examples(&d, &tok, rels.len(), max_ids)?;
            Some((d, e))
        }
        None => None,
    };
    let mut sidecar = Sidecar { encoder: model.encoder.config.clone(), heads: hc, tokenizer: source, relations: rels.codes.clone(), relation_names: rels.names.clone(), step: 0, best_score: None, note: format!("preset {}, trained on {}", cfg.preset, train.display()), progress: None, frozen_encoder: cfg.freeze_encoder, encoder_hub, kernel_choices: Default::default(), files: Default::default(), init_seed: Some(cfg.seed) };
    std::fs::create_dir_all(out).map_err(|source| Error::Io { context: format!("cannot create {}", out.display()), source })?;
    write_atomic(&out.join("config.toml"), toml::to_string(cfg).expect("config serializes").as_bytes())?;
    wf::train(&model, &mut sidecar, cfg, &train_ex, &wf::RunOutputs { dir: out.to_path_buf(), dev, tokenizer: tok.fingerprint(), progress: true, stop_after_epochs: None }, None)?;
    println!("wrote {}/last (and best, when a dev file was given), metrics.jsonl", out.display());
    Ok(())
}

/// A checkpoint and a data file, featurized; for a model trained with its encoder frozen, also
/// the encoder's outputs for the documents, from the encoder cache where they are stored.
type Loaded = (Model, Sidecar, Relations, Vec<Document>, Vec<docre::data::features::Example>, Option<EncoderCache>);

fn load_for_data(checkpoint: &Path, data: &Path, format: Format) -> Result<Loaded> {
    let gpu = Gpu::new()?;
    let (model, side) = checkpoint::load(&gpu, checkpoint)?;
    let rels = side.relations();
    let (docs, exs, cache) = data_for(&model, &side, data, format)?;
    Ok((model, side, rels, docs, exs, cache))
}

/// A labelled file read for a loaded checkpoint: its documents, examples and, for a frozen
/// encoder, the encoder's outputs from the cache.
fn data_for(model: &Model, side: &Sidecar, data: &Path, format: Format) -> Result<(Vec<Document>, Vec<docre::data::features::Example>, Option<EncoderCache>)> {
    let docs = format.read(data, &side.relations())?;
    let tok = side.tokenizer.load()?;
    let exs = examples(&docs, &tok, side.relations.len(), model.encoder.config.max_ids())?;
    let cache = match side.frozen_encoder {
        true => {
            let store = EncoderStore::open(&cache_root(), &model.gpu, &model.encoder, tok.fingerprint())?;
            Some(frozen_outputs(&model.gpu, &model.encoder, &store, &exs, &data.display().to_string(), true)?)
        }
        false => None,
    };
    Ok((docs, exs, cache))
}

fn eval_cmd(checkpoints: &[PathBuf], data: &Path, format: Format, train: Option<&Path>, tune_on: Option<&Path>, json: Option<&Path>) -> Result<()> {
    use docre::eval::controls::{controls, table, thresholds, Split};
    if let Some(j) = json {
        check_writable(j, "--json")?;
    }
    let mut runs = Vec::new();
    let mut thresholds_of = Vec::new();
    for checkpoint in checkpoints {
        let (mut model, side, rels, docs, exs, cache) = load_for_data(checkpoint, data, format)?;
        if docs.iter().all(|d| !d.labelled) {
            return Err(Error::Input(format!("{}: the file has no labels (like DocRED test); use `docre predict` and submit result.json to CodaLab", data.display())));
        }
        let tf = train.map(|t| format.read(t, &rels).map(|d| facts_of(&d))).transpose()?;
        let tuned = match tune_on {
            Some(dev) => {
                let (dev_docs, dev_exs, dev_cache) = data_for(&model, &side, dev, format)?;
                if dev_docs.iter().all(|d| !d.labelled) {
                    return Err(Error::Input(format!("--tune-on {}: the file has no labels to tune a threshold on", dev.display())));
                }
                Some(thresholds(&model, &Split { docs: &dev_docs, examples: &dev_exs, cache: dev_cache.as_ref() })?)
            }
            None => None,
        };
        if side.init_seed.is_none() {
            eprintln!("note: {} does not record the seed its heads were initialised from (written before docre recorded it); the untrained-module control is left out", checkpoint.display());
        }
        let rows = controls(&mut model, &Split { docs: &docs, examples: &exs, cache: cache.as_ref() }, tf.as_ref(), tuned, side.init_seed)?;
        if checkpoints.len() > 1 {
            println!("{}", checkpoint.display());
        }
        print!("{}", table(&rows));
        runs.push((checkpoint.clone(), rows));
        thresholds_of.push(tuned);
    }
    let summary = (runs.len() > 1).then(|| docre::eval::summary::summarize(&runs));
    if let Some(s) = &summary {
        println!("\n{} checkpoints: mean ± sample sd [min–max]", runs.len());
        print!("{}", s.table());
    }
    if let Some(j) = json {
        let per: Vec<serde_json::Value> = runs.iter().zip(&thresholds_of).map(|((c, rows), t)| serde_json::json!({"checkpoint": c, "thresholds": t, "models": rows})).collect();
        let v = serde_json::json!({"data": data, "tuned_on": tune_on, "checkpoints": per, "summary": summary});
        write_atomic(j, serde_json::to_string_pretty(&v).expect("json").as_bytes())?;
        println!("wrote {}", j.display());
    }
    Ok(())
}

/// Documents predicted per round: examples (with their label grids) and, for a frozen encoder,
/// its outputs exist for one round at a time, so memory stays flat over a corpus.
const PREDICT_CHUNK: usize = 256;

/// The full model's facts for each of `docs`, predicted in rounds of PREDICT_CHUNK documents.
fn predict_in_rounds(model: &Model, side: &Sidecar, docs: &[Document], data: &Path) -> Result<Vec<Vec<docre::data::docred::Fact>>> {
    let tok = side.tokenizer.load()?;
    let classes = side.relations.len();
    let store = side.frozen_encoder.then(|| EncoderStore::open(&cache_root(), &model.gpu, &model.encoder, tok.fingerprint())).transpose()?;
    let mut full = Vec::with_capacity(docs.len());
    for (round, chunk) in docs.chunks(PREDICT_CHUNK).enumerate() {
        let exs = examples(chunk, &tok, classes, model.encoder.config.max_ids())?;
        let cache = store.as_ref().map(|s| frozen_outputs(&model.gpu, &model.encoder, s, &exs, &format!("{} (documents from {})", data.display(), round * PREDICT_CHUNK), false)).transpose()?;
        full.extend(docre::eval::predict::predict(model, &exs, 4, cache.as_ref())?.full);
    }
    Ok(full)
}

fn predict_cmd(checkpoint: &Path, data: &Path, format: Format, out: &Path, zip: bool, shard: Option<Shard>) -> Result<()> {
    // A set goes to a folder no other docre process is writing; shards are one file each,
    // written atomically, since the shards of one corpus may share --out and run at once.
    let mut dir = shard.is_none().then(|| OutputDir::open(out)).transpose()?;
    let gpu = Gpu::new()?;
    let (model, side) = checkpoint::load(&gpu, checkpoint)?;
    let rels = side.relations();
    let all = format.read_for_prediction(data, &rels)?;
    let total = all.len();
    let (indices, docs): (Vec<usize>, Vec<Document>) = all.into_iter().enumerate().filter(|(i, _)| shard.is_none_or(|s| s.holds(*i))).unzip();
    let full = predict_in_rounds(&model, &side, &docs, data)?;
    if let Some(s) = shard {
        let provenance = Provenance { checkpoint_sha256: checkpoint::weights_sha256(checkpoint, &side)?, corpus_sha256: docre::fsutil::file_sha256(data)? };
        let json = shard_json(s, data, &provenance, total, &indices, &docs, &full, &rels);
        std::fs::create_dir_all(out).map_err(|source| Error::Io { context: format!("cannot create {}", out.display()), source })?;
        let path = output::write_output(out, &s.file_name(), &json)?;
        println!("shard {}/{}: {} facts over {} of {total} documents; wrote {}", s.k, s.n, full.iter().map(Vec::len).sum::<usize>(), docs.len(), path.display());
        return Ok(());
    }
    let titled = output::titled(&docs, &full);
    let json = output::result_json(&titled, &rels);
    let written = output::write_set(dir.as_mut().expect("opened above"), &json, &output::listing(&docs, &full, &rels), zip)?;
    println!("{} facts over {} documents; wrote {}", titled.len(), docs.len(), written);
    Ok(())
}

fn merge_cmd(shards: &[PathBuf], out: &Path, zip: bool) -> Result<()> {
    let (json, list) = merge(shards)?;
    let mut dir = OutputDir::open(out)?;
    let written = output::write_set(&mut dir, &json, &list, zip)?;
    println!("merged {} shards; wrote {written}", shards.len());
    Ok(())
}

fn score_cmd(gold: &Path, pred: &Path, rel2id: Option<&Path>, train: Option<&Path>) -> Result<()> {
    let rels = Format::Docred.relations(rel2id, None)?;
    let inventory = rel2id.map_or("the built-in DocRED inventory".to_string(), |p| p.display().to_string());
    let docs = read_docred(gold, &rels)?;
    let text = std::fs::read_to_string(pred).map_err(|source| Error::Io { context: format!("cannot read {}", pred.display()), source })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Input(format!("{}: malformed JSON: {e}", pred.display())))?;
    let list = v.as_array().ok_or_else(|| Error::Input(format!("{}: expected a list of predictions", pred.display())))?;
    let mut preds = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let field = |k: &str| p.get(k).ok_or_else(|| Error::Input(format!("{}: prediction {i}: field `{k}` is missing", pred.display())));
        let title = field("title")?.as_str().map(str::to_string).unwrap_or_else(|| p["title"].to_string());
        let idx = |k: &str| field(k).and_then(|x| x.as_u64().map(|v| v as usize).ok_or_else(|| Error::Input(format!("{}: prediction {i}: `{k}` is not an integer", pred.display()))));
        let code = field("r")?.as_str().unwrap_or_default().to_string();
        let r = *rels.ids.get(&code).ok_or_else(|| Error::Input(format!("{}: prediction {i}: relation {code:?} is not in {inventory}", pred.display())))?;
        preds.push((title, Fact { h: idx("h_idx")?, t: idx("t_idx")?, r }));
    }
    let tf = train.map(|t| read_docred(t, &rels).map(|d| facts_of(&d))).transpose()?;
    let s = score(&docs, &preds, tf.as_ref())?;
    println!("{}", serde_json::to_string_pretty(&s).expect("scores serialize"));
    Ok(())
}
