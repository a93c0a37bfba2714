//! A world: state, nonces and the continuity chain, advanced one tick at a time.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use everarcade_protocol::{
    Envelope, EnvelopeError, Hash, Limits, Outcome, PublicKey, Receipt, ReceiptKind, SignatureRule,
    Tick, TickRoots, Verified, WorldId, continuity_root, events_hash, genesis_root, list_root,
    random_seed,
};
use everarcade_state::State;

use crate::engine::{CompiledPackage, Engine};
use crate::error::EngineError;
use crate::host::{CallResult, HostContext, Session};

/// What one guest call did beyond its receipt: diagnostics for `package
/// check` and `simulate --trace`. No root covers any of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallTrace {
    /// Where the call's debug log lines are in the output's `logs` (an
    /// index range; lines past the per-tick cap were dropped).
    pub logs: Range<usize>,
    /// Linear memory at the end of the call, in bytes (its peak: memory
    /// never shrinks).
    pub memory_bytes: u64,
    /// The longest key the call passed to a state function, in bytes.
    pub key_bytes_max: u32,
    /// The longest value the call wrote, in bytes.
    pub value_bytes_max: u32,
}

impl CallTrace {
    fn of(result: &CallResult, logs: Range<usize>) -> CallTrace {
        CallTrace {
            logs,
            memory_bytes: result.memory_bytes,
            key_bytes_max: result.key_bytes_max,
            value_bytes_max: result.value_bytes_max,
        }
    }
}

/// What genesis produced.
#[derive(Clone, Debug)]
pub struct GenesisOutput {
    /// `C(0)`.
    pub genesis_root: Hash,
    /// The state root after `ea_genesis`.
    pub state_root: Hash,
    /// The genesis hook's receipt, if the package exports `ea_genesis`.
    pub receipt: Option<Receipt>,
    /// The genesis hook's trace, if the package exports `ea_genesis`.
    pub trace: Option<CallTrace>,
    /// Debug log lines `ea_genesis` wrote (never hashed, bounded).
    pub logs: Vec<String>,
}

/// What one tick produced.
#[derive(Clone, Debug)]
pub struct TickOutput {
    /// The tick's roots.
    pub roots: TickRoots,
    /// One receipt per input in order, then the tick hook's.
    pub receipts: Vec<Receipt>,
    /// The events of each receipt (empty unless applied).
    pub events: Vec<Vec<Vec<u8>>>,
    /// Debug log lines the guest wrote (never hashed, bounded).
    pub logs: Vec<String>,
    /// One trace per receipt, in the same order.
    pub calls: Vec<CallTrace>,
}

impl TickOutput {
    /// The log lines of the call behind receipt `index` (empty for an index
    /// past the receipts).
    pub fn call_logs(&self, index: usize) -> &[String] {
        self.calls
            .get(index)
            .and_then(|call| self.logs.get(call.logs.clone()))
            .unwrap_or(&[])
    }
}

/// Everything needed to resume a world at a tick boundary (what a checkpoint holds).
pub struct Snapshot {
    /// The last executed tick.
    pub tick: Tick,
    /// `C(0)` of the world.
    pub genesis_root: Hash,
    /// `C(tick)`.
    pub continuity_root: Hash,
    /// The state after `tick`.
    pub state: State,
    /// The last accepted nonce of each sender.
    pub nonces: BTreeMap<PublicKey, u64>,
}

/// A running world.
pub struct World {
    id: WorldId,
    compiled: Arc<CompiledPackage>,
    state: State,
    nonces: BTreeMap<PublicKey, u64>,
    tick: Tick,
    genesis_root: Hash,
    continuity: Hash,
}

