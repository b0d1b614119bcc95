//! The end-to-end test harness: a local AWS emulator per test, and helpers to build worlds.
//!
//! [`Emulator::start`] launches `tests/emulator/launcher.py` (moto's server plus the calls
//! moto lacks, see that file) on a free loopback port, and stops it on drop. Tests get SDK
//! configurations pointed at it with the same timeouts and retries production uses
//! ([`sgwarden_aws::sdk::bounded`]), read the calls it recorded, and can make a region
//! unreachable. Each test owns its emulator, so tests run alone or in parallel.

pub mod cloudtrail;
pub mod cluster_world;
pub mod emulator;
pub mod event_source;
pub mod http;
pub mod imds;
pub mod organization;
pub mod proxy;
pub mod revert_world;
pub mod runtime;
pub mod sink;
pub mod world;

pub use emulator::{Call, Emulator, GroupPages, Outage};

/// A recorded real event from `../shared/real-events` (or `SGWARDEN_REAL_EVENTS`), as JSON.
pub fn real_event(name: &str) -> serde_json::Value {
    let dir = std::env::var("SGWARDEN_REAL_EVENTS")
        .unwrap_or_else(|_| format!("{}/../../shared/real-events", env!("CARGO_MANIFEST_DIR")));
    let text = std::fs::read_to_string(format!("{dir}/{name}"))
        .unwrap_or_else(|e| panic!("real event {name} in {dir}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("real event {name}: {e}"))
}
