//! `cargo xtask gpu-build`: builds ember with CUDA on a machine with no GPU and no system CUDA
//! toolkit, from NVIDIA's PyPI wheels, and optionally stages what `scripts/gpu-check.sh` needs.
//!
//! What it takes, and why:
//! - **The toolkit** (nvcc, its headers, and the libraries the binary links: cuBLAS, cuRAND,
//!   NVRTC) from pinned PyPI wheels, installed once into `target/cuda-toolkit` (or the
//!   directory `EMBER_CUDA_TOOLKIT` names). Version 13.0: candle compiles its kernels to PTX, and
//!   a driver only runs PTX from a toolkit no newer than itself; the GPU machines this project is
//!   lent run driver 580 (CUDA 13.0), and PTX from 13.4 fails to load there. cudarc reads the
//!   toolkit version from `nvcc --version`.
//! - **A link stub for `libcuda`**, the driver library, which ships with the driver and not
//!   with any wheel: a shared library named `libcuda.so.1` that defines every driver function
//!   cudarc declares, so the link succeeds here; at run time the loader finds the real
//!   `libcuda.so.1` of the machine's driver instead.
//! - **Unversioned library names** (`libcublas.so` beside the wheels' `libcublas.so.13`), which
//!   the linker's `-lcublas` looks for (candle's kernels also link the CUDA runtime, `-lcudart`).
//! - **NCCL** for the `nccl` feature (`NcclCollective`, what `ember train` uses on GPUs in a
//!   group of processes): NVIDIA's `nvidia-nccl-cu13` wheel, pinned to 2.30 because cudarc's
//!   bindings are NCCL 2.30's (and PyTorch's CUDA 13 builds ship the same library, so a GPU
//!   machine with PyTorch has it at run time). It installs beside the toolkit
//!   (`nvidia/nccl/lib/libnccl.so.2`), and `libnccl.so` in the toolkit's `lib` points at it.
//!
//! The build goes to `target/cuda` so switching the feature does not rebuild the CPU tree;
//! `CUDA_COMPUTE_CAP` defaults to 90 (H100, H200). `--bundle` packs the `ember` binary and the
//! `gpu_check` example into `gpu-bundle/ember-cuda.tar.xz` (ignored by git), for a GPU machine
//! without Rust.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{cargo, workspace_root};

/// The wheels of the CUDA 13.0 toolkit that the build needs, pinned.
const WHEELS: &[&str] = &[
    "nvidia-cuda-nvcc==13.0.88",
    "nvidia-cuda-crt==13.0.88",
    "nvidia-nvvm==13.0.88",
    "nvidia-cuda-runtime==13.0.88",
    "nvidia-cuda-cccl==13.0.85",
    "nvidia-cuda-nvrtc==13.0.88",
    "nvidia-cublas==13.0.2.14",
    "nvidia-curand==10.4.0.35",
    NCCL_WHEEL,
];

/// NCCL, for the `nccl` feature (installed with the toolkit, or alone into a toolkit folder
/// that predates it).
const NCCL_WHEEL: &str = "nvidia-nccl-cu13==2.30.7";

/// Where the NCCL wheel puts its library, from the toolkit's root (`.../nvidia/cu13`).
const NCCL_LIBRARY: &str = "../nccl/lib/libnccl.so.2";

/// The libraries cudarc links by their unversioned names, and the wheels' versioned files.
const LIBRARIES: &[(&str, &str)] = &[
    ("libcublas.so", "libcublas.so.13"),
    ("libcublasLt.so", "libcublasLt.so.13"),
    ("libcurand.so", "libcurand.so.10"),
    ("libnvrtc.so", "libnvrtc.so.13"),
    ("libcudart.so", "libcudart.so.13"),
    ("libnccl.so", "../../nccl/lib/libnccl.so.2"),
];

