//! The floor of the 2d-arena match: the same C rules (`arena.c`) compiled
//! natively by `build.rs` and linked with `bench/native/host.c`, an in-memory
//! hash map with the host's transaction semantics and no trie, no hashing, no
//! signatures, no fuel and no WebAssembly.
//!
//! The loop is the one `bench/native/test_arena.c` runs and the engine runs:
//! every bot (read-only, with its own random seed), then each payload as an
//! input (`ea_alloc`, header + payload, `ea_input`, commit or roll back), then
//! `ea_tick`. The host's undo journal stays on, as in the real host.

// The C functions are reached through `extern "C"`; calling them is unsafe by
// nature. Every call sits in one of the small wrappers below, behind a guard
// that makes the single-threaded use of the C globals a checked fact.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use everarcade_protocol::envelope::GUEST_INPUT_HEADER_BYTES;
use everarcade_protocol::{Limits, PublicKey};

use crate::{MatchConfig, MatchReport, mix64};

mod ffi {
    unsafe extern "C" {
        // bench/native/host.h: the driver API.
        pub fn ea_host_reset();
        pub fn ea_host_set_limits(
            key_max: i32,
            value_max: i32,
            event_bytes: i32,
            events_per_call: i32,
        );
        pub fn ea_host_set_random(seed: *const u8);
        pub fn ea_host_set_read_only(on: i32);
        pub fn ea_host_begin_call();
        pub fn ea_host_commit();
        pub fn ea_host_rollback();
        pub fn ea_host_key_count() -> i32;
        // runtime/games/2d-arena/src/arena.c: the world's exports.
        pub fn ea_alloc(len: i32) -> *mut u8;
        pub fn ea_input(buf: *const u8, len: i32) -> i32;
        pub fn ea_genesis();
        pub fn ea_tick(tick: i64);
        pub fn ea_bot(player: i32, tick: i64, out: *mut u8, cap: i32) -> i32;
    }
}

/// Set while a [`NativeArena`] exists: the C host and world keep their state in
/// globals, so at most one driver may use them at a time.
static IN_USE: AtomicBool = AtomicBool::new(false);

/// Exclusive access to the natively compiled world and host.
pub struct NativeArena {
    _private: (),
}

impl Drop for NativeArena {
    fn drop(&mut self) {
        IN_USE.store(false, Ordering::Release);
    }
}

