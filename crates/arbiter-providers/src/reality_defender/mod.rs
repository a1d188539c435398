//! Reality Defender. Its client (`client.rs`: presign, upload, poll; `wire.rs`: its bodies and
//! verdict mapping) is a plugin behind the `reality-defender` feature; the RD-compatible facade
//! (`facade.rs`: Arbiter's own results in RD's shapes, for the endpoints RD's SDKs call) is in
//! every build.

#[cfg(feature = "reality-defender")]
mod client;
pub mod facade;
#[cfg(feature = "reality-defender")]
pub mod wire;

#[cfg(feature = "reality-defender")]
pub use client::{NAME, RealityDefender, RealityDefenderConfig};
