//! `cargo xtask <task>`: workspace automation that is not part of the runtime.
//!
//! `cargo xtask dist [--out DIR] [--binary PATH]` builds the runtime in
//! release mode (unless `--binary` names one already built) and writes the
//! release into DIR (default `target/dist`).

use std::path::PathBuf;
use std::process::ExitCode;

use xtask::dist::COMPRESSION_LEVEL_DEFAULT;
use xtask::{BuildInfo, DistConfig, DistError, assemble, build_runtime, workspace_root};

const USAGE: &str = "usage: cargo xtask dist [--out DIR] [--binary PATH]

  dist   build the runtime (cargo build --release) and write the release:
         everarcade-runtime-<version>-<target>.tar.gz, release-manifest.json
         and SHA256SUMS (check it with `sha256sum -c SHA256SUMS`)
  --out DIR       the release directory (default: target/dist)
  --binary PATH   ship this already-built runtime binary instead of building";

/// A parsed `dist` command line.
struct DistArgs {
    out: Option<PathBuf>,
    binary: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<DistArgs, DistError> {
    let usage = |message: &str| DistError::Usage(format!("{message}\n\n{USAGE}"));
    let Some((task, rest)) = args.split_first() else {
        return Err(usage("no task given"));
    };
    if task != "dist" {
        return Err(usage(&format!("unknown task `{task}`")));
    }
    let mut parsed = DistArgs {
        out: None,
        binary: None,
    };
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        let slot = match flag.as_str() {
            "--out" => &mut parsed.out,
            "--binary" => &mut parsed.binary,
            other => return Err(usage(&format!("unknown option `{other}`"))),
        };
        let value = rest
            .next()
            .ok_or_else(|| usage(&format!("{flag} needs a value")))?;
        *slot = Some(PathBuf::from(value));
    }
    Ok(parsed)
}

fn dist(args: DistArgs) -> Result<(), DistError> {
    let root = workspace_root();
    let binary = match args.binary {
        Some(binary) => binary,
        None => build_runtime(&root)?,
    };
    let build = BuildInfo::detect(&root, &binary)?;
    let config = DistConfig {
        out_dir: args.out.unwrap_or_else(|| root.join("target/dist")),
        workspace_root: root,
        binary,
        build,
        compression_level: COMPRESSION_LEVEL_DEFAULT,
    };
    let release = assemble(&config)?;
    let manifest = &release.manifest;
    println!(
        "release {} for {}",
        manifest.runtime_version, manifest.target
    );
    if let Some(commit) = &manifest.git_commit {
        let dirty = if manifest.git_dirty == Some(true) {
            " (with uncommitted changes)"
        } else {
            ""
        };
        println!("  source   {commit}{dirty}");
    }
    for package in &manifest.packages {
        println!(
            "  package  {} {} root {}",
            package.name, package.version, package.root
        );
    }
    println!(
        "  {}  {}",
        release.archive_sha256,
        release.archive.display()
    );
    println!(
        "  {}  {}",
        release.manifest_sha256,
        release.manifest_path.display()
    );
    println!("  checksums: {}", release.sums_path.display());
    println!(
        "check it with: (cd {} && sha256sum -c {})",
        config.out_dir.display(),
        xtask::sums::SUMS_FILE
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let result = parse(&args).and_then(dist);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error[{}]: {error}", error.code());
            ExitCode::from(if matches!(error, DistError::Usage(_)) {
                2
            } else {
                1
            })
        }
    }
}
