//! What a checkpoint needs to be used on its own: the model, its input, its class names and its
//! preprocessing, stored as string metadata in the safetensors header.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::{Error, Preprocessing, Result, MAX_CLASSES, MAX_INPUT_CHANNELS, MAX_INPUT_SIDE};

/// The metadata key holding a [`ModelCard`] as JSON.
pub const MODEL_CARD_KEY: &str = "ember.model_card";

/// Everything `eval`, `predict`, `finetune` and `ensemble` need to rebuild a model from its
/// checkpoint alone: which zoo model, for which input, with which class names, fed how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// Zoo name (`resnet18`).
    pub model: String,
    /// Input `(channels, height, width)` the model was built for.
    pub input: (usize, usize, usize),
    /// Class names in label order (their count is the head's size).
    pub class_names: Vec<String>,
    /// Normalisation, crop fraction and resampling of its inputs.
    pub preprocessing: Preprocessing,
    /// Whether the model was built with batch norm (`false` only for a `vgg-small` built
    /// without it, which has other parameters); absent in older cards, which mean `true`.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub batch_norm: bool,
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

impl ModelCard {
    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.class_names.len()
    }

    /// Build options that rebuild the model the card describes (dropout is irrelevant to the
    /// parameters, so the model's own is used).
    pub fn options(&self) -> crate::ModelOptions {
        crate::ModelOptions { batch_norm: self.batch_norm, ..crate::ModelOptions::new(self.input, self.classes()) }
    }

    /// The card as safetensors metadata (one JSON entry under [`MODEL_CARD_KEY`]).
    pub fn to_metadata(&self) -> HashMap<String, String> {
        // Serialising plain strings and numbers cannot fail.
        let json = serde_json::to_string(self).unwrap_or_default();
        [(MODEL_CARD_KEY.to_string(), json)].into()
    }

    /// The card in `metadata`, if there is one; `origin` (the file) names it in errors. Every
    /// value is checked (known model, bounded input and class count, usable preprocessing),
    /// since the file may come from anywhere.
    pub fn from_metadata(metadata: &HashMap<String, String>, origin: &str) -> Result<Option<Self>> {
        let Some(text) = metadata.get(MODEL_CARD_KEY) else { return Ok(None) };
        let bad = |reason: String| Error::BadOptions { name: origin.to_string(), reason };
        let card: Self = serde_json::from_str(text).map_err(|e| bad(format!("unreadable model card: {e}")))?;
        crate::info(&card.model)?;
        let (c, h, w) = card.input;
        if c == 0 || c > MAX_INPUT_CHANNELS || h == 0 || w == 0 || h > MAX_INPUT_SIDE || w > MAX_INPUT_SIDE {
            return Err(bad(format!("model card input {c}x{h}x{w} is outside the zoo's limits")));
        }
        if card.class_names.is_empty() || card.class_names.len() > MAX_CLASSES {
            return Err(bad(format!("model card has {} class names (1..={MAX_CLASSES})", card.class_names.len())));
        }
        card.preprocessing.validate().map_err(|e| bad(format!("model card preprocessing: {e}")))?;
        Ok(Some(card))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_bad_values() {
        let card = ModelCard {
            model: "resnet18".into(),
            input: (3, 224, 224),
            class_names: vec!["cat".into(), "dog".into()],
            preprocessing: Preprocessing::IMAGENET,
            batch_norm: true,
        };
        let meta = card.to_metadata();
        assert_eq!(ModelCard::from_metadata(&meta, "f").unwrap(), Some(card.clone()));
        assert_eq!(ModelCard::from_metadata(&HashMap::new(), "f").unwrap(), None);
        let bad = ModelCard { input: (3, 0, 224), ..card.clone() };
        assert!(ModelCard::from_metadata(&bad.to_metadata(), "f").is_err());
        let bad = ModelCard { model: "nope".into(), ..card.clone() };
        assert!(ModelCard::from_metadata(&bad.to_metadata(), "f").is_err());
        // A card without BN rebuilds without BN; older cards (no field) mean with BN.
        let no_bn = ModelCard { model: "vgg-small".into(), batch_norm: false, ..card.clone() };
        let back = ModelCard::from_metadata(&no_bn.to_metadata(), "f").unwrap().unwrap();
        assert!(!back.options().batch_norm && back.options().classes == 2);
        let old = r#"{"model":"resnet18","input":[3,224,224],"class_names":["a","b"],"preprocessing":{"mean":[0.5,0.5,0.5],"std":[0.5,0.5,0.5],"crop_pct":0.875,"interpolation":"bilinear"}}"#;
        let old =
            ModelCard::from_metadata(&[(MODEL_CARD_KEY.to_string(), old.to_string())].into(), "f").unwrap().unwrap();
        assert!(old.batch_norm && old.options().batch_norm);
        assert!(!card.to_metadata()[MODEL_CARD_KEY].contains("batch_norm"), "the default is not written");
        let bad = ModelCard { class_names: vec![], ..card };
        let err = ModelCard::from_metadata(&bad.to_metadata(), "ckpt.safetensors").unwrap_err().to_string();
        assert!(err.contains("ckpt.safetensors") && err.contains("class names"), "{err}");
    }
}
