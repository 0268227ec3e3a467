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

/// Fail before long work when an output file cannot be created.
pub fn check_writable(path: &Path, what: &str) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Error::Input(format!("{what} {}: directory {} does not exist", path.display(), dir.display())));
    }
    Ok(())
}

/// CRC-32 (IEEE) as zip archives use it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
        }
        *t = c;
    }
    !data.iter().fold(!0u32, |c, &b| table[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8))
}

/// A zip archive holding one file, stored without compression: what CodaLab takes as a
/// submission (`result.json` inside `result.zip`).
pub fn zip_one(name: &str, data: &[u8]) -> Vec<u8> {
    let (crc, size, n) = (crc32(data), data.len() as u32, name.len() as u16);
    let mut out = Vec::new();
    let header = |out: &mut Vec<u8>, central: bool| {
        out.extend_from_slice(if central { &[0x50, 0x4b, 0x01, 0x02] } else { &[0x50, 0x4b, 0x03, 0x04] });
        if central {
            out.extend_from_slice(&20u16.to_le_bytes()); // made by
        }
        out.extend_from_slice(&20u16.to_le_bytes()); // version needed
        out.extend_from_slice(&0u16.to_le_bytes()); // flags
        out.extend_from_slice(&0u16.to_le_bytes()); // stored
        out.extend_from_slice(&0u32.to_le_bytes()); // time, date
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // extra
        if central {
            out.extend_from_slice(&[0; 6]); // comment length, disk, internal attributes
            out.extend_from_slice(&0u32.to_le_bytes()); // external attributes
            out.extend_from_slice(&0u32.to_le_bytes()); // offset of the local header
        }
        out.extend_from_slice(name.as_bytes());
    };
    header(&mut out, false);
    out.extend_from_slice(data);
    let cd_start = out.len() as u32;
    header(&mut out, true);
    let cd_size = out.len() as u32 - cd_start;
    out.extend_from_slice(&[0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 1, 0, 1, 0]);
    out.extend_from_slice(&cd_size.to_le_bytes());
    out.extend_from_slice(&cd_start.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_and_zip_layout() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926, "the standard CRC-32 check value");
        let z = zip_one("result.json", b"[]");
        assert_eq!(&z[..4], b"PK\x03\x04");
        assert_eq!(&z[30..41], b"result.json");
        assert_eq!(&z[41..43], b"[]");
        assert_eq!(&z[z.len() - 22..z.len() - 18], b"PK\x05\x06");
        let cd = u32::from_le_bytes(z[z.len() - 6..z.len() - 2].try_into().unwrap()) as usize;
        let cd_size = u32::from_le_bytes(z[z.len() - 10..z.len() - 6].try_into().unwrap()) as usize;
        assert_eq!(&z[cd..cd + 4], b"PK\x01\x02");
        assert_eq!(cd_size, 46 + "result.json".len(), "a central directory entry is 46 bytes plus the name");
        assert_eq!(&z[cd + 46..cd + 57], b"result.json");
    }
}