pub fn run(args: &[String]) -> Result<()> {
    let bundle = match args {
        [] => false,
        [flag] if flag == "--bundle" => true,
        _ => bail!("usage: cargo xtask gpu-build [--bundle]"),
    };
    let root = workspace_root();
    let toolkit = toolkit_dir(&root);
    let cuda = install_toolkit(&toolkit)?;
    link_names(&cuda)?;
    driver_stub(&cuda)?;

    let target = root.join("target/cuda");
    let build = |args: &[&str]| -> Result<()> {
        let mut cmd = cargo();
        cmd.args(["build", "--release", "--target-dir"]).arg(&target).args(args);
        cmd.env("CUDA_ROOT", &cuda).env("PATH", prepend_path(&cuda.join("bin"))?);
        if std::env::var_os("CUDA_COMPUTE_CAP").is_none() {
            cmd.env("CUDA_COMPUTE_CAP", "90");
        }
        let status = cmd.status().context("running cargo build")?;
        if !status.success() {
            bail!("cargo build {} failed", args.join(" "));
        }
        Ok(())
    };
    build(&["-p", "ember-cli", "--features", "cuda,nccl"])?;
    build(&["-p", "ember", "--example", "gpu_check", "--features", "cuda"])?;
    println!("gpu-build: built {} and {}", target.join("release/ember").display(), gpu_check(&target).display());
    if bundle {
        stage_bundle(
            &root.join("gpu-bundle"),
            &[(target.join("release/ember"), "ember"), (gpu_check(&target), "gpu_check")],
        )?;
    }
    Ok(())
}

/// `dir/ember-cuda.tar.xz`: the binaries, stripped and compressed. The kernels candle embeds
/// are PTX text, most of each binary (about 80 and 60 MB stripped); compressed, the two make
/// about 18 MB, which a GPU machine's copy of the working tree can carry.
fn stage_bundle(dir: &Path, binaries: &[(PathBuf, &str)]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (from, name) in binaries {
        let status = Command::new("strip")
            .arg("--strip-all")
            .arg("-o")
            .arg(dir.join(name))
            .arg(from)
            .status()
            .context("running strip")?;
        if !status.success() {
            bail!("strip {} failed", from.display());
        }
    }
    let archive = dir.join("ember-cuda.tar.xz");
    let status = Command::new("tar")
        .env("XZ_OPT", "-6 -T0")
        .arg("-C")
        .arg(dir)
        .arg("-cJf")
        .arg(&archive)
        .args(binaries.iter().map(|(_, name)| *name))
        .status()
        .context("running tar")?;
    if !status.success() {
        bail!("packing {} failed", archive.display());
    }
    for (_, name) in binaries {
        std::fs::remove_file(dir.join(name)).with_context(|| format!("removing {}", dir.join(name).display()))?;
    }
    let size = std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
    println!("gpu-build: {} ({:.1} MB)", archive.display(), size as f64 / 1e6);
    Ok(())
}

fn gpu_check(target: &Path) -> PathBuf {
    target.join("release/examples/gpu_check")
}

fn toolkit_dir(root: &Path) -> PathBuf {
    std::env::var_os("EMBER_CUDA_TOOLKIT").map_or_else(|| root.join("target/cuda-toolkit"), PathBuf::from)
}

/// The toolkit's root (`.../nvidia/cu13`), installed from the wheels unless nvcc is there.
fn install_toolkit(dir: &Path) -> Result<PathBuf> {
    let cuda = dir.join("nvidia/cu13");
    if cuda.join("bin/nvcc").is_file() && cuda.join("lib/libcublas.so.13").is_file() {
        if !cuda.join(NCCL_LIBRARY).is_file() {
            install_nccl(dir)?;
        }
        return Ok(cuda);
    }
    println!("gpu-build: installing the CUDA 13.0 toolkit wheels into {}", dir.display());
    pip_install(dir, WHEELS)?;
    if !cuda.join("bin/nvcc").is_file() || !cuda.join(NCCL_LIBRARY).is_file() {
        bail!("installing the CUDA toolkit wheels into {} failed", dir.display());
    }
    Ok(cuda)
}

