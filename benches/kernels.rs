//! Criterion baselines of the kernel set in docre::bench (the same cases as
//! `docre bench kernels`), timed with GPU timestamps where the adapter has them.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

mod common;
use docre::bench::{kernel_cases, Unit};
use docre::gpu::{Gpu, GpuTimer};

fn kernels(c: &mut Criterion) {
    let gpu = Gpu::new().unwrap_or_else(|e| panic!("{e}"));
    let timer = GpuTimer::new(&gpu);
    let quick = std::env::var_os("DOCRE_BENCH_QUICK").is_some();
    let mut group = c.benchmark_group("kernels");
    for case in kernel_cases(&gpu, quick).unwrap_or_else(|e| panic!("{e}")) {
        group.throughput(match case.unit {
            Unit::Flop | Unit::Tokens => Throughput::Elements(case.work as u64),
            Unit::Bytes => Throughput::Bytes(case.work as u64),
        });
        case.time(&gpu, &timer, 1).unwrap_or_else(|e| panic!("{e}"));
        let name = format!("{} {}", case.kernel, case.shape);
        let repeat = common::repeat(&name);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let s = case.time(&gpu, &timer, repeat * iters as usize).unwrap_or_else(|e| panic!("{e}"));
                std::time::Duration::from_secs_f64(s)
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = kernels
}
criterion_main!(benches);
