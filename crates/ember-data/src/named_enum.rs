//! The enums named on the command line (`--dataset mnist`): parsed from and shown as their
//! names, written once for each.

/// Implements `FromStr` (one of `ALL` by its `name()`, else [`crate::Error::UnknownDataset`]
/// listing every name) and `Display` (the name) for an enum with `ALL` and `name()`.
macro_rules! named_enum {
    ($kind:ty) => {
        impl std::str::FromStr for $kind {
            type Err = $crate::Error;

            fn from_str(s: &str) -> $crate::Result<Self> {
                Self::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| $crate::Error::UnknownDataset {
                    name: s.to_string(),
                    known: Self::ALL.map(|k| k.name()).join(", "),
                })
            }
        }

        impl std::fmt::Display for $kind {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}
pub(crate) use named_enum;
