//! The persistent on-disk cache (pyramids, point indexes): where it lives, what identifies the data
//! file an entry was built from (path as bytes, size, mtime, inode, ctime, a hash of its content),
//! whether it can store entries now, listing, clearing and a size cap with least-recently-used eviction.
//!
//! Entries are plain files `ROOT/KIND/KEY.EXT`; their last-use time is the entry file's mtime
//! (touched on every use). An entry under construction has a `.partial` suffix and is renamed into
//! place only when complete, so a reader never sees half an entry under the final name.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// Overrides the cache root (tests, shared machines).
pub const ENV_DIR: &str = "VASTVIEW_CACHE_DIR";
/// Overrides the size cap, in MiB.
pub const ENV_CAP_MB: &str = "VASTVIEW_CACHE_CAP_MB";
/// Default size cap: 20 GiB.
pub const DEFAULT_CAP: u64 = 20 << 30;
/// Files up to this size are hashed whole into their identity.
pub const WHOLE_HASH_BYTES: u64 = 16 << 20;
/// Larger files: their first and last `EDGE_BYTES` and `SAMPLE_BLOCKS` blocks of `BLOCK_BYTES` evenly
/// spread between.
const EDGE_BYTES: u64 = 64 << 10;
const SAMPLE_BLOCKS: u64 = 64;
const BLOCK_BYTES: u64 = 4 << 10;

/// The cache root: `$VASTVIEW_CACHE_DIR`, else the platform cache directory (`$XDG_CACHE_HOME/vastview`
/// or `~/.cache/vastview` on Linux).
pub fn root() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os(ENV_DIR).filter(|d| !d.is_empty()) {
        #[cfg(test)]
        crate::test_init::check_root(Path::new(&d));
        return Ok(PathBuf::from(d));
    }
    #[cfg(test)]
    crate::test_init::check_root(Path::new("~/.cache/vastview"));
    directories::ProjectDirs::from("", "", "vastview").map(|p| p.cache_dir().to_path_buf()).ok_or_else(|| {
        Error::bad_input("<cache>", "no cache directory: set HOME, XDG_CACHE_HOME or VASTVIEW_CACHE_DIR")
    })
}

/// The size cap in bytes (`$VASTVIEW_CACHE_CAP_MB`, else [`DEFAULT_CAP`]).
pub fn cap() -> u64 {
    std::env::var(ENV_CAP_MB).ok().and_then(|v| v.trim().parse::<u64>().ok()).map_or(DEFAULT_CAP, |mb| mb << 20)
}

/// 64-bit FNV-1a: a stable hash (the standard library's may change between Rust versions).
pub fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut h = seed ^ 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// What an entry was built from: a changed file (size, modification time, inode, status-change time or
/// sampled content) never matches its old entries. Rewriting a file in place or moving another file
/// over it changes its ctime (and a move its inode) even when its mtime is restored with `touch -r`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// Canonical path of the data file (bytes: a JSON string when it is UTF-8, else an array of bytes).
    #[serde(with = "os_path")]
    pub path: PathBuf,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: u128,
    /// Inode number.
    pub inode: u64,
    /// Status-change time (ctime), nanoseconds since the Unix epoch.
    pub ctime_ns: i128,
    /// Hash of the content: the whole file up to [`WHOLE_HASH_BYTES`], else its first and last 64 KiB
    /// and 64 blocks of 4 KiB evenly spread between.
    pub content_hash: u64,
}

/// A path as JSON: a string when it is valid UTF-8, else the array of its bytes (Unix paths are bytes).
mod os_path {
    use std::ffi::OsString;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    use std::path::{Path, PathBuf};

    pub fn serialize<S: serde::Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
        match p.to_str() {
            Some(t) => s.serialize_str(t),
            None => s.collect_seq(p.as_os_str().as_bytes()),
        }
    }

    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Text(String),
        Bytes(Vec<u8>),
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        Ok(match <Repr as serde::Deserialize>::deserialize(d)? {
            Repr::Text(t) => PathBuf::from(t),
            Repr::Bytes(b) => PathBuf::from(OsString::from_vec(b)),
        })
    }
}

