//! `ember augment` end to end: the grid PNG has the right size, its top row is the dataset's
//! images, its other rows are augmented and replay from the seed; a bad op is a one-line error.

mod common;

use common::{ember, path_in_tempdir};
use ember_data::{mnist_sample, Split};
use image::GrayImage;

fn cell(grid: &GrayImage, row: u32, col: u32) -> GrayImage {
    image::imageops::crop_imm(grid, 2 + col * 30, 2 + row * 30, 28, 28).to_image()
}

#[test]
fn augment_grid_shows_originals_then_augmented_rows() {
    let (_dir, png) = path_in_tempdir("grid.png");
    let args = [
        "augment",
        "--dataset",
        "mnist-sample",
        "--ops",
        "pad-crop:4,hflip,noise:0.1",
        "--count",
        "6",
        "--rows",
        "3",
        "--seed",
        "3",
        "--grid",
        png.to_str().unwrap(),
    ];
    let out = ember(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("pad-crop:4,hflip,noise:0.1"));
    let grid = image::open(&png).unwrap().to_luma8();
    // Six 28-pixel columns and 1 + 3 rows, 2-pixel gaps around every cell.
    assert_eq!(grid.dimensions(), (2 + 6 * 30, 2 + 4 * 30));
    let train = mnist_sample(Split::Train).unwrap();
    for col in 0..6 {
        let original = train.image(col as usize);
        assert_eq!(cell(&grid, 0, col), original, "column {col}: top row is not the dataset image");
        for row in 1..4 {
            assert_ne!(cell(&grid, row, col), original, "row {row} column {col} is not augmented");
        }
    }
    // Same seed: byte-identical file.
    let first = std::fs::read(&png).unwrap();
    assert!(ember(&args).status.success());
    assert_eq!(std::fs::read(&png).unwrap(), first);
}

#[test]
fn augment_with_a_bad_op_is_a_one_line_error_naming_it() {
    let (_dir, png) = path_in_tempdir("grid.png");
    let out = ember(&["augment", "--ops", "pad-crop:4,wobble", "--grid", png.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: pipeline: bad op `wobble`: unknown op"), "{stderr}");
    assert!(!png.exists());
}
