//! Every kernel's forward and backward on the GPU against ops::reference (f64): the checks of
//! `docre selftest` (src/selftest/kernels.rs), one test per kernel family so they run in
//! parallel. A variant this adapter cannot run (no subgroups, an unsupported width) is reported
//! as skipped with the reason, never failed; everything else must pass.

mod common;

use common::gpu;
use docre::selftest::{checks, Outcome};

const FAMILIES: &[&str] = &["matmul", "bilinear", "softmax", "layernorm", "eca", "encoder-attention", "lse-pool", "pair-context", "elementwise", "embedding", "reduce", "dropout", "adamw", "loss", "training"];

fn family(name: &str) {
    let gpu = gpu();
    let mut failures = Vec::new();
    for c in checks().into_iter().filter(|c| c.family == name) {
        match c.run(&gpu) {
            Outcome::Pass => eprintln!("{name} / {}: pass", c.variant),
            Outcome::Skip(why) => eprintln!("{name} / {}: skipped on this adapter ({why})", c.variant),
            Outcome::Fail(why) => failures.push(format!("{name} / {}: {why}", c.variant)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_check_family_has_a_test() {
    let seen: std::collections::BTreeSet<&str> = checks().iter().map(|c| c.family).collect();
    for f in &seen {
        assert!(FAMILIES.contains(f), "family {f} has no test in tests/kernels.rs");
    }
    assert_eq!(seen.len(), FAMILIES.len(), "FAMILIES lists a family without checks");
}

#[test]
fn matmul() {
    family("matmul");
}

#[test]
fn bilinear() {
    family("bilinear");
}

#[test]
fn softmax() {
    family("softmax");
}

#[test]
fn layernorm() {
    family("layernorm");
}

#[test]
fn eca() {
    family("eca");
}

#[test]
fn encoder_attention() {
    family("encoder-attention");
}

#[test]
fn lse_pool() {
    family("lse-pool");
}

#[test]
fn pair_context() {
    family("pair-context");
}

#[test]
fn elementwise() {
    family("elementwise");
}

#[test]
fn embedding() {
    family("embedding");
}

#[test]
fn reduce() {
    family("reduce");
}

#[test]
fn dropout() {
    family("dropout");
}

#[test]
fn adamw() {
    family("adamw");
}

#[test]
fn loss() {
    family("loss");
}

/// The training check of `docre selftest`: the tiny model trained twice gives identical bits.
#[test]
fn training() {
    family("training");
}

/// `docre selftest` names a deliberately broken kernel (its dispatches dropped) and exits 1,
/// while the other variants of the family still pass.
#[test]
fn selftest_command_fails_naming_a_broken_kernel() {
    let _ = gpu(); // sets XDG_RUNTIME_DIR for the child as for the tests
    let run = |broken: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_docre"));
        cmd.args(["selftest", "--only", "softmax"]);
        match broken {
            Some(k) => cmd.env("DOCRE_BREAK_KERNEL", k),
            None => cmd.env_remove("DOCRE_BREAK_KERNEL"),
        };
        let out = cmd.output().expect("docre runs");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, text) = run(None);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.lines().any(|l| l.starts_with("PASS  softmax") && l.contains("rows")), "{text}");
    let (code, text) = run(Some("softmax_forward_rows"));
    assert_eq!(code, Some(1), "{text}");
    let failed: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(failed.len(), 1, "{text}");
    assert!(failed[0].contains("softmax") && failed[0].contains("rows"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("PASS  softmax") && l.contains("workgroup")), "{text}");
}
