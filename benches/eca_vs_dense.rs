//! Criterion baselines of ECA against dense attention (the cases of `docre bench eca`): the
//! attention core and one inference layer, forward and forward+backward, for one document of N
//! entities at D = 512. N is kept small so a run stays short on CPU adapters; set
//! DOCRE_ECA_N=16,26,42 to choose.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

mod common;
use docre::bench::{EcaSetup, ECA_CASES};
use docre::gpu::{Gpu, GpuTimer};
use docre::ops::eca::Attention;

fn eca_vs_dense(c: &mut Criterion) {
    let gpu = Gpu::new().unwrap_or_else(|e| panic!("{e}"));
    let timer = GpuTimer::new(&gpu);
    let ns: Vec<usize> = docre::settings::eca_n().unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| vec![16, 26]);
    let mut group = c.benchmark_group("eca_vs_dense");
    for n in ns {
        let setup = EcaSetup::new(&gpu, n, 512).unwrap_or_else(|e| panic!("{e}"));
        for (case, name) in ECA_CASES.iter().enumerate() {
            for kind in [Attention::Eca, Attention::Dense] {
                group.throughput(Throughput::Elements((n * (n - 1)) as u64));
                timer.time(&gpu, |rec| setup.run(rec, case, kind)).unwrap_or_else(|e| panic!("{e}"));
                let label = format!("{name} {kind:?} N={n}");
                let repeat = common::repeat(&label);
                group.bench_function(label, |b| {
                    b.iter_custom(|iters| {
                        let s = timer
                            .time(&gpu, |rec| {
                                for _ in 0..repeat * iters as usize {
                                    setup.run(rec, case, kind)?;
                                }
                                Ok(())
                            })
                            .unwrap_or_else(|e| panic!("{e}"));
                        std::time::Duration::from_secs_f64(s)
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = eca_vs_dense
}
criterion_main!(benches);
