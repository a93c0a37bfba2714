//! The wasmtime engine, configured for deterministic execution, and the cache
//! of compiled packages.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use everarcade_package::{Exports, Package};
use everarcade_protocol::Hash;
use everarcade_protocol::profile::LIMITS_MAX;
use wasmtime::{
    Config, InstanceAllocationStrategy, InstancePre, Module, OptLevel, PoolingAllocationConfig,
};

use crate::error::EngineError;
use crate::host::{HostContext, linker};

/// Instances alive at once in one engine (a world uses at most two: its tick
/// instance and, between ticks, a bot instance).
pub const INSTANCES_MAX: u32 = 128;

/// Linear-memory bytes per pool slot reset in place rather than released to the OS.
pub const MEMORY_KEEP_RESIDENT_BYTES: usize = 2 * 1024 * 1024;

/// Table bytes per pool slot reset in place rather than released to the OS.
pub const TABLE_KEEP_RESIDENT_BYTES: usize = 64 * 1024;

/// The WebAssembly stack a call may use, in bytes.
pub const WASM_STACK_BYTES: usize = 512 * 1024;

/// Identifies the engine configuration in cache keys; bump when `config()` changes.
const CONFIG_FINGERPRINT: &str =
    "ea-engine/1 wasmtime-48 fuel nan-canon no-threads no-relaxed-simd";

/// A compiled package, ready to instantiate cheaply once per tick.
pub struct CompiledPackage {
    /// The package it was compiled from.
    pub package: Arc<Package>,
    /// Which optional exports it has.
    pub exports: Exports,
    pub(crate) pre: InstancePre<HostContext>,
}

/// The deterministic execution engine and its compiled-module cache.
pub struct Engine {
    inner: wasmtime::Engine,
    cache: Mutex<BTreeMap<(Hash, &'static str), Arc<CompiledPackage>>>,
}

fn config() -> Config {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(INSTANCES_MAX)
        .total_memories(INSTANCES_MAX)
        .total_tables(INSTANCES_MAX)
        .max_memory_size(LIMITS_MAX.memory_bytes as usize)
        // A fresh instance every tick: resetting small memories by memset is
        // cheaper than returning their pages with madvise and faulting them
        // back in. Every slot is still zeroed before reuse.
        .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT_BYTES)
        .table_keep_resident(TABLE_KEEP_RESIDENT_BYTES);
    // Threads need wasmtime's `threads` feature, which this build does not
    // enable, so shared memories and atomics are refused at compile time.
    let mut config = Config::new();
    config
        .consume_fuel(true)
        .cranelift_nan_canonicalization(true)
        .cranelift_opt_level(OptLevel::Speed)
        .wasm_relaxed_simd(false)
        .wasm_multi_memory(false)
        .wasm_memory64(false)
        .max_wasm_stack(WASM_STACK_BYTES)
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

impl Engine {
    /// An engine with the determinism profile's configuration.
    pub fn new() -> Result<Engine, EngineError> {
        let inner = wasmtime::Engine::new(&config()).map_err(|e| EngineError::Config {
            message: format!("{e:#}"),
        })?;
        Ok(Engine {
            inner,
            cache: Mutex::new(BTreeMap::new()),
        })
    }

    pub(crate) fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner
    }

    /// Compiles `package`, or returns the cached compilation of the same
    /// package root under the same engine configuration.
    pub fn compile(&self, package: &Package) -> Result<Arc<CompiledPackage>, EngineError> {
        let key = (package.root, CONFIG_FINGERPRINT);
        if let Some(compiled) = self.cache.lock().expect("cache lock").get(&key) {
            return Ok(compiled.clone());
        }
        let module = Module::new(&self.inner, &package.wasm).map_err(|e| EngineError::Compile {
            message: format!("{e:#}"),
        })?;
        let pre =
            linker(&self.inner)
                .instantiate_pre(&module)
                .map_err(|e| EngineError::Instantiate {
                    message: format!("{e:#}"),
                })?;
        let compiled = Arc::new(CompiledPackage {
            package: Arc::new(package.clone()),
            exports: package.exports,
            pre,
        });
        self.cache
            .lock()
            .expect("cache lock")
            .insert(key, compiled.clone());
        Ok(compiled)
    }

    /// Compiled packages held in the cache.
    pub fn cached_packages(&self) -> usize {
        self.cache.lock().expect("cache lock").len()
    }
}
