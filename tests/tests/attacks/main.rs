//! The attacks of the threat model (ARCHITECTURE.md, "Threat model"), one test per row, each
//! named for the attack and made as an insider with ordinary EC2 rights would make it: the
//! change is made for real in the emulator, its CloudTrail event is served to the real Lambda
//! binary through the Runtime API, and the assertions read AWS state back.
//!
//! Every test here failed on the binaries before its defence landed; a new defence brings its
//! attack here.

// Helpers outside #[test] functions may unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod asg_sync;
mod forbid;
mod notify_owner;
mod revert_ingress;
mod sweep_reads;
