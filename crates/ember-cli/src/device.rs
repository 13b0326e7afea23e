//! `--device`: where a command computes (`cpu`, `cuda`, `cuda:N`).

use std::fmt;
use std::str::FromStr;

use anyhow::{anyhow, bail};
use candle_core::Device;

/// A device as named on the command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeviceName {
    /// The CPU (ember's own kernels).
    #[default]
    Cpu,
    /// CUDA device N (candle's CUDA backend, with ember's portable ops).
    Cuda(usize),
}

impl FromStr for DeviceName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            // A bare index is a GPU, as in PyTorch (`--devices 0,1`).
            _ => match s.strip_prefix("cuda:").unwrap_or(s).parse::<usize>() {
                Ok(ordinal) => Ok(Self::Cuda(ordinal)),
                Err(_) => Err(format!("`{s}` is not a device: use cpu, cuda, cuda:N or N (N the GPU's index)")),
            },
        }
    }
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(ordinal) => write!(f, "cuda:{ordinal}"),
        }
    }
}

impl DeviceName {
    /// Opens the device, or says in one line why it cannot be: this `ember` was built without
    /// the `cuda` feature, or there is no such CUDA device (no driver, no GPU, index too high).
    pub fn open(self) -> anyhow::Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(ordinal) => {
                if !candle_core::utils::cuda_is_available() {
                    bail!(
                        "--device {self}: this ember was built without CUDA support; rebuild it with \
                         `cargo build --release --features cuda` (see docs/gpu.md)"
                    )
                }
                Device::new_cuda(ordinal).map_err(|e| {
                    let reason = e.to_string();
                    let reason = reason.lines().next().unwrap_or_default();
                    anyhow!("--device {self}: no CUDA device {ordinal} found ({reason})")
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DeviceName;

    #[test]
    fn names_parse_and_print_back() {
        let names = [
            ("cpu", DeviceName::Cpu),
            ("cuda", DeviceName::Cuda(0)),
            ("cuda:3", DeviceName::Cuda(3)),
            ("2", DeviceName::Cuda(2)),
        ];
        for (text, device) in names {
            assert_eq!(text.parse::<DeviceName>(), Ok(device));
        }
        assert_eq!(DeviceName::Cuda(0).to_string(), "cuda:0");
        for bad in ["gpu", "cuda:", "cuda:-1", "cuda:x", "CPU", "", "-1"] {
            let err = bad.parse::<DeviceName>().unwrap_err();
            assert!(err.contains("use cpu, cuda, cuda:N or N"), "{bad}: {err}");
        }
    }

    #[test]
    fn cuda_without_cuda_support_fails_in_one_line() {
        if candle_core::utils::cuda_is_available() {
            println!("skipped: built with CUDA support");
            return;
        }
        let err = format!("{:#}", DeviceName::Cuda(0).open().unwrap_err());
        assert!(err.contains("built without CUDA support") && err.contains("--features cuda"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
