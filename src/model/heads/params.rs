//! Named parameter sets on the GPU and their gradients.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::ops::elementwise::accumulate;

/// Parameters in a fixed order with their SPEC 0.3 names.
pub struct ParamSet {
    names: Vec<String>,
    index: HashMap<String, usize>,
    tensors: Vec<Tensor>,
}

impl ParamSet {
    /// Uploads `(name, shape, values)` triples.
    pub fn new(gpu: &Gpu, params: Vec<(String, Vec<usize>, Vec<f32>)>) -> Result<ParamSet> {
        let mut set = ParamSet { names: Vec::new(), index: HashMap::new(), tensors: Vec::new() };
        for (name, shape, data) in params {
            if data.len() != shape.iter().product::<usize>() {
                return Err(Error::Input(format!("parameter `{name}` has {} values, expected shape {shape:?}", data.len())));
            }
            set.index.insert(name.clone(), set.names.len());
            set.tensors.push(Tensor::from_f32(gpu, &name, &shape, &data)?);
            set.names.push(name);
        }
        Ok(set)
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn tensors(&self) -> &[Tensor] {
        &self.tensors
    }

    pub fn id(&self, name: &str) -> usize {
        *self.index.get(name).unwrap_or_else(|| panic!("no parameter `{name}`: the parameter list and the model code disagree"))
    }

    pub fn get(&self, name: &str) -> &Tensor {
        &self.tensors[self.id(name)]
    }
}

/// Gradients keyed by parameter id; a parameter used several times (both stage-2 branches) has
/// its contributions summed in the order they arrive, so the result is deterministic.
#[derive(Default)]
pub struct Grads {
    map: HashMap<usize, Tensor>,
    /// Squared norms of gradients that were never formed: those of frozen parameters, which
    /// only enter the clipping norm (see `base::BaseNeeds`).
    norm_sq: Vec<Tensor>,
}

impl Grads {
    pub fn add(&mut self, rec: &mut Recorder, id: usize, g: Tensor) -> Result<()> {
        match self.map.get(&id) {
            Some(acc) => accumulate(rec, acc, &g, 1.0),
            None => {
                self.map.insert(id, g);
                Ok(())
            }
        }
    }

    pub fn get(&self, id: usize) -> Option<&Tensor> {
        self.map.get(&id)
    }

    /// Record the squared norm ([1]) of a gradient that is not formed.
    pub fn add_norm_sq(&mut self, sq: Tensor) {
        self.norm_sq.push(sq);
    }

    pub fn norm_sq(&self) -> &[Tensor] {
        &self.norm_sq
    }
}
