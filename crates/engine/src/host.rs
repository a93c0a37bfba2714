//! The `ea` host functions and the per-tick session (a store plus one instance).

use everarcade_protocol::{Limits, Outcome, TrapClass};
use everarcade_state::{Key, State, Value};
use wasmtime::{Caller, Linker, Memory, Store, Trap, TypedFunc};

use crate::engine::{CompiledPackage, Engine};
use crate::error::EngineError;

/// Debug log lines kept per tick; more are dropped (the log is never hashed).
pub const LOG_LINES_MAX: usize = 64;
/// Bytes kept of one debug log line.
pub const LOG_LINE_BYTES_MAX: usize = 256;

/// What the host functions see: the world state and the current call's
/// transaction.
pub(crate) struct HostContext {
    pub state: State,
    pub limits: Limits,
    pub read_only: bool,
    pub random: [u8; 32],
    memory: Option<Memory>,
    /// Previous values of keys written by the current call, oldest first
    /// (short keys and values inline: no allocation per write).
    undo: Vec<(Key, Option<Value>)>,
    pub events: Vec<Vec<u8>>,
    /// Set when a host function traps, so the trap can be classified.
    fault: Option<TrapClass>,
    pub logs: Vec<String>,
    /// The longest key the current call passed to a state function, in bytes.
    key_bytes_max: u32,
    /// The longest value the current call wrote, in bytes.
    value_bytes_max: u32,
}

impl HostContext {
    pub fn new(state: State, limits: Limits, read_only: bool, random: [u8; 32]) -> HostContext {
        HostContext {
            state,
            limits,
            read_only,
            random,
            memory: None,
            undo: Vec::new(),
            events: Vec::new(),
            fault: None,
            logs: Vec::new(),
            key_bytes_max: 0,
            value_bytes_max: 0,
        }
    }

    fn begin(&mut self) {
        self.undo.clear();
        self.events.clear();
        self.fault = None;
        self.key_bytes_max = 0;
        self.value_bytes_max = 0;
    }

    /// Ends the current call: keeps its writes if applied, else restores every
    /// key it wrote (newest first) and drops its events.
    fn finish(&mut self, applied: bool) {
        if !applied {
            while let Some((key, previous)) = self.undo.pop() {
                match previous {
                    Some(value) => self.state.set(&key, &value),
                    None => self.state.delete(&key),
                };
            }
            self.events.clear();
        }
        self.undo.clear();
    }
}

fn fault(caller: &mut Caller<'_, HostContext>, class: TrapClass) -> wasmtime::Error {
    caller.data_mut().fault = Some(class);
    wasmtime::Error::msg(format!("host trap: {class:?}"))
}

/// Guest memory and the host context, borrowed together: one look-up of
/// the memory per host call. Each host function checks that the ranges it
/// was given lie in that memory (`range_in`) and traps with `HostPointer`
/// when one does not.
fn memory_and_context<'a>(
    caller: &'a mut Caller<'_, HostContext>,
) -> (&'a mut [u8], &'a mut HostContext) {
    let memory = caller
        .data()
        .memory
        .expect("memory is set after instantiation");
    memory.data_and_store_mut(caller)
}

/// The start of the key of `key_length` bytes at `pointer` in guest memory
/// of `memory_length` bytes, recorded as the call's longest key; `None` if it
/// does not lie in memory (the caller traps with `HostPointer`). The key is
/// read in place, never copied.
fn key_start(
    context: &mut HostContext,
    memory_length: usize,
    pointer: i32,
    key_length: usize,
) -> Option<usize> {
    let start = range_in(memory_length, pointer, key_length)?;
    context.key_bytes_max = context.key_bytes_max.max(key_length as u32);
    Some(start)
}

/// A key's length, once checked against the world's limit (`KeyLength`).
fn checked_key_length(
    caller: &mut Caller<'_, HostContext>,
    length: i32,
) -> wasmtime::Result<usize> {
    let limit = caller.data().limits.key_bytes as usize;
    let key_length = length as u32 as usize;
    if key_length == 0 || key_length > limit {
        return Err(fault(caller, TrapClass::KeyLength));
    }
    Ok(key_length)
}

