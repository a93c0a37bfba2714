//! Receipts: what one call of the world's code did.
//!
//! Encoding, 82 bytes, little-endian:
//!
//! ```text
//! kind         u8    0 = input, 1 = tick hook (ea_tick), 2 = genesis hook (ea_genesis)
//! subject      32    envelope hash for an input; 32 zero bytes for a hook
//! outcome      u8    0 = applied, 1 = rejected, 2 = trapped, 3 = out_of_fuel
//! code         u32   rejected: the game's code (> 0); trapped: the TrapClass; else 0
//! fuel_used    u64
//! events_hash  32    events_hash() of the events emitted (empty unless applied)
//! event_count  u32
//! ```
//!
//! The receipt hash is `H(Receipt, encoding)`.

use crate::hash::{Domain, Hash};

/// What a receipt is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiptKind {
    /// One input envelope (`ea_input`).
    Input = 0,
    /// The tick hook (`ea_tick`).
    TickHook = 1,
    /// The genesis hook (`ea_genesis`).
    GenesisHook = 2,
}

/// Why a call trapped: the `code` of a `trapped` receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum TrapClass {
    /// A WebAssembly trap not classified below.
    Wasm = 1,
    /// `unreachable` executed.
    Unreachable = 2,
    /// Out-of-bounds memory or table access.
    MemoryOutOfBounds = 3,
    /// Integer division by zero or overflow, or a bad float-to-int conversion.
    Arithmetic = 4,
    /// Indirect call through a null or mistyped table entry.
    IndirectCall = 5,
    /// The WebAssembly stack overflowed.
    StackOverflow = 6,
    /// A host call was given a pointer range outside linear memory.
    HostPointer = 16,
    /// A state key was empty or over the key limit.
    KeyLength = 17,
    /// A state value was over the value limit.
    ValueLength = 18,
    /// An event was over the event size limit.
    EventLength = 19,
    /// More events than the per-call limit.
    EventCount = 20,
    /// `state_set` or `state_del` from a read-only (bot) instance.
    ReadOnlyState = 21,
    /// `ea_alloc` returned a buffer outside linear memory.
    BadAllocation = 22,
    /// `ea_input` returned a negative value.
    BadReturn = 23,
}

impl TrapClass {
    /// The class with this code, if there is one.
    pub fn from_code(code: u32) -> Option<TrapClass> {
        const ALL: [TrapClass; 14] = [
            TrapClass::Wasm,
            TrapClass::Unreachable,
            TrapClass::MemoryOutOfBounds,
            TrapClass::Arithmetic,
            TrapClass::IndirectCall,
            TrapClass::StackOverflow,
            TrapClass::HostPointer,
            TrapClass::KeyLength,
            TrapClass::ValueLength,
            TrapClass::EventLength,
            TrapClass::EventCount,
            TrapClass::ReadOnlyState,
            TrapClass::BadAllocation,
            TrapClass::BadReturn,
        ];
        ALL.into_iter().find(|class| *class as u32 == code)
    }
}

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Ran to completion and its writes stand.
    Applied,
    /// The game rules refused the input with this code (> 0).
    Rejected(u32),
    /// The call trapped; the code says why.
    Trapped(TrapClass),
    /// The call ran out of fuel.
    OutOfFuel,
}

impl Outcome {
    /// The `outcome` byte.
    pub fn tag(&self) -> u8 {
        match self {
            Outcome::Applied => 0,
            Outcome::Rejected(_) => 1,
            Outcome::Trapped(_) => 2,
            Outcome::OutOfFuel => 3,
        }
    }

    /// The `code` field.
    pub fn code(&self) -> u32 {
        match self {
            Outcome::Applied | Outcome::OutOfFuel => 0,
            Outcome::Rejected(code) => *code,
            Outcome::Trapped(class) => *class as u32,
        }
    }

    /// `applied`, `rejected`, `trapped` or `out_of_fuel`.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Rejected(_) => "rejected",
            Outcome::Trapped(_) => "trapped",
            Outcome::OutOfFuel => "out_of_fuel",
        }
    }
}

/// One receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// What the receipt is for.
    pub kind: ReceiptKind,
    /// The envelope hash, or zero for hooks.
    pub subject: Hash,
    /// How the call ended.
    pub outcome: Outcome,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Hash of the emitted events.
    pub events_hash: Hash,
    /// Number of emitted events.
    pub event_count: u32,
}

/// Encoded receipt length in bytes.
pub const RECEIPT_BYTES: usize = 82;

impl Receipt {
    /// The 82-byte encoding.
    pub fn encode(&self) -> [u8; RECEIPT_BYTES] {
        let mut out = [0u8; RECEIPT_BYTES];
        out[0] = self.kind as u8;
        out[1..33].copy_from_slice(&self.subject.0);
        out[33] = self.outcome.tag();
        out[34..38].copy_from_slice(&self.outcome.code().to_le_bytes());
        out[38..46].copy_from_slice(&self.fuel_used.to_le_bytes());
        out[46..78].copy_from_slice(&self.events_hash.0);
        out[78..82].copy_from_slice(&self.event_count.to_le_bytes());
        out
    }