/// A file's modification time in nanoseconds since the epoch (0 when the system has none).
fn mtime_ns(meta: &std::fs::Metadata) -> u128 {
    meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos())
}

/// Most entries [`tree_hash`] looks at (a store with more is identified by its first ones).
const TREE_ENTRIES: usize = 1 << 20;

/// The identity of a directory store (Zarr): every file's path, size and modification time below it,
/// in name order, so rewriting a chunk or the metadata makes cached results stale.
fn tree_hash(root: &Path) -> u64 {
    let mut h = 0;
    let mut seen = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            seen += 1;
            if seen > TREE_ENTRIES {
                return h;
            }
            let Ok(m) = e.metadata() else { continue };
            h = fnv1a(e.file_name().as_encoded_bytes(), h);
            if m.is_dir() {
                stack.push(e.path());
                continue;
            }
            let mtime = mtime_ns(&m);
            h = fnv1a(&m.len().to_le_bytes(), h);
            h = fnv1a(&mtime.to_le_bytes(), h);
        }
    }
    h
}

/// The content hash of [`Identity`]: FNV-1a over the CRC-32 of each piece read.
fn content_hash(file: &File, size: u64) -> std::io::Result<u64> {
    let mut h = fnv1a(&size.to_le_bytes(), 0);
    let mut buf = vec![0u8; EDGE_BYTES as usize];
    let mut piece = |at: u64, len: u64| -> std::io::Result<()> {
        let b = &mut buf[..len as usize];
        file.read_exact_at(b, at)?;
        h = fnv1a(&crc32fast::hash(b).to_le_bytes(), h);
        Ok(())
    };
    if size <= WHOLE_HASH_BYTES {
        let mut at = 0;
        while at < size {
            let len = (size - at).min(EDGE_BYTES);
            piece(at, len)?;
            at += len;
        }
    } else {
        piece(0, EDGE_BYTES)?;
        let span = size - 2 * EDGE_BYTES - BLOCK_BYTES;
        for i in 0..SAMPLE_BLOCKS {
            piece(EDGE_BYTES + (2 * i + 1) * span / (2 * SAMPLE_BLOCKS), BLOCK_BYTES)?;
        }
        piece(size - EDGE_BYTES, EDGE_BYTES)?;
    }
    Ok(h)
}

impl Identity {
    /// The identity of the data file at `path` as it is now.
    pub fn of(path: &Path) -> Result<Identity> {
        let canon = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
        let file = File::open(&canon).map_err(|e| Error::io(path, e))?;
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        let mtime_ns = mtime_ns(&meta);
        let ctime_ns = i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec());
        let content_hash = if meta.is_file() {
            content_hash(&file, meta.len()).map_err(|e| Error::io(path, e))?
        } else if meta.is_dir() {
            tree_hash(&canon)
        } else {
            0
        };
        Ok(Identity { path: canon, size: meta.len(), mtime_ns, inode: meta.ino(), ctime_ns, content_hash })
    }

    /// A file-name key for an entry of this file built with `params` (which must name everything else
    /// the entry depends on: layout flags, method, format version).
    pub fn key(&self, params: &str) -> String {
        let mut h = fnv1a(self.path.as_os_str().as_encoded_bytes(), 0);
        h = fnv1a(&self.size.to_le_bytes(), h);
        h = fnv1a(&self.mtime_ns.to_le_bytes(), h);
        h = fnv1a(&self.inode.to_le_bytes(), h);
        h = fnv1a(&self.ctime_ns.to_le_bytes(), h);
        h = fnv1a(&self.content_hash.to_le_bytes(), h);
        h = fnv1a(params.as_bytes(), h);
        let stem = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let stem: String =
            stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
        format!("{}-{h:016x}", &stem[..stem.len().min(40)])
    }
}

/// `ROOT/KIND/KEY.EXT`, for looking an entry up (nothing is created: a missing or unusable cache
/// directory simply holds no entries). Builders call [`writable_dir`] first.
pub fn entry_path(kind: &str, key: &str, ext: &str) -> Result<PathBuf> {
    Ok(root()?.join(kind).join(format!("{key}.{ext}")))
}

