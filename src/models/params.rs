//! Model parameters: a `VarBuilder` whose variables are initialised from adlab's seeded RNG
//! (candle's CPU RNG cannot be seeded), and `ParamSet`, the name-sorted view of a model's
//! variables that the optimizer, gradient clipping and checkpoints all iterate in one order.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::{var_builder::SimpleBackend, Init, VarBuilder, VarMap};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

/// A `VarMap` whose missing variables are drawn from a seeded ChaCha8 stream, so that
/// the same seed gives the same initial weights (variables are created in module order).
struct SeededVarMap {
    varmap: VarMap,
    rng: Mutex<ChaCha8Rng>,
}

impl SimpleBackend for SeededVarMap {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if let Some(var) = self.varmap.data().lock().unwrap().get(name) {
            if var.shape() != &shape {
                candle_core::bail!(
                    "parameter {name}: shape {:?} requested, {:?} exists",
                    shape,
                    var.shape()
                );
            }
            return Ok(var.as_tensor().clone());
        }
        let n = shape.elem_count();
        let mut rng = self.rng.lock().unwrap();
        let values: Vec<f32> = match init {
            Init::Const(c) => vec![c as f32; n],
            Init::Randn { mean, stdev } => {
                let normal = Normal::new(mean, stdev).map_err(candle_core::Error::wrap)?;
                (0..n).map(|_| normal.sample(&mut *rng) as f32).collect()
            }
            Init::Uniform { lo, up } => (0..n).map(|_| rng.random_range(lo..up) as f32).collect(),
            Init::Kaiming { .. } => {
                candle_core::bail!("parameter {name}: adlab models use explicit normal init")
            }
        };
        let tensor = Tensor::from_vec(values, shape, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&tensor)?;
        let out = var.as_tensor().clone();
        self.varmap
            .data()
            .lock()
            .unwrap()
            .insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("parameter {name} must be created with a shape and an init")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap.data().lock().unwrap().contains_key(name)
    }
}

/// A `VarBuilder` (f32, CPU) that creates trainable variables in `varmap`, initialised from `rng`.
pub fn seeded_var_builder(varmap: &VarMap, rng: ChaCha8Rng) -> VarBuilder<'static> {
    let backend = SeededVarMap {
        varmap: varmap.clone(),
        rng: Mutex::new(rng),
    };
    VarBuilder::from_backend(Box::new(backend), DType::F32, Device::Cpu)
}

/// A model's trainable variables, sorted by name: the one order shared by the optimizer state,
/// gradient buffers and checkpoints.
#[derive(Clone)]
pub struct ParamSet {
    pub names: Vec<String>,
    pub vars: Vec<Var>,
}

impl ParamSet {
    pub fn from_varmap(varmap: &VarMap) -> Self {
        let data = varmap.data().lock().unwrap();
        let mut entries: Vec<(String, Var)> =
            data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let (names, vars) = entries.into_iter().unzip();
        Self { names, vars }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Total number of scalar parameters.
    pub fn numel(&self) -> usize {
        self.vars.iter().map(|v| v.elem_count()).sum()
    }

    pub fn get(&self, name: &str) -> Option<&Var> {
        self.names
            .binary_search_by(|n| n.as_str().cmp(name))
            .ok()
            .map(|i| &self.vars[i])
    }

    /// Named tensors (current values) in name order.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        self.names
            .iter()
            .cloned()
            .zip(self.vars.iter().map(|v| v.as_tensor().clone()))
            .collect()
    }

    /// Overwrites every variable from `tensors` (which must hold each name with its shape).
    pub fn load_named(&self, tensors: &HashMap<String, Tensor>, origin: &Path) -> Result<()> {
        for (name, var) in self.names.iter().zip(&self.vars) {
            let t = tensors
                .get(name)
                .with_context(|| format!("{}: missing tensor `{name}`", origin.display()))?;
            set_var(var, t, name, origin)?;
        }
        Ok(())
    }
}

/// Sets a variable's value, checking the shape and converting to f32.
pub fn set_var(var: &Var, value: &Tensor, name: &str, origin: &Path) -> Result<()> {
    if value.dims() != var.dims() {
        bail!(
            "{}: tensor `{name}` has shape {:?}, the model expects {:?}",
            origin.display(),
            value.dims(),
            var.dims()
        );
    }
    var.set(&value.to_dtype(DType::F32)?.contiguous()?)
        .with_context(|| format!("setting `{name}` from {}", origin.display()))
}

/// Serialises f32 tensors to safetensors bytes (written by the caller with `write_atomic`).
pub fn safetensors_bytes(
    tensors: &[(String, Tensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let mut raw: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let values = t
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()
            .with_context(|| format!("reading tensor `{name}`"))?;
        let bytes = values.iter().flat_map(|x| x.to_le_bytes()).collect();
        raw.push((name.clone(), t.dims().to_vec(), bytes));
    }
    let views = raw
        .iter()
        .map(|(name, shape, bytes)| {
            let view = safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                shape.clone(),
                bytes,
            )?;
            Ok((name.clone(), view))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    Ok(safetensors::tensor::serialize(views, metadata)?)
}

/// Reads every tensor of a safetensors file onto the CPU.
pub fn read_safetensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .with_context(|| format!("parsing safetensors file {}", path.display()))
}
