//! A folder that receives one set of outputs (`result.json`, `predictions.txt`, `result.zip`)
//! and switches it as a whole, across failures and kills.
//!
//! On Unix the members are links into the current set's folder and one rename switches them all
//! (`set_links`). Elsewhere (Windows, where links need privileges) the files cannot be renamed
//! into place in one step, so a switch is journalled: every new file is written and synced
//! under a private temporary name, then a journal (`.docre.switch`) naming each file's temporary
//! and set-aside names is written atomically, and only then are the renames done. A failure
//! undoes them. A kill leaves the journal, and the next docre process that opens the folder rolls
//! the switch forward from it: every temporary it names is complete, so the new set can always
//! be finished. Without a journal, the renames never started and the old set stands. A journal
//! that an older docre left is finished on Unix too.

use std::path::{Path, PathBuf};

use super::{io, pid_of, pid_running};
#[cfg(not(unix))]
use super::{op, sync_file, unique, write_atomic, write_staged};
use crate::error::{Error, Result};

const LOCK: &str = ".docre.lock";
const JOURNAL: &str = ".docre.switch";

/// One file of a switch: its final name, its complete new version (None: the file leaves the
/// set) and where its old version is set aside until the switch is done.
#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    name: String,
    staged: Option<String>,
    aside: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Journal {
    pid: u32,
    files: Vec<Entry>,
}

/// A folder locked against other docre processes writing a set there at the same time: created
/// if missing (and removed again when nothing was written).
pub struct OutputDir {
    dir: PathBuf,
    lock: PathBuf,
    created: bool,
    written: bool,
}