impl NativeArena {
    /// Takes the native world; `None` if another driver holds it.
    pub fn acquire() -> Option<NativeArena> {
        let free = IN_USE.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed);
        free.is_ok().then_some(NativeArena { _private: () })
    }

    /// Empties the state, sets the manifest limits and runs `ea_genesis`.
    pub fn genesis(&mut self, limits: &Limits, seed: u64) {
        let clamp = |value: u32| i32::try_from(value).unwrap_or(i32::MAX);
        // SAFETY: `self` proves exclusive use of the C globals; no pointers.
        unsafe {
            ffi::ea_host_reset();
            ffi::ea_host_set_limits(
                clamp(limits.key_bytes),
                clamp(limits.value_bytes),
                clamp(limits.event_bytes),
                clamp(limits.events_per_input),
            );
        }
        self.set_random(&world_seed(seed, 0));
        // SAFETY: exclusive use (see above); no pointers.
        unsafe {
            ffi::ea_host_begin_call();
            ffi::ea_genesis();
            ffi::ea_host_commit();
        }
    }

    fn set_random(&mut self, seed: &[u8; 32]) {
        // SAFETY: the host copies exactly 32 bytes from a live 32-byte array.
        unsafe { ffi::ea_host_set_random(seed.as_ptr()) }
    }

    /// The world's input buffer for `length` bytes (`ea_alloc`).
    fn buffer(&mut self, length: usize) -> &mut [u8] {
        let length_i32 = i32::try_from(length).expect("buffer length fits i32");
        // SAFETY: exclusive use of the globals; ea_alloc takes no pointer.
        let pointer = unsafe { ffi::ea_alloc(length_i32) };
        assert!(!pointer.is_null(), "ea_alloc({length}) refused");
        // SAFETY: a non-null ea_alloc result points into the world's static
        // input buffer, valid for at least `length` bytes, and nothing else
        // touches it until the next ea_* call, which needs `&mut self` again.
        unsafe { std::slice::from_raw_parts_mut(pointer, length) }
    }

    /// `ea_bot(player, tick)` read-only, with the key pre-filled in its buffer;
    /// copies the payload (if any) into `payload` and returns its length.
    fn bot(
        &mut self,
        player: usize,
        tick: u64,
        key: &PublicKey,
        capacity: usize,
        payload: &mut [u8],
    ) -> Option<usize> {
        let buffer = self.buffer(capacity);
        buffer[..32].copy_from_slice(key);
        let pointer = buffer.as_mut_ptr();
        let player = i32::try_from(player).expect("player fits i32");
        let capacity_i32 = i32::try_from(capacity).expect("capacity fits i32");
        // SAFETY: `pointer` is valid for `capacity` bytes (see `buffer`); the
        // world writes at most `capacity` bytes there.
        let length = unsafe { ffi::ea_bot(player, tick as i64, pointer, capacity_i32) };
        let length = usize::try_from(length)
            .ok()
            .filter(|length| *length <= capacity)?;
        // SAFETY: the same buffer, of which ea_bot wrote `length <= capacity` bytes.
        let written = unsafe { std::slice::from_raw_parts(pointer, length) };
        payload[..length].copy_from_slice(written);
        Some(length)
    }

    /// One input as one transaction; returns `ea_input`'s result (0 = applied).
    fn input(&mut self, sender: &PublicKey, nonce: u64, payload: &[u8]) -> i32 {
        let length = GUEST_INPUT_HEADER_BYTES + payload.len();
        let buffer = self.buffer(length);
        buffer[..32].copy_from_slice(sender);
        buffer[32..40].copy_from_slice(&nonce.to_le_bytes());
        buffer[40..].copy_from_slice(payload);
        let pointer = buffer.as_ptr();
        let length = i32::try_from(length).expect("input length fits i32");
        // SAFETY: `pointer` is valid for `length` bytes (see `buffer`); the
        // journal calls take no pointers.
        unsafe {
            ffi::ea_host_begin_call();
            let result = ffi::ea_input(pointer, length);
            if result == 0 {
                ffi::ea_host_commit();
            } else {
                ffi::ea_host_rollback();
            }
            result
        }
    }

    fn tick(&mut self, tick: u64) {
        // SAFETY: exclusive use of the globals; no pointers.
        unsafe {
            ffi::ea_host_begin_call();
            ffi::ea_tick(tick as i64);
            ffi::ea_host_commit();
        }
    }

    fn set_read_only(&mut self, on: bool) {
        // SAFETY: exclusive use of the globals; no pointers.
        unsafe { ffi::ea_host_set_read_only(i32::from(on)) }
    }

    fn key_count(&mut self) -> usize {
        // SAFETY: exclusive use of the globals; no pointers.
        let count = unsafe { ffi::ea_host_key_count() };
        usize::try_from(count).expect("a key count is never negative")
    }

    /// Runs a match after [`NativeArena::genesis`]: bots, then inputs in bot
    /// order, then `ea_tick`, every tick.
    pub fn run(
        &mut self,
        config: &MatchConfig,
        keys: &[PublicKey],
        limits: &Limits,
    ) -> MatchReport {
        assert_eq!(keys.len(), config.bots);
        let capacity = (limits.payload_bytes as usize).max(32);
        let mut payloads = vec![vec![0u8; capacity]; config.bots];
        let mut lengths: Vec<(usize, usize)> = Vec::with_capacity(config.bots);
        let mut nonces = vec![0u64; config.bots];
        let mut report = MatchReport {
            ticks: config.ticks,
            ..MatchReport::default()
        };
        for tick in 1..=config.ticks {
            let start = Instant::now();
            lengths.clear();
            self.set_read_only(true);
            for (player, key) in keys.iter().enumerate() {
                self.set_random(&bot_seed(config.seed, player as u32, tick));
                if let Some(length) = self.bot(player, tick, key, capacity, &mut payloads[player]) {
                    lengths.push((player, length));
                }
            }
            self.set_read_only(false);
            let bots_done = Instant::now();
            self.set_random(&world_seed(config.seed, tick));
            for &(player, length) in &lengths {
                nonces[player] += 1;
                let result = self.input(&keys[player], nonces[player], &payloads[player][..length]);
                report.applied += u64::from(result == 0);
            }
            self.tick(tick);
            let tick_done = Instant::now();
            report.inputs += lengths.len() as u64;
            report.bot_seconds += (bots_done - start).as_secs_f64();
            report.execute_seconds += (tick_done - bots_done).as_secs_f64();
        }
        report.state_keys = self.key_count();
        report
    }
}

/// `random_seed` of the world at `tick`, as `test_arena.c` derives it (no hashing).
fn world_seed(seed: u64, tick: u64) -> [u8; 32] {
    spread(mix64(seed ^ mix64(tick)))
}

/// `random_seed` of bot `player` at `tick`, as `test_arena.c` derives it.
fn bot_seed(seed: u64, player: u32, tick: u64) -> [u8; 32] {
    spread(mix64(
        seed ^ 0xB0B0_B0B0_B0B0 ^ mix64(tick) ^ mix64((u64::from(player) + 1) << 32),
    ))
}

fn spread(base: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (index, word) in out.chunks_exact_mut(8).enumerate() {
        word.copy_from_slice(&mix64(base.wrapping_add(index as u64)).to_le_bytes());
    }
    out
}
