//! Attacks on notify-owner.