/// The state functions look guest memory up once for all their ranges
/// (`state_get` is the hottest host call: a lookup per player per tick in
/// typical worlds). Their checks come in one order, which decides the trap
/// class of a call that breaks several rules: `KeyLength`, the key's
/// `HostPointer`, then for `state_set` `ValueLength`, then the value's
/// `HostPointer`.
fn state_get(
    mut caller: Caller<'_, HostContext>,
    key_pointer: i32,
    key_length: i32,
    value_pointer: i32,
    value_capacity: i32,
) -> wasmtime::Result<i32> {
    let key_length = checked_key_length(&mut caller, key_length)?;
    let (data, context) = memory_and_context(&mut caller);
    let Some(key_start) = key_start(context, data.len(), key_pointer, key_length) else {
        return Err(fault(&mut caller, TrapClass::HostPointer));
    };
    let value_capacity = value_capacity as u32 as usize;
    let Some(value_start) = range_in(data.len(), value_pointer, value_capacity) else {
        return Err(fault(&mut caller, TrapClass::HostPointer));
    };
    // The key is borrowed from guest memory only for the lookup; the value
    // borrows the state, so the copy below may overwrite the key's bytes.
    let Some(value) = context.state.get(&data[key_start..key_start + key_length]) else {
        return Ok(-1);
    };
    let copied = value.len().min(value_capacity);
    data[value_start..value_start + copied].copy_from_slice(&value[..copied]);
    Ok(value.len() as i32)
}

fn state_set(
    mut caller: Caller<'_, HostContext>,
    key_pointer: i32,
    key_length: i32,
    value_pointer: i32,
    value_length: i32,
) -> wasmtime::Result<()> {
    if caller.data().read_only {
        return Err(fault(&mut caller, TrapClass::ReadOnlyState));
    }
    // The order of the checks: see `state_get`.
    let key_length = checked_key_length(&mut caller, key_length)?;
    let (data, context) = memory_and_context(&mut caller);
    let Some(key_start) = key_start(context, data.len(), key_pointer, key_length) else {
        return Err(fault(&mut caller, TrapClass::HostPointer));
    };
    if value_length as u32 > context.limits.value_bytes {
        return Err(fault(&mut caller, TrapClass::ValueLength));
    }
    let value_length = value_length as u32 as usize;
    let Some(value_start) = range_in(data.len(), value_pointer, value_length) else {
        return Err(fault(&mut caller, TrapClass::HostPointer));
    };
    context.value_bytes_max = context.value_bytes_max.max(value_length as u32);
    let key = &data[key_start..key_start + key_length];
    let previous = context
        .state
        .set(key, &data[value_start..value_start + value_length]);
    context.undo.push((Key::new(key), previous));
    Ok(())
}

fn state_del(
    mut caller: Caller<'_, HostContext>,
    key_pointer: i32,
    key_length: i32,
) -> wasmtime::Result<()> {
    if caller.data().read_only {
        return Err(fault(&mut caller, TrapClass::ReadOnlyState));
    }
    let key_length = checked_key_length(&mut caller, key_length)?;
    let (data, context) = memory_and_context(&mut caller);
    let Some(key_start) = key_start(context, data.len(), key_pointer, key_length) else {
        return Err(fault(&mut caller, TrapClass::HostPointer));
    };
    let key = &data[key_start..key_start + key_length];
    if let Some(previous) = context.state.delete(key) {
        context.undo.push((Key::new(key), Some(previous)));
    }
    Ok(())
}

fn emit(mut caller: Caller<'_, HostContext>, pointer: i32, length: i32) -> wasmtime::Result<()> {
    let limits = caller.data().limits;
    if length as u32 > limits.event_bytes {
        return Err(fault(&mut caller, TrapClass::EventLength));
    }
    if caller.data().events.len() >= limits.events_per_input as usize {
        return Err(fault(&mut caller, TrapClass::EventCount));
    }
    let length = length as u32 as usize;
    let (data, context) = memory_and_context(&mut caller);
    let Some(start) = range_in(data.len(), pointer, length) else {
        return Err(fault(&mut caller, TrapClass::HostPointer));
    };
    context.events.push(data[start..start + length].to_vec());
    Ok(())
}

