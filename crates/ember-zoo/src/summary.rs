//! Layer tables (`ember zoo show`) and parameter counts without drawing initial values.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use ember_layers::{Entry, ModuleTree};

use crate::registry::{build_with, ModelOptions};
use crate::Result;

/// One row of a [`Summary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRow {
    /// Layer name: the parameter prefix in the `state_dict` (`layer1.0.conv1`), or a
    /// description for parameterless steps (`relu`, `layer1.0 (add, relu)`).
    pub name: String,
    /// Output shape for one input sample (batch dimension 1 included).
    pub output: Vec<usize>,
    /// Trainable parameters owned directly by this layer.
    pub params: usize,
}

/// A model's layer table, like Keras's `model.summary()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Registry name.
    pub model: String,
    /// Input shape `(1, c, h, w)`.
    pub input: Vec<usize>,
    /// Every layer in forward order.
    pub layers: Vec<LayerRow>,
    /// Trainable parameters of the whole model (the sum of the rows).
    pub total_params: usize,
    /// Buffer elements (batch norm running statistics), not trainable.
    pub buffer_elems: usize,
}

/// A `VarBuilder` backend that records every requested name and shape and hands out constant
/// tensors (the hint's constant, else zeros): building a model through it costs no random
/// draws.
#[derive(Clone, Default)]
struct ShapeRecorder {
    shapes: Arc<Mutex<BTreeMap<String, Shape>>>,
}

impl ShapeRecorder {
    fn shapes(&self) -> BTreeMap<String, Shape> {
        self.shapes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

impl SimpleBackend for ShapeRecorder {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.shapes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(name.to_string(), shape.clone());
        match init {
            candle_nn::Init::Const(c) => Tensor::full(c as f32, shape, dev)?.to_dtype(dtype),
            _ => Tensor::zeros(shape, dtype, dev),
        }
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("shape recorder: `{name}` requested without a shape")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        false
    }
}

/// The most input values (channels x height x width) [`summarize`] runs through a model: the
/// table comes from one real forward pass, whose activations are tens of times its input.
pub const MAX_SUMMARY_INPUT: usize = 3 * 2048 * 2048;

/// Every tensor (parameters and buffers) the model `name` creates with `options`, as
/// `state_dict` name → shape, sorted by name; nothing is initialised.
pub fn state_shapes(name: &str, options: &ModelOptions) -> Result<Vec<(String, Vec<usize>)>> {
    let recorder = ShapeRecorder::default();
    let vb = VarBuilder::from_backend(Box::new(recorder.clone()), DType::F32, Device::Cpu);
    build_with(name, options, vb)?;
    Ok(recorder.shapes().into_iter().map(|(k, s)| (k, s.dims().to_vec())).collect())
}

/// Trainable parameters of the model `name` built with `options` (buffers excluded, told by
/// type through the model's tree), counted without initialising anything.
pub fn count_parameters(name: &str, options: &ModelOptions) -> Result<usize> {
    let vb = VarBuilder::from_backend(Box::new(ShapeRecorder::default()), DType::F32, Device::Cpu);
    let network = build_with(name, options, vb)?;
    Ok(ember_layers::split_state(&network).num_params())
}

/// The layer table of the model `name` built with `options`: one eval-mode forward pass of a
/// zero image of shape `(1, c, h, w)` through constant weights, recording each layer's output
/// shape and parameters.
pub fn summarize(name: &str, options: &ModelOptions) -> Result<Summary> {
    let (c, h, w) = options.input;
    let elements = c.saturating_mul(h).saturating_mul(w);
    if elements > MAX_SUMMARY_INPUT {
        return Err(crate::Error::BadOptions {
            name: name.to_string(),
            reason: format!(
                "a summary runs one {c}x{h}x{w} image ({elements} values) through the model; the limit is \
                 {MAX_SUMMARY_INPUT} values (e.g. 3x2048x2048), as its activations would need many times that"
            ),
        });
    }
    let vb = VarBuilder::from_backend(Box::new(ShapeRecorder::default()), DType::F32, Device::Cpu);
    let network = build_with(name, options, vb)?;
    let input = Tensor::zeros((1, c, h, w), DType::F32, &Device::Cpu)?;
    let mut rows: Vec<(String, Vec<usize>)> = Vec::new();
    network.forward_tapped(&input, false, &mut |layer, t| rows.push((layer.to_string(), t.dims().to_vec())))?;

    // Parameters and buffers from the model's tree (a buffer is a type there, not a name).
    let mut by_owner: BTreeMap<String, usize> = BTreeMap::new();
    let (mut total_params, mut buffer_elems) = (0, 0);
    network.visit(&mut |path, entry| match entry {
        Entry::Param(p) => {
            let n = p.tensor().elem_count();
            total_params += n;
            let owner = path.rsplit_once('.').map_or("", |(owner, _)| owner);
            *by_owner.entry(owner.to_string()).or_default() += n;
        }
        Entry::Buffer(b) => buffer_elems += b.tensor().elem_count(),
        Entry::Layer(_) => {}
    });
    let mut layers = Vec::with_capacity(rows.len());
    for (layer, output) in rows {
        // A layer appearing twice (a shared module) is only charged once.
        let params = by_owner.remove(layer.as_str()).unwrap_or(0);
        layers.push(LayerRow { name: layer, output, params });
    }
    if let Some((owner, _)) = by_owner.iter().find(|(_, n)| **n > 0) {
        // Parameters no layer reported: the table would not add up.
        return Err(candle_core::Error::Msg(format!(
            "summary of `{name}`: parameters under `{owner}` belong to no reported layer"
        ))
        .into());
    }
    Ok(Summary { model: name.to_string(), input: vec![1, c, h, w], layers, total_params, buffer_elems })
}
