//! Backups and restores of real worlds on the real disk: a backup, the root
//! destroyed, a restore to identical roots and a world that carries on;
//! tampered backups refused with their exact reason; `sha256sum -c` on a
//! backup; quarantine instead of deletion; key rotation. One test binary,
//! so wasmtime is linked once and the sample package compiled once.

mod backup_restore;
mod common;
mod keys;
mod tampered;
