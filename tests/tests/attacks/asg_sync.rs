//! Attacks on asg-sync.
