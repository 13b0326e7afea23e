//! The builder methods that set one field each (`with_fill(fill)` sets `self.fill` and returns
//! the transform; `with_scale(low, high)` checks and sets the range `self.scale`), written once
//! for every transform that has them.

/// Expands each `with_x(x: T);` (after its doc comment) to
/// `pub fn with_x(mut self, x: T) -> Self { self.x = x; self }`, inside an `impl` block.
macro_rules! field_setters {
    ($($(#[$doc:meta])* $setter:ident($field:ident: $ty:ty);)+) => {
        $(
            $(#[$doc])*
            pub fn $setter(mut self, $field: $ty) -> Self {
                self.$field = $field;
                self
            }
        )+
    };
}
pub(crate) use field_setters;

/// Expands each `with_x(x);` (after its doc comment) to `pub fn with_x(mut self, low: f64,
/// high: f64) -> Result<Self>` that sets the range `self.x` after `check_range` (finite,
/// `0 < low <= high`; the error names `$transform` and `x`), inside an `impl` block.
macro_rules! positive_range_setters {
    ($transform:literal; $($(#[$doc:meta])* $setter:ident($field:ident);)+) => {
        $(
            $(#[$doc])*
            pub fn $setter(mut self, low: f64, high: f64) -> $crate::Result<Self> {
                self.$field = $crate::error::check_range($transform, stringify!($field), (low, high), f64::MIN_POSITIVE)?;
                Ok(self)
            }
        )+
    };
}
pub(crate) use positive_range_setters;
