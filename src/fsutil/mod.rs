//! Writing outputs without leaving half-written files behind, and switching a directory of files
//! that belong together (a checkpoint) from one complete state to the next as a whole.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::error::{Error, Result};

mod output_set;
#[cfg(unix)]
mod set_links;
pub use output_set::OutputDir;

/// File operations done so far by `replace_dir` and `write_atomic` (see `inject_failure_at`).
static OPS: AtomicU64 = AtomicU64::new(0);
/// The operation that fails (0: none), and whether it aborts the process instead.
static FAIL_AT: AtomicU64 = AtomicU64::new(0);
static FAIL_INIT: OnceLock<()> = OnceLock::new();
static KILL: AtomicU64 = AtomicU64::new(0);

/// Test hook: the `n`th file operation from now on (creating, writing, syncing, renaming) fails
/// with an error, or with `kill` aborts the process there as a kill would stop it. `None` turns
/// it off. Processes read it from `DOCRE_FAIL_AT=N` (and `DOCRE_FAIL_KILL=1`);
/// `DOCRE_FAIL_TRACE=1` prints every operation with its number, to choose N.
pub fn inject_failure_at(n: Option<u64>, kill: bool) {
    let _ = FAIL_INIT.set(());
    OPS.store(0, Ordering::SeqCst);
    KILL.store(kill as u64, Ordering::SeqCst);
    FAIL_AT.store(n.unwrap_or(0), Ordering::SeqCst);
}

/// File operations counted since the process started or `inject_failure_at` last reset them.
pub fn file_ops() -> u64 {
    OPS.load(Ordering::SeqCst)
}

pub(crate) fn op(what: &str, path: &Path) -> Result<()> {
    FAIL_INIT.get_or_init(|| {
        let n = crate::settings::fail_at().ok().flatten().unwrap_or(0);
        KILL.store(crate::settings::fail_kill() as u64, Ordering::SeqCst);
        FAIL_AT.store(n, Ordering::SeqCst);
    });
    let n = OPS.fetch_add(1, Ordering::SeqCst) + 1;
    if crate::settings::fail_trace() {
        eprintln!("docre: file operation {n}: {what} {}", path.display());
    }
    if n == FAIL_AT.load(Ordering::SeqCst) {
        if KILL.load(Ordering::SeqCst) == 1 {
            eprintln!("docre: DOCRE_FAIL_AT={n}: stopping before {what} {}", path.display());
            std::process::abort();
        }
        return Err(Error::Io { context: format!("cannot {what} {} (injected failure at file operation {n})", path.display()), source: std::io::Error::other("DOCRE_FAIL_AT") });
    }
    Ok(())
}

pub(crate) fn io(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}

/// A name no other process or call uses: staging and temp files never collide.
pub(crate) fn unique(prefix: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst))
}

/// Writes `path` as one counted file operation: a file inside a directory being staged by
/// `replace_dir` (no temp file needed there), or the temporary of an atomic write.
pub fn write_staged(path: &Path, bytes: &[u8]) -> Result<()> {
    op("write", path)?;
    std::fs::write(path, bytes).map_err(io(format!("cannot write {}", path.display())))
}

/// Replaces the directory `target` with one that `fill` writes, as a whole: `fill` writes into a
/// hidden staging directory beside it, whose files are synced to disk, and two renames then
/// swap it in. A failure removes the staging directory and leaves `target` as it was. A kill
/// between the two renames leaves no `target` but both complete directories beside it
/// (`.NAME.new-*` and `.NAME.old-*`); `staged_versions` finds them, and the reader decides
/// (checkpoints verify their manifest and finish the switch).
pub fn replace_dir(target: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let parent = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = target.file_name().and_then(|n| n.to_str()).ok_or_else(|| Error::Input(format!("{}: not a directory name docre can write", target.display())))?;
    std::fs::create_dir_all(parent).map_err(io(format!("cannot create {}", parent.display())))?;
    let stage = parent.join(unique(&format!(".{name}.new")));
    let old = parent.join(unique(&format!(".{name}.old")));
    let result = (|| {
        op("create", &stage)?;
        std::fs::create_dir(&stage).map_err(io(format!("cannot create {}", stage.display())))?;
        fill(&stage)?;
        sync_dir(&stage)?;
        if target.exists() {
            op("rename", target)?;
            std::fs::rename(target, &old).map_err(io(format!("cannot move {} aside", target.display())))?;
        }
        op("rename", &stage)?;
        std::fs::rename(&stage, target).map_err(io(format!("cannot move {} to {}", stage.display(), target.display())))
    })();
    if result.is_err() {
        if !target.exists() && old.exists() {
            let _ = std::fs::rename(&old, target);
        }
        let _ = std::fs::remove_dir_all(&stage);
    }
    result?;
    let _ = std::fs::remove_dir_all(&old);
    remove_stale(parent, name);
    Ok(())
}