impl World {
    /// Creates world `id` from a compiled package: runs `ea_genesis` at tick 0.
    pub fn genesis(
        engine: &Engine,
        id: WorldId,
        compiled: Arc<CompiledPackage>,
    ) -> Result<(World, GenesisOutput), EngineError> {
        let package = &compiled.package;
        let genesis = genesis_root(&id, &package.root, &package.profile().hash());
        let mut world = World {
            id,
            compiled: compiled.clone(),
            state: State::new(),
            nonces: BTreeMap::new(),
            tick: 0,
            genesis_root: genesis,
            continuity: genesis,
        };
        let mut session = world.session(engine, random_seed(&genesis, 0).0, false)?;
        let result = session.call_hook(None);
        let context = session.into_context();
        world.state = context.state;
        let trace = result
            .as_ref()
            .map(|result| CallTrace::of(result, 0..context.logs.len()));
        let receipt = result.map(|result| hook_receipt(ReceiptKind::GenesisHook, &result));
        if let Some(receipt) = &receipt
            && receipt.outcome != Outcome::Applied
        {
            return Err(EngineError::GenesisFailed {
                outcome: receipt.outcome,
            });
        }
        let state_root = world.state.root();
        Ok((
            world,
            GenesisOutput {
                genesis_root: genesis,
                state_root,
                receipt,
                trace,
                logs: context.logs,
            },
        ))
    }

    /// Resumes world `id` from a snapshot taken at a tick boundary. Refuses a
    /// snapshot whose `C(0)` is not the one this package and id give.
    pub fn resume(
        id: WorldId,
        compiled: Arc<CompiledPackage>,
        snapshot: Snapshot,
    ) -> Result<World, EngineError> {
        let package = &compiled.package;
        let expected = genesis_root(&id, &package.root, &package.profile().hash());
        if snapshot.genesis_root != expected {
            return Err(EngineError::GenesisMismatch {
                expected,
                got: snapshot.genesis_root,
            });
        }
        Ok(World {
            id,
            compiled,
            state: snapshot.state,
            nonces: snapshot.nonces,
            tick: snapshot.tick,
            genesis_root: snapshot.genesis_root,
            continuity: snapshot.continuity_root,
        })
    }

    /// The world id.
    pub fn id(&self) -> &WorldId {
        &self.id
    }

    /// The last executed tick (0 right after genesis).
    pub fn tick(&self) -> Tick {
        self.tick
    }

    /// `C(0)`.
    pub fn genesis_root(&self) -> Hash {
        self.genesis_root
    }

    /// `C(tick)`.
    pub fn continuity_root(&self) -> Hash {
        self.continuity
    }

    /// Switches the rules from the next tick on: a package transition
    /// recorded in the world's lineage (an upgrade). The state, nonces and
    /// continuity chain carry over unchanged.
    pub fn set_package(&mut self, compiled: Arc<CompiledPackage>) {
        self.compiled = compiled;
    }

    /// Continues the chain from `root` as if the last tick had produced it.
    /// Only for compatibility checks, which replay history under another
    /// package and must keep the recorded randomness (`random_seed` derives
    /// from `C(t-1)`); never on a lineage's own path.
    pub fn set_continuity_root(&mut self, root: Hash) {
        self.continuity = root;
    }

    /// The compiled package the world runs.
    pub fn compiled(&self) -> &Arc<CompiledPackage> {
        &self.compiled
    }

    /// The manifest limits.
    pub fn limits(&self) -> Limits {
        self.compiled.package.manifest.limits
    }

    /// The signature rule of the world's profile (docs/PROTOCOL.md §4.3).
    pub fn signature_rule(&self) -> SignatureRule {
        self.compiled.package.manifest.signatures
    }

    /// The state (read only; the root is available through [`World::state_root`]).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The current state root.
    pub fn state_root(&mut self) -> Hash {
        self.state.root()
    }

    /// A membership or absence proof for `key` against the current state root.
    pub fn prove(&mut self, key: &[u8]) -> everarcade_state::Proof {
        self.state.prove(key)
    }

    /// The last accepted nonce of each sender.
    pub fn nonces(&self) -> &BTreeMap<PublicKey, u64> {
        &self.nonces
    }

    /// Admission: refuses another world's envelope, an oversize payload, a nonce
    /// not above the sender's last, or a bad signature; on success records the
    /// nonce. Cheap checks run before the signature check.
    pub fn admit(&mut self, envelope: &Envelope) -> Result<(), EnvelopeError> {
        self.check_admission(envelope)?;
        envelope.verify_signature_under(self.signature_rule())?;
        self.nonces.insert(envelope.sender, envelope.nonce);
        Ok(())
    }

