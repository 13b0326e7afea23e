//! `ember train` as one process of a data-parallel group, torchrun style: `WORLD_SIZE` in the
//! environment makes the process a member; `RANK`, `LOCAL_RANK`, `MASTER_ADDR` and
//! `MASTER_PORT` say which and where rank 0 listens.

use candle_core::Device;
use ember_train::{Collective, RendezvousConfig, RendezvousOptions};

use crate::device::DeviceName;

/// The group this process belongs to, when `WORLD_SIZE` is set; its variables checked.
pub fn from_env() -> anyhow::Result<Option<RendezvousConfig>> {
    if std::env::var_os("WORLD_SIZE").is_none() {
        return Ok(None);
    }
    Ok(Some(RendezvousConfig::from_env()?))
}

/// The device of this member: `cuda:LOCAL_RANK` when `--device` names a GPU, else the CPU.
pub fn device(config: &RendezvousConfig, asked: DeviceName) -> DeviceName {
    match asked {
        DeviceName::Cpu => DeviceName::Cpu,
        DeviceName::Cuda(_) => DeviceName::Cuda(config.local_rank),
    }
}

/// Which collective a member on `device` uses.
pub fn backend(device: &Device) -> &'static str {
    if cfg!(feature = "nccl") && device.is_cuda() {
        "nccl"
    } else {
        "tcp"
    }
}

/// Joins the group: NCCL on a GPU when this `ember` was built with the `nccl` feature, TCP
/// through rank 0 otherwise.
pub fn join(config: &RendezvousConfig, device: &Device) -> anyhow::Result<Box<dyn Collective>> {
    // The errors name the address, the rank and what failed.
    let options = RendezvousOptions::default();
    #[cfg(feature = "nccl")]
    if device.is_cuda() {
        return Ok(Box::new(ember_train::NcclCollective::join(config, &options, device)?));
    }
    let _ = device;
    Ok(Box::new(ember_train::TcpCollective::join(config, &options)?))
}
