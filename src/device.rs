//! Which compute device a run uses: `cpu`, `cuda:N` or `auto`. CUDA needs the `cuda` cargo
//! feature; asking for it in a build without the feature is a clear error, never a silent CPU run.

use anyhow::{bail, Result};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRequest {
    Cpu,
    Cuda(usize),
    Auto,
}

impl DeviceRequest {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "cpu" => Ok(DeviceRequest::Cpu),
            "auto" => Ok(DeviceRequest::Auto),
            "cuda" => Ok(DeviceRequest::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(DeviceRequest::Cuda(n)),
                _ => Err(format!(
                    "`{other}` is not a device; use `cpu`, `cuda:N` or `auto`"
                )),
            },
        }
    }

    /// The candle device for this request.
    pub fn resolve(self) -> Result<candle_core::Device> {
        match self {
            DeviceRequest::Cpu => Ok(candle_core::Device::Cpu),
            DeviceRequest::Auto => {
                if cfg!(feature = "cuda") && candle_core::utils::cuda_is_available() {
                    Ok(candle_core::Device::new_cuda(0)?)
                } else {
                    Ok(candle_core::Device::Cpu)
                }
            }
            DeviceRequest::Cuda(n) => {
                if !cfg!(feature = "cuda") {
                    bail!(
                        "device `cuda:{n}` was asked for, but this adlab was built without CUDA support; \
                         rebuild with `cargo build --release --features cuda`, or use `device=cpu`"
                    );
                }
                Ok(candle_core::Device::new_cuda(n)?)
            }
        }
    }
}

impl fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceRequest::Cpu => write!(f, "cpu"),
            DeviceRequest::Auto => write!(f, "auto"),
            DeviceRequest::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// A short label of a resolved device, for `meta.json`.
pub fn describe(device: &candle_core::Device) -> String {
    match device {
        candle_core::Device::Cpu => "cpu".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!(DeviceRequest::parse("cpu"), Ok(DeviceRequest::Cpu));
        assert_eq!(DeviceRequest::parse("cuda:1"), Ok(DeviceRequest::Cuda(1)));
        assert_eq!(DeviceRequest::parse("auto"), Ok(DeviceRequest::Auto));
        assert!(DeviceRequest::parse("gpu").is_err());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_clear_error() {
        let msg = DeviceRequest::Cuda(0).resolve().unwrap_err().to_string();
        assert!(msg.contains("--features cuda"), "{msg}");
        assert!(matches!(
            DeviceRequest::Auto.resolve().unwrap(),
            candle_core::Device::Cpu
        ));
    }
}
