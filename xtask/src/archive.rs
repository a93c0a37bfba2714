//! The deterministic `.tar.gz` writer.
//!
//! Every entry sits under one top-level directory (the prefix). Directories
//! come before their contents and everything is in byte order of its path.
//! Headers are GNU, owner and group 0 with no names, one mtime for all,
//! mode 0755 for directories and the given mode for files. The gzip header
//! has mtime 0, no file name and the "unknown" operating system, so the bytes
//! depend only on the files, the options and the compressor's version.

use std::collections::BTreeSet;
use std::io::{self, Write};

use flate2::{Compression, GzBuilder};
use tar::{Builder, EntryType, Header};

/// The gzip header's operating-system byte for "unknown" (RFC 1952).
const GZIP_OS_UNKNOWN: u8 = 255;
/// Permission bits of every directory entry.
const DIRECTORY_MODE: u32 = 0o755;

/// One regular file to archive.
#[derive(Clone, Debug)]
pub struct ArchiveFile {
    /// Path under the prefix, `/`-separated, no `.` or `..` parts.
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    /// Contents.
    pub bytes: Vec<u8>,
}

/// How to write the archive.
#[derive(Clone, Debug)]
pub struct ArchiveOptions {
    /// The top-level directory.
    pub prefix: String,
    /// The mtime of every entry, seconds since 1970.
    pub mtime: u64,
    /// gzip level, 0 (store) to 9 (smallest).
    pub compression_level: u32,
}

/// Writes `files` as a gzip-compressed tar stream to `out` and returns `out`.
///
/// Panics if a path is empty, absolute, holds `.`/`..`/empty parts, or
/// appears twice: the caller builds the list, so that is a programmer error.
pub fn write_tar_gz<W: Write>(
    out: W,
    options: &ArchiveOptions,
    files: &[ArchiveFile],
) -> io::Result<W> {
    assert!(
        is_clean_relative(&options.prefix),
        "prefix {:?}",
        options.prefix
    );
    let gzip = GzBuilder::new()
        .mtime(0)
        .operating_system(GZIP_OS_UNKNOWN)
        .write(out, Compression::new(options.compression_level));
    let mut builder = Builder::new(gzip);
    for entry in entries(files) {
        let mut header = Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(options.mtime);
        match entry {
            Entry::Directory(path) => {
                header.set_entry_type(EntryType::Directory);
                header.set_mode(DIRECTORY_MODE);
                header.set_size(0);
                let path = join(&options.prefix, path) + "/";
                builder.append_data(&mut header, path, io::empty())?;
            }
            Entry::File(file) => {
                header.set_entry_type(EntryType::Regular);
                header.set_mode(file.mode);
                header.set_size(file.bytes.len() as u64);
                let path = join(&options.prefix, &file.path);
                builder.append_data(&mut header, path, file.bytes.as_slice())?;
            }
        }
    }
    builder.into_inner()?.finish()
}

enum Entry<'a> {
    /// A directory under the prefix; "" is the prefix itself.
    Directory(&'a str),
    File(&'a ArchiveFile),
}

/// Every directory and file, parents first, in path order.
fn entries(files: &[ArchiveFile]) -> Vec<Entry<'_>> {
    let mut directories = BTreeSet::from([""]);
    let mut paths = BTreeSet::new();
    for file in files {
        assert!(
            is_clean_relative(&file.path),
            "archive path {:?}",
            file.path
        );
        assert!(
            paths.insert(file.path.as_str()),
            "archive path {:?} twice",
            file.path
        );
        let mut end = 0;
        while let Some(slash) = file.path[end..].find('/') {
            end += slash;
            directories.insert(&file.path[..end]);
            end += 1;
        }
    }
    // A directory sorts as "<path>/", which puts it before its contents.
    let mut all: Vec<(String, Entry<'_>)> = directories
        .into_iter()
        .map(|dir| (format!("{dir}/"), Entry::Directory(dir)))
        .chain(
            files
                .iter()
                .map(|file| (file.path.clone(), Entry::File(file))),
        )
        .collect();
    all.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    all.into_iter().map(|(_, entry)| entry).collect()
}

fn join(prefix: &str, path: &str) -> String {
    if path.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}/{path}")
    }
}

/// A relative `/`-separated path with no empty, `.` or `..` part.
pub fn is_clean_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\\')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}
