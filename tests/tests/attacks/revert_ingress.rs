//! Attacks on revert-ingress.