/// Syncs every file of `dir`, then `dir` itself, so the renames that follow never publish
/// data a power cut could still lose.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io(format!("cannot list {}", dir.display())))? {
        sync_file(&entry.map_err(io(format!("cannot list {}", dir.display())))?.path())?;
    }
    // Directories cannot be opened for syncing everywhere (Windows); the files are what matter.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Syncs one file to disk, as one counted file operation.
pub(crate) fn sync_file(path: &Path) -> Result<()> {
    op("sync", path)?;
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(io(format!("cannot sync {}", path.display())))
}

/// Staged or set-aside versions of `target` left by a process that was stopped mid-switch,
/// newest first: `.NAME.new-*` before `.NAME.old-*`.
pub fn staged_versions(target: &Path) -> Vec<PathBuf> {
    let parent = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Some(name) = target.file_name().and_then(|n| n.to_str()) else { return Vec::new() };
    let mut found: Vec<(bool, std::time::SystemTime, PathBuf)> = std::fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let old = file.starts_with(&format!(".{name}.old-"));
            (old || file.starts_with(&format!(".{name}.new-"))).then(|| (old, e.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH), e.path()))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    found.into_iter().map(|(_, _, p)| p).collect()
}

/// Whether process `pid` still runs. Where liveness cannot be told, it is assumed to run (its
/// lock held, its files kept).
pub(crate) fn pid_running(pid: u32) -> bool {
    !Path::new("/proc/self").exists() || Path::new("/proc").join(pid.to_string()).exists()
}

/// The process id in a name `unique` made (`PREFIX-PID-SEQ`).
pub(crate) fn pid_of(name: &str) -> Option<u32> {
    name.rsplit('-').nth(1).and_then(|pid| pid.parse().ok())
}

/// Removes versions of `name` that a process no longer running left behind. Where liveness
/// cannot be told (no /proc), nothing is removed.
fn remove_stale(parent: &Path, name: &str) {
    for p in staged_versions(&parent.join(name)) {
        let pid = p.file_name().and_then(|n| n.to_str()).and_then(pid_of);
        if pid.is_some_and(|pid| pid != std::process::id() && !pid_running(pid)) {
            let _ = std::fs::remove_dir_all(&p);
        }
    }
}

/// Write to a temporary file beside `path` (named for this process, so concurrent writers never
/// share one), then rename, so readers never see a partial file. A failure removes the temporary.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(unique(&format!(".{name}.tmp")));
    let result = write_staged(&tmp, bytes)
        .and_then(|_| op("rename", &tmp))
        .and_then(|_| std::fs::rename(&tmp, path).map_err(io(format!("cannot move {} to {}", tmp.display(), path.display()))));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Where docre keeps what it can rebuild (frozen-encoder outputs, the tuning file):
/// `$DOCRE_CACHE_DIR`, else `$XDG_CACHE_HOME/docre`, else `~/.cache/docre`.
pub fn cache_root() -> std::path::PathBuf {
    if let Some(d) = crate::settings::cache_dir() {
        return d;
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return std::path::PathBuf::from(d).join("docre");
    }
    std::env::var_os("HOME").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir).join(".cache/docre")
}

/// The SHA-256 of `bytes`, in hex: how checkpoints and shard files name content.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of the file at `path`.
pub fn file_sha256(path: &Path) -> Result<String> {
    std::fs::read(path).map(|b| sha256_hex(&b)).map_err(io(format!("cannot read {}", path.display())))
}

/// Fail before long work when an output file cannot be created.
pub fn check_writable(path: &Path, what: &str) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Error::Input(format!("{what} {}: directory {} does not exist", path.display(), dir.display())));
    }
    Ok(())
}

/// A zip archive holding one file, deflated: what CodaLab takes as a submission
/// (`result.json` inside `result.zip`).
pub fn zip_one(name: &str, data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let err = |e: zip::result::ZipError| Error::Input(format!("cannot build the zip archive for {name}: {e}"));
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    w.start_file(name, options).map_err(err)?;
    w.write_all(data).map_err(|source| Error::Io { context: format!("cannot write {name} into the zip archive"), source })?;
    Ok(w.finish().map_err(err)?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn zip_reads_back() {
        let payload = br#"[{"title": "Doc A", "h_idx": 0, "t_idx": 1, "r": "P17", "evidence": []}]"#.repeat(50);
        let z = zip_one("result.json", &payload).unwrap();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(z)).unwrap();
        assert_eq!(archive.len(), 1);
        let mut f = archive.by_name("result.json").unwrap();
        let mut back = Vec::new();
        f.read_to_end(&mut back).unwrap();
        assert_eq!(back, payload);
        assert!(f.compressed_size() < payload.len() as u64, "the entry is deflated");
    }
}
