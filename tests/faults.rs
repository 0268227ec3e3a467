//! Checkpoints and output sets under failure: a write that fails or is killed at any one of its
//! file operations leaves the old checkpoint or set or the new one, never a mix, and a resumed
//! run then repeats the uninterrupted run bit for bit; a torn checkpoint is refused. The
//! in-process tests share the global failure hook (fsutil::inject_failure_at), so they hold one
//! lock.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use docre::fsutil;
use docre::model::checkpoint::{self, Sidecar};
use docre::model::Model;

static HOOK: Mutex<()> = Mutex::new(());

fn tiny() -> (Model, Sidecar) {
    let s = common::tiny::setup();
    (s.model, s.sidecar)
}

/// Every entry of `dir` whose name starts with `.` (staging, set-aside and temp files).
fn hidden(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with('.')).collect()
}

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn checkpoint_write_failing_at_each_operation_leaves_the_old_or_the_new_whole() {
    let _hook = HOOK.lock().unwrap_or_else(|e| e.into_inner());
    let (model, mut side) = tiny();
    let root = common::scratch("faults-inproc");
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("last");
    let t = model.heads.params.get("infer.head.classifier.weight");
    let original = t.read_f32(&model.gpu).unwrap();
    let states = |v: f32| {
        let mut w = original.clone();
        w[0] = v;
        w
    };
    // The old state, A, and the new one, B, differ in a weight and in the sidecar.
    t.write_f32(&model.gpu, &states(1.0)).unwrap();
    checkpoint::save(&dir, &model, &side, None).unwrap();
    let (model_a, side_a) = (bytes(&dir.join("model.safetensors")), bytes(&dir.join("checkpoint.json")));
    fsutil::inject_failure_at(None, false);
    t.write_f32(&model.gpu, &states(2.0)).unwrap();
    side.step = 7;
    checkpoint::save(&root.join("probe"), &model, &side, None).unwrap();
    let ops = fsutil::file_ops();
    let (model_b, side_b) = (bytes(&root.join("probe/model.safetensors")), bytes(&root.join("probe/checkpoint.json")));
    assert!(ops >= 5, "a save is at least create, 2 writes, syncs and a rename: {ops}");
    for n in 1..=ops {
        fsutil::inject_failure_at(Some(n), false);
        let e = checkpoint::save(&dir, &model, &side, None).err().unwrap_or_else(|| panic!("operation {n} of {ops} was told to fail"));
        fsutil::inject_failure_at(None, false);
        assert!(e.to_string().contains("injected failure"), "{e}");
        let (m, s) = (bytes(&dir.join("model.safetensors")), bytes(&dir.join("checkpoint.json")));
        assert!((m == model_a && s == side_a) || (m == model_b && s == side_b), "failure at operation {n}: the folder holds a mix");
        assert!(hidden(&root).is_empty(), "failure at operation {n} left {:?}", hidden(&root));
        checkpoint::load(&model.gpu, &dir).unwrap_or_else(|e| panic!("failure at operation {n}: {e}"));
        // Back to A for the next operation.
        std::fs::remove_dir_all(&dir).unwrap();
        t.write_f32(&model.gpu, &states(1.0)).unwrap();
        side.step = 0;
        checkpoint::save(&dir, &model, &side, None).unwrap();
        t.write_f32(&model.gpu, &states(2.0)).unwrap();
        side.step = 7;
    }
    t.write_f32(&model.gpu, &original).unwrap();
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn torn_checkpoints_are_refused_and_an_interrupted_switch_is_finished() {
    let _hook = HOOK.lock().unwrap_or_else(|e| e.into_inner());
    let (model, side) = tiny();
    let g = model.gpu.clone();
    let root = common::scratch("faults-torn");
    let _ = std::fs::remove_dir_all(&root);
    let (a, b) = (root.join("a"), root.join("b"));
    let t = model.heads.params.get("infer.head.classifier.weight");
    let original = t.read_f32(&g).unwrap();
    checkpoint::save(&a, &model, &side, None).unwrap();
    let mut w = original.clone();
    w[1] += 1.0;
    t.write_f32(&g, &w).unwrap();
    checkpoint::save(&b, &model, &side, None).unwrap();
    t.write_f32(&g, &original).unwrap();
    // New weights beside the old sidecar: what three separate renames used to leave.
    std::fs::copy(b.join("model.safetensors"), a.join("model.safetensors")).unwrap();
    let e = checkpoint::load(&g, &a).err().expect("a mixed checkpoint must be refused").to_string();
    assert!(e.contains("checkpoint.json") && e.contains("model.safetensors") && e.contains("files") && e.contains("torn or mixed"), "{e}");
    // A listed file that is missing.
    std::fs::remove_file(b.join("model.safetensors")).unwrap();
    let e = checkpoint::load(&g, &b).err().expect("an incomplete checkpoint must be refused").to_string();
    assert!(e.contains("incomplete") && e.contains("model.safetensors"), "{e}");
    // A process killed between the two renames leaves no `last` but the complete new copy.
    let c = root.join("last");
    checkpoint::save(&c, &model, &side, None).unwrap();
    let staged = root.join(".last.new-1-0");
    std::fs::rename(&c, &staged).unwrap();
    let (_, loaded) = checkpoint::load(&g, &c).expect("the staged copy is complete");
    assert_eq!(loaded.step, side.step);
    assert!(c.join("checkpoint.json").exists() && !staged.exists(), "the switch was finished");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn atomic_writes_use_private_temp_names_and_leave_none_behind() {
    let _hook = HOOK.lock().unwrap_or_else(|e| e.into_inner());
    let root = common::scratch("faults-atomic");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let out = root.join("result.json");
    fsutil::write_atomic(&out, b"old").unwrap();
    for n in 1..=2 {
        fsutil::inject_failure_at(Some(n), false);
        assert!(fsutil::write_atomic(&out, b"new").is_err());
        fsutil::inject_failure_at(None, false);
        assert_eq!(bytes(&out), b"old");
        assert!(hidden(&root).is_empty(), "{:?}", hidden(&root));
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// `docre train` of the tiny preset on the bundled sample into `out`, or with `resume` its
/// continuation.
fn docre(out: &Path, resume: bool) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_docre"));
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir()).env_remove("DOCRE_FAIL_AT").env_remove("DOCRE_FAIL_KILL").env_remove("DOCRE_FAIL_TRACE");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo/redocred_sample.json");
    c.args(["train", "--train"]).arg(sample);
    if resume {
        c.arg("--resume").arg(out);
    } else {
        c.args(["--preset", "tiny", "--stage1-epochs", "2", "--stage2-epochs", "1", "--seed", "3", "--out"]).arg(out);
    }
    c
}

/// (stage, step, loss bits) of every logged step.
fn log(dir: &Path) -> Vec<(u64, u64, u64)> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v["stage"].as_u64()?, v["step"].as_u64()?, v.get("loss")?.as_f64()?.to_bits())))
        .collect()
}

