//! Freezing by name pattern and discriminative learning rates, as optimizer parameter groups.
//!
//! The choice (see `docs/ARCHITECTURE.md`): every parameter stays a `Var` in the `ParamStore`;
//! a frozen parameter is put in a frozen `ParamGroup`, which the optimizer never updates, and the
//! batch norms of frozen layers are held on their running statistics, so a frozen part of the
//! network is bit-identical after training.

use ember_layers::ParamStore;
use ember_optim::{glob_match, GroupOptions, ParamGroup, ParamGroups};
use ember_zoo::Network;

use crate::pretrained::HeadInfo;

/// Whether `name` matches one of the glob `patterns`.
pub fn matches_any(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| glob_match(p, name))
}

/// The store's trainable parameters split into groups: those matching `frozen` in one frozen
/// group, then one group per `(pattern, learning rate)` of `rates` (first match wins), then the
/// rest at the optimizer's rate.
pub fn param_groups(store: &ParamStore, frozen: &[String], rates: &[(String, f64)]) -> Vec<ParamGroup> {
    let mut groups = ParamGroups::new();
    for p in frozen {
        groups = groups.rule(p, GroupOptions::frozen());
    }
    for (p, lr) in rates {
        groups = groups.rule(p, GroupOptions::default().lr(*lr));
    }
    groups.split(store.vars())
}

/// Holds every batch norm whose `weight` matches `frozen` on its running statistics (and
/// releases the others); returns how many are frozen.
pub fn freeze_batch_norms(network: &mut Network, frozen: &[String]) -> usize {
    network.set_batch_norms_frozen(&|bn| matches_any(frozen, &format!("{bn}.weight")))
}

/// Discriminative learning rates in fastai's manner (`slice(lr / ratio, lr)`): the layers before
/// the head, in forward order, are cut into `groups - 1` contiguous groups of about equal size;
/// the head is the last group. Group `i` of `n` gets `lr / ratio^((n - 1 - i) / (n - 1))`, so the
/// first layers learn `ratio` times slower than the head. Returns `("{layer}.*", rate)` rules
/// for [`param_groups`].
pub fn discriminative_rates(
    head: &HeadInfo,
    store: &ParamStore,
    groups: usize,
    lr: f64,
    ratio: f64,
) -> Vec<(String, f64)> {
    let names = store.names();
    let with_params: Vec<&String> = head
        .layers
        .iter()
        .filter(|l| **l != head.head && names.iter().any(|n| n.starts_with(&format!("{l}."))))
        .collect();
    let n = groups.max(2);
    let rate = |i: usize| lr / ratio.powf((n - 1 - i) as f64 / (n - 1) as f64);
    let body = n - 1;
    let mut rules: Vec<(String, f64)> = with_params
        .iter()
        .enumerate()
        .map(|(k, l)| (format!("{l}.*"), rate((k * body / with_params.len().max(1)).min(body - 1))))
        .collect();
    rules.push((head.pattern(), lr));
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discriminative_rates_rise_geometrically_towards_the_head() {
        let store = ParamStore::new(0, &candle_core::Device::Cpu);
        let net =
            ember_zoo::build_with("mlp", &ember_zoo::ModelOptions::mnist(), store.var_builder(candle_core::DType::F32))
                .unwrap();
        let head = HeadInfo::find(&net, (1, 28, 28)).unwrap();
        assert_eq!(head.head, "fc3");
        let rules = discriminative_rates(&head, &store, 3, 1e-2, 100.0);
        let lrs: Vec<(&str, f64)> = rules.iter().map(|(p, lr)| (p.as_str(), *lr)).collect();
        assert_eq!(lrs.len(), 3);
        assert_eq!(lrs[0].0, "fc1.*");
        assert!((lrs[0].1 - 1e-4).abs() < 1e-12, "{lrs:?}");
        assert!((lrs[1].1 - 1e-3).abs() < 1e-12, "{lrs:?}");
        assert_eq!(lrs[2], ("fc3.*", 1e-2));
    }
}
