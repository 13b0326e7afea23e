//! Sharded loaders follow PyTorch's `DistributedSampler`: one seeded permutation per epoch,
//! padded from its head to a multiple of the world size, rank r taking positions r, r + world, ...

use std::collections::BTreeSet;
use std::sync::Arc;

use candle_core::Device;
use ember_data::{DataLoader, Error, LabelledImages, ShardTail};

/// `n` 2×2 images whose first pixel is the example's index, so a batch tells which examples
/// it holds.
fn indexed(n: usize) -> Arc<LabelledImages> {
    assert!(n <= 256);
    let pixels = (0..n).flat_map(|i| [i as u8, 0, 0, 0]).collect();
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    Arc::new(LabelledImages::new(pixels, labels, 2, 2, 10).unwrap())
}

/// The example indices a loader's batches hold in `epoch`, batch by batch.
fn served(loader: &DataLoader, epoch: u64) -> Vec<Vec<usize>> {
    loader
        .epoch(epoch, &Device::Cpu)
        .map(|b| {
            let images = b.unwrap().images.flatten_from(1).unwrap().to_vec2::<f32>().unwrap();
            images.iter().map(|row| (row[0] * 255.0).round() as usize).collect()
        })
        .collect()
}

fn shards(loader: &DataLoader, world: usize, tail: ShardTail) -> Vec<DataLoader> {
    (0..world).map(|r| loader.shard_with(r, world, tail).unwrap()).collect()
}

#[test]
fn shards_partition_the_epoch_permutation_with_distributed_sampler_positions() {
    let data = indexed(23);
    let full = DataLoader::new(data, 4).with_shuffle(11);
    for world in [1, 2, 3, 4, 5] {
        for epoch in 0..3 {
            let permutation = full.order(epoch);
            let ranks = shards(&full, world, ShardTail::Pad);
            let per_rank = 23usize.div_ceil(world);
            // Rank r serves permutation positions r, r + world, ... (wrapping to the head).
            for (r, shard) in ranks.iter().enumerate() {
                let expected: Vec<usize> = (0..per_rank).map(|k| permutation[(r + k * world) % 23]).collect();
                assert_eq!(shard.order(epoch), expected, "world {world}, rank {r}, epoch {epoch}");
                assert_eq!(shard.len(), per_rank);
                // The batches serve exactly that order.
                assert_eq!(served(shard, epoch).concat(), expected);
                assert_eq!(shard.num_batches(), per_rank.div_ceil(4));
            }
            // Disjoint apart from the padding, and together the whole permutation.
            let padding = per_rank * world - 23;
            let all: Vec<usize> = ranks.iter().flat_map(|s| s.order(epoch)).collect();
            assert_eq!(all.len(), 23 + padding);
            let distinct: BTreeSet<usize> = all.iter().copied().collect();
            assert_eq!(distinct, (0..23).collect(), "world {world}: union must be every example");
            // The repeated examples are the permutation's head, once each.
            let mut counts = std::collections::BTreeMap::new();
            for i in &all {
                *counts.entry(*i).or_insert(0) += 1;
            }
            let twice: BTreeSet<usize> = counts.iter().filter(|(_, &c)| c == 2).map(|(&i, _)| i).collect();
            assert_eq!(twice, permutation[..padding].iter().copied().collect(), "world {world}");
            assert!(counts.values().all(|&c| c <= 2));
        }
    }
}

#[test]
fn padding_wraps_around_when_there_are_fewer_examples_than_ranks() {
    let full = DataLoader::new(indexed(3), 1).with_shuffle(5);
    let permutation = full.order(0);
    let orders: Vec<Vec<usize>> = shards(&full, 7, ShardTail::Pad).iter().map(|s| s.order(0)).collect();
    // torch: indices += (indices * ceil(padding / n))[:padding].
    let expected: Vec<Vec<usize>> = (0..7).map(|r| vec![permutation[r % 3]]).collect();
    assert_eq!(orders, expected);
}

#[test]
fn drop_tail_truncates_and_uneven_tail_sees_every_example_once() {
    let full = DataLoader::new(indexed(23), 4).with_shuffle(2);
    let permutation = full.order(1);
    let dropped = shards(&full, 3, ShardTail::Drop);
    assert!(dropped.iter().all(|s| s.len() == 7 && s.order(1).len() == 7));
    let mut all: Vec<usize> = dropped.iter().flat_map(|s| s.order(1)).collect();
    all.sort();
    let mut head: Vec<usize> = permutation[..21].to_vec();
    head.sort();
    assert_eq!(all, head, "drop keeps the first world·floor(n/world) positions");

    let uneven = shards(&full, 3, ShardTail::Uneven);
    assert_eq!(uneven.iter().map(DataLoader::len).collect::<Vec<_>>(), vec![8, 8, 7]);
    let mut all: Vec<usize> = uneven.iter().flat_map(|s| s.order(1)).collect();
    all.sort();
    assert_eq!(all, (0..23).collect::<Vec<_>>());
    // An uneven shard with nothing to serve is refused by `check`, not served as an empty epoch.
    let tiny = DataLoader::new(indexed(2), 1).shard_with(2, 3, ShardTail::Uneven).unwrap();
    assert!(tiny.is_empty());
    assert!(tiny.check("validation data").is_err());
}

#[test]
fn shards_reshuffle_every_epoch_and_are_deterministic() {
    let full = DataLoader::new(indexed(40), 5).with_shuffle(9).with_workers(2);
    let a = full.shard(1, 4).unwrap();
    let b = DataLoader::new(indexed(40), 5).with_shuffle(9).shard(1, 4).unwrap();
    assert_eq!(served(&a, 0), served(&b, 0), "same seed and epoch, same shard whatever the workers");
    assert_ne!(a.order(0), a.order(1), "a new permutation every epoch");
    assert_ne!(a.order(0), full.with_shuffle(10).shard(1, 4).unwrap().order(0), "the seed matters");
    // Without shuffling, shards are strided slices of the dataset order.
    let plain = DataLoader::new(indexed(10), 2).shard(2, 4).unwrap();
    assert_eq!(plain.order(0), vec![2, 6, 0]);
    assert_eq!(served(&plain, 0), vec![vec![2, 6], vec![0]]);
    // drop_last applies to the shard's batches.
    assert_eq!(plain.clone().with_drop_last(true).num_batches(), 1);
}

#[test]
fn invalid_shards_are_typed_errors() {
    let full = DataLoader::new(indexed(10), 2);
    for (rank, world) in [(0, 0), (2, 2), (5, 3)] {
        let err = full.shard(rank, world).unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err}");
    }
    let once = full.shard(0, 2).unwrap();
    assert!(matches!(once.shard(0, 2), Err(Error::Invalid { .. })), "a shard is not sharded again");
    assert_eq!(once.sharding().map(|s| (s.rank, s.world, s.tail)), Some((0, 2, ShardTail::Pad)));
}