#[test]
fn run_killed_at_each_operation_of_a_checkpoint_write_resumes_bit_for_bit() {
    let root = common::scratch("faults-kill");
    let _ = std::fs::remove_dir_all(&root);
    let whole = root.join("whole");
    let run = docre(&whole, false).env("DOCRE_FAIL_TRACE", "1").output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    // The operations of the second save of last/ (the first that replaces an existing one).
    let trace = String::from_utf8_lossy(&run.stderr);
    let ops: Vec<(u64, String)> = trace.lines().filter_map(|l| l.strip_prefix("docre: file operation ")).filter_map(|l| l.split_once(": ").map(|(n, rest)| (n.parse().unwrap(), rest.to_string()))).collect();
    let creates: Vec<u64> = ops.iter().filter(|(_, w)| w.starts_with("create") && w.contains(".last.new-")).map(|(n, _)| *n).collect();
    assert!(creates.len() >= 2, "two saves of last/: {ops:?}");
    let (first, end) = (creates[1], creates.get(2).copied().unwrap_or(u64::MAX));
    let second: Vec<u64> = ops.iter().map(|(n, _)| *n).filter(|&n| n >= first && n < end && ops.iter().any(|(m, w)| *m == n && w.contains("last"))).collect();
    assert!(second.len() >= 5, "{second:?}");
    let want_model = bytes(&whole.join("last/model.safetensors"));
    let want_log = log(&whole);
    for n in second {
        let dir: PathBuf = root.join(format!("killed-{n}"));
        let killed = docre(&dir, false).env("DOCRE_FAIL_AT", n.to_string()).env("DOCRE_FAIL_KILL", "1").output().unwrap();
        assert!(!killed.status.success(), "operation {n}: the run was to be stopped there");
        let resumed = docre(&dir, true).output().unwrap();
        assert!(resumed.status.success(), "resume after a kill at operation {n}: {}", String::from_utf8_lossy(&resumed.stderr));
        assert_eq!(bytes(&dir.join("last/model.safetensors")), want_model, "kill at operation {n}: the resumed run's weights differ");
        let got = log(&dir);
        assert_eq!(got, want_log, "kill at operation {n}: the resumed run's losses differ");
        assert!(hidden(&dir).is_empty(), "kill at operation {n}: the resumed run left {:?}", hidden(&dir));
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(&root);
}

type Set = &'static [(&'static str, &'static [u8])];
const SET_A: Set = &[("result.json", b"[1]"), ("predictions.txt", b"one"), ("result.zip", b"zip")];
const SET_B: Set = &[("result.json", b"[2]"), ("predictions.txt", b"two")];
const MEMBERS: [&str; 3] = ["result.json", "predictions.txt", "result.zip"];

/// The folder's set, member by member (None: absent).
fn set_in(dir: &Path) -> Vec<Option<Vec<u8>>> {
    MEMBERS.iter().map(|m| std::fs::read(dir.join(m)).ok()).collect()
}

fn as_set(files: Set) -> Vec<Option<Vec<u8>>> {
    MEMBERS.iter().map(|m| files.iter().find(|(n, _)| n == m).map(|(_, b)| b.to_vec())).collect()
}

/// Operations one switch from `from` to `to` takes, counted in a scratch folder.
fn ops_of_switch(root: &Path, from: Set, to: Set) -> u64 {
    let probe = root.join("probe");
    fsutil::OutputDir::open(&probe).unwrap().write_set(from, &MEMBERS).unwrap();
    fsutil::inject_failure_at(None, false);
    fsutil::OutputDir::open(&probe).unwrap().write_set(to, &MEMBERS).unwrap();
    let ops = fsutil::file_ops();
    std::fs::remove_dir_all(probe).unwrap();
    ops
}

#[test]
fn an_output_set_failing_at_each_operation_leaves_the_old_set_or_the_new() {
    let _hook = HOOK.lock().unwrap_or_else(|e| e.into_inner());
    let root = common::scratch("faults-outputs");
    let _ = std::fs::remove_dir_all(&root);
    // Both ways: a member the new set lacks (result.zip) leaves with the old set, and one the
    // old set lacked arrives with the new.
    for (from, to) in [(SET_A, SET_B), (SET_B, SET_A)] {
        fsutil::OutputDir::open(&root).unwrap().write_set(from, &MEMBERS).unwrap();
        let ops = ops_of_switch(&root, from, to);
        let (mut failed, mut switched) = (0, 0);
        for n in 1..=ops + 1 {
            fsutil::inject_failure_at(Some(n), false);
            let result = fsutil::OutputDir::open(&root).unwrap().write_set(to, &MEMBERS);
            fsutil::inject_failure_at(None, false);
            // A failure before the switch is an error and leaves the old set and nothing else;
            // one in the tidying after it cannot undo the switch and is no error.
            if result.is_err() {
                failed += 1;
                assert_eq!(set_in(&root), as_set(from), "failure at operation {n}: not the old set");
                assert!(common::output_strays(&root).is_empty(), "operation {n}: left {:?}", common::output_strays(&root));
            } else {
                switched += 1;
                assert_eq!(set_in(&root), as_set(to), "failure at operation {n}, after the switch");
            }
            // What a failed tidy-up leaves, the next open removes.
            drop(fsutil::OutputDir::open(&root).unwrap());
            assert!(common::output_strays(&root).is_empty(), "operation {n}: the next open left {:?}", common::output_strays(&root));
            fsutil::OutputDir::open(&root).unwrap().write_set(from, &MEMBERS).unwrap();
        }
        assert!(failed >= to.len() && switched >= 1, "{failed} failed and {switched} switched of {} operations", ops + 1);
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// Run only as the child of the next test: switches `FAULTS_CHILD_SET_DIR` to set B, to be
/// killed by `DOCRE_FAIL_AT` / `DOCRE_FAIL_KILL` somewhere in the switch.
#[test]
#[ignore = "the child process of an_output_set_killed_at_each_operation_shows_the_old_set_or_the_new"]
fn switch_output_set_in_a_child() {
    let dir = std::env::var_os("FAULTS_CHILD_SET_DIR").expect("run by the kill test");
    fsutil::OutputDir::open(Path::new(&dir)).unwrap().write_set(SET_B, &MEMBERS).unwrap();
}

/// Kills a switch from set A to set B at each of its file operations, from a folder docre wrote
/// and from one holding set A as plain files (what docre wrote before links, and what the
/// journal writes where there are none). Right after the kill, before any docre opens the folder
/// again, a reader sees set A or set B; the next open leaves nothing else behind.
#[test]
fn an_output_set_killed_at_each_operation_shows_the_old_set_or_the_new() {
    let _hook = HOOK.lock().unwrap_or_else(|e| e.into_inner());
    let root = common::scratch("faults-outputs-kill");
    let _ = std::fs::remove_dir_all(&root);
    let plain = |dir: &Path| {
        std::fs::create_dir_all(dir).unwrap();
        for (name, bytes) in SET_A {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    };
    let by_docre = |dir: &Path| fsutil::OutputDir::open(dir).unwrap().write_set(SET_A, &MEMBERS).map(drop).unwrap();
    for (start, make) in [("written by docre", &by_docre as &dyn Fn(&Path)), ("plain files", &plain)] {
        let probe = root.join("probe");
        make(&probe);
        fsutil::inject_failure_at(None, false);
        fsutil::OutputDir::open(&probe).unwrap().write_set(SET_B, &MEMBERS).unwrap();
        let ops = fsutil::file_ops();
        std::fs::remove_dir_all(&probe).unwrap();
        let (mut old, mut new) = (0, 0);
        for n in 1..=ops {
            let dir = root.join(format!("kill-{n}"));
            make(&dir);
            let child = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "switch_output_set_in_a_child", "--ignored", "--nocapture"])
                .env("FAULTS_CHILD_SET_DIR", &dir)
                .env("DOCRE_FAIL_AT", n.to_string())
                .env("DOCRE_FAIL_KILL", "1")
                .env_remove("DOCRE_FAIL_TRACE")
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&child.stderr);
            assert!(!child.status.success() && err.contains(&format!("DOCRE_FAIL_AT={n}")), "{start}, operation {n}: the child was not stopped there: {err}");
            let seen = set_in(&dir);
            if cfg!(unix) {
                assert!(seen == as_set(SET_A) || seen == as_set(SET_B), "{start}, kill at operation {n}: a reader sees a mixed set {seen:?}");
            }
            drop(fsutil::OutputDir::open(&dir).unwrap());
            let now = set_in(&dir);
            assert!(now == as_set(SET_A) || now == as_set(SET_B), "{start}, kill at operation {n}: a mixed set {now:?} after the next open");
            if cfg!(unix) {
                assert_eq!(now, seen, "{start}, kill at operation {n}: the next open changed the set");
            }
            if now == as_set(SET_A) { old += 1 } else { new += 1 }
            assert!(common::output_strays(&dir).is_empty(), "{start}, kill at operation {n}: left {:?}", common::output_strays(&dir));
            let _ = std::fs::remove_dir_all(&dir);
        }
        assert!(old >= 2 && new >= 1, "{start}: {old} kills left the old set and {new} the new, of {ops}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_folder_another_docre_is_writing_is_refused_and_a_failed_predict_leaves_no_folder() {
    let root = common::scratch("faults-lock");
    let _ = std::fs::remove_dir_all(&root);
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo/redocred_sample.json");
    let predict = |out: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_docre"))
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .args(["predict", "--checkpoint", "/nonexistent/checkpoint", "--data"])
            .arg(&sample)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };
    let out = root.join("busy");
    let held = fsutil::OutputDir::open(&out).unwrap();
    let r = predict(&out);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("docre process {}", std::process::id())) && err.contains(".docre.lock"), "{err}");
    drop(held);
    assert!(!out.exists(), "the folder the lock created is removed with it");
    // A lock left by a process that no longer runs is taken over; the run then fails on the
    // missing checkpoint and leaves no folder behind.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join(".docre.lock"), "4000000000").unwrap();
    let r = predict(&out);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_ne!(r.status.code(), Some(0));
    assert!(err.contains("/nonexistent/checkpoint") && !err.contains("docre process"), "{err}");
    assert!(hidden(&out).is_empty(), "{:?}", hidden(&out));
    let fresh = root.join("fresh");
    let r = predict(&fresh);
    assert_ne!(r.status.code(), Some(0));
    assert!(!fresh.exists(), "a failed predict must not leave an empty --out");
    let _ = std::fs::remove_dir_all(&root);
}

