//! Transfer learning, parameter-efficient fine-tuning and model fusion for ember.
//!
//! This crate will hold: importing pretrained weights (safetensors and PyTorch checkpoints,
//! without Python), loading them into zoo models strictly or leniently, replacing classifier
//! heads, freezing by name pattern, discriminative learning rates, LoRA adapters, ensembles and
//! knowledge distillation. It is empty for now; see `docs/ARCHITECTURE.md` for where it sits.
