//! The GPU runtime: determinism, the limits and shape errors users see, adapter choice, and the
//! CLI's exit codes.

mod common;

use common::{gpu, upload, Rng};
use docre::gpu::{DType, Gpu, Params, Recorder, Tensor};
use docre::ops::elementwise::{accumulate, fill};
use docre::ops::embedding::{scatter_add_rows, RowScatter};
use docre::ops::layernorm::{layernorm, layernorm_backward};
use docre::ops::matmul::{linear, linear_backward, matmul};
use docre::ops::reduce::sum_squares;
use docre::ops::softmax::{lse_pool, lse_pool_backward, softmax, RowSets};
use docre::Error;

/// A small chain through most kernels; returns the raw bits of every output.
fn chain(seed: u64) -> Vec<u32> {
    chain_on(&gpu(), seed)
}

fn chain_on(gpu: &Gpu, seed: u64) -> Vec<u32> {
    let gpu = gpu.clone();
    let mut rng = Rng::new(seed);
    let (rows, inp, out) = (37, 33, 70);
    let x = upload(&gpu, "x", &[rows, inp], &rng.vec(rows * inp));
    let w = upload(&gpu, "w", &[out, inp], &rng.vec(out * inp));
    let b = upload(&gpu, "b", &[out], &rng.vec(out));
    let g = upload(&gpu, "g", &[out], &rng.vec(out));
    let dy = upload(&gpu, "dy", &[rows, out], &rng.vec(rows * out));
    let sets: Vec<Vec<u32>> = (0..9).map(|s| vec![s, (s * 7) % rows as u32, (s * 3) % rows as u32]).collect();
    let rs = RowSets::new(&gpu, &sets, rows).unwrap();
    let ids: Vec<u32> = (0..rows as u32).map(|i| (i * 5) % 11).collect();
    let scatter = RowScatter::new(&gpu, &ids, 11).unwrap();
    let mut rec = Recorder::new(&gpu);
    let y = linear(&mut rec, &x, &w, Some(&b)).unwrap();
    let ln = layernorm(&mut rec, &y, &g, &b, 1e-12).unwrap();
    let s = softmax(&mut rec, &ln.y, None, 0.5).unwrap();
    let lg = layernorm_backward(&mut rec, &y, &g, &ln.stats, &dy).unwrap();
    let grads = linear_backward(&mut rec, &x, &w, &lg.dx).unwrap();
    let pooled = lse_pool(&mut rec, &y, &rs).unwrap();
    let dpool = lse_pool_backward(&mut rec, &y, &rs, &pooled, &pooled).unwrap();
    let table = Tensor::zeros(&gpu, "dtable", &[11, out]).unwrap();
    scatter_add_rows(&mut rec, &dy, &scatter, &table).unwrap();
    let att = matmul(&mut rec, &s, &s, false, true).unwrap();
    let norm = sum_squares(&mut rec, &[&grads.dw, &grads.db, &lg.dgamma]).unwrap();
    rec.finish().unwrap();
    [&s, &lg.dx, &grads.dw, &grads.db, &dpool, &table, &att, &norm]
        .iter()
        .flat_map(|t| t.read_f32(&gpu).unwrap().into_iter().map(f32::to_bits))
        .collect()
}

#[test]
fn same_inputs_give_identical_bits() {
    let a = chain(5);
    let b = chain(5);
    assert_eq!(a.len(), b.len());
    let diff = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    assert_eq!(diff, 0, "{diff} of {} output bits differ between two identical runs", a.len());
    assert_ne!(a, chain(6), "different inputs must give different outputs");
}

/// The browser's way of passing kernel parameters (a uniform buffer, one slot per dispatch)
/// computes exactly what immediates do, and every dispatch reads its own slot: 1,200
/// accumulations, each with its own scale, span three submissions and reuse the arena.
#[test]
fn parameters_in_a_uniform_buffer_give_the_same_bits_as_immediates() {
    let uniform = Gpu::with_params(Params::Uniform).unwrap();
    assert_eq!(uniform.params(), Params::Uniform);
    assert_eq!(uniform.report().params, "uniform");
    let immediates = match Gpu::with_params(Params::Immediates) {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("this adapter has no immediates ({e}); the uniform path is checked on its own");
            None
        }
    };
    if let Some(imm) = &immediates {
        let (a, b) = (chain_on(imm, 11), chain_on(&uniform, 11));
        let differ = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        assert!(a.len() == b.len() && differ == 0, "{differ} of {} output values differ", a.len());
    }
    let acc = Tensor::zeros(&uniform, "acc", &[8]).unwrap();
    let ones = Tensor::zeros(&uniform, "ones", &[8]).unwrap();
    let mut rec = Recorder::new(&uniform);
    fill(&mut rec, &ones, 1.0).unwrap();
    for i in 0..1200 {
        accumulate(&mut rec, &acc, &ones, i as f32).unwrap();
    }
    rec.finish().unwrap();
    // 0 + 1 + ... + 1199, exact in f32.
    assert_eq!(acc.read_f32(&uniform).unwrap(), vec![719_400.0; 8]);
}