/// Unmounts the small tmpfs when the test ends, whatever happened.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_leaves_the_old_checkpoint_and_the_old_output_set() {
    let _hook = HOOK.lock().unwrap_or_else(|e| e.into_inner());
    let root = common::scratch("faults-full");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let mounted = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"]).arg(&root).stderr(std::process::Stdio::null()).status();
    if !mounted.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: a full disk needs a small tmpfs, and `mount -t tmpfs` is not permitted here (it needs root)");
        return;
    }
    let _guard = Mounted(root.clone());
    // An output set, then a new one that cannot fit.
    let out = root.join("out");
    fsutil::OutputDir::open(&out).unwrap().write_set(&[("result.json", b"[1]"), ("predictions.txt", b"one")], &[]).unwrap();
    let big = vec![b'x'; 3 << 20];
    let e = fsutil::OutputDir::open(&out).unwrap().write_set(&[("result.json", &big), ("predictions.txt", &big)], &[]).err().expect("6 MB cannot fit in 4");
    assert!(e.to_string().contains("cannot write"), "{e}");
    assert_eq!((std::fs::read(out.join("result.json")).unwrap(), std::fs::read(out.join("predictions.txt")).unwrap()), (b"[1]".to_vec(), b"one".to_vec()));
    assert!(common::output_strays(&out).is_empty(), "{:?}", common::output_strays(&out));
    std::fs::remove_dir_all(&out).unwrap();
    // A checkpoint, then the disk fills up, then a save that cannot fit.
    let (model, side) = tiny();
    let ck = root.join("last");
    checkpoint::save(&ck, &model, &side, None).unwrap();
    let saved = bytes(&ck.join("model.safetensors"));
    let free = 4 * 1024 * 1024 - std::fs::read_dir(&ck).unwrap().flatten().map(|e| e.metadata().unwrap().len()).sum::<u64>();
    let _ = std::fs::write(root.join("filler"), vec![0u8; free.saturating_sub(saved.len() as u64 / 2) as usize]);
    let e = checkpoint::save(&ck, &model, &side, None).err().expect("the disk is full");
    assert!(e.to_string().contains("cannot"), "{e}");
    assert_eq!(bytes(&ck.join("model.safetensors")), saved, "the old checkpoint is intact");
    checkpoint::load(&model.gpu, &ck).expect("and loads");
    assert!(hidden(&root).is_empty(), "{:?}", hidden(&root));
}
