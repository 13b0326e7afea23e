//! The builder methods that set one field each (`with_fill(fill)` sets `self.fill` and returns
//! the transform), written once for every transform that has them.

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
