//! The 2d-arena sample package (`runtime/games/2d-arena`) loaded and
//! compiled once per test binary, on one engine every test shares (the
//! engine caches compiled modules, and compiling is the slow part).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use everarcade_engine::{CompiledPackage, Engine};
use everarcade_package::Package;

/// The sample package's directory.
pub const PACKAGE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../runtime/games/2d-arena");

/// The engine and the compiled sample package.
pub struct Arena {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The sample package.
    pub package: Package,
    /// Its compilation.
    pub compiled: Arc<CompiledPackage>,
}

/// The arena, loaded and compiled on first use.
pub fn arena() -> &'static Arena {
    static ARENA: OnceLock<Arena> = OnceLock::new();
    ARENA.get_or_init(|| {
        let package = Package::load(Path::new(PACKAGE_DIR)).expect("the sample package loads");
        let engine = Arc::new(Engine::new().expect("the engine starts"));
        let compiled = engine
            .compile(&package)
            .expect("the sample package compiles");
        Arena {
            engine,
            package,
            compiled,
        }
    })
}
