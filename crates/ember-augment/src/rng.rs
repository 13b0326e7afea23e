//! Per-sample random generators.

use rand::rngs::StdRng;
use rand::SeedableRng;

/// The RNG for sample `index` in `epoch` of a run seeded with `seed`.
///
/// The three numbers are mixed with SplitMix64 so neighbouring indices and epochs get
/// unrelated streams.
pub fn sample_rng(seed: u64, epoch: u64, index: u64) -> StdRng {
    let mixed = splitmix64(splitmix64(splitmix64(seed) ^ epoch) ^ index);
    StdRng::seed_from_u64(mixed)
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
