//! Reading safetensors files (checkpoints and test fixtures) into host f32 / integer arrays.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// A host copy of one tensor, converted to f32.
#[derive(Clone, Debug)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A whole safetensors file held in memory; tensors are decoded on request.
pub struct TensorFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl TensorFile {
    pub fn open(path: &Path) -> Result<TensorFile> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io { context: format!("cannot read {}", path.display()), source })?;
        TensorFile::from_bytes(path, bytes)
    }

    /// The file at `path` whose bytes were already read (and checked) by the caller.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<TensorFile> {
        let f = TensorFile { path: path.to_path_buf(), bytes };
        f.parse()?;
        Ok(f)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn parse(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.bytes).map_err(|e| Error::Input(format!("{}: not a valid safetensors file: {e}", self.path.display())))
    }

    pub fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self.parse().map(|s| s.names().into_iter().map(|n| n.to_string()).collect()).unwrap_or_default();
        n.sort();
        n
    }

    /// The string map stored in the header (`__metadata__`), empty when absent.
    pub fn metadata(&self) -> Result<HashMap<String, String>> {
        let (_, meta) = SafeTensors::read_metadata(&self.bytes).map_err(|e| Error::Input(format!("{}: bad safetensors header: {e}", self.path.display())))?;
        Ok(meta.metadata().clone().unwrap_or_default())
    }

    /// A floating-point tensor (F32, F16 or BF16 on disk) as f32; None if the name is absent.
    pub fn f32(&self, name: &str) -> Result<Option<HostTensor>> {
        let st = self.parse()?;
        let view = match st.tensor(name) {
            Ok(v) => v,
            Err(_) => return Ok(None),
        };
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::F16 => raw.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            Dtype::BF16 => raw.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            d => return Err(Error::Input(format!("{}: tensor `{name}` has dtype {d:?}; expected F32, F16 or BF16", self.path.display()))),
        };
        Ok(Some(HostTensor { shape: view.shape().to_vec(), data }))
    }

    /// Model weights: `f32`, refusing a tensor that holds a NaN or an infinity (a model with one
    /// predicts nothing useful, silently), named with its first bad index.
    pub fn weights(&self, name: &str) -> Result<Option<HostTensor>> {
        let t = self.f32(name)?;
        if let Some(t) = &t {
            if let Some(i) = t.data.iter().position(|v| !v.is_finite()) {
                let bad = t.data.iter().filter(|v| !v.is_finite()).count();
                return Err(Error::Input(format!("{}: tensor `{name}` {:?} holds a non-finite value ({}) at index {i} ({bad} in all); refusing unusable weights", self.path.display(), t.shape, t.data[i])));
            }
        }
        Ok(t)
    }

    /// An integer tensor (I32, I64 or U32 on disk) as i64; None if the name is absent.
    pub fn ints(&self, name: &str) -> Result<Option<(Vec<usize>, Vec<i64>)>> {
        let st = self.parse()?;
        let view = match st.tensor(name) {
            Ok(v) => v,
            Err(_) => return Ok(None),
        };
        let raw = view.data();
        let data: Vec<i64> = match view.dtype() {
            Dtype::I32 => raw.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64).collect(),
            Dtype::U32 => raw.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64).collect(),
            Dtype::I64 => raw.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect(),
            d => return Err(Error::Input(format!("{}: tensor `{name}` has dtype {d:?}; expected an integer type", self.path.display()))),
        };
        Ok(Some((view.shape().to_vec(), data)))
    }
}