/// Why the cache cannot store entries of `kind` now, as a one-line reason (`PATH: OS error`), or
/// `None` when it can. Creates `ROOT/KIND` when it is missing.
pub fn unusable(kind: &str) -> Option<String> {
    match writable_dir(kind) {
        Ok(_) => None,
        Err(Error::Io { path, source }) => Some(format!("{}: {source}", path.display())),
        Err(e) => Some(e.to_string()),
    }
}

/// `ROOT/KIND`, created, once it is known to be a writable directory (an `Io` error naming it otherwise).
pub fn writable_dir(kind: &str) -> Result<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let dir = root()?.join(kind);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| Error::bad_input(&dir, "the cache path contains a NUL byte"))?;
    // SAFETY: access() only reads the NUL-terminated path, which outlives the call.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        return Err(Error::io(&dir, std::io::Error::last_os_error()));
    }
    Ok(dir)
}

/// The error of a command that must store entries of `kind` when the cache cannot: one line, exit 2.
pub fn require_writable(kind: &str, what: &str) -> Result<PathBuf> {
    writable_dir(kind).map_err(|e| {
        let why = match &e {
            Error::Io { path, source } => format!("{}: {source}", path.display()),
            e => e.to_string(),
        };
        Error::request(
            root().unwrap_or_default(),
            format!("the cache cannot store {what} ({why}); set VASTVIEW_CACHE_DIR to a writable directory"),
        )
    })
}

/// The name an entry has while it is being built.
pub fn partial_path(entry: &Path) -> PathBuf {
    let mut s = entry.as_os_str().to_os_string();
    s.push(".partial");
    PathBuf::from(s)
}

/// Marks an entry as just used (its mtime), for least-recently-used eviction. Best effort.
pub fn touch(path: &Path) {
    if let Ok(f) = File::options().append(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// One cache file, as `cache list` shows it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: PathBuf,
    pub kind: String,
    pub bytes: u64,
    pub last_used: SystemTime,
    /// Still being built (or abandoned mid-build; resumable).
    pub partial: bool,
}

/// Every file in the cache, most recently used first.
pub fn list() -> Result<Vec<Entry>> {
    let root = root()?;
    let mut out = Vec::new();
    let Ok(kinds) = std::fs::read_dir(&root) else { return Ok(out) };
    for kind in kinds.flatten() {
        let Ok(files) = std::fs::read_dir(kind.path()) else { continue };
        for f in files.flatten() {
            let Ok(meta) = f.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let name = f.file_name().to_string_lossy().into_owned();
            out.push(Entry {
                path: f.path(),
                kind: kind.file_name().to_string_lossy().into_owned(),
                bytes: allocated(&meta),
                last_used: meta.modified().unwrap_or(UNIX_EPOCH),
                partial: name.ends_with(".partial") || name.contains(".resume") || name.contains(".tmp-"),
            });
        }
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.last_used));
    Ok(out)
}

/// Bytes a file occupies on disk (a sparse, half-built file counts only what is written).
fn allocated(meta: &std::fs::Metadata) -> u64 {
    meta.blocks() * 512
}

/// Deletes entries: all of them, or those whose file name starts with `prefix`. Returns (files, bytes).
pub fn clear(prefix: Option<&str>) -> Result<(usize, u64)> {
    let mut n = (0, 0);
    for e in list()? {
        let name = e.path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if prefix.is_some_and(|p| !name.starts_with(p)) {
            continue;
        }
        if std::fs::remove_file(&e.path).is_ok() {
            n = (n.0 + 1, n.1 + e.bytes);
        }
    }
    Ok(n)
}

/// Evicts least-recently-used entries until the cache plus `incoming` bytes fit `cap`. Entries in
/// `keep` (in use now) and entries used in the last minute (maybe being built by another process)
/// are never evicted. Returns the evicted paths.
pub fn enforce_cap(cap: u64, incoming: u64, keep: &[&Path]) -> Result<Vec<PathBuf>> {
    let entries = list()?;
    let mut total: u64 = entries.iter().map(|e| e.bytes).sum::<u64>() + incoming;
    let recent = SystemTime::now() - Duration::from_secs(60);
    let mut evicted = Vec::new();
    for e in entries.iter().rev() {
        if total <= cap {
            break;
        }
        if keep.contains(&e.path.as_path()) || e.last_used > recent {
            continue;
        }
        if std::fs::remove_file(&e.path).is_ok() {
            total = total.saturating_sub(e.bytes);
            evicted.push(e.path.clone());
        }
    }
    Ok(evicted)
}

