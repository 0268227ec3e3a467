//! The output set on Unix: every member (`result.json`, `predictions.txt`, `result.zip`) is a
//! symbolic link into `.docre.set`, itself a link to the folder that holds the current set's
//! files (`.docre.set-PID-SEQ`). A switch writes and syncs the new set's folder beside the old
//! one, then renames a new `.docre.set` link over the old: a single atomic rename, so any reader,
//! docre or not, sees the old set or the new one whole at every moment, a kill or a full disk
//! included. A member the current set lacks is a link that leads nowhere (reading it finds no
//! file, as it should), removed once the switch is done.
//!
//! A folder that still holds a set as plain files (written by an older docre, or by the journal
//! of other platforms) is first adopted: its files are hard-linked into a set folder that
//! `.docre.set` then names, and each plain file is replaced by its link with one rename, which
//! shows the same bytes throughout.

use std::os::unix::fs::symlink;
use std::path::Path;

use super::{io, op, sync_dir, unique, write_staged};
use crate::error::Result;

/// The link naming the current set's folder; set folders are `CURRENT-PID-SEQ`.
const CURRENT: &str = ".docre.set";

/// Switches `dir` (locked by the caller) to the set `files`; the members of `retire` that are not
/// in `files` leave with the old set. On an error before the final rename the old set stands and
/// the new set's folder is removed; after it, what is left is tidying, which cannot fail the
/// switch.
pub(super) fn switch(dir: &Path, files: &[(&str, &[u8])], retire: &[&str]) -> Result<()> {
    publish(dir, |staged| {
        for (name, bytes) in files {
            write_staged(&staged.join(name), bytes)?;
        }
        let mut members: Vec<&str> = files.iter().map(|(n, _)| *n).chain(retire.iter().copied()).collect();
        members.sort_unstable();
        members.dedup();
        adopt_plain_files(dir, &members)?;
        // Links for members the old set lacks lead nowhere until the switch: still the old set.
        files.iter().try_for_each(|(name, _)| link_member(dir, name))
    })?;
    tidy(dir);
    Ok(())
}

/// Makes a new set folder that `fill` fills, syncs it, and points CURRENT at it: the one atomic
/// step. On an error before that the folder is removed and CURRENT names what it named.
fn publish(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let stage = unique(CURRENT);
    let staged = dir.join(&stage);
    let result = (|| {
        op("create", &staged)?;
        std::fs::create_dir(&staged).map_err(io(format!("cannot create {}", staged.display())))?;
        fill(&staged)?;
        sync_dir(&staged)?;
        put_link(dir, CURRENT, Path::new(&stage))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staged);
        return result;
    }
    // The rename is what a power cut must not lose once the call returns.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes what no longer belongs to the current set: set folders it does not name, member links
/// that lead nowhere, and temporary links. Called under the folder's lock, so nothing else is
/// being staged there; failures are left for the next call.
pub(super) fn tidy(dir: &Path) {
    let current = std::fs::read_link(dir.join(CURRENT)).ok();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        if name.starts_with(&format!("{CURRENT}-")) && current.as_deref() != Some(Path::new(&name)) {
            if op("remove", &path).is_ok() {
                let _ = std::fs::remove_dir_all(&path);
            }
        } else if is_link && (name.starts_with('.') && name.contains(".link-") || leads_into_set(&path) && !path.exists()) {
            if op("remove", &path).is_ok() {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

/// Whether the link at `path` is a member link (into CURRENT).
fn leads_into_set(path: &Path) -> bool {
    std::fs::read_link(path).is_ok_and(|t| t.starts_with(CURRENT))
}

/// Makes `dir/name` the link `CURRENT/name`, unless it is already.
fn link_member(dir: &Path, name: &str) -> Result<()> {
    let target = Path::new(CURRENT).join(name);
    if std::fs::read_link(dir.join(name)).is_ok_and(|t| t == target) {
        return Ok(());
    }
    put_link(dir, name, &target)
}

/// Replaces whatever `dir/name` is with a link to `target`, in one rename of a new link.
fn put_link(dir: &Path, name: &str, target: &Path) -> Result<()> {
    let tmp = dir.join(unique(&format!(".{name}.link")));
    op("link", &tmp)?;
    symlink(target, &tmp).map_err(io(format!("cannot create the link {}", tmp.display())))?;
    let path = dir.join(name);
    let moved = op("rename", &tmp).and_then(|_| std::fs::rename(&tmp, &path).map_err(io(format!("cannot move {} to {}", tmp.display(), path.display()))));
    if moved.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    moved
}

/// Turns a set held as plain files into one held by links (see the module comment). Members
/// that are links already (an adoption a kill interrupted) join the new set folder from the
/// current one, so it holds the whole set before CURRENT names it. `members` are distinct.
fn adopt_plain_files(dir: &Path, members: &[&str]) -> Result<()> {
    let plain: Vec<&str> = members.iter().copied().filter(|m| std::fs::symlink_metadata(dir.join(m)).is_ok_and(|md| md.is_file())).collect();
    if plain.is_empty() {
        return Ok(());
    }
    publish(dir, |staged| {
        for m in members {
            // The file the member shows now, plain or through its link.
            let Ok(shown) = std::fs::canonicalize(dir.join(m)) else { continue };
            let to = staged.join(m);
            op("link", &to)?;
            if std::fs::hard_link(&shown, &to).is_err() {
                std::fs::copy(&shown, &to).map_err(io(format!("cannot copy {} to {}", shown.display(), to.display())))?;
            }
        }
        Ok(())
    })?;
    plain.into_iter().try_for_each(|m| link_member(dir, m))
}
