//! What every zoo model is: a `ModuleT` whose forward pass can report each layer's output, and
//! whose layers, parameters and buffers can be walked ([`ModuleTree`]).

use candle_core::{Result, Tensor};
use candle_nn::ModuleT;
use ember_kernels::FusedActivation;
use ember_layers::{BatchNorm, Conv2d, EntryMut, LayerKind, ModuleTree};

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

    /// Whether [`Layered::forward_tapped`] reports every layer (true for every zoo model).
    fn reports_layers(&self) -> bool {
        true
    }
}

/// Implements candle's `ModuleT` for [`Layered`] models that are used on their own too (not
/// only inside a [`Network`]): the tapped forward pass with nothing listening.
macro_rules! module_t_untapped {
    ($model:ty) => {
        impl candle_nn::ModuleT for $model {
            fn forward_t(&self, xs: &candle_core::Tensor, train: bool) -> candle_core::Result<candle_core::Tensor> {
                $crate::Layered::forward_tapped(self, xs, train, &mut |_, _| {})
            }
        }
    };
}
pub(crate) use module_t_untapped;

/// Reports `xs` as the output of `name` and hands it back (for chaining).
pub(crate) fn tapped(tap: Tap<'_>, name: &str, xs: Tensor) -> Tensor {
    tap(name, &xs);
    xs
}

/// `act(bn(conv(xs)))`, reporting the convolution's output under `names[0]` and the result
/// under every other name (the batch norm's, the activation's). Where the batch norm uses its
/// running statistics (evaluation, frozen), it is folded into the convolution and the whole is
/// one op, whose output every name reports; otherwise the batch norm and the activation run as
/// one op after the convolution. Gradients reach every parameter either way.
pub(crate) fn conv_bn(
    conv: &Conv2d,
    bn: &BatchNorm,
    xs: &Tensor,
    act: FusedActivation,
    train: bool,
    names: &[&str],
    tap: Tap<'_>,
) -> Result<Tensor> {
    let (first, rest) = names.split_first().map_or(("", &[][..]), |(f, r)| (*f, r));
    let y = if bn.uses_running_statistics(train) {
        let y = conv.forward_with_batch_norm_t(xs, bn, act, train)?;
        tapped(tap, first, y)
    } else {
        let y = tapped(tap, first, xs.apply(conv)?);
        bn.forward_t_with_activation(&y, train, act)?
    };
    for name in rest {
        tap(name, &y);
    }
    Ok(y)
}

/// A model built by the registry: any [`Layered`] network, used as a candle `ModuleT`. Its tree
/// is the wrapped model's (the network adds nothing to it).
#[derive(ModuleTree)]
pub struct Network {
    #[module(skip)]
    name: String,
    #[module(transparent)]
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

    /// A network from any model that is a `ModuleT` and a [`ModuleTree`] (one written with
    /// `#[derive(ModuleTree)]`): everything that walks the tree (summaries, freezing, loading,
    /// LoRA, fine-tuning) works on it. Its forward pass reports only its output, as `output`, to
    /// a tap: code that needs the layers' order reads it from the tree instead.
    pub fn from_module(name: impl Into<String>, model: impl ModuleT + ModuleTree + Send + Sync + 'static) -> Self {
        Self::new(name, Untapped(model))
    }

    /// Freezes (`true`) or unfreezes every batch norm whose path `frozen` accepts or rejects,
    /// found through the model tree; returns how many are frozen now.
    pub fn set_batch_norms_frozen(&mut self, frozen: &dyn Fn(&str) -> bool) -> usize {
        let mut count = 0;
        self.inner.visit_mut(&mut |path, entry| {
            if let EntryMut::Layer(LayerKind::BatchNorm, Some(layer)) = entry {
                if let Some(bn) = layer.downcast_mut::<BatchNorm>() {
                    let f = frozen(path);
                    bn.set_frozen(f);
                    count += usize::from(f);
                }
            }
        });
        count
    }

    /// Whether the forward pass reports its layers to a tap (every zoo model does; one made by
    /// [`Network::from_module`] does not).
    pub fn reports_layers(&self) -> bool {
        self.inner.reports_layers()
    }

    /// See [`Layered::forward_tapped`].
    pub fn forward_tapped(&self, xs: &Tensor, train: bool, tap: Tap<'_>) -> Result<Tensor> {
        self.inner.forward_tapped(xs, train, tap)
    }
}

impl ModuleT for Network {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.inner.forward_tapped(xs, train, &mut |_, _| {})
    }
}

/// A user's model as a [`Layered`] network: its output is the only thing it reports.
#[derive(ModuleTree)]
struct Untapped<M>(#[module(transparent)] M);

impl<M: ModuleT + ModuleTree + Send + Sync> Layered for Untapped<M> {
    fn forward_tapped(&self, xs: &Tensor, train: bool, tap: Tap<'_>) -> Result<Tensor> {
        Ok(tapped(tap, "output", self.0.forward_t(xs, train)?))
    }

    fn reports_layers(&self) -> bool {
        false
    }
}
