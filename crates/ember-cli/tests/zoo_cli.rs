//! `ember zoo`, `ember train --model` for the zoo's classifiers, and `ember vae` end to end.

mod common;

use std::path::Path;

use common::{ember, ember_into, last_json, ok, path_in_tempdir};
use serde_json::Value;

fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[1..4], b"PNG", "{} is not a PNG", path.display());
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn zoo_list_shows_every_model_with_its_size_input_task_and_weights() {
    let stdout = ok(&ember(&["zoo", "list", "--json"]));
    let models = last_json(&stdout)["models"].as_array().unwrap().clone();
    let find = |name: &str| models.iter().find(|m| m["name"] == name).unwrap().clone();
    assert_eq!(find("resnet18")["parameters"], 11_689_512);
    assert_eq!(find("resnet50")["parameters"], 25_557_032);
    assert_eq!(find("efficientnet-lite0")["parameters"], 4_652_008);
    assert_eq!(find("mnist-cnn")["parameters"], 225_034);
    assert_eq!(find("resnet18")["input"], serde_json::json!([3, 224, 224]));
    assert_eq!(find("vae-mlp")["task"], "generation");
    assert!(find("efficientnet-lite0")["pretrained"].is_string());
    assert!(find("lenet5")["pretrained"].is_null());
    for name in
        ["mlp", "lenet5", "vgg-small", "resnet34", "efficientnet-lite4", "lstm", "bilstm", "gru", "bigru", "vae-conv"]
    {
        assert!(stdout.lines().any(|l| l.starts_with(name)), "{name} missing from:\n{stdout}");
    }
    assert!(stdout.contains("11,689,512"), "{stdout}");
}

#[test]
fn zoo_show_resnet18_lists_every_layer_for_a_224px_input() {
    let stdout = ok(&ember(&["zoo", "show", "resnet18", "--json"]));
    for row in [
        "conv1 ",
        "(1, 64, 112, 112)",
        "maxpool",
        "layer1.0.conv1",
        "layer2.0.downsample.0",
        "layer4.1.bn2",
        "(1, 512, 7, 7)",
        "fc ",
        "(1, 1000)",
        "total parameters: 11,689,512",
    ] {
        assert!(stdout.contains(row), "`{row}` missing from:\n{stdout}");
    }
    let table = last_json(&stdout);
    let layers = table["layers"].as_array().unwrap();
    let sum: u64 = layers.iter().map(|l| l["params"].as_u64().unwrap()).sum();
    assert_eq!(sum, 11_689_512);
    assert_eq!(table["total_params"], 11_689_512);
    // conv1, bn1, relu, maxpool, 8 blocks, avgpool, flatten, fc: far more than 40 rows.
    assert!(layers.len() > 60, "{} rows", layers.len());

    let small = last_json(&ok(&ember(&["zoo", "show", "resnet18", "--input", "1x28x28", "--classes", "10", "--json"])));
    assert_eq!(small["layers"][0]["output"], serde_json::json!([1, 64, 28, 28]));
}

#[test]
fn zoo_show_names_the_known_models_for_an_unknown_one() {
    let out = ember(&["zoo", "show", "resnet9000"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("resnet9000") && stderr.contains("efficientnet-lite0"),
        "{stderr}"
    );
}

#[test]
fn resnet18_trains_on_mnist_digits() {
    let (_run, out_dir) = path_in_tempdir("run");
    let out = ember_into(
        &out_dir,
        &[
            "train",
            "--model",
            "resnet18",
            "--epochs",
            "1",
            "--train-limit",
            "32",
            "--test-limit",
            "32",
            "--batch-size",
            "16",
        ],
    );
    let stdout = ok(&out);
    // CIFAR stem (3x3, 1 channel) and a 10-class head: 11,689,512 - 9,408 + 576 - 513,000 + 5,130.
    assert!(stdout.contains("11172810 parameters"), "{stdout}");
    let run_json: Value = serde_json::from_str(&std::fs::read_to_string(out_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["model"], "resnet18");
    assert_eq!(run_json["input"], serde_json::json!([1, 28, 28]));
    assert_eq!(last_json(&stdout)["test_images"], 32);
}

#[test]
fn eval_rebuilds_a_batch_norm_model_from_run_json() {
    let (_run, out_dir) = path_in_tempdir("run");
    let trained = last_json(&ok(&ember_into(
        &out_dir,
        &["train", "--model", "vgg-small", "--epochs", "1", "--train-limit", "64"],
    )));
    let ckpt = out_dir.join("model.safetensors");
    let evaluated = last_json(&ok(&ember(&["eval", "--checkpoint", ckpt.to_str().unwrap(), "--json"])));
    // Same weights and running statistics, eval mode both times: the same accuracy.
    assert_eq!(evaluated["accuracy"], trained["accuracy"]);
    assert_eq!(evaluated["loss"], trained["test_loss"]);
}

#[test]
fn train_refuses_a_vae_and_names_the_vae_command() {
    let out = ember(&["train", "--model", "vae-mlp", "--epochs", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ember vae train"));
}

#[test]
fn vae_train_then_sample_write_png_grids() {
    let (run, out_dir) = path_in_tempdir("vae");
    let stdout = ok(&ember_into(&out_dir, &["vae", "train", "--epochs", "2", "--train-limit", "1024"]));
    let result = last_json(&stdout);
    let elbo = result["test_neg_elbo"].as_f64().unwrap();
    // An untrained decoder scores ~543 nats (784 ln 2); two short epochs already do far better.
    assert!(elbo < 300.0 && elbo > 50.0, "{stdout}");
    for png in ["samples.png", "reconstructions.png", "interpolation.png"] {
        assert!(out_dir.join(png).is_file(), "{png}");
    }
    assert_eq!(png_size(&out_dir.join("samples.png")), (8 * 30 + 2, 8 * 30 + 2));

    let grid = run.path().join("grid.png");
    let recon = run.path().join("recon.png");
    let ckpt = out_dir.join("model.safetensors");
    ok(&ember(&[
        "vae",
        "sample",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--grid",
        grid.to_str().unwrap(),
        "--count",
        "16",
        "--reconstructions",
        recon.to_str().unwrap(),
    ]));
    assert_eq!(png_size(&grid), (4 * 30 + 2, 4 * 30 + 2));
    assert_eq!(png_size(&recon), (8 * 30 + 2, 8 * 30 + 2));
}