fn random_seed(mut caller: Caller<'_, HostContext>, pointer: i32) -> wasmtime::Result<()> {
    let (data, context) = memory_and_context(&mut caller);
    let Some(start) = range_in(data.len(), pointer, 32) else {
        return Err(fault(&mut caller, TrapClass::HostPointer));
    };
    data[start..start + 32].copy_from_slice(&context.random);
    Ok(())
}

fn log(mut caller: Caller<'_, HostContext>, pointer: i32, length: i32) -> wasmtime::Result<()> {
    // The pointer is checked before the rate limit, so whether a call traps
    // never depends on how many lines were logged before it.
    let length = length as u32 as usize;
    let (data, context) = memory_and_context(&mut caller);
    let Some(start) = range_in(data.len(), pointer, length) else {
        return Err(fault(&mut caller, TrapClass::HostPointer));
    };
    if context.logs.len() >= LOG_LINES_MAX {
        return Ok(());
    }
    let bytes = &data[start..start + length];
    let line = String::from_utf8_lossy(&bytes[..bytes.len().min(LOG_LINE_BYTES_MAX)]).into_owned();
    context.logs.push(line);
    Ok(())
}

/// The linker with the six `ea` functions.
pub(crate) fn linker(engine: &wasmtime::Engine) -> Linker<HostContext> {
    let mut linker = Linker::new(engine);
    linker
        .func_wrap("ea", "state_get", state_get)
        .expect("unique name");
    linker
        .func_wrap("ea", "state_set", state_set)
        .expect("unique name");
    linker
        .func_wrap("ea", "state_del", state_del)
        .expect("unique name");
    linker.func_wrap("ea", "emit", emit).expect("unique name");
    linker
        .func_wrap("ea", "random_seed", random_seed)
        .expect("unique name");
    linker.func_wrap("ea", "log", log).expect("unique name");
    linker
}

/// How one guest call ended.
pub(crate) struct CallResult {
    pub outcome: Outcome,
    pub fuel_used: u64,
    /// Events of an applied call, in emission order.
    pub events: Vec<Vec<u8>>,
    /// Linear memory at the end of the call, in bytes (memory never shrinks,
    /// so this is the call's peak).
    pub memory_bytes: u64,
    /// The longest key the call passed to a state function, in bytes.
    pub key_bytes_max: u32,
    /// The longest value the call wrote, in bytes.
    pub value_bytes_max: u32,
}

type BotFunc = TypedFunc<(i32, i64, i32, i32), i32>;

/// The functions of one instance.
struct Bound {
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    input: TypedFunc<(i32, i32), i32>,
    genesis: Option<TypedFunc<(), ()>>,
    tick: Option<TypedFunc<i64, ()>>,
    bot: Option<BotFunc>,
}

/// One store and one instance of a compiled package.
pub(crate) struct Session {
    store: Store<HostContext>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    input: TypedFunc<(i32, i32), i32>,
    genesis: Option<TypedFunc<(), ()>>,
    tick: Option<TypedFunc<i64, ()>>,
    bot: Option<BotFunc>,
}

fn instantiate_error(error: wasmtime::Error) -> EngineError {
    EngineError::Instantiate {
        message: format!("{error:#}"),
    }
}