impl OutputDir {
    /// Creates `dir` if needed, takes its lock (`.docre.lock`, holding this process's id) and
    /// finishes a switch that a stopped process left (`settle`). A lock whose process is no
    /// longer running is taken over.
    pub fn open(dir: &Path) -> Result<OutputDir> {
        let created = !dir.exists();
        std::fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;
        let lock = dir.join(LOCK);
        for _ in 0..2 {
            match create_lock(&lock) {
                Ok(()) => {
                    let out = OutputDir { dir: dir.to_path_buf(), lock, created, written: false };
                    settle(dir)?;
                    return Ok(out);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&lock).ok().and_then(|t| t.trim().parse::<u32>().ok());
                    match holder {
                        Some(pid) if pid_running(pid) => {
                            return Err(Error::Input(format!("{} is being written by docre process {pid} (its lock is {}); wait for it to finish or give another --out", dir.display(), lock.display())));
                        }
                        _ => {
                            let _ = std::fs::remove_file(&lock);
                        }
                    }
                }
                Err(e) => return Err(io(format!("cannot create {}", lock.display()))(e)),
            }
        }
        Err(Error::Input(format!("{}: cannot take the lock {}", dir.display(), lock.display())))
    }

    /// Switches the folder to the set `files`; the names in `retire` that are not in `files`
    /// (members of an earlier set, such as a `result.zip` this run does not write) leave with the
    /// old set. Returns the paths written. On an error before the switching rename the folder
    /// holds the old set and no temporaries; after it, the new set stands and the call
    /// succeeds. After a kill the folder shows the old set or the new: on Unix to any reader at
    /// once, elsewhere once the next open has finished the journal.
    pub fn write_set(&mut self, files: &[(&str, &[u8])], retire: &[&str]) -> Result<Vec<PathBuf>> {
        #[cfg(unix)]
        super::set_links::switch(&self.dir, files, retire)?;
        #[cfg(not(unix))]
        self.switch_journalled(files, retire)?;
        self.written = true;
        Ok(files.iter().map(|(n, _)| self.dir.join(n)).collect())
    }

    #[cfg(not(unix))]
    fn switch_journalled(&mut self, files: &[(&str, &[u8])], retire: &[&str]) -> Result<()> {
        let mut journal = Journal { pid: std::process::id(), files: Vec::new() };
        // How far each entry got, so an undo reverses exactly the steps that were done.
        let mut aside = Vec::new();
        let mut placed = Vec::new();
        let result = (|| {
            for (name, bytes) in files {
                let tmp = unique(&format!(".{name}.tmp"));
                journal.files.push(Entry { name: name.to_string(), staged: Some(tmp.clone()), aside: unique(&format!(".{name}.old")) });
                write_staged(&self.dir.join(&tmp), bytes)?;
                sync_file(&self.dir.join(&tmp))?;
            }
            for name in retire.iter().filter(|r| !files.iter().any(|(n, _)| n == *r)) {
                if self.dir.join(name).exists() {
                    journal.files.push(Entry { name: name.to_string(), staged: None, aside: unique(&format!(".{name}.old")) });
                }
            }
            let text = serde_json::to_string_pretty(&journal).expect("journal serializes");
            write_atomic(&self.dir.join(JOURNAL), text.as_bytes())?;
            for (i, e) in journal.files.iter().enumerate() {
                let target = self.dir.join(&e.name);
                if target.exists() {
                    op("rename", &target)?;
                    std::fs::rename(&target, self.dir.join(&e.aside)).map_err(io(format!("cannot move {} aside", target.display())))?;
                    aside.push(i);
                }
                if let Some(tmp) = &e.staged {
                    op("rename", &self.dir.join(tmp))?;
                    std::fs::rename(self.dir.join(tmp), &target).map_err(io(format!("cannot move {} to {}", self.dir.join(tmp).display(), target.display())))?;
                    placed.push(i);
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            self.undo(&journal, &aside, &placed);
            return Err(e);
        }
        // The new set stands: what is left is tidying, which cannot undo the switch. The journal
        // goes last, so old versions a failure leaves behind are still named by it and the next
        // open removes them.
        let mut tidy = true;
        for &i in &aside {
            let old = self.dir.join(&journal.files[i].aside);
            tidy &= op("remove", &old).is_ok() && std::fs::remove_file(&old).is_ok();
        }
        if tidy && op("remove", &self.dir.join(JOURNAL)).is_ok() {
            let _ = std::fs::remove_file(self.dir.join(JOURNAL));
        }
        Ok(())
    }

    /// Puts the old set back after a failed switch: each placed file goes back to its temporary
    /// name before its old version returns, so the journal stays true and a kill in the middle
    /// still leaves a switch that the next open finishes; the journal goes once the old set
    /// stands.
    #[cfg(not(unix))]
    fn undo(&self, journal: &Journal, aside: &[usize], placed: &[usize]) {
        for (i, e) in journal.files.iter().enumerate().rev() {
            let target = self.dir.join(&e.name);
            if let (true, Some(tmp)) = (placed.contains(&i), &e.staged) {
                let _ = std::fs::rename(&target, self.dir.join(tmp));
            }
            if aside.contains(&i) {
                let _ = std::fs::rename(self.dir.join(&e.aside), &target);
            }
        }
        let _ = std::fs::remove_file(self.dir.join(JOURNAL));
        for tmp in journal.files.iter().filter_map(|e| e.staged.as_ref()) {
            let _ = std::fs::remove_file(self.dir.join(tmp));
        }
    }
}

/// Creates `lock` already holding this process's id: written under a temporary name, then
/// hard-linked into place, which fails if the lock exists. A lock created empty and written next
/// was, for a moment, empty to a docre starting beside it, which took it for a stopped
/// process's, removed it and took the folder too: two runs then staged and tidied one folder at
/// once, and a member could end up a link into a set folder the other had removed.
fn create_lock(lock: &Path) -> std::io::Result<()> {
    let tmp = lock.with_file_name(super::unique(&format!("{LOCK}.tmp")));
    std::fs::write(&tmp, std::process::id().to_string())?;
    let linked = std::fs::hard_link(&tmp, lock);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists && e.kind() != std::io::ErrorKind::NotFound => {
            // A file system without hard links: create and write, the old way.
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(lock)?;
            write!(f, "{}", std::process::id())
        }
        other => other,
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.lock);
        if self.created && !self.written {
            // Only succeeds when empty: a failed run leaves no folder behind.
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// Finishes a switch that a stopped process left in `dir` (its journal names complete new
/// files, so the new set is finished), and removes temporaries of processes no longer running.
/// Called under the folder's lock, so any journal there is a stopped process's. Says on stderr
/// what it finished.
fn settle(dir: &Path) -> Result<()> {
    let path = dir.join(JOURNAL);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let journal: Journal = serde_json::from_str(&text).map_err(|e| Error::Input(format!("{}: damaged switch journal ({e}); the output set in {} may be mixed: remove the journal and write the set again", path.display(), dir.display())))?;
        for e in &journal.files {
            let target = dir.join(&e.name);
            let aside = dir.join(&e.aside);
            match &e.staged {
                Some(tmp) if dir.join(tmp).exists() => {
                    if target.exists() && !aside.exists() {
                        std::fs::rename(&target, &aside).map_err(io(format!("cannot move {} aside", target.display())))?;
                    }
                    std::fs::rename(dir.join(tmp), &target).map_err(io(format!("cannot move {} to {}", dir.join(tmp).display(), target.display())))?;
                }
                Some(_) => {}
                None => {
                    if target.exists() && !aside.exists() {
                        std::fs::rename(&target, &aside).map_err(io(format!("cannot move {} aside", target.display())))?;
                    }
                }
            }
        }
        for e in &journal.files {
            let _ = std::fs::remove_file(dir.join(&e.aside));
        }
        std::fs::remove_file(&path).map_err(io(format!("cannot remove {}", path.display())))?;
        let names: Vec<&str> = journal.files.iter().filter(|e| e.staged.is_some()).map(|e| e.name.as_str()).collect();
        eprintln!("docre: {}: finished the switch to the output set ({}) that docre process {} was writing when it stopped", dir.display(), names.join(", "), journal.pid);
    }
    #[cfg(unix)]
    super::set_links::tidy(dir);
    // Temporaries and set-aside files of stopped processes that never wrote a journal, or whose
    // journal is now done.
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with('.') && (name.contains(".tmp-") || name.contains(".old-"));
        if ours && pid_of(&name).is_some_and(|pid| pid != std::process::id() && !pid_running(pid)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}
