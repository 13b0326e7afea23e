//! One module per subcommand.

pub mod augment;
pub mod bench;
pub mod checkpoint;
pub mod compare;
pub mod continual;
pub mod data_info;
pub mod eval;
pub mod finetune;
pub mod fusion;
pub mod predict;
pub mod train;
pub mod vae;
pub mod zoo;
