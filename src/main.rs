//! The `docre` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use docre::cli::{self, bench::BenchWhat};
use docre::data::format::Format;
use docre::fsutil::check_writable;
use docre::workflow::shard::Shard;
use docre::train::preset::RunConfig;
use docre::workflow;
use docre::{Error, Result};

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
    docre::settings::check()?;
    match cli.command {
        Command::Demo { out, encoder, config } => {
            let cfg = config.map(|c| RunConfig::from_toml(&c, "tiny")).transpose()?;
            workflow::demo::run(&out, encoder.as_deref(), cfg)
        }
        Command::Check { data, format, rel2id, tokenizer } => cli::data::check(&data, format, rel2id.as_deref(), tokenizer.as_deref()),
        Command::Train { train, dev, format, rel2id, rel_info, preset, config, encoder, out, stage1_epochs, stage2_epochs, batch_size, seed, seeds, freeze_encoder, resume } => {
            let mut cfg = match (&resume, config) {
                (Some(dir), _) => RunConfig::from_toml(&dir.join("config.toml"), &preset)?,
                (None, Some(c)) => RunConfig::from_toml(&c, &preset)?,
                (None, None) => docre::train::preset::preset(&preset)?,
            };
            let out = resume.clone().unwrap_or(out);
            cfg.encoder = encoder.or(cfg.encoder);
            cfg.stage1_epochs = stage1_epochs.unwrap_or(cfg.stage1_epochs);
            cfg.stage2_epochs = stage2_epochs.unwrap_or(cfg.stage2_epochs);
            cfg.batch_size = batch_size.unwrap_or(cfg.batch_size);
            cfg.seed = seed.unwrap_or(cfg.seed);
            cfg.freeze_encoder |= freeze_encoder;
            if seeds.is_empty() {
                return cli::train::train_cmd(&cfg, &train, dev.as_deref(), format, rel2id.as_deref(), rel_info.as_deref(), &out, resume.is_some());
            }
            for (i, &s) in seeds.iter().enumerate() {
                println!("== seed {s} ({} of {})", i + 1, seeds.len());
                let started = std::time::Instant::now();
                cli::train::train_cmd(&RunConfig { seed: s, ..cfg.clone() }, &train, dev.as_deref(), format, rel2id.as_deref(), rel_info.as_deref(), &out.join(format!("seed-{s}")), false)?;
                println!("seed {s} trained in {:.0} s", started.elapsed().as_secs_f64());
            }
            Ok(())
        }
        Command::Eval { checkpoint, data, format, train_facts, tune_on, json } => cli::eval::eval_cmd(&checkpoint, &data, format, train_facts.as_deref(), tune_on.as_deref(), json.as_deref()),
        Command::Predict { checkpoint, data, format, out, zip, shard } => cli::predict::predict_cmd(&checkpoint, &data, format, &out, zip, shard),
        Command::Merge { shards, out, zip } => cli::predict::merge_cmd(&shards, &out, zip),
        Command::Score { gold, pred, rel2id, train_facts } => cli::data::score_cmd(&gold, &pred, rel2id.as_deref(), train_facts.as_deref()),
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
        Command::Info { json } => cli::info::info(json),
        Command::Selftest { only, json } => cli::info::selftest(only.as_deref(), json.as_deref()),
        Command::Bench { what } => cli::bench::run(what),
    }
}
