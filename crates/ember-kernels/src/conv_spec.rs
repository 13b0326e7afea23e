//! What a forward convolution applies to every image, bundled so the GEMM, depthwise and
//! pooled forward passes (and their per-image steps) take it as one argument.

use crate::activation::FusedActivation;
use crate::conv_geometry::ConvGeometry;

/// The weight, the bias, the fused activation and the sizes of one forward convolution. Only
/// references and a flag: passed by value, it costs what the four arguments did.
#[derive(Clone, Copy)]
pub(crate) struct ConvSpec<'a, T> {
    /// `(o, c / groups, kh, kw)`, contiguous.
    pub weight: &'a [T],
    /// `(o,)`, when the convolution has one.
    pub bias: Option<&'a [T]>,
    /// Applied to every output before it is written.
    pub act: FusedActivation,
    /// The sizes.
    pub g: &'a ConvGeometry,
}
