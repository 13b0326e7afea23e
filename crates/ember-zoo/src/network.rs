//! What every zoo model is: a `ModuleT` whose forward pass can report each layer's output, and
//! whose layers, parameters and buffers can be walked ([`ModuleTree`]).

use candle_core::{Result, Tensor};
use candle_nn::ModuleT;
use ember_layers::{BatchNorm, Entry, EntryMut, ModulePath, ModuleTree};

/// Sees `(layer name, layer output)` as a forward pass runs; what `ember zoo show` uses to list
/// output shapes.
pub type Tap<'a> = &'a mut dyn FnMut(&str, &Tensor);

/// A network whose forward pass reports every layer's output to a [`Tap`].
///
/// Layer names are the parameter prefixes of PyTorch's `state_dict` (`conv1`, `layer1.0.bn2`,
/// `_blocks.3._depthwise_conv`); parameterless steps get the name PyTorch's module would have
/// (`relu`, `maxpool`, `avgpool`) or a descriptive one.
///
/// Every zoo model is also a [`ModuleTree`] whose paths are the `state_dict` keys.
pub trait Layered: ModuleTree + Send + Sync {
    /// The forward pass in train (`true`) or eval mode, reporting each layer's output to `tap`.
    fn forward_tapped(&self, xs: &Tensor, train: bool, tap: Tap<'_>) -> Result<Tensor>;

    /// The network's batch-norm layers under their parameter prefixes (`_blocks.3._bn1`), so
    /// fine-tuning can hold some of them on their running statistics
    /// ([`BatchNorm::set_frozen`]). Models without batch norm keep the empty default.
    fn batch_norms_mut(&mut self) -> Vec<(String, &mut BatchNorm)> {
        Vec::new()
    }
}

/// Reports `xs` as the output of `name` and hands it back (for chaining).
pub(crate) fn tapped(tap: Tap<'_>, name: &str, xs: Tensor) -> Tensor {
    tap(name, &xs);
    xs
}

/// A model built by the registry: any [`Layered`] network, used as a candle `ModuleT`.
pub struct Network {
    name: String,
    inner: Box<dyn Layered>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network").field("name", &self.name).finish()
    }
}

impl Network {
    /// Wraps `inner` under the registry `name`.
    pub fn new(name: impl Into<String>, inner: impl Layered + 'static) -> Self {
        Self { name: name.into(), inner: Box::new(inner) }
    }

    /// The registry name the network was built under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Freezes (`true`) or unfreezes every batch norm whose prefix `frozen` accepts or rejects
    /// ([`Layered::batch_norms_mut`]); returns how many are frozen now.
    pub fn set_batch_norms_frozen(&mut self, frozen: &dyn Fn(&str) -> bool) -> usize {
        let mut count = 0;
        for (name, bn) in self.inner.batch_norms_mut() {
            let f = frozen(&name);
            bn.set_frozen(f);
            count += usize::from(f);
        }
        count
    }

    /// See [`Layered::forward_tapped`].
    pub fn forward_tapped(&self, xs: &Tensor, train: bool, tap: Tap<'_>) -> Result<Tensor> {
        self.inner.forward_tapped(xs, train, tap)
    }
}

/// The wrapped model's tree (the network adds nothing to it).
impl ModuleTree for Network {
    fn visit_at<'a>(&'a self, path: &mut ModulePath, f: &mut dyn FnMut(&str, Entry<'a>)) {
        self.inner.visit_at(path, f);
    }

    fn visit_mut_at(&mut self, path: &mut ModulePath, f: &mut dyn FnMut(&str, EntryMut<'_>)) {
        self.inner.visit_mut_at(path, f);
    }
}

impl ModuleT for Network {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.inner.forward_tapped(xs, train, &mut |_, _| {})
    }
}
