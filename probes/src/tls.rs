//! Finding the TLS libraries to probe: every `libssl.so*` mapped by a process on the host, plus
//! the system's own copy (so processes that start later are covered from the first call).
//!
//! A uprobe attached to a library file fires in every process that maps that file, now or
//! later, so one attachment per distinct file (device and inode) is enough; a rescan picks up
//! copies the agent has not seen (a container image's own libssl, a virtualenv's).

use std::{
    collections::HashSet,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// The library's read and write calls, with the uprobe/uretprobe programs for each.
/// NB: OpenSSL 1.1.1 and 3.x export all four; the `_ex` ones are optional for older copies.
pub const SSL_FUNCTIONS: &[(&str, &str, &str)] = &[
    ("SSL_write", "ssl_write_enter", "ssl_write_return"),
    ("SSL_read", "ssl_read_enter", "ssl_read_return"),
    ("SSL_write_ex", "ssl_write_ex_enter", "ssl_write_ex_return"),
    ("SSL_read_ex", "ssl_read_ex_enter", "ssl_read_ex_return"),
];

/// Where Debian and most distributions keep the system OpenSSL.
const SYSTEM_CANDIDATES: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/libssl.so.3",
    "/usr/lib/aarch64-linux-gnu/libssl.so.3",
    "/usr/lib64/libssl.so.3",
    "/usr/lib/libssl.so.3",
];

/// A library file, identified by device and inode (one uprobe covers every path to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
}

/// A libssl found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    /// A path that opens it from the agent's mount namespace (through `/proc/PID/root` for
    /// other namespaces).
    pub path: PathBuf,
    /// Its identity.
    pub id: FileId,
}

fn is_libssl(name: &str) -> bool {
    name.starts_with("libssl.so")
}

/// Every distinct libssl mapped by a process now, plus the system's, minus those in `known`.
/// Unreadable processes (gone, or not ours to read) are skipped.
pub fn find_libssl(known: &HashSet<FileId>) -> Vec<Library> {
    let mut seen = known.clone();
    let mut out = Vec::new();
    let mut add = |path: PathBuf| {
        let Ok(meta) = std::fs::metadata(&path) else {
            return;
        };
        let id = FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        };
        if seen.insert(id) {
            out.push(Library { path, id });
        }
    };
    for c in SYSTEM_CANDIDATES {
        add(PathBuf::from(c));
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in procs.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(maps) = std::fs::read_to_string(entry.path().join("maps")) else {
            continue;
        };
        for path in mapped_libssl(&maps) {
            // NB: through the process's root, so a container's own copy opens from here.
            let rel = path.strip_prefix("/").unwrap_or(path);
            add(Path::new("/proc").join(pid).join("root").join(rel));
        }
    }
    out
}

/// The distinct libssl paths in a `/proc/PID/maps` text.
pub fn mapped_libssl(maps: &str) -> Vec<&Path> {
    let mut paths: Vec<&Path> = Vec::new();
    for line in maps.lines() {
        // address perms offset dev inode path
        let Some(path) = line.split_whitespace().nth(5) else {
            continue;
        };
        let p = Path::new(path);
        if p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(is_libssl)
            && !paths.contains(&p)
        {
            paths.push(p);
        }
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_libssl_once_in_maps_and_ignores_the_rest() {
        let maps = "\
7f1c0a000000-7f1c0a020000 r--p 00000000 fe:01 1234 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f1c0a020000-7f1c0a080000 r-xp 00020000 fe:01 1234 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f1c0b000000-7f1c0b020000 r--p 00000000 fe:01 99 /usr/lib/x86_64-linux-gnu/libcrypto.so.3
7f1c0c000000-7f1c0c001000 rw-p 00000000 00:00 0
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
7f1c0d000000-7f1c0d020000 r-xp 00000000 fe:01 777 /opt/app/lib/libssl.so.1.1
";
        assert_eq!(
            mapped_libssl(maps),
            vec![
                Path::new("/usr/lib/x86_64-linux-gnu/libssl.so.3"),
                Path::new("/opt/app/lib/libssl.so.1.1"),
            ]
        );
    }

    #[test]
    fn known_files_are_not_found_again() {
        let first = find_libssl(&HashSet::new());
        let known: HashSet<FileId> = first.iter().map(|l| l.id).collect();
        assert!(find_libssl(&known).is_empty());
    }
}