impl Session {
    /// Instantiates `compiled` around `context`. On failure the state comes back
    /// with the error, so the caller never loses it.
    #[allow(
        clippy::result_large_err,
        reason = "the state must come back by value; failures are rare"
    )]
    pub fn new(
        engine: &Engine,
        compiled: &CompiledPackage,
        context: HostContext,
    ) -> Result<Session, (EngineError, State)> {
        let mut store = Store::new(engine.wasmtime(), context);
        match Self::bind(&mut store, compiled) {
            Ok(functions) => Ok(Session {
                store,
                memory: functions.memory,
                alloc: functions.alloc,
                input: functions.input,
                genesis: functions.genesis,
                tick: functions.tick,
                bot: functions.bot,
            }),
            Err(error) => Err((error, store.into_data().state)),
        }
    }

    fn bind(
        store: &mut Store<HostContext>,
        compiled: &CompiledPackage,
    ) -> Result<Bound, EngineError> {
        let instance = compiled
            .pre
            .instantiate(&mut *store)
            .map_err(instantiate_error)?;
        let memory =
            instance
                .get_memory(&mut *store, "memory")
                .ok_or_else(|| EngineError::Instantiate {
                    message: "no memory export".into(),
                })?;
        store.data_mut().memory = Some(memory);
        let exports = compiled.exports;
        let mut optional =
            |present: bool, name: &str| -> Result<Option<wasmtime::Func>, EngineError> {
                if !present {
                    return Ok(None);
                }
                let func = instance.get_func(&mut *store, name);
                func.map(Some).ok_or_else(|| EngineError::Instantiate {
                    message: format!("no {name} export"),
                })
            };
        let genesis = optional(exports.genesis, "ea_genesis")?;
        let tick = optional(exports.tick, "ea_tick")?;
        let bot = optional(exports.bot, "ea_bot")?;
        Ok(Bound {
            memory,
            alloc: instance
                .get_typed_func(&mut *store, "ea_alloc")
                .map_err(instantiate_error)?,
            input: instance
                .get_typed_func(&mut *store, "ea_input")
                .map_err(instantiate_error)?,
            genesis: genesis
                .map(|f| f.typed(&*store))
                .transpose()
                .map_err(instantiate_error)?,
            tick: tick
                .map(|f| f.typed(&*store))
                .transpose()
                .map_err(instantiate_error)?,
            bot: bot
                .map(|f| f.typed(&*store))
                .transpose()
                .map_err(instantiate_error)?,
        })
    }

    pub fn context(&mut self) -> &mut HostContext {
        self.store.data_mut()
    }

    pub fn into_context(self) -> HostContext {
        self.store.into_data()
    }

    fn begin(&mut self, fuel: u64) {
        self.store.set_fuel(fuel).expect("fuel metering is enabled");
        self.store.data_mut().begin();
    }

    fn fuel_used(&self, budget: u64) -> u64 {
        budget - self.store.get_fuel().expect("fuel metering is enabled")
    }

    fn end(&mut self, outcome: Outcome, budget: u64) -> CallResult {
        let applied = outcome == Outcome::Applied;
        let fuel_used = self.fuel_used(budget);
        let memory_bytes = self.memory.data_size(&self.store) as u64;
        let context = self.store.data_mut();
        let (key_bytes_max, value_bytes_max) = (context.key_bytes_max, context.value_bytes_max);
        context.finish(applied);
        let events = if applied {
            std::mem::take(&mut context.events)
        } else {
            Vec::new()
        };
        CallResult {
            outcome,
            fuel_used,
            events,
            memory_bytes,
            key_bytes_max,
            value_bytes_max,
        }
    }

    fn classify(&self, error: &wasmtime::Error) -> Outcome {
        if let Some(class) = self.store.data().fault {
            return Outcome::Trapped(class);
        }
        let class = match error.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => return Outcome::OutOfFuel,
            Some(Trap::UnreachableCodeReached) => TrapClass::Unreachable,
            Some(Trap::MemoryOutOfBounds | Trap::TableOutOfBounds | Trap::HeapMisaligned) => {
                TrapClass::MemoryOutOfBounds
            }
            Some(
                Trap::IntegerOverflow | Trap::IntegerDivisionByZero | Trap::BadConversionToInteger,
            ) => TrapClass::Arithmetic,
            Some(Trap::IndirectCallToNull | Trap::BadSignature) => TrapClass::IndirectCall,
            Some(Trap::StackOverflow) => TrapClass::StackOverflow,
            _ => TrapClass::Wasm,
        };
        Outcome::Trapped(class)
    }

    /// Asks the guest for a buffer of `length` bytes, checks it lies in
    /// memory, and lets `fill` write guest memory (given whole, with the
    /// buffer's start): one look-up of the memory for both.
    fn allocate(
        &mut self,
        length: usize,
        fill: impl FnOnce(&mut [u8], usize),
    ) -> Result<usize, Outcome> {
        let pointer = match self.alloc.call(&mut self.store, length as i32) {
            Ok(pointer) => pointer,
            Err(error) => return Err(self.classify(&error)),
        };
        let data = self.memory.data_mut(&mut self.store);
        match range_in(data.len(), pointer, length) {
            Some(start) if pointer != 0 || length == 0 => {
                fill(data, start);
                Ok(start)
            }
            _ => Err(Outcome::Trapped(TrapClass::BadAllocation)),
        }
    }

    /// `ea_input` with `bytes`, as one transaction.
    pub fn call_input(&mut self, write: impl FnOnce(&mut [u8]), length: usize) -> CallResult {
        let budget = self.store.data().limits.fuel_per_input;
        self.begin(budget);
        let start = match self.allocate(length, |data, start| {
            write(&mut data[start..start + length]);
        }) {
            Ok(start) => start,
            Err(outcome) => return self.end(outcome, budget),
        };
        let outcome = match self
            .input
            .call(&mut self.store, (start as i32, length as i32))
        {
            Ok(0) => Outcome::Applied,
            Ok(code) if code > 0 => Outcome::Rejected(code as u32),
            Ok(_) => Outcome::Trapped(TrapClass::BadReturn),
            Err(error) => self.classify(&error),
        };
        self.end(outcome, budget)
    }

    /// `ea_genesis` or `ea_tick(tick)` as one transaction; `None` if not exported.
    pub fn call_hook(&mut self, tick: Option<i64>) -> Option<CallResult> {
        let budget = self.store.data().limits.fuel_per_tick;
        let result = match tick {
            // Fields are borrowed, not cloned: cloning a TypedFunc touches
            // wasmtime's type registry, which showed up in profiles.
            None => {
                self.genesis.as_ref()?;
                self.begin(budget);
                let genesis = self.genesis.as_ref().expect("checked above");
                genesis.call(&mut self.store, ())
            }
            Some(tick) => {
                self.tick.as_ref()?;
                self.begin(budget);
                let hook = self.tick.as_ref().expect("checked above");
                hook.call(&mut self.store, tick)
            }
        };
        let outcome = match result {
            Ok(()) => Outcome::Applied,
            Err(error) => self.classify(&error),
        };
        Some(self.end(outcome, budget))
    }

    /// `ea_bot(player, tick, buffer, capacity)` with the bot's key pre-filled;
    /// returns the payload (or `None`) and whether the instance is still usable.
    pub fn call_bot(
        &mut self,
        player: u32,
        tick: i64,
        key: &[u8; 32],
        capacity: usize,
    ) -> (Option<Vec<u8>>, bool) {
        if self.bot.is_none() {
            return (None, true);
        }
        let budget = self.store.data().limits.fuel_per_input;
        let payload_limit = self.store.data().limits.payload_bytes as usize;
        self.begin(budget);
        // `capacity` is at least 32 (`World::bot_payloads`).
        let Ok(start) = self.allocate(capacity, |data, start| {
            data[start..start + 32].copy_from_slice(key);
        }) else {
            return (None, false);
        };
        let bot = self.bot.as_ref().expect("checked above");
        let result = bot.call(
            &mut self.store,
            (player as i32, tick, start as i32, capacity as i32),
        );
        self.store.data_mut().finish(false);
        match result {
            // A payload over the world's payload_bytes would only be refused at
            // admission, so a bot that returns one sends nothing.
            Ok(length) if length >= 0 && (length as usize) <= capacity.min(payload_limit) => {
                let data = self.memory.data(&self.store);
                (Some(data[start..start + length as usize].to_vec()), true)
            }
            Ok(_) => (None, true),
            Err(_) => (None, false),
        }
    }
}

fn range_in(data_length: usize, pointer: i32, length: usize) -> Option<usize> {
    let start = pointer as u32 as usize;
    (start.checked_add(length)? <= data_length).then_some(start)
}
