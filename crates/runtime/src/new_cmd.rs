//! `new <dir> [--name N]`: writes a ready world package in C, from the
//! template embedded in this binary: the SDK header, a small sample world,
//! `build.sh` (clang `--target=wasm32` and wasm-ld), a `world.toml` whose
//! limits were measured from the sample, and a README.
//!
//! It never overwrites anything: a directory that exists and is not empty
//! is refused (`directory_not_empty`).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use clap::Args;

use crate::exit::{FAILURE, Failure, USAGE};

/// The longest package name, in bytes (the manifest's own ceiling).
pub const NAME_BYTES_MAX: usize = 64;

/// Mode of the files written.
const FILE_MODE: u32 = 0o644;
/// Mode of `build.sh`.
const SCRIPT_MODE: u32 = 0o755;
/// Where the manifest template puts the package name.
const NAME_PLACEHOLDER: &str = "@NAME@";

/// One file of the template: its path in the package, contents, mode.
struct TemplateFile {
    path: &'static str,
    contents: &'static str,
    mode: u32,
}

/// Every file `new` writes. The header is the SDK's, byte for byte.
const TEMPLATE: &[TemplateFile] = &[
    TemplateFile {
        path: "world.toml",
        contents: include_str!("../template/world.toml"),
        mode: FILE_MODE,
    },
    TemplateFile {
        path: "build.sh",
        contents: include_str!("../template/build.sh"),
        mode: SCRIPT_MODE,
    },
    TemplateFile {
        path: "README.md",
        contents: include_str!("../template/README.md"),
        mode: FILE_MODE,
    },
    TemplateFile {
        path: "src/world.c",
        contents: include_str!("../template/src/world.c"),
        mode: FILE_MODE,
    },
    TemplateFile {
        path: "include/everarcade.h",
        contents: include_str!("../../../sdk/c/everarcade.h"),
        mode: FILE_MODE,
    },
];

/// Options of `new`.
#[derive(Args)]
pub struct NewArgs {
    /// Where to write the package (created; must not exist or be empty).
    dir: PathBuf,
    /// The package name in world.toml [default: the directory's name].
    #[arg(long)]
    name: Option<String>,
}

/// Runs `new`.
pub fn run(args: NewArgs) -> Result<(), Failure> {
    let name = match &args.name {
        Some(name) => name.clone(),
        None => default_name(&args.dir)?,
    };
    check_name(&name)?;
    check_empty(&args.dir)?;
    for file in TEMPLATE {
        let contents = file.contents.replace(NAME_PLACEHOLDER, &name);
        write_new(&args.dir.join(file.path), contents.as_bytes(), file.mode)?;
    }
    let dir = args.dir.display();
    println!("created world package {name:?} in {dir}");
    println!("next:");
    println!("  {dir}/build.sh                     # clang + wasm-ld -> world.wasm");
    println!("  everarcade-runtime package check {dir}");
    println!(
        "  everarcade-runtime simulate <runtime-root> <world-id> {dir} --ticks 50 --bots 8 --verify"
    );
    Ok(())
}

fn default_name(dir: &Path) -> Result<String, Failure> {
    dir.file_name()
        .and_then(|name| name.to_str())
        .map(str::to_string)
        .ok_or_else(|| {
            let message = format!(
                "{} has no file name to name the package after; pass --name",
                dir.display()
            );
            Failure::new(USAGE, "invalid_name", message)
        })
}

/// A name the manifest accepts and TOML needs no escaping for.
fn check_name(name: &str) -> Result<(), Failure> {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if name.is_empty() || name.len() > NAME_BYTES_MAX || !plain {
        let message = format!(
            "package name {name:?} must be 1..={NAME_BYTES_MAX} characters of A-Z a-z 0-9 - _ . (pass --name)"
        );
        return Err(Failure::new(USAGE, "invalid_name", message));
    }
    Ok(())
}

/// Refuses a path that is a file, or a directory with anything in it.
fn check_empty(dir: &Path) -> Result<(), Failure> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotADirectory => {
            let message = format!("{} exists and is not a directory", dir.display());
            return Err(Failure::new(USAGE, "not_a_directory", message));
        }
        Err(error) => return Err(io_failure("read", dir, error)),
    };
    if entries.into_iter().next().is_some() {
        let message = format!(
            "{} exists and is not empty; `new` writes only into a new or empty directory",
            dir.display()
        );
        return Err(Failure::new(USAGE, "directory_not_empty", message));
    }
    Ok(())
}

/// Creates `path` (and its parent directories); never replaces a file.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Failure> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_failure("create", parent, e))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| io_failure("create", path, e))?;
    file.write_all(bytes)
        .map_err(|e| io_failure("write", path, e))?;
    // The umask may have cleared bits of the mode asked for.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io_failure("chmod", path, e))
}

fn io_failure(what: &str, path: &Path, error: std::io::Error) -> Failure {
    Failure::new(
        FAILURE,
        "io_error",
        format!("cannot {what} {}: {error}", path.display()),
    )
}
