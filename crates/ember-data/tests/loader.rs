//! The data loader: batching, shuffling and augmentation are deterministic in (seed, epoch).

use std::sync::Arc;

use candle_core::Device;
use ember_augment::RandomCrop;
use ember_data::{DataLoader, LabelledImages};

fn tiny(n: usize) -> Arc<LabelledImages> {
    let pixels = (0..n * 16).map(|i| (i % 256) as u8).collect();
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    Arc::new(LabelledImages::new(pixels, labels, 4, 4, 10).unwrap())
}

fn labels_of(loader: &DataLoader, epoch: u64) -> Vec<Vec<u32>> {
    loader.epoch(epoch, &Device::Cpu).map(|b| b.unwrap().labels.to_vec1::<u32>().unwrap()).collect()
}

#[test]
fn loader_batches_cover_every_sample_once_per_epoch() {
    let data = tiny(23);
    let loader = DataLoader::new(data.clone(), 5).with_shuffle(1);
    assert_eq!(loader.num_batches(), 5);
    let sizes: Vec<usize> = loader.epoch(0, &Device::Cpu).map(|b| b.unwrap().images.dims()[0]).collect();
    assert_eq!(sizes, vec![5, 5, 5, 5, 3]);
    let mut order = loader.order(0);
    order.sort();
    assert_eq!(order, (0..23).collect::<Vec<_>>());
    assert_eq!(DataLoader::new(data.clone(), 5).with_drop_last(true).num_batches(), 4);
}

#[test]
fn loader_shuffle_depends_only_on_seed_and_epoch() {
    let data = tiny(50);
    let a = DataLoader::new(data.clone(), 8).with_shuffle(7);
    let b = DataLoader::new(data.clone(), 8).with_shuffle(7);
    assert_eq!(labels_of(&a, 3), labels_of(&b, 3));
    assert_ne!(a.order(0), a.order(1));
    assert_ne!(a.order(0), DataLoader::new(data.clone(), 8).with_shuffle(8).order(0));
    assert_eq!(DataLoader::new(data.clone(), 8).order(0), (0..50).collect::<Vec<_>>());
}

#[test]
fn loader_augmentation_replays_exactly_and_scales_pixels_to_unit_range() {
    let data = tiny(12);
    let crop = RandomCrop::new(4, 4).with_padding(1);
    let loader = DataLoader::new(data.clone(), 4).with_shuffle(3).with_transform(Arc::new(crop));
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
    let plain: Vec<f32> = DataLoader::new(data.clone(), 4)
        .epoch(0, &Device::Cpu)
        .flat_map(|b| b.unwrap().images.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .collect();
    assert_ne!(first.iter().filter(|&&v| v == 0.0).count(), plain.iter().filter(|&&v| v == 0.0).count());
}

#[test]
fn loader_yields_identical_batches_with_1_2_and_4_workers() {
    let data = tiny(203);
    let crop = Arc::new(RandomCrop::new(4, 4).with_padding(1));
    let run = |workers: usize| -> Vec<(Vec<f32>, Vec<u32>)> {
        let loader = DataLoader::new(data.clone(), 16)
            .with_shuffle(11)
            .with_transform(crop.clone())
            .with_workers(workers)
            .with_prefetch(3);
        loader
            .epoch(2, &Device::Cpu)
            .map(|b| {
                let b = b.unwrap();
                (b.images.flatten_all().unwrap().to_vec1::<f32>().unwrap(), b.labels.to_vec1::<u32>().unwrap())
            })
            .collect()
    };
    let inline = run(0);
    assert_eq!(inline.len(), 13);
    for workers in [1, 2, 4] {
        assert_eq!(run(workers), inline, "{workers} workers");
    }
}

#[test]
fn loader_stops_cleanly_when_dropped_early_and_reports_worker_errors() {
    let data = tiny(100);
    let loader = DataLoader::new(data.clone(), 4).with_workers(2).with_prefetch(2);
    let mut it = loader.epoch(0, &Device::Cpu);
    assert!(it.next().unwrap().is_ok());
    drop(it); // must not hang with workers blocked on full queues

    // A transform that fails on the image size makes the batch an error, and the epoch ends.
    let too_big = Arc::new(RandomCrop::new(9, 9));
    let loader = DataLoader::new(data, 4).with_transform(too_big).with_workers(2);
    let results: Vec<_> = loader.epoch(0, &Device::Cpu).collect();
    assert_eq!(results.len(), 1);
    assert!(results[0].as_ref().unwrap_err().to_string().contains("random crop"));
}

#[test]
fn a_batch_size_of_zero_or_no_data_is_an_error_not_a_silent_default() {
    let zero = DataLoader::new(tiny(8), 0);
    assert!(zero.check("training data").unwrap_err().to_string().contains("batch size 0"));
    let mut epoch = zero.epoch(0, &Device::Cpu);
    assert!(epoch.next().unwrap().is_err(), "a batch size of 0 served a batch");
    assert!(epoch.next().is_none());
    let empty = DataLoader::new(tiny(0), 4);
    assert!(empty.check("test data").unwrap_err().to_string().contains("no examples"));
    let short = DataLoader::new(tiny(3), 4).with_drop_last(true);
    assert!(short.check("training data").is_err());
    assert!(DataLoader::new(tiny(3), 4).check("training data").is_ok());
}
