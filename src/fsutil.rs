//! Writing outputs without leaving half-written files behind.

use std::path::Path;

use crate::error::{Error, Result};

/// Write to a temporary file beside `path`, then rename, so readers never see a partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let io = |context: String| move |source| Error::Io { context, source };
    std::fs::write(&tmp, bytes).map_err(io(format!("cannot write {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("cannot move {} to {}", tmp.display(), path.display())))
}

/// Where docre keeps what it can rebuild (frozen-encoder outputs, the tuning file):
/// `$DOCRE_CACHE_DIR`, else `$XDG_CACHE_HOME/docre`, else `~/.cache/docre`.
pub fn cache_root() -> std::path::PathBuf {
    if let Some(d) = std::env::var_os("DOCRE_CACHE_DIR") {
        return d.into();
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return std::path::PathBuf::from(d).join("docre");
    }
    std::env::var_os("HOME").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir).join(".cache/docre")
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
