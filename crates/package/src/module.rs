//! Validation of a module against World ABI v1 and the determinism profile.

use everarcade_protocol::Limits;
use wasmparser::{
    CompositeInnerType, ExternalKind, FuncType, Parser, Payload, TypeRef, ValType, Validator,
    WasmFeatures,
};

use crate::PackageError;

/// Bytes in one WebAssembly page.
pub const WASM_PAGE_BYTES: u64 = 65_536;

/// Which optional ABI exports a module provides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exports {
    /// `ea_genesis`.
    pub genesis: bool,
    /// `ea_tick`.
    pub tick: bool,
    /// `ea_bot`.
    pub bot: bool,
}

/// The WebAssembly features the determinism profile admits: the MVP plus the
/// deterministic post-MVP proposals clang emits. No threads, no relaxed SIMD,
/// no memory64, no multi-memory, no GC, no exceptions.
pub fn profile_features() -> WasmFeatures {
    WasmFeatures::MUTABLE_GLOBAL
        | WasmFeatures::SATURATING_FLOAT_TO_INT
        | WasmFeatures::SIGN_EXTENSION
        | WasmFeatures::MULTI_VALUE
        | WasmFeatures::BULK_MEMORY
        | WasmFeatures::REFERENCE_TYPES
        | WasmFeatures::SIMD
        | WasmFeatures::FLOATS
}

const IMPORTS: &[(&str, &[ValType], &[ValType], &str)] = &[
    (
        "state_get",
        &[ValType::I32; 4],
        &[ValType::I32],
        "(i32, i32, i32, i32) -> i32",
    ),
    (
        "state_set",
        &[ValType::I32; 4],
        &[],
        "(i32, i32, i32, i32) -> ()",
    ),
    ("state_del", &[ValType::I32; 2], &[], "(i32, i32) -> ()"),
    ("emit", &[ValType::I32; 2], &[], "(i32, i32) -> ()"),
    ("random_seed", &[ValType::I32], &[], "(i32) -> ()"),
    ("log", &[ValType::I32; 2], &[], "(i32, i32) -> ()"),
];

/// An ABI export: name, required, params, results, the type as the ABI writes it.
type ExportSpec = (
    &'static str,
    bool,
    &'static [ValType],
    &'static [ValType],
    &'static str,
);

const EXPORTS: &[ExportSpec] = &[
    (
        "ea_alloc",
        true,
        &[ValType::I32],
        &[ValType::I32],
        "(i32) -> i32",
    ),
    (
        "ea_input",
        true,
        &[ValType::I32; 2],
        &[ValType::I32],
        "(i32, i32) -> i32",
    ),
    ("ea_genesis", false, &[], &[], "() -> ()"),
    ("ea_tick", false, &[ValType::I64], &[], "(i64) -> ()"),
    (
        "ea_bot",
        false,
        &[ValType::I32, ValType::I64, ValType::I32, ValType::I32],
        &[ValType::I32],
        "(i32, i64, i32, i32) -> i32",
    ),
];

/// What the sections say, gathered in one pass.
#[derive(Default)]
struct Sections {
    types: Vec<Option<FuncType>>,
    functions: Vec<u32>,
    exports: Vec<(String, ExternalKind, u32)>,
    memory_maximum_pages: Vec<Option<u64>>,
}

/// Validates `wasm` against ABI v1 and `limits`; returns the optional exports present.
pub fn validate_module(wasm: &[u8], limits: &Limits) -> Result<Exports, PackageError> {
    let invalid = |e: wasmparser::BinaryReaderError| PackageError::InvalidWasm {
        message: e.to_string(),
    };
    Validator::new_with_features(profile_features())
        .validate_all(wasm)
        .map_err(invalid)?;
    let sections = read_sections(wasm)?;
    check_memory(&sections, limits)?;
    check_exports(&sections)
}

/// The declared maximum of the module's memory, in bytes; `None` for a
/// module that does not parse or declares no maximum (which
/// [`validate_module`] refuses).
pub fn memory_maximum_bytes(wasm: &[u8]) -> Option<u64> {
    let sections = read_sections(wasm).ok()?;
    let pages = (*sections.memory_maximum_pages.first()?)?;
    Some(pages.saturating_mul(WASM_PAGE_BYTES))
}

