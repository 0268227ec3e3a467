//! Criterion baselines of one whole training step (the cases of `docre bench step`): stage 1 and
//! stage 2 at batch 1 on Re-DocRED dev document 8 with all-MiniLM-L6-v2's shapes (random
//! weights), the encoder trained. Wall time per step, host work included: that is what
//! training takes. Needs ../shared (or DOCRE_SHARED); says so and does nothing without it.

use criterion::{criterion_group, criterion_main, Criterion};

mod common;
use docre::bench::{step_default_paths, StepBenchConfig, StepSetup};
use docre::gpu::Gpu;

fn step(c: &mut Criterion) {
    let (data, encoder) = step_default_paths();
    if !data.exists() || !encoder.join("config.json").exists() {
        eprintln!("step: skipped, {} or {} is missing (set DOCRE_SHARED)", data.display(), encoder.display());
        return;
    }
    let gpu = Gpu::new().unwrap_or_else(|e| panic!("{e}"));
    let cfg = StepBenchConfig { data, docs: vec![8], rel2id: None, encoder, random_weights: true, stages: vec![1, 2], batches: vec![1], frozen: false, layers: 2, samples: 1 };
    let setup = StepSetup::new(&gpu, &cfg).unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("step");
    for stage in [1, 2] {
        let mut case = setup.case(stage, 1).unwrap_or_else(|e| panic!("{e}"));
        case.step(0).unwrap_or_else(|e| panic!("{e}"));
        let name = format!("stage {stage} batch 1");
        let repeat = common::repeat(&name);
        let mut seed = 1;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut s = 0.0;
                for _ in 0..repeat * iters as usize {
                    seed += 1;
                    s += case.step(seed).unwrap_or_else(|e| panic!("{e}"));
                }
                std::time::Duration::from_secs_f64(s)
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = step
}
criterion_main!(benches);
