//! `ember augment`: a PNG grid of dataset images (top row) and augmented copies (one row per
//! epoch), to see what a `--ops` pipeline does before training with it.

use anyhow::Context;
use ember_augment::{sample_rng, Pipeline, Transform};
use ember_data::{KnownDataset, Split};
use image::{GrayImage, Luma};

use crate::args::AugmentArgs;

/// Pixels between cells, and their grey level.
const GAP: u32 = 2;
const GAP_GREY: u8 = 96;

pub fn run(args: &AugmentArgs) -> anyhow::Result<()> {
    let pipeline = Pipeline::parse(&args.ops)?;
    let dataset: KnownDataset = args.data.dataset.parse()?;
    let data = crate::data::load_split(dataset, args.data.data_dir.as_deref(), Split::Train)?;
    anyhow::ensure!(args.count > 0, "--count must be at least 1");
    anyhow::ensure!((1..=100).contains(&args.rows), "--rows must be between 1 and 100, got {}", args.rows);
    anyhow::ensure!(args.count <= data.len(), "--count {} exceeds the {} training images", args.count, data.len());
    let originals: Vec<GrayImage> = (0..args.count).map(|i| data.image(i)).collect();
    let mut rows = vec![originals.clone()];
    for epoch in 0..args.rows as u64 {
        let row = originals
            .iter()
            .enumerate()
            .map(|(i, img)| pipeline.apply(img.clone(), &mut sample_rng(args.seed, epoch, i as u64)))
            .collect::<Result<Vec<_>, _>>()?;
        rows.push(row);
    }
    let grid = grid(&rows);
    grid.save(&args.grid).with_context(|| format!("writing {}", args.grid.display()))?;
    println!(
        "wrote {} ({}x{}): {} {} images, then {} rows augmented with `{}` (seed {})",
        args.grid.display(),
        grid.width(),
        grid.height(),
        args.count,
        dataset,
        args.rows,
        pipeline.text(),
        args.seed
    );
    Ok(())
}

/// Rows of images in cells as large as the largest image, separated by `GAP` grey pixels.
fn grid(rows: &[Vec<GrayImage>]) -> GrayImage {
    let all = rows.iter().flatten();
    let cell_w = all.clone().map(|i| i.width()).max().unwrap_or(0);
    let cell_h = all.map(|i| i.height()).max().unwrap_or(0);
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let width = GAP + columns * (cell_w + GAP);
    let height = GAP + rows.len() as u32 * (cell_h + GAP);
    let mut out = GrayImage::from_pixel(width, height, Luma([GAP_GREY]));
    for (r, row) in rows.iter().enumerate() {
        for (c, img) in row.iter().enumerate() {
            let (x, y) = (GAP + c as u32 * (cell_w + GAP), GAP + r as u32 * (cell_h + GAP));
            image::imageops::replace(&mut out, img, x as i64, y as i64);
        }
    }
    out
}
