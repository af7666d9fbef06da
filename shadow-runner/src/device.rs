//! Run-time device selection: CPU by default, CUDA when built with the `cuda` feature and a GPU is
//! present.

use candle_core::Device;
use serde::Deserialize;

use crate::error::{Error, Result};

/// Which device the caller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DevicePreference {
    /// CUDA GPU 0 when the crate was built with `cuda` and a GPU answers; otherwise the CPU.
    #[default]
    Auto,
    /// Always the CPU.
    Cpu,
    /// CUDA GPU 0, or an error (built without `cuda`, or no GPU).
    Cuda,
}

impl std::str::FromStr for DevicePreference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda),
            other => Err(Error::Device(format!(
                "unknown device {other:?}: use auto, cpu or cuda"
            ))),
        }
    }
}

/// Picks the device for `preference` (see [`DevicePreference`]).
pub fn select_device(preference: DevicePreference) -> Result<Device> {
    match preference {
        DevicePreference::Cpu => Ok(Device::Cpu),
        DevicePreference::Cuda => cuda().map_err(Error::Device),
        DevicePreference::Auto => Ok(match cuda() {
            Ok(gpu) => {
                tracing::info!(device = %device_name(&gpu), "CUDA GPU found: models run on it");
                gpu
            }
            Err(why) => {
                // Said once per model load so a slow CPU run is never a mystery in the logs.
                tracing::info!(reason = %why, "no CUDA GPU: models run on the CPU");
                Device::Cpu
            }
        }),
    }
}

/// Human-readable device name for logs and reports (`cpu`, `cuda:0`).
pub fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".to_string(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(feature = "cuda")]
fn cuda() -> std::result::Result<Device, String> {
    // candle appends a backtrace to its errors when RUST_BACKTRACE is set: one line is enough.
    Device::new_cuda(0).map_err(|e| {
        let e = e.to_string();
        format!(
            "no usable CUDA GPU: {}",
            e.lines().next().unwrap_or_default()
        )
    })
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> std::result::Result<Device, String> {
    Err(
        "this build has no CUDA support: rebuild vigil-shadow-runner with `--features cuda` \
         (needs nvcc) or use the cpu device"
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_preferences() {
        assert_eq!(
            "CPU".parse::<DevicePreference>().ok(),
            Some(DevicePreference::Cpu)
        );
        assert_eq!(
            "auto".parse::<DevicePreference>().ok(),
            Some(DevicePreference::Auto)
        );
        assert!("tpu".parse::<DevicePreference>().is_err());
    }

    #[test]
    fn cpu_is_always_available() {
        let device = select_device(DevicePreference::Cpu).expect("cpu");
        assert_eq!(device_name(&device), "cpu");
        let auto = select_device(DevicePreference::Auto).expect("auto never fails");
        let cuda = select_device(DevicePreference::Cuda);
        if !cfg!(feature = "cuda") {
            assert_eq!(device_name(&auto), "cpu");
            assert!(cuda.is_err());
        }
        // `auto` takes the GPU exactly when `cuda` can have it (scripts/models/check-cuda.sh runs
        // this with the feature on, with and without a GPU).
        assert_eq!(cuda.is_ok(), device_name(&auto) != "cpu", "{cuda:?}");
        eprintln!("auto picked {}", device_name(&auto));
    }
}
