//! Release tooling for the EverArcade workspace, behind `cargo xtask dist`.
//!
//! This crate *is* responsible for turning a built `everarcade-runtime`
//! binary, the sample world package, the systemd unit and the operator docs
//! into a release directory: a reproducible tarball, `release-manifest.json`
//! beside it (and a copy inside it) and `SHA256SUMS` over both, in the form
//! `sha256sum -c` reads.
//!
//! It is *not* responsible for checking a release on a host:
//! `everarcade-runtime verify-release` reads the same format on its own, so
//! the shipped binary never depends on this crate. It neither signs nor
//! publishes anything and touches no network.
//!
//! Architecture invariant: given the same binary and the same source files,
//! the tarball is the same bytes. Entries go in path order with fixed owners
//! (0:0, no names), fixed modes and one fixed mtime; the gzip header carries
//! no timestamp and no file name.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod archive;
pub mod dist;
mod error;
pub mod manifest;
pub mod sums;

pub use dist::{BuildInfo, DistConfig, Release, assemble, build_runtime, workspace_root};
pub use error::DistError;
pub use manifest::{BundledPackage, FileEntry, ReleaseManifest};
