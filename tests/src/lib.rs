//! Shared helpers for end-to-end tests.

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod seccomp;
pub mod starvation;
