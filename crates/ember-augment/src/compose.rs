//! Combinators: a sequence of transforms, one applied with a probability, one of several.

use rand::rngs::StdRng;
use rand::Rng;

use crate::error::check_probability;
use crate::{Error, Result, Transform};

/// Applies its transforms in order (torchvision's `Compose`).
pub struct Compose<I> {
    steps: Vec<Box<dyn Transform<I>>>,
}

impl<I> Compose<I> {
    /// No steps: the identity.
    pub fn new() -> Self {
        Self { steps: Vec::new() }
    }

    /// Appends `step`.
    pub fn then(mut self, step: impl Transform<I> + 'static) -> Self {
        self.steps.push(Box::new(step));
        self
    }

    /// The number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether there are no steps.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

impl<I> Default for Compose<I> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I> std::fmt::Debug for Compose<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compose").field("steps", &self.steps.len()).finish()
    }
}

impl<I> Transform<I> for Compose<I> {
    fn apply(&self, mut image: I, rng: &mut StdRng) -> Result<I> {
        for step in &self.steps {
            image = step.apply(image, rng)?;
        }
        Ok(image)
    }
}

/// Applies a transform with probability `p` (torchvision's `RandomApply`; wrap a [`Compose`] to
/// gate several). One uniform draw per image.
pub struct RandomApply<I> {
    inner: Box<dyn Transform<I>>,
    p: f64,
}

impl<I> RandomApply<I> {
    /// `inner` with probability `p` in `[0, 1]`.
    pub fn new(inner: impl Transform<I> + 'static, p: f64) -> Result<Self> {
        Ok(Self { inner: Box::new(inner), p: check_probability("random apply", p)? })
    }
}

impl<I> std::fmt::Debug for RandomApply<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RandomApply").field("p", &self.p).finish()
    }
}

impl<I> Transform<I> for RandomApply<I> {
    fn apply(&self, image: I, rng: &mut StdRng) -> Result<I> {
        if rng.random::<f64>() < self.p {
            self.inner.apply(image, rng)
        } else {
            Ok(image)
        }
    }
}

/// Applies one of its transforms, chosen uniformly (torchvision's `RandomChoice`).
pub struct RandomChoice<I> {
    options: Vec<Box<dyn Transform<I>>>,
}

impl<I> RandomChoice<I> {
    /// Chooses among `options`, which must not be empty.
    pub fn new(options: Vec<Box<dyn Transform<I>>>) -> Result<Self> {
        if options.is_empty() {
            return Err(Error::invalid("random choice", "options", 0, "at least one transform"));
        }
        Ok(Self { options })
    }
}

impl<I> std::fmt::Debug for RandomChoice<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RandomChoice").field("options", &self.options.len()).finish()
    }
}

impl<I> Transform<I> for RandomChoice<I> {
    fn apply(&self, image: I, rng: &mut StdRng) -> Result<I> {
        let i = rng.random_range(0..self.options.len());
        self.options[i].apply(image, rng)
    }
}