#[test]
fn the_buffer_pool_keeps_no_more_idle_memory_than_the_working_set_needs() {
    // A device of its own: the shared one's pool serves other tests at the same time.
    let _ = gpu();
    let g = docre::gpu::Gpu::new().unwrap();
    // Tensors of 30 sizes, each 19 % larger than the last (so each its own size class), one at a
    // time, as the documents of a corpus need them: an uncapped pool keeps all of them (about
    // 6x the largest); the cap is the most ever in use at once, the largest here.
    let mut largest = 0u64;
    for i in 0..30 {
        let n = (65_536.0 * 1.19f64.powi(i)) as usize;
        largest = largest.max(4 * n as u64);
        drop(Tensor::zeros(&g, "doc", &[n]).unwrap());
    }
    let idle = g.memory_idle();
    assert!(idle <= largest * 5 / 4 + (32 << 20), "the pool keeps {} MiB idle for a working set of {} MiB", idle >> 20, largest >> 20);
    assert!(idle > 0, "the pool still reuses buffers");
}

#[test]
fn the_buffer_pool_serves_a_request_from_an_idle_buffer_up_to_twice_its_size() {
    // A device of its own: the shared one's pool serves other tests at the same time.
    let _ = gpu();
    let g = docre::gpu::Gpu::new().unwrap();
    // Corpus batches ask for ever-different sizes; an exact-size pool would create a buffer for
    // the smaller tensor and keep the larger idle. (Opening the device leaves a few small
    // buffers idle, hence the differences.)
    let before = g.memory_idle();
    drop(Tensor::from_f32(&g, "long_batch", &[1 << 20], &vec![1.0; 1 << 20]).unwrap());
    assert_eq!(g.memory_idle() - before, 4 << 20);
    let shorter = Tensor::zeros(&g, "shorter_batch", &[600_000]).unwrap();
    assert_eq!(g.memory_idle(), before, "the idle 4 MiB buffer serves a 2.4 MB tensor");
    assert_eq!(shorter.read_f32(&g).unwrap(), vec![0.0; 600_000], "a reused buffer is cleared like a new one");
    drop(shorter);
    // Far smaller requests do not pin a large buffer.
    let small = Tensor::zeros(&g, "small", &[100_000]).unwrap();
    assert_eq!(g.memory_idle() - before, 4 << 20, "a 400 kB tensor leaves the 4 MiB buffer idle");
    drop(small);
}

/// Readbacks reuse their mappable buffers, whatever the sizes: a small tensor read after a large
/// one gets exactly its own values, not the larger buffer's tail, and so does a large one after.
#[test]
fn readbacks_of_any_size_return_exactly_the_tensors_values() {
    let g = gpu();
    for n in [5000usize, 3, 1024, 7, 5000, 1] {
        let want: Vec<f32> = (0..n).map(|i| (i * 7 + n) as f32).collect();
        let t = Tensor::from_f32(&g, "readback", &[n], &want).unwrap();
        assert_eq!(t.read_f32(&g).unwrap(), want, "a tensor of {n} values");
    }
}

