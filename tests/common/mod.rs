//! Shared helpers: the oracle's files (generated once per test run), running the binary, reading PNGs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

/// The python with numpy and matplotlib (override with VASTVIEW_PYTHON).
pub fn python() -> String {
    std::env::var("VASTVIEW_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Runs tests/oracle.py once into a fresh directory and returns (dir, manifest).
pub fn oracle() -> &'static (PathBuf, Value) {
    static ORACLE: OnceLock<(PathBuf, Value)> = OnceLock::new();
    ORACLE.get_or_init(|| run_oracle("oracle.py", "vastview-oracle", "numpy and matplotlib"))
}

/// Runs `tests/SCRIPT DIR` (python, warnings off) into a fresh `TMP/TAG-PID` and returns (dir, the
/// manifest.json it wrote). `needs` names the python packages for the error.
pub fn run_oracle(script: &str, tag: &str, needs: &str) -> (PathBuf, Value) {
    let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(script);
    let out = Command::new(python())
        .args(["-W", "ignore"])
        .arg(&path)
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| panic!("run python3 ({needs} are needed): {e}"));
    assert!(out.status.success(), "{script} failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest");
    (dir, serde_json::from_str(&text).expect("manifest json"))
}

/// The disk cache (pyramids) of plain [`vastview`] runs: one per test process, never the user's ~/.cache.
pub fn test_cache_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| std::env::temp_dir().join(format!("vastview-test-cache-{}", std::process::id())))
}

/// Runs before the test harness's `main` (an ELF initialiser, as the `ctor` crate does it), while the
/// process has one thread: the library calls of in-process tests, and every child that does not set its
/// own, use [`test_cache_dir`], so no test can reach the user's real cache by forgetting to set it.
extern "C" fn init_cache_dir() {
    if std::env::var_os("VASTVIEW_CACHE_DIR").is_none_or(|d| d.is_empty()) {
        std::env::set_var("VASTVIEW_CACHE_DIR", test_cache_dir());
    }
    // In-process GPU sessions (`gpu_session`) are headless, as the binary's subcommands are: keep Mesa's
    // device-selection layer from probing Wayland/X (libwayland prints an error when XDG_RUNTIME_DIR is unset).
    // The window tests' children get their own environment.
    if std::env::var_os("NODEVICE_SELECT").is_none() {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}

#[used]
#[link_section = ".init_array"]
static INIT_CACHE_DIR: extern "C" fn() = init_cache_dir;

/// The vastview binary with `args` and `envs` set, its cache in [`test_cache_dir`] unless `envs` names
/// another `VASTVIEW_CACHE_DIR`.
pub fn vastview_command(args: &[&str], envs: &[(&str, &str)]) -> Command {
    let xdg = std::env::temp_dir().join("vastview-test-xdg");
    let _ = std::fs::create_dir_all(&xdg);
    let mut c = Command::new(env!("CARGO_BIN_EXE_vastview"));
    c.args(args).env("XDG_RUNTIME_DIR", &xdg).env("VASTVIEW_CACHE_DIR", test_cache_dir());
    // The binary decides NODEVICE_SELECT itself (the test process sets it for its own GPU sessions).
    c.env_remove("NODEVICE_SELECT");
    c.envs(envs.iter().copied());
    c
}

/// Runs the vastview binary with `args` (its cache in [`test_cache_dir`]).
pub fn vastview(args: &[&str]) -> Output {
    vastview_env(args, &[])
}

/// Runs the vastview binary with `args` and extra environment variables.
pub fn vastview_env(args: &[&str], envs: &[(&str, &str)]) -> Output {
    vastview_command(args, envs).output().expect("run vastview")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Strings of a JSON array.
pub fn strs(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
}

/// A decoded 8-bit RGBA PNG: (width, height, pixels).
pub fn read_png(p: &Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(p).expect("open png")));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("png size")];
    let info = reader.next_frame(&mut buf).expect("png frame");
    assert_eq!(info.color_type, png::ColorType::Rgba, "{}", p.display());
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

/// Every value of every slice of `src`, in C order.
pub fn all_scalars(src: &dyn vastview::source::ArraySource) -> Vec<vastview::source::Scalar> {
    let im = src.info().image;
    let mut buf = vastview::source::RegionBuf::default();
    let mut v = Vec::new();
    for k in 0..im.slices {
        src.read_region(k, im.rect(), &mut buf).expect("read");
        v.extend(buf.scalars());
    }
    v
}

/// An .npy the oracle wrote, read with vastview's reader: (shape, values as f64).
pub fn read_npy(p: &Path) -> (Vec<u64>, Vec<f64>) {
    use vastview::source::ArraySource;
    let src = vastview::source::npy::open_npy(p).expect("open npy");
    let info = src.info().clone();
    let mut buf = vastview::source::RegionBuf::default();
    src.read_region(0, info.image.rect(), &mut buf).expect("read npy");
    (info.shape, buf.to_f64())
}

/// Compares RGBA pixels; returns a description of the first mismatches, or None.
pub fn compare_rgba(got: &[u8], want: &[u8], width: usize, tol: i32) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!("size differs: {} vs {} bytes", got.len(), want.len()));
    }
    let mut bad = Vec::new();
    let mut count = 0;
    for (i, (g, w)) in got.chunks_exact(4).zip(want.chunks_exact(4)).enumerate() {
        if g.iter().zip(w).any(|(a, b)| (i32::from(*a) - i32::from(*b)).abs() > tol) {
            count += 1;
            if bad.len() < 5 {
                bad.push(format!("(x={}, y={}) got {:?} want {:?}", i % width, i / width, g, w));
            }
        }
    }
    (count > 0).then(|| format!("{count} pixels differ by more than {tol}: {}", bad.join("; ")))
}

/// A headless GPU session. With no adapter: fails when CI is set (CI has the software adapter),
/// otherwise prints why and returns None so a developer without drivers can run the rest.
pub fn gpu_session() -> Option<vastview::headless::Session> {
    match vastview::headless::Session::new() {
        Ok(s) => Some(s),
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "CI is set but no GPU adapter could be created: {e}");
            eprintln!("no GPU adapter ({e}); GPU checks not run (set CI=1 to make this a failure)");
            None
        }
    }
}

/// The PNG a render (`out`, its process) wrote and the RGBA8 pixels an oracle case expects
/// (`case["expected"]`, an (H, W, 4) .npy): (width, got, want), or why they cannot be compared (the render
/// failed, or the sizes differ).
pub fn png_and_expected(
    dir: &Path,
    case: &Value,
    out: &std::process::Output,
    png: &Path,
) -> Result<(u32, Vec<u8>, Vec<u8>), String> {
    if !out.status.success() {
        return Err(format!("exit {:?}: {}", out.status.code(), stderr(out)));
    }
    let (w, h, got) = read_png(png);
    let (shape, want) = read_npy(&dir.join(case["expected"].as_str().unwrap_or_default()));
    if shape != [u64::from(h), u64::from(w), 4] {
        return Err(format!("PNG is {w}x{h}, expected shape {shape:?}"));
    }
    Ok((w, got, want.iter().map(|&v| v as u8).collect()))
}
