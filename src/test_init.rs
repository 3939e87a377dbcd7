//! Unit-test process setup: the disk cache goes to a temporary directory of this process, never the
//! user's (`~/.cache/vastview`), whatever test touches it; `diskcache::root` refuses anything else.

/// The cache root every unit test of this process shares (unless a test sets its own beforehand).
pub fn cache_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("vastview-unit-cache-{}", std::process::id()))
}

/// Runs before `main` of the test binary (an ELF initialiser, as the `ctor` crate does it), while the
/// process has one thread, so setting the variable races with nothing.
extern "C" fn init() {
    if std::env::var_os(crate::diskcache::ENV_DIR).is_none_or(|d| d.is_empty()) {
        std::env::set_var(crate::diskcache::ENV_DIR, cache_dir());
    }
}

#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = init;

/// Fails the test process when a cache root outside the temporary directory is about to be used.
pub fn check_root(root: &std::path::Path) {
    assert!(
        root.starts_with(std::env::temp_dir()),
        "a unit test would use the cache directory {} (not a temporary one): set {} first",
        root.display(),
        crate::diskcache::ENV_DIR
    );
}