/// `pip install --target dir wheels...` with the Python `EMBER_TORCH_PYTHON` names (python3).
fn pip_install(dir: &Path, wheels: &[&str]) -> Result<()> {
    let python = std::env::var("EMBER_TORCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let status = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--target"])
        .arg(dir)
        .args(wheels)
        .status()
        .with_context(|| format!("running {python} -m pip"))?;
    if !status.success() {
        bail!("{python} -m pip install --target {} {} failed", dir.display(), wheels.join(" "));
    }
    Ok(())
}

/// Adds NCCL to a toolkit folder installed before it was needed. pip will not add a package to
/// the `nvidia` folder another `--target` install made, so the wheel goes to a staging folder
/// and its `nvidia/nccl` moves into place.
fn install_nccl(dir: &Path) -> Result<()> {
    println!("gpu-build: installing {NCCL_WHEEL} into {}", dir.display());
    let staging = dir.join(".nccl-staging");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))?;
    }
    pip_install(&staging, &[NCCL_WHEEL])?;
    let (from, to) = (staging.join("nvidia/nccl"), dir.join("nvidia/nccl"));
    if to.exists() {
        std::fs::remove_dir_all(&to).with_context(|| format!("removing {}", to.display()))?;
    }
    std::fs::rename(&from, &to).with_context(|| format!("moving {} to {}", from.display(), to.display()))?;
    std::fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))?;
    Ok(())
}

/// `libcublas.so -> libcublas.so.13` and the like, for the linker.
fn link_names(cuda: &Path) -> Result<()> {
    let lib = cuda.join("lib");
    for (name, versioned) in LIBRARIES {
        let link = lib.join(name);
        if !lib.join(versioned).is_file() {
            bail!("{}: missing from the toolkit", lib.join(versioned).display());
        }
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(versioned, &link).with_context(|| format!("linking {}", link.display()))?;
        }
    }
    Ok(())
}

/// `lib/stubs/libcuda.so`: every driver function cudarc declares, each returning
/// `CUDA_ERROR_UNKNOWN`, under the real library's soname.
fn driver_stub(cuda: &Path) -> Result<()> {
    let stubs = cuda.join("lib/stubs");
    let library = stubs.join("libcuda.so");
    if library.is_file() {
        return Ok(());
    }
    let bindings = cudarc_source()?.join("src/driver/sys/mod.rs");
    let text = std::fs::read_to_string(&bindings).with_context(|| format!("reading {}", bindings.display()))?;
    let mut names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("fn cu"))
        .filter_map(|rest| rest.split('(').next())
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.len() < 100 {
        bail!("{}: found only {} driver functions; cudarc's layout changed", bindings.display(), names.len());
    }
    std::fs::create_dir_all(&stubs).with_context(|| format!("creating {}", stubs.display()))?;
    let source = stubs.join("libcuda_stub.c");
    let body: String = names.iter().map(|n| format!("int cu{n}(void) {{ return 999; }}\n")).collect();
    std::fs::write(&source, body).with_context(|| format!("writing {}", source.display()))?;
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o"])
        .arg(&library)
        .arg(&source)
        .status()
        .context("running cc for the libcuda link stub")?;
    if !status.success() {
        bail!("compiling the libcuda link stub failed");
    }
    println!("gpu-build: libcuda link stub with {} driver functions in {}", names.len(), library.display());
    Ok(())
}

/// Where cargo keeps the cudarc sources this workspace locks.
fn cudarc_source() -> Result<PathBuf> {
    let out = cargo()
        .args(["metadata", "--format-version", "1", "--features", "ember-cli/cuda"])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    let packages = meta["packages"].as_array().context("cargo metadata has no packages")?;
    let manifest = packages
        .iter()
        .find(|p| p["name"] == "cudarc")
        .and_then(|p| p["manifest_path"].as_str())
        .context("cudarc is not among the workspace's dependencies")?;
    Ok(Path::new(manifest).parent().context("cudarc's manifest has no folder")?.to_path_buf())
}

fn prepend_path(dir: &Path) -> Result<std::ffi::OsString> {
    let mut paths = vec![dir.to_path_buf()];
    if let Some(existing) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&existing));
    }
    std::env::join_paths(paths).context("joining PATH")
}
