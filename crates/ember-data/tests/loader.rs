//! The data loader: batching, shuffling and augmentation are deterministic in (seed, epoch).

use candle_core::Device;
use ember_augment::RandomCrop;
use ember_data::{DataLoader, LabelledImages};

fn tiny(n: usize) -> LabelledImages {
    let pixels = (0..n * 16).map(|i| (i % 256) as u8).collect();
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    LabelledImages::new(pixels, labels, 4, 4, 10).unwrap()
}

fn labels_of(loader: &DataLoader, epoch: u64) -> Vec<Vec<u32>> {
    loader.epoch(epoch, &Device::Cpu).map(|b| b.unwrap().labels.to_vec1::<u32>().unwrap()).collect()
}

#[test]
fn loader_batches_cover_every_sample_once_per_epoch() {
    let data = tiny(23);
    let loader = DataLoader::new(&data, 5).with_shuffle(1);
    assert_eq!(loader.num_batches(), 5);
    let sizes: Vec<usize> = loader.epoch(0, &Device::Cpu).map(|b| b.unwrap().images.dims()[0]).collect();
    assert_eq!(sizes, vec![5, 5, 5, 5, 3]);
    let mut order = loader.order(0);
    order.sort();
    assert_eq!(order, (0..23).collect::<Vec<_>>());
    assert_eq!(DataLoader::new(&data, 5).with_drop_last(true).num_batches(), 4);
}

#[test]
fn loader_shuffle_depends_only_on_seed_and_epoch() {
    let data = tiny(50);
    let a = DataLoader::new(&data, 8).with_shuffle(7);
    let b = DataLoader::new(&data, 8).with_shuffle(7);
    assert_eq!(labels_of(&a, 3), labels_of(&b, 3));
    assert_ne!(a.order(0), a.order(1));
    assert_ne!(a.order(0), DataLoader::new(&data, 8).with_shuffle(8).order(0));
    assert_eq!(DataLoader::new(&data, 8).order(0), (0..50).collect::<Vec<_>>());
}

#[test]
fn loader_augmentation_replays_exactly_and_scales_pixels_to_unit_range() {
    let data = tiny(12);
    let crop = RandomCrop::new(4, 4).with_padding(1);
    let loader = DataLoader::new(&data, 4).with_shuffle(3).with_transform(&crop);
    let run = |epoch| -> Vec<f32> {
        loader
            .epoch(epoch, &Device::Cpu)
            .flat_map(|b| b.unwrap().images.flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .collect()
    };
    let first = run(0);
    assert_eq!(first, run(0));
    assert_ne!(first, run(1));
    assert!(first.iter().all(|v| (0.0..=1.0).contains(v)));
    // Shifting with zero padding brings in zeros that the plain images do not have at the edges.
    let plain: Vec<f32> = DataLoader::new(&data, 4)
        .epoch(0, &Device::Cpu)
        .flat_map(|b| b.unwrap().images.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .collect();
    assert_ne!(first.iter().filter(|&&v| v == 0.0).count(), plain.iter().filter(|&&v| v == 0.0).count());
}