fn read_sections(wasm: &[u8]) -> Result<Sections, PackageError> {
    let mut sections = Sections::default();
    let invalid = |e: wasmparser::BinaryReaderError| PackageError::InvalidWasm {
        message: e.to_string(),
    };
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(invalid)? {
            Payload::TypeSection(reader) => {
                for group in reader {
                    for sub in group.map_err(invalid)?.into_types() {
                        let func = match sub.composite_type.inner {
                            CompositeInnerType::Func(func) => Some(func),
                            _ => None,
                        };
                        sections.types.push(func);
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(invalid)?;
                    check_import(&sections, import.module, import.name, import.ty)?;
                    if let TypeRef::Func(index) = import.ty {
                        sections.functions.push(index);
                    }
                }
            }
            Payload::FunctionSection(reader) => {
                for index in reader {
                    sections.functions.push(index.map_err(invalid)?);
                }
            }
            Payload::MemorySection(reader) => {
                for memory in reader {
                    sections
                        .memory_maximum_pages
                        .push(memory.map_err(invalid)?.maximum);
                }
            }
            Payload::StartSection { .. } => return Err(PackageError::StartFunction),
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(invalid)?;
                    sections
                        .exports
                        .push((export.name.to_string(), export.kind, export.index));
                }
            }
            _ => {}
        }
    }
    Ok(sections)
}

fn check_import(
    sections: &Sections,
    module: &str,
    name: &str,
    ty: TypeRef,
) -> Result<(), PackageError> {
    let forbidden = || PackageError::ForbiddenImport {
        module: module.to_string(),
        name: name.to_string(),
    };
    if module != "ea" {
        return Err(forbidden());
    }
    let (_, params, results, expected) = IMPORTS
        .iter()
        .find(|(known, ..)| *known == name)
        .ok_or_else(forbidden)?;
    let found = match ty {
        TypeRef::Func(index) => sections.types.get(index as usize).cloned().flatten(),
        _ => None,
    };
    match found {
        Some(func) if func.params() == *params && func.results() == *results => Ok(()),
        Some(func) => Err(PackageError::ImportSignature {
            name: name.to_string(),
            expected,
            found: describe(&func),
        }),
        None => Err(PackageError::ImportSignature {
            name: name.to_string(),
            expected,
            found: "a non-function import".to_string(),
        }),
    }
}

fn check_memory(sections: &Sections, limits: &Limits) -> Result<(), PackageError> {
    let Some(maximum) = sections.memory_maximum_pages.first() else {
        return Err(PackageError::MissingExport { name: "memory" });
    };
    let maximum_pages = maximum.ok_or(PackageError::MemoryMaximumMissing)?;
    let maximum_bytes = maximum_pages.saturating_mul(WASM_PAGE_BYTES);
    if maximum_bytes > limits.memory_bytes {
        return Err(PackageError::MemoryMaximumTooLarge {
            maximum_bytes,
            limit_bytes: limits.memory_bytes,
        });
    }
    Ok(())
}

fn check_exports(sections: &Sections) -> Result<Exports, PackageError> {
    let memory_exported = sections
        .exports
        .iter()
        .any(|(name, kind, _)| name == "memory" && *kind == ExternalKind::Memory);
    if !memory_exported {
        return Err(PackageError::MissingExport { name: "memory" });
    }
    let mut present = [false; 5];
    for (slot, (name, required, params, results, expected)) in EXPORTS.iter().enumerate() {
        let export = sections.exports.iter().find(|(export, ..)| export == name);
        let Some((_, kind, index)) = export else {
            if *required {
                return Err(PackageError::MissingExport { name });
            }
            continue;
        };
        let func = (*kind == ExternalKind::Func)
            .then(|| sections.functions.get(*index as usize))
            .flatten()
            .and_then(|type_index| sections.types.get(*type_index as usize).cloned().flatten());
        match func {
            Some(func) if func.params() == *params && func.results() == *results => {
                present[slot] = true
            }
            Some(func) => {
                return Err(PackageError::ExportSignature {
                    name,
                    expected,
                    found: describe(&func),
                });
            }
            None => {
                let found = "a non-function export".to_string();
                return Err(PackageError::ExportSignature {
                    name,
                    expected,
                    found,
                });
            }
        }
    }
    Ok(Exports {
        genesis: present[2],
        tick: present[3],
        bot: present[4],
    })
}

fn describe(func: &FuncType) -> String {
    let list = |types: &[ValType]| {
        types
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("({}) -> ({})", list(func.params()), list(func.results()))
}
