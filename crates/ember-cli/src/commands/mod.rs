//! One module per subcommand.

pub mod augment;
pub mod eval;
pub mod train;
