//! Transfer learning for ember: pretrained weights in, fine-tuned, adapted, fused models out.
//!
//! - **Import** without Python: safetensors and PyTorch files in both the zip layout
//!   (torch >= 1.6) and the legacy pickle layout ([`read_checkpoint`], [`convert_to_safetensors`]).
//!   The pickle reader only knows the globals that rebuild tensors; any other global is refused
//!   before anything runs, so a checkpoint can never execute code
//!   ([`ember_io::Error::RefusedGlobal`]). These live in `ember-io` and are re-exported here.
//! - **Loading** into a zoo model's `ParamStore` ([`load_state`], [`load_weights`]): strict
//!   (all or nothing) or lenient, with a [`LoadReport`] of loaded, missing, unexpected and
//!   shape-mismatched tensors, and [`RenameRule`]s (prefix strip/add, regex, index flattening,
//!   the `timm` preset).
//! - **Transfer**: [`FineTuneModel::pretrained`] replaces the head for a new class count;
//!   [`param_groups`] freezes by glob pattern and sets per-group rates, [`freeze_batch_norms`]
//!   holds frozen layers' batch norms on their running statistics; [`linear_probe`] (optionally
//!   on [`cached_features`]); [`fine_tune`] is fastai's recipe (head first, then everything
//!   with [`discriminative_rates`] and one-cycle).
//! - **LoRA** for `Linear` and `Conv2d` ([`LoraModel`]): rank, alpha, rank dropout, targets by
//!   pattern; only the adapters train; [`LoraModel::merge`]; adapter-only safetensors files.
//! - **Fusion**: [`Ensemble`] (mean, weighted mean, vote) with [`evaluate_ensemble`]'s
//!   per-member metrics; knowledge distillation ([`distillation_loss`], [`Distill`]).
//! - **Continual learning** ([`learn_continually`]): a [`TaskSequence`] of class splits learned
//!   in turn, naive, with rehearsal ([`ReplayBuffer`]), [`Ewc`] or LwF ([`lwf_loss`]), class-
//!   or task-incremental ([`Setting`]), scored as an [`AccuracyMatrix`] (average accuracy,
//!   forgetting).
//!
//! ```
//! use std::path::Path;
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::ModuleT;
//! use ember_finetune::{convert_to_safetensors, inspect, load_state, CheckpointFormat};
//! use ember_finetune::{FineTuneModel, LoadOptions, LoraConfig, LoraModel, RenameRule};
//! use ember_layers::ParamStore;
//! use ember_zoo::ModelOptions;
//!
//! // A checkpoint written by `torch.save(..., _use_new_zipfile_serialization=False)`.
//! let pth = Path::new("../ember-io/tests/fixtures/legacy_state_dict.pth");
//! let (format, tensors) = inspect(pth)?;
//! assert_eq!(format, CheckpointFormat::PytorchLegacy);
//! assert_eq!((tensors[0].name.as_str(), tensors[0].shape.as_slice()), ("conv.weight", &[2, 3, 2, 2][..]));
//! let out = std::env::temp_dir().join("ember-doc-example.safetensors");
//! assert_eq!(convert_to_safetensors(pth, &out)?, tensors.len());
//! # std::fs::remove_file(out).ok();
//!
//! // "Pretrained" 10-class MLP weights, saved from `nn.DataParallel` (keys start `module.`).
//! let donor = ParamStore::new(1, &Device::Cpu);
//! ember_zoo::build_with("mlp", &ModelOptions::mnist(), donor.var_builder(DType::F32))?;
//! let saved: Vec<(String, Tensor)> = donor.state().into_iter().map(|(n, t)| (format!("module.{n}"), t)).collect();
//!
//! // Into a 4-class model: the body loads, the head's shapes differ and are reported.
//! let model = FineTuneModel::scratch("mlp", &ModelOptions::new((1, 28, 28), 4), 0)?;
//! let options = LoadOptions::lenient().with_rule(RenameRule::strip_prefix("module."));
//! let report = load_state(&model.store, saved, &options, "donor")?;
//! assert_eq!((report.loaded.len(), report.mismatched.len()), (4, 2));
//!
//! // LoRA on the hidden layers; the new head trains in full, the rest stays frozen.
//! let cfg = LoraConfig { train_also: vec!["fc3.*".into()], ..LoraConfig::new(4, &["fc1", "fc2"]) };
//! let lora = LoraModel::new(model, cfg)?;
//! assert_eq!(lora.num_trainable(), 4 * (784 + 256) + 4 * (256 + 128) + (128 * 4 + 4));
//! let logits = lora.forward_t(&Tensor::zeros((2, 1, 28, 28), DType::F32, &Device::Cpu)?, false)?;
//! assert_eq!(logits.dims(), &[2, 4]);
//! # Ok::<(), ember_finetune::Error>(())
//! ```
//!
//! `crates/ember-finetune/README.md` has the measured experiments (fine-tuning EfficientNet-Lite0
//! on 100 Fashion-MNIST images per class, LoRA, ensembles and distillation) and their commands.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod continual;
mod distill;
mod ensemble;
mod error;
mod fine_tune;
mod freeze;
mod in_chans;
mod load;
mod lora;
mod preprocess;
mod pretrained;

pub use continual::{
    apply_masks, fisher_diagonal, label_masks, learn_continually, lwf_loss, AccuracyMatrix, ContinualConfig,
    ContinualReport, ContinualStep, Ewc, EwcAnchor, LwfTeacher, Method, ReplayBuffer, Setting, TaskSequence, MASKED,
};
pub use distill::{distillation_loss, soft_target_loss, Distill, DistillConfig};
pub use ember_io::IoError;
/// Checkpoint import and key renaming live in `ember-io` (no training dependency); they are
/// re-exported here under their old paths.
pub use ember_io::{
    convert_to_safetensors, convert_to_safetensors_with, detect_format, inspect, parse_rules, pickle, read_checkpoint,
    read_pytorch, rename, rename_all, CheckpointFormat, RenameRule, TensorInfo, RENAME_PRESETS,
};
/// ImageNet's per-channel statistics (the zoo's, re-exported for `ImagePreprocess` users).
pub use ember_zoo::{IMAGENET_MEAN, IMAGENET_STD};
pub use ensemble::{combine, evaluate_ensemble, Combine, Ensemble, EnsembleReport};
pub use error::{Error, Result};
pub use fine_tune::{
    cached_features, everything_but_head, fine_tune, linear_probe, recalibrate_batch_norms, train_lora,
    train_with_frozen, FineTuneConfig, FineTuneReport, ProbeEpoch,
};
pub use freeze::{discriminative_rates, freeze_batch_norms, matches_any, param_groups};
pub use in_chans::adapt_input_conv;
pub use load::{load_state, load_tree, load_weights, LoadOptions, LoadReport, ShapeMismatch};
pub use lora::{attach_lora, LoraAdapters, LoraConfig, LoraModel};
pub use preprocess::{GreyToRgb, ImagePreprocess, MAX_PREPROCESS_SIDE, MAX_RESIZED_PIXELS};
pub use pretrained::{FineTuneModel, HeadInfo};
