//! PNG plots a person can look at: learning curves and the confusion matrix.
//!
//! Drawn with `plotters`; text uses the bundled DejaVu Sans font (see
//! `assets/fonts/LICENSE-DejaVu.txt`), so no system font is needed.

use std::path::Path;

use plotters::prelude::*;

use crate::{ConfusionMatrix, EpochReport, Error, Result};

static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Registration fails only for an invalid font, which the bundled one is not.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Plot { path: path.to_path_buf(), detail: e.to_string() }
}

/// Dark, distinct colours for the curves of [`comparison_rgb`] that stay readable on white (a
/// palette's yellow does not).
const COLOURS: [RGBColor; 7] = [
    RGBColor(31, 90, 200),
    RGBColor(215, 40, 40),
    RGBColor(20, 140, 60),
    RGBColor(230, 120, 0),
    RGBColor(130, 40, 170),
    RGBColor(0, 140, 150),
    RGBColor(60, 60, 60),
];

/// One curve of a [`line_chart`]: its legend label, `(epoch, value)` points and colour.
type Curve<'a> = (&'a str, &'a [(f64, f64)], RGBColor);

/// Draws `curves` on `area` as lines with a dot per point: epochs from 1 on the x axis, the y
/// range fitted to the values, `caption` above and a legend. Both plots of per-epoch metrics
/// (one run's learning curves, several runs compared) are made of these.
fn line_chart(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    curves: &[Curve<'_>],
    err: &dyn Fn(&dyn std::fmt::Display) -> Error,
) -> Result<()> {
    let points = curves.iter().flat_map(|c| c.1.iter());
    let (lo, hi, last) = points
        .fold((f64::INFINITY, f64::NEG_INFINITY, 1f64), |(lo, hi, last), &(x, y)| (lo.min(y), hi.max(y), last.max(x)));
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(1f64..last.max(2.0), (lo - pad)..(hi + pad))
        .map_err(|e| err(&e))?;
    chart.configure_mesh().x_desc("epoch").label_style(("sans-serif", 13)).draw().map_err(|e| err(&e))?;
    for &(label, data, color) in curves.iter().filter(|c| !c.1.is_empty()) {
        chart
            .draw_series(LineSeries::new(data.to_vec(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        chart.draw_series(data.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|e| err(&e))?;
    Ok(())
}

/// Renders the learning curves (loss and accuracy per epoch, train and validation) as an RGB
/// buffer of `width x height`.
pub fn learning_curves_rgb(history: &[EpochReport], width: u32, height: u32) -> Result<Vec<u8>> {
    register_font();
    let mut buf = vec![255u8; (width * height * 3) as usize];
    let err = |e: &dyn std::fmt::Display| plot_err(Path::new("learning curves"), e);
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let (left, right) = root.split_horizontally(width / 2);
        let series = |f: fn(&EpochReport) -> Option<f64>| {
            history.iter().filter_map(move |r| f(r).map(|v| (r.epoch as f64, v))).collect::<Vec<_>>()
        };
        let (train_loss, val_loss) = (series(|r| Some(r.train_loss)), series(|r| r.val_loss));
        let (train_acc, val_acc) = (series(|r| Some(r.train_accuracy)), series(|r| r.val_accuracy));
        line_chart(&left, "loss", &[("train", &train_loss, BLUE), ("validation", &val_loss, RED)], &err)?;
        line_chart(&right, "accuracy", &[("train", &train_acc, BLUE), ("validation", &val_acc, RED)], &err)?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(buf)
}

/// Renders one metric of several runs as one curve per run (`(epoch, value)` points, labelled
/// with the run's name) on one chart: the optimizer or regularisation comparisons.
pub fn comparison_rgb(metric: &str, runs: &[(String, Vec<(f64, f64)>)], width: u32, height: u32) -> Result<Vec<u8>> {
    register_font();
    let mut buf = vec![255u8; (width * height * 3) as usize];
    let err = |e: &dyn std::fmt::Display| plot_err(Path::new("comparison"), e);
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let curves: Vec<Curve<'_>> = runs
            .iter()
            .enumerate()
            .map(|(i, (name, points))| (name.as_str(), points.as_slice(), COLOURS[i % COLOURS.len()]))
            .collect();
        line_chart(&root, metric, &curves, &err)?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(buf)
}

/// Renders the confusion matrix (rows: true class, columns: predicted; cell shade by row
/// fraction, counts written in) as an RGB buffer of `size x size`.
pub fn confusion_matrix_rgb(m: &ConfusionMatrix, names: &[String], size: u32) -> Result<Vec<u8>> {
    register_font();
    let mut buf = vec![255u8; (size * size * 3) as usize];
    let err = |e: &dyn std::fmt::Display| plot_err(Path::new("confusion matrix"), e);
    {
        let root = BitMapBackend::with_buffer(&mut buf, (size, size)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let n = m.classes().max(1);
        let nf = n as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("confusion matrix (accuracy {:.2} %)", m.accuracy() * 100.0), ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..nf, 0f64..nf)
            .map_err(|e| err(&e))?;
        // Ticks every half cell; only the cell centres get a class name.
        let centre = |v: f64| -> Option<usize> {
            let k = (v - 0.5).round();
            ((v - 0.5 - k).abs() < 1e-6 && k >= 0.0 && k < nf).then_some(k as usize)
        };
        let name = |i: usize| names.get(i).cloned().unwrap_or_else(|| i.to_string());
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("predicted")
            .y_desc("true")
            .x_labels(2 * n + 1)
            .y_labels(2 * n + 1)
            .x_label_formatter(&|v| centre(*v).map(name).unwrap_or_default())
            .y_label_formatter(&|v| centre(*v).map(|i| name(n - 1 - i)).unwrap_or_default())
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(|e| err(&e))?;
        let rows = m.rows();
        let font = (12.0 * 10.0 / nf.max(10.0)).max(7.0);
        for (t, row) in rows.iter().enumerate() {
            let total: u64 = row.iter().sum::<u64>().max(1);
            for (p, &count) in row.iter().enumerate() {
                let frac = count as f64 / total as f64;
                let shade = (255.0 * (1.0 - frac)) as u8;
                let (x, y) = (p as f64, (n - 1 - t) as f64);
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x, y), (x + 1.0, y + 1.0)],
                        RGBColor(shade, shade, 255).filled(),
                    )))
                    .map_err(|e| err(&e))?;
                let color = if frac > 0.5 { WHITE } else { BLACK };
                let text = count.to_string();
                let dx = 0.5 - 0.06 * text.len() as f64;
                chart
                    .draw_series(std::iter::once(Text::new(
                        text,
                        (x + dx, y + 0.62),
                        ("sans-serif", font).into_font().color(&color),
                    )))
                    .map_err(|e| err(&e))?;
            }
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(buf)
}

/// Encodes an RGB buffer as PNG bytes.
pub fn png_bytes(rgb: Vec<u8>, width: u32, height: u32) -> Result<Vec<u8>> {
    let img = image::RgbImage::from_raw(width, height, rgb).ok_or_else(|| plot_err(Path::new("png"), "buffer size"))?;
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).map_err(|e| plot_err(Path::new("png"), e))?;
    Ok(out.into_inner())
}

/// Writes PNG bytes to `path` atomically.
pub fn write_png(path: &Path, png: &[u8]) -> Result<()> {
    crate::checkpoint::write_atomically(path, |tmp| {
        std::fs::write(tmp, png).map_err(|source| Error::Io(ember_io::IoError { path: tmp.to_path_buf(), source }))
    })
}