/// Writes `path` through `f`. A regular file (or a new one) is written on a temporary file beside it
/// (`.NAME.vastview-PID-N.tmp`, parent directories created; beside the file a symlink points to,
/// so the link stays), synced, and renamed over `path` only when `f` succeeds; on failure the
/// temporary file is removed and `path` is untouched. An existing file that is not regular (a
/// character device such as `/dev/null`, a FIFO), and anything reached through `/dev/` or
/// `/proc/` (`/dev/stdout`), is written through instead: opened for writing (regular ones
/// truncated, devices not), never replaced. Errors of `f` come back as they are.
pub fn write_atomically(path: &Path, f: impl FnOnce(&mut std::fs::File) -> Result<()>) -> Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let out_err = |e: std::io::Error| Error::Output { path: path.to_path_buf(), msg: e.to_string() };
    let meta = std::fs::metadata(path).ok();
    let canon = meta.as_ref().and_then(|_| std::fs::canonicalize(path).ok());
    let through_dev =
        path.starts_with("/dev") || path.starts_with("/proc") || canon.as_ref().is_some_and(|c| c.starts_with("/proc"));
    if let Some(m) = meta.as_ref().filter(|m| !m.is_file() || through_dev) {
        if m.is_dir() {
            return Err(Error::Output { path: path.to_path_buf(), msg: "is a directory".into() });
        }
        let mut file = std::fs::OpenOptions::new().write(true).truncate(m.is_file()).open(path).map_err(out_err)?;
        f(&mut file)?;
        return if m.is_file() { file.sync_all().map_err(out_err) } else { Ok(()) };
    }
    // A symlink to a regular file: replace the file it points to, not the link.
    let target = canon.unwrap_or_else(|| path.to_path_buf());
    let parent = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(out_err)?;
    let name = target.file_name().unwrap_or(std::ffi::OsStr::new("file")).to_string_lossy();
    let tmp =
        parent.join(format!(".{name}.vastview-{}-{}.tmp", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    let written = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(out_err)
        .and_then(|mut file| {
            if let Some(m) = &meta {
                // Replacing a file keeps its permissions (unless `f` sets others).
                let _ = file.set_permissions(m.permissions());
            }
            f(&mut file)?;
            file.sync_all().map_err(out_err)
        })
        .and_then(|()| std::fs::rename(&tmp, &target).map_err(out_err));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// `bytes` written atomically to `path` (see `write_atomically`), with `perms`, synced to disk before the rename.
pub fn write_atomic(path: &Path, bytes: &[u8], perms: Option<std::fs::Permissions>) -> Result<()> {
    write_atomically(path, |f| {
        use std::io::Write;
        (|| {
            f.write_all(bytes)?;
            if let Some(p) = perms {
                f.set_permissions(p)?;
            }
            Ok(())
        })()
        .map_err(|e: std::io::Error| Error::Output { path: path.to_path_buf(), msg: e.to_string() })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_is_stable() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(fnv1a(b"", 0), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a", 0), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar", 0), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn identity_changes_with_the_file() {
        let dir = std::env::temp_dir().join(format!("vv-ident-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.bin");
        std::fs::write(&p, b"hello").unwrap();
        let a = Identity::of(&p).unwrap();
        assert_eq!(a, Identity::of(&p).unwrap());
        assert_eq!(a.key("x"), Identity::of(&p).unwrap().key("x"));
        assert_ne!(a.key("x"), a.key("y"));
        std::fs::write(&p, b"hellO").unwrap();
        let b = Identity::of(&p).unwrap();
        assert_ne!(a.content_hash, b.content_hash);
        assert_ne!(a.key("x"), b.key("x"));
        assert!(a.key("x").starts_with("a.bin-"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
