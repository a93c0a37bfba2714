//! Integration tests of the engine: rollback, hostile packages, NaN
//! canonicalization, admission, determinism, fuel and receipts. Every fixture is a
//! WAT module written into a temporary package directory. One test binary, so
//! wasmtime is linked once.

mod admission;
mod common;
mod determinism;
mod fuel;
mod hostile;
mod nan;
mod receipts;
mod rollback;