    /// Admission of an envelope whose signature was already checked (the
    /// node verifies signatures on its HTTP threads, in parallel): the same
    /// checks as [`World::admit`] but the signature.
    pub fn admit_verified(&mut self, verified: &Verified) -> Result<(), EnvelopeError> {
        let envelope = verified.envelope();
        self.check_admission(envelope)?;
        self.nonces.insert(envelope.sender, envelope.nonce);
        Ok(())
    }

    /// [`World::admit`] of each envelope in order, their signatures checked
    /// together first on every core, in batches under ZIP-215
    /// ([`Envelope::verify_signatures_under`]): what replays use. Stops at the first refusal and returns its index and the
    /// error [`World::admit`] gives for it; the envelopes before it stay
    /// admitted.
    pub fn admit_all(&mut self, envelopes: &[Envelope]) -> Result<(), (usize, EnvelopeError)> {
        let signatures = Envelope::verify_signatures_under(envelopes, self.signature_rule());
        self.admit_all_checked(envelopes, signatures)
    }

    /// [`World::admit_all`] with the signatures checked already, under
    /// this world's [`World::signature_rule`]: `signatures[i]` must be
    /// `envelopes[i].verify_signature_under(self.signature_rule())` (a
    /// replay checks many records' signatures at once, ahead of admission).
    pub fn admit_all_checked(
        &mut self,
        envelopes: &[Envelope],
        signatures: Vec<Result<(), EnvelopeError>>,
    ) -> Result<(), (usize, EnvelopeError)> {
        assert_eq!(envelopes.len(), signatures.len(), "one check per envelope");
        for (index, (envelope, signature)) in envelopes.iter().zip(signatures).enumerate() {
            let admitted = match signature {
                Ok(()) => self.readmit(envelope),
                // Checked again in admission's order (world, size, nonce
                // before the signature), so the error is admit's.
                Err(_) => self.admit(envelope),
            };
            admitted.map_err(|error| (index, error))?;
        }
        Ok(())
    }

    /// Admission for recovery: an envelope read back from this world's own
    /// checksummed journal, whose signature was verified when it was first
    /// admitted. Checks world, size and nonce, not the signature
    /// (replay verification uses [`World::admit`] and re-checks it).
    pub fn readmit(&mut self, envelope: &Envelope) -> Result<(), EnvelopeError> {
        self.check_admission(envelope)?;
        self.nonces.insert(envelope.sender, envelope.nonce);
        Ok(())
    }

    fn check_admission(&self, envelope: &Envelope) -> Result<(), EnvelopeError> {
        if envelope.world != self.id {
            return Err(EnvelopeError::WrongWorld {
                expected: self.id.to_string(),
                got: envelope.world.to_string(),
            });
        }
        let limit = self.limits().payload_bytes as usize;
        if envelope.payload.len() > limit {
            return Err(EnvelopeError::PayloadTooLarge {
                length: envelope.payload.len(),
                limit,
            });
        }
        let last = self.nonces.get(&envelope.sender).copied().unwrap_or(0);
        if envelope.nonce <= last {
            return Err(EnvelopeError::StaleNonce {
                sender: Hash(envelope.sender).to_hex(),
                nonce: envelope.nonce,
                last,
            });
        }
        Ok(())
    }

    /// A session around the world's state (moved in; it comes back through
    /// `into_context`, or here if instantiation fails).
    pub(crate) fn session(
        &mut self,
        engine: &Engine,
        random: [u8; 32],
        read_only: bool,
    ) -> Result<Session, EngineError> {
        let state = std::mem::take(&mut self.state);
        let context = HostContext::new(state, self.limits(), read_only, random);
        Session::new(engine, &self.compiled, context).map_err(|(error, state)| {
            self.state = state;
            error
        })
    }

