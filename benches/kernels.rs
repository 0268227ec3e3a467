//! Criterion baselines of the kernel set in docre::bench (the same cases as
//! `docre bench kernels`), timed with GPU timestamps where the adapter has them.

use criterion::{criterion_group, criterion_main, Criterion};

mod common;
use docre::bench::kernel_cases;
use docre::gpu::{Gpu, GpuTimer};

fn kernels(c: &mut Criterion) {
    let gpu = Gpu::new().unwrap_or_else(|e| panic!("{e}"));
    let timer = GpuTimer::new(&gpu);
    let quick = docre::settings::bench_quick();
    let mut group = c.benchmark_group("kernels");
    let cases = kernel_cases(&gpu, quick).unwrap_or_else(|e| panic!("{e}"));
    common::bench_cases(&mut group, &gpu, &timer, cases);
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = kernels
}
criterion_main!(benches);
