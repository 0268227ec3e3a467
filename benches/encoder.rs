//! Criterion baselines of the encoder (the same cases as `docre bench encoder`): forward and
//! forward+backward of one document at L = 128 and 512 with all-MiniLM-L6-v2 shapes (random
//! weights; set DOCRE_ENCODER=DIR to load a checkpoint). Throughput is in tokens.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};

mod common;
use docre::bench::encoder_cases;
use docre::gpu::{Gpu, GpuTimer};
use docre::model::{Bert, BertConfig};

fn encoder(c: &mut Criterion) {
    let gpu = Gpu::new().unwrap_or_else(|e| panic!("{e}"));
    let timer = GpuTimer::new(&gpu);
    let bert = match docre::settings::bench_encoder() {
        Some(dir) => Bert::load(&gpu, &dir),
        None => Bert::random(&gpu, BertConfig::minilm_l6(), 0),
    }
    .unwrap_or_else(|e| panic!("{e}"));
    let bert = Arc::new(bert);
    let mut group = c.benchmark_group("encoder");
    let cases = encoder_cases(&gpu, &bert, &[128, 512]).unwrap_or_else(|e| panic!("{e}"));
    common::bench_cases(&mut group, &gpu, &timer, cases);
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = encoder
}
criterion_main!(benches);