#[test]
fn tensor_above_binding_limit_is_a_clear_error() {
    let gpu = gpu();
    let limit = gpu.limits().max_storage_buffer_binding_size as u64;
    let elems = (limit / 4 + 1) as usize;
    match Tensor::uninit(&gpu, "huge_scores", &[elems], DType::F32) {
        Err(e @ Error::TooLarge { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("huge_scores") && msg.contains(&limit.to_string()) && msg.contains(&(elems as u64 * 4).to_string()), "{msg}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn shape_mismatches_are_errors_not_panics() {
    let gpu = gpu();
    let a = Tensor::zeros(&gpu, "a", &[3, 4]).unwrap();
    let b = Tensor::zeros(&gpu, "b", &[5, 6]).unwrap();
    let mut rec = Recorder::new(&gpu);
    let e = matmul(&mut rec, &a, &b, false, false).unwrap_err().to_string();
    assert!(e.contains("inner dimensions") && e.contains("`a`") && e.contains("`b`"), "{e}");
    let e = linear(&mut rec, &a, &b, None).unwrap_err().to_string();
    assert!(e.contains("weight `b`"), "{e}");
    let e = softmax(&mut rec, &a, Some(docre::ops::softmax::Mask { mask: &b, div: 1 }), 1.0).unwrap_err().to_string();
    assert!(e.contains("mask `b`"), "{e}");
    assert!(a.reshape(&[5]).is_err());
    assert!(Tensor::from_f32(&gpu, "short", &[4], &[1.0, 2.0]).is_err());
    assert!(RowSets::new(&gpu, &[vec![0, 9]], 3).is_err(), "row index out of range");
    assert!(RowScatter::new(&gpu, &[0, 3], 3).is_err(), "scatter target out of range");
}

fn docre_cmd() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_docre"));
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c
}

#[test]
fn cli_info_reports_the_adapter() {
    gpu(); // fail with the no-adapter message, not a CLI exit code, when there is no device
    let out = docre_cmd().arg("info").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for field in ["adapter", "backend", "device type", "storage binding", "timestamp queries"] {
        assert!(text.contains(field), "`docre info` lacks {field}: {text}");
    }
    assert!(text.ends_with('\n'), "`docre info` does not end its last line: {text:?}");
    let out = docre_cmd().args(["info", "--json"]).output().unwrap();
    assert!(out.stdout.ends_with(b"\n"), "`docre info --json` does not end its last line");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["max_storage_buffer_binding_size"].as_u64().unwrap() > 0);
    assert!(v["subgroup_size"].is_null() || v["subgroup_size"].as_u64().is_some_and(|s| s.is_power_of_two() && s <= 128), "{}", v["subgroup_size"]);
    // The variables that are set are listed; a bad value is refused, named, before any work.
    let out = docre_cmd().arg("info").env("DOCRE_WALL_CLOCK", "1").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("environment  DOCRE_WALL_CLOCK=1"), "{}", String::from_utf8_lossy(&out.stdout));
    for (var, value) in [("DOCRE_TUNE", "sometimes"), ("DOCRE_ADAPTER_WAIT_S", "-1"), ("DOCRE_CHUNK_BYTES", "many")] {
        let out = docre_cmd().arg("info").env(var, value).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {err}");
        assert!(err.contains(&format!("{var}={value:?} is not valid: expected")), "{err}");
    }
}

#[test]
fn cli_unknown_adapter_fails_with_names_of_real_ones() {
    let out = docre_cmd().arg("info").env("DOCRE_ADAPTER", "no-such-adapter-xyz").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-adapter-xyz") && err.contains("matches none"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn cli_without_any_adapter_waits_then_explains_with_the_loaders_messages() {
    let out = docre_cmd()
        .arg("info")
        .env("WGPU_BACKEND", "vulkan")
        .env("VK_ICD_FILENAMES", "/nonexistent/no_icd.json")
        .env_remove("VK_LOADER_DEBUG")
        .env("DOCRE_ADAPTER_WAIT_S", "0.6")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("asking again for up to 0.6 s") && err.contains("no graphics adapter was found") && err.contains("DOCRE_ADAPTER_WAIT_S"), "{err}");
    // The loader, asked again with VK_LOADER_DEBUG on, names the manifest it could not use.
    assert!(err.contains("no_icd.json"), "the Vulkan loader's messages are missing: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn cli_bench_json_to_a_missing_directory_is_exit_2() {
    gpu();
    let out = docre_cmd()
        .args(["bench", "kernels", "--quick", "--samples", "1", "--json", "/nonexistent-dir/k.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent-dir/k.json") && err.contains("--json"), "{err}");
}

#[test]
fn cli_bench_peak_writes_three_positive_probes() {
    gpu();
    let path = common::scratch("peak.json");
    let out = docre_cmd().args(["bench", "peak", "--samples", "1", "--json"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["kernel"].as_str().unwrap()).collect();
    assert_eq!(names, ["peak fma", "peak stream read", "peak stream copy"]);
    assert!(rows[0]["gflops"].as_f64().unwrap() > 0.0, "{rows:?}");
    for r in &rows[1..] {
        assert!(r["gbps"].as_f64().unwrap() > 0.0, "{rows:?}");
        assert!(r["seconds_min"].as_f64().unwrap() <= r["seconds"].as_f64().unwrap(), "{rows:?}");
    }
}

/// With profiling on, a fresh device's pipelines are listed with their creation time and their
/// first dispatch (where CPU drivers compile), and the table prints them.
#[test]
fn profile_lists_pipeline_creation_and_first_dispatch() {
    use docre::gpu::profile;
    let gpu = gpu();
    let (result, table) = profile::measured(|| {
        let mut rec = Recorder::new(&gpu);
        let a = upload(&gpu, "a", &[3, 5], &Rng::new(1).vec(15));
        let c = matmul(&mut rec, &a, &a, false, true)?;
        rec.finish()?;
        c.read_f32(&gpu)
    });
    result.unwrap();
    let (label, row) = table.pipelines.iter().find(|(l, _)| l.starts_with("matmul")).unwrap_or_else(|| panic!("no matmul pipeline in {:?}", table.pipelines));
    assert!(row.create_seconds > 0.0, "{label}: {row:?}");
    assert!(row.first_dispatch_seconds.is_some(), "{label}: {row:?}");
    let text = table.render();
    assert!(text.contains("1st dispatch ms") && text.contains(label.as_str()), "{text}");
}
