//! Choosing GEMM bodies by measurement (gpu::tuning): the tuning file is written, read back and
//! survives damage; recorded choices outrank it; the rule policy measures nothing. Each test opens
//! its own device, since the choices a device has made are the state under test.

mod common;

use common::{scratch, upload, Rng};
use docre::gpu::tuning::{Policy, Settings};
use docre::gpu::{Gpu, Recorder, Tensor};
use docre::ops::matmul::{gemm, Gemm, MatmulKernel, View};

/// (m, n, k): one shape class, `matmul m64 n64 k64 x1 NT`.
const SHAPE: (usize, usize, usize) = (37, 45, 29);
const CLASS: &str = "matmul m64 n64 k64 x1 NT";

fn device(policy: Policy, file: &std::path::Path) -> Gpu {
    let _ = common::gpu(); // sets up the environment the shared device would
    let gpu = Gpu::new().expect("a device");
    gpu.set_tuning_settings(Settings { policy, file: file.to_path_buf() });
    gpu
}

/// C = A·Bᵀ through `kernel`, as raw bits, and the f64 reference.
fn run(gpu: &Gpu, kernel: MatmulKernel) -> (Vec<u32>, Vec<f64>) {
    let (m, n, k) = SHAPE;
    let mut rng = Rng::new(11);
    let (av, bv) = (rng.vec(m * k), rng.vec(n * k));
    let a = upload(gpu, "a", &[m, k], &av);
    let b = upload(gpu, "b", &[n, k], &bv);
    let c = Tensor::zeros(gpu, "c", &[m, n]).unwrap();
    let g = Gemm { m, n, k, batch1: 1, batch2: 1, a: View::dense(m, k, false), b: View::dense(n, k, true), c: View::dense(m, n, false), alpha: 1.0, accumulate: false };
    let mut rec = Recorder::new(gpu);
    gemm(&mut rec, kernel, &g, &a, &b, None, &c).unwrap();
    rec.finish().unwrap();
    let reference = (0..m * n).map(|i| (0..k).map(|p| av[i / n * k + p] * bv[i % n * k + p]).sum()).collect();
    (c.read_f32(gpu).unwrap().into_iter().map(f32::to_bits).collect(), reference)
}

fn close(bits: &[u32], reference: &[f64]) {
    for (i, (&b, &r)) in bits.iter().zip(reference).enumerate() {
        let x = f32::from_bits(b) as f64;
        assert!((x - r).abs() <= 1e-4 * (1.0 + r.abs()), "element {i}: {x} against {r}");
    }
}

fn stored(file: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(file).expect("the tuning file exists")).expect("the tuning file is JSON")
}

/// The entry for CLASS in the file, whatever the adapter key.
fn entry(file: &std::path::Path) -> serde_json::Value {
    let v = stored(file);
    let adapters = v["adapters"].as_object().expect("adapters");
    assert_eq!(adapters.len(), 1, "one adapter: {v}");
    adapters.values().next().unwrap()[CLASS].clone()
}

/// The variant that is not `v`, among those every adapter runs or this one adds.
fn other(gpu: &Gpu, v: &str) -> &'static str {
    let subgroups = gpu.report().subgroups;
    ["subgroup", "register", "tiled"].into_iter().find(|&o| o != v && (o != "subgroup" || subgroups)).unwrap()
}

fn kernel(name: &str) -> MatmulKernel {
    match name {
        "subgroup" => MatmulKernel::Subgroup,
        "register" => MatmulKernel::Register,
        _ => MatmulKernel::Tiled,
    }
}

#[test]
fn measured_choice_is_written_read_back_and_outranked_by_a_pin() {
    let file = scratch("tuning-measured.json");
    let _ = std::fs::remove_file(&file);
    let gpu = device(Policy::Measure, &file);
    let (bits, reference) = run(&gpu, MatmulKernel::Auto);
    close(&bits, &reference);
    let e = entry(&file);
    let variant = e["variant"].as_str().expect("a measured winner").to_string();
    let timed = e["median_ms"].as_object().unwrap();
    assert!(timed.len() >= 2 && timed.values().all(|t| t.as_f64().unwrap() > 0.0), "every variant timed: {e}");
    assert!(timed.contains_key(&variant));
    assert_eq!(gpu.choices().get(CLASS), Some(&variant), "the run records what it ran");
    assert_eq!(bits, run(&gpu, kernel(&variant)).0, "Auto ran the measured winner");

    // A second process on this machine reads the file instead of measuring: make it name
    // another variant and the new device must run that one.
    let forced = other(&gpu, &variant);
    let text = std::fs::read_to_string(&file).unwrap().replace(&format!("\"variant\": \"{variant}\""), &format!("\"variant\": \"{forced}\""));
    std::fs::write(&file, text).unwrap();
    let second = device(Policy::Measure, &file);
    let (bits2, _) = run(&second, MatmulKernel::Auto);
    assert_eq!(second.choices().get(CLASS).map(String::as_str), Some(forced));
    assert_eq!(bits2, run(&second, kernel(forced)).0);

    // A recorded choice (a checkpoint's) outranks the file.
    let third = device(Policy::Measure, &file);
    third.pin(&[(CLASS.to_string(), variant.clone())].into());
    let (bits3, _) = run(&third, MatmulKernel::Auto);
    assert_eq!(third.choices().get(CLASS), Some(&variant));
    assert_eq!(bits3, bits, "the pinned variant gives the recorded run's bits");
    let _ = std::fs::remove_file(&file);
}

#[test]
fn rule_policy_measures_nothing() {
    let file = scratch("tuning-rule.json");
    let _ = std::fs::remove_file(&file);
    let gpu = device(Policy::Rule, &file);
    let (bits, reference) = run(&gpu, MatmulKernel::Auto);
    close(&bits, &reference);
    assert!(!file.exists(), "the rule writes no tuning file");
    let chosen = gpu.choices().get(CLASS).cloned().expect("the rule's choice is recorded");
    assert_eq!(bits, run(&gpu, kernel(&chosen)).0);
}

#[test]
fn damaged_tuning_file_is_measured_again_and_replaced() {
    let file = scratch("tuning-damaged.json");
    std::fs::write(&file, "{\"adapters\": {\"x\": 3").unwrap();
    let gpu = device(Policy::Measure, &file);
    let (bits, reference) = run(&gpu, MatmulKernel::Auto);
    close(&bits, &reference);
    assert!(entry(&file)["variant"].is_string(), "the file was rewritten with the measurement");
    let _ = std::fs::remove_file(&file);
}

#[test]
fn pinned_variant_this_adapter_lacks_is_chosen_again() {
    let file = scratch("tuning-lacking.json");
    let gpu = device(Policy::Rule, &file);
    gpu.pin(&[(CLASS.to_string(), "no-such-body".to_string())].into());
    let (bits, reference) = run(&gpu, MatmulKernel::Auto);
    close(&bits, &reference);
    let chosen = gpu.choices()[CLASS].clone();
    assert_ne!(chosen, "no-such-body");
    assert_eq!(bits, run(&gpu, kernel(&chosen)).0);
}