    /// Decodes the 82-byte encoding; `None` if a tag or code is not one the
    /// protocol defines. `decode(encode(r)) == Some(r)` for every receipt.
    pub fn decode(bytes: &[u8; RECEIPT_BYTES]) -> Option<Receipt> {
        let kind = match bytes[0] {
            0 => ReceiptKind::Input,
            1 => ReceiptKind::TickHook,
            2 => ReceiptKind::GenesisHook,
            _ => return None,
        };
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let hash_at = |at: usize| Hash(bytes[at..at + 32].try_into().expect("32 bytes"));
        let code = u32_at(34);
        let outcome = match (bytes[33], code) {
            (0, 0) => Outcome::Applied,
            (1, code) if code > 0 => Outcome::Rejected(code),
            (2, code) => Outcome::Trapped(TrapClass::from_code(code)?),
            (3, 0) => Outcome::OutOfFuel,
            _ => return None,
        };
        Some(Receipt {
            kind,
            subject: hash_at(1),
            outcome,
            fuel_used: u64::from_le_bytes(bytes[38..46].try_into().expect("8 bytes")),
            events_hash: hash_at(46),
            event_count: u32_at(78),
        })
    }

    /// `H(Receipt, encode())`.
    pub fn hash(&self) -> Hash {
        Domain::Receipt.hash(&self.encode())
    }
}

/// `H(Events, concat(len u32 || bytes))` over the events in emission order.
/// The hash of no events (most inputs emit none) is computed once.
pub fn events_hash<'a>(events: impl IntoIterator<Item = &'a [u8]>) -> Hash {
    static EMPTY: std::sync::LazyLock<Hash> = std::sync::LazyLock::new(|| Domain::Events.hash(&[]));
    let mut events = events.into_iter().peekable();
    if events.peek().is_none() {
        return *EMPTY;
    }
    let mut hasher = Domain::Events.hasher();
    for event in events {
        hasher.update_u32(event.len() as u32).update(event);
    }
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_events_hash_is_the_hash_of_nothing() {
        assert_eq!(events_hash([]), Domain::Events.hash(&[]));
        assert_ne!(events_hash([&b""[..]]), events_hash([]));
        assert_eq!(
            events_hash([&b"ab"[..]]),
            Domain::Events.hash(&[2, 0, 0, 0, b'a', b'b'])
        );
    }

    #[test]
    fn encoding_layout() {
        let receipt = Receipt {
            kind: ReceiptKind::Input,
            subject: Hash([7; 32]),
            outcome: Outcome::Rejected(5),
            fuel_used: 0x0102,
            events_hash: events_hash([]),
            event_count: 0,
        };
        let bytes = receipt.encode();
        assert_eq!(bytes[0], 0);
        assert_eq!(&bytes[1..33], &[7; 32]);
        assert_eq!(bytes[33], 1);
        assert_eq!(&bytes[34..38], &[5, 0, 0, 0]);
        assert_eq!(&bytes[38..46], &[2, 1, 0, 0, 0, 0, 0, 0]);
        let trapped = Receipt {
            outcome: Outcome::Trapped(TrapClass::KeyLength),
            ..receipt
        };
        assert_eq!(trapped.encode()[33], 2);
        assert_eq!(&trapped.encode()[34..38], &[17, 0, 0, 0]);
        assert_ne!(trapped.hash(), receipt.hash());
    }

    #[test]
    fn decode_inverts_encode_and_refuses_unknown_tags() {
        let base = Receipt {
            kind: ReceiptKind::TickHook,
            subject: Hash([9; 32]),
            outcome: Outcome::Applied,
            fuel_used: u64::MAX,
            events_hash: events_hash([b"x".as_slice()]),
            event_count: 1,
        };
        for outcome in [
            Outcome::Applied,
            Outcome::Rejected(7),
            Outcome::Trapped(TrapClass::BadReturn),
            Outcome::OutOfFuel,
        ] {
            let receipt = Receipt { outcome, ..base };
            assert_eq!(Receipt::decode(&receipt.encode()), Some(receipt));
        }
        let mut bad = base.encode();
        bad[0] = 3;
        assert_eq!(Receipt::decode(&bad), None);
        let mut bad = Receipt {
            outcome: Outcome::Rejected(1),
            ..base
        }
        .encode();
        bad[34] = 0; // rejected with code 0
        assert_eq!(Receipt::decode(&bad), None);
        let mut bad = Receipt {
            outcome: Outcome::Trapped(TrapClass::Wasm),
            ..base
        }
        .encode();
        bad[34] = 99;
        assert_eq!(Receipt::decode(&bad), None);
    }

    #[test]
    fn events_hash_is_length_prefixed() {
        let joined = events_hash([b"ab".as_slice(), b"c".as_slice()]);
        let split = events_hash([b"a".as_slice(), b"bc".as_slice()]);
        assert_ne!(joined, split);
    }
}
