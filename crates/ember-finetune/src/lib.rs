//! Transfer learning for ember: pretrained weights in, fine-tuned models out.
//!
//! Today this crate reads checkpoints without Python: safetensors and PyTorch files in both the
//! zip layout (torch >= 1.6) and the legacy pickle layout, with nested `{"state_dict": ...}`
//! dictionaries, f32/f64/f16/bf16/i64/i32 tensors and non-contiguous views. The pickle reader
//! only knows the globals that rebuild tensors; any other global is refused before anything
//! runs, so a checkpoint can never execute code ([`Error::RefusedGlobal`]).
//!
//! ```
//! use std::path::Path;
//! use ember_finetune::{convert_to_safetensors, inspect, CheckpointFormat};
//!
//! // A checkpoint written by `torch.save(..., _use_new_zipfile_serialization=False)`.
//! let pth = Path::new("tests/fixtures/legacy_state_dict.pth");
//! let (format, tensors) = inspect(pth)?;
//! assert_eq!(format, CheckpointFormat::PytorchLegacy);
//! assert_eq!((tensors[0].name.as_str(), tensors[0].shape.as_slice()), ("conv.weight", &[2, 3, 2, 2][..]));
//!
//! let out = std::env::temp_dir().join("ember-doc-example.safetensors");
//! assert_eq!(convert_to_safetensors(pth, &out)?, tensors.len());
//! # std::fs::remove_file(out).ok();
//! # Ok::<(), ember_finetune::Error>(())
//! ```
//!
//! Still to come here: strict and lenient loading into zoo models with key renaming, head
//! replacement, freezing, discriminative learning rates, LoRA, ensembles and distillation.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod checkpoint_file;
mod distill;
mod ensemble;
mod error;
mod fine_tune;
mod freeze;
mod load;
mod lora;
pub mod pickle;
mod preprocess;
mod pretrained;
mod pytorch;
mod rename;

pub use checkpoint_file::{
    convert_to_safetensors, detect_format, inspect, read_checkpoint, CheckpointFormat, TensorInfo,
};
pub use distill::{distillation_loss, Distill, DistillConfig};
pub use ensemble::{combine, evaluate_ensemble, Combine, Ensemble, EnsembleReport};
pub use error::{Error, Result};
pub use fine_tune::{
    cached_features, everything_but_head, fine_tune, linear_probe, train_with_frozen, FineTuneConfig, FineTuneReport,
    ProbeEpoch,
};
pub use freeze::{discriminative_rates, freeze_batch_norms, matches_any, param_groups};
pub use load::{load_state, load_weights, LoadOptions, LoadReport, ShapeMismatch};
pub use lora::{LoraConfig, LoraModel};
pub use preprocess::{GreyToRgb, ImagePreprocess};
pub use pretrained::{input_affine_for, FineTuneModel, HeadInfo};
pub use rename::{rename, RenameRule};