    /// Executes tick `tick() + 1` over admitted `inputs`, in order.
    pub fn execute_tick(
        &mut self,
        engine: &Engine,
        inputs: &[Envelope],
    ) -> Result<TickOutput, EngineError> {
        let tick = self.tick + 1;
        self.check_inputs(tick, inputs)?;
        let random = random_seed(&self.continuity, tick).0;
        let mut session = self.session(engine, random, false)?;
        let mut receipts = Vec::with_capacity(inputs.len() + 1);
        let mut events = Vec::with_capacity(inputs.len() + 1);
        let mut calls = Vec::with_capacity(inputs.len() + 1);
        for envelope in inputs {
            let logged = session.context().logs.len();
            let result = session.call_input(
                |out| envelope.write_guest_input(out),
                envelope.guest_input_len(),
            );
            let fresh_instance_needed =
                matches!(result.outcome, Outcome::Trapped(_) | Outcome::OutOfFuel);
            receipts.push(input_receipt(envelope.hash(), &result));
            calls.push(CallTrace::of(&result, logged..session.context().logs.len()));
            events.push(result.events);
            if fresh_instance_needed {
                session = self.replace_session(engine, session, random)?;
            }
        }
        let logged = session.context().logs.len();
        if let Some(result) = session.call_hook(Some(tick as i64)) {
            receipts.push(hook_receipt(ReceiptKind::TickHook, &result));
            calls.push(CallTrace::of(&result, logged..session.context().logs.len()));
            events.push(result.events);
        }
        let context = session.into_context();
        self.state = context.state;
        let envelope_hashes: Vec<Hash> = receipts
            .iter()
            .filter(|receipt| receipt.kind == ReceiptKind::Input)
            .map(|receipt| receipt.subject)
            .collect();
        let roots = self.advance(tick, &envelope_hashes, &receipts);
        Ok(TickOutput {
            roots,
            receipts,
            events,
            logs: context.logs,
            calls,
        })
    }

    fn replace_session(
        &mut self,
        engine: &Engine,
        old: Session,
        random: [u8; 32],
    ) -> Result<Session, EngineError> {
        let mut context = old.into_context();
        self.state = std::mem::take(&mut context.state);
        let mut session = self.session(engine, random, false)?;
        session.context().logs = context.logs;
        Ok(session)
    }

    fn check_inputs(&self, tick: Tick, inputs: &[Envelope]) -> Result<(), EngineError> {
        let limits = self.limits();
        if inputs.len() > limits.inputs_per_tick as usize {
            return Err(EngineError::TooManyInputs {
                tick,
                count: inputs.len(),
                limit: limits.inputs_per_tick,
            });
        }
        if let Some(envelope) = inputs
            .iter()
            .find(|e| e.payload.len() > limits.payload_bytes as usize)
        {
            return Err(EngineError::PayloadTooLarge {
                tick,
                length: envelope.payload.len(),
                limit: limits.payload_bytes,
            });
        }
        Ok(())
    }

    fn advance(&mut self, tick: Tick, envelope_hashes: &[Hash], receipts: &[Receipt]) -> TickRoots {
        let input_root = list_root(envelope_hashes);
        let receipt_hashes: Vec<Hash> = receipts.iter().map(Receipt::hash).collect();
        let receipt_root = list_root(&receipt_hashes);
        let state_root = self.state.root();
        let continuity = continuity_root(
            &self.continuity,
            tick,
            &input_root,
            &receipt_root,
            &state_root,
        );
        self.tick = tick;
        self.continuity = continuity;
        TickRoots {
            tick,
            input_root,
            receipt_root,
            state_root,
            continuity_root: continuity,
        }
    }

    pub(crate) fn put_state(&mut self, state: State) {
        self.state = state;
    }
}

fn input_receipt(subject: Hash, result: &CallResult) -> Receipt {
    Receipt {
        kind: ReceiptKind::Input,
        subject,
        outcome: result.outcome,
        fuel_used: result.fuel_used,
        events_hash: events_hash(result.events.iter().map(Vec::as_slice)),
        event_count: result.events.len() as u32,
    }
}

fn hook_receipt(kind: ReceiptKind, result: &CallResult) -> Receipt {
    Receipt {
        kind,
        subject: Hash::ZERO,
        ..input_receipt(Hash::ZERO, result)
    }
}
