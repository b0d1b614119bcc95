//! The end-to-end test harness: a local AWS emulator per test, and helpers to build worlds.
//!
//! [`Emulator::start`] launches `tests/emulator/launcher.py` (moto's server plus the calls
//! moto lacks, see that file) on a free loopback port, and stops it on drop. Tests get SDK
//! configurations pointed at it with the same timeouts and retries production uses
//! ([`sgwarden_aws::sdk::bounded`]), read the calls it recorded, and can make a region
//! unreachable. Each test owns its emulator, so tests run alone or in parallel.

pub mod cloudtrail;
pub mod emulator;
pub mod runtime;
pub mod sink;
pub mod world;

pub use emulator::{Call, Emulator, Outage};
