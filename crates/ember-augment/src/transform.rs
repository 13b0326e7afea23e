//! The transform trait.

use rand::rngs::StdRng;

use crate::Result;

/// One augmentation step on images of type `I`. The RNG is an argument, so
/// `(seed, epoch, index)` replays a sample exactly, whatever the number of loader threads.
pub trait Transform<I>: Send + Sync {
    /// Transforms `image`, drawing any randomness from `rng`.
    fn apply(&self, image: I, rng: &mut StdRng) -> Result<I>;
}
