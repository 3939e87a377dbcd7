//! Hardening of the input side (issue 15): special files refused without blocking, numpy's dtype
//! spellings with numpy's meaning, checksummed point caches rebuilt when damaged, point extents that
//! overflow or fall below float64's resolution, bounded text lines and the byte-order mark, the full
//! `vastview index` hint, and tests kept out of the user's cache.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// A fresh scratch directory for one test (its own cache under `cache/`).
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vv-harden-in-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("cache")).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs vastview with its cache in `dir/cache`. A run that has not ended after two minutes is killed
/// (a hang is then a failure, not a test that never ends).
fn run_in(dir: &Path, args: &[&str]) -> Output {
    let mut c = vastview_command(args, &[("VASTVIEW_CACHE_DIR", s(&dir.join("cache")))]);
    let mut child = c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("vastview {args:?} hung (killed); stderr: {}", stderr(&o));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Exit 2 and one stderr line that holds every word of `want`.
fn assert_one_line_error(o: &Output, want: &[&str], what: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{what}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: one line: {err}");
    for w in want {
        assert!(err.contains(w), "{what}: '{w}' missing in: {err}");
    }
}

#[test]
fn fifos_sockets_devices_and_directories_are_refused_without_blocking() {
    let d = scratch("special");
    let fifo = d.join("f.npy");
    let cpath = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(cpath.as_ptr(), 0o600) }, 0);
    let sock = d.join("s.npy");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let dir = d.join("dir.npy");
    std::fs::create_dir_all(&dir).unwrap();
    let out = d.join("o.png");
    let cases: [(&Path, &str); 4] =
        [(&fifo, "FIFO"), (&sock, "socket"), (Path::new("/dev/zero"), "character device"), (&dir, "directory")];
    for (p, kind) in cases {
        let f = s(p);
        let runs: [Vec<&str>; 6] = [
            vec!["info", f],
            vec!["render", f, "-o", s(&out), "--size", "8x8"],
            vec!["info", f, "--dtype", "u1", "--shape", "1x1"],
            vec!["info", f, "--points"],
            vec!["render", f, "--points", "--dtype", "f32", "--columns", "2", "-o", s(&out)],
            vec!["index", f, "-q"],
        ];
        for args in runs {
            let o = run_in(&d, &args);
            assert_one_line_error(&o, &[f, kind], &format!("{args:?}"));
        }
    }
}

/// numpy's reading of each spelling: `Some((itemsize, kind, str))` or `None` when numpy refuses it.
fn numpy_dtypes(spellings: &[String]) -> Vec<Option<(usize, String, String)>> {
    let script = "import json, sys, numpy as np\nout = []\nfor s in json.load(sys.stdin):\n    try:\n        \
                  d = np.dtype(s)\n        out.append([d.itemsize, d.kind, d.str])\n    except Exception:\n        \
                  out.append(None)\nprint(json.dumps(out))\n";
    let mut child = Command::new(python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with numpy");
    child.stdin.take().unwrap().write_all(serde_json::to_string(spellings).unwrap().as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    let v: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    v.iter()
        .map(|x| {
            x.as_array().map(|a| {
                (
                    a[0].as_u64().unwrap() as usize,
                    a[1].as_str().unwrap().to_string(),
                    a[2].as_str().unwrap().to_string(),
                )
            })
        })
        .collect()
}

#[test]
fn dtype_spellings_mean_what_numpy_says() {
    use vastview::dtype::{DType, Endian};
    let codes = [
        "b1", "?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "f16", "U4", "S3", "a2", "c8",
        "c16", "M8", "m8", "O", "V8", "b", "B", "h", "H", "i", "I", "l", "q", "e", "f", "d", "g", "F4", "I8", "U8", "",
    ];
    let mut spellings: Vec<String> = Vec::new();
    for p in ["", "<", ">", "=", "|"] {
        for c in codes {
            spellings.push(format!("{p}{c}"));
        }
    }
    let names = [
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "float128",
        "complex64",
        "object",
        "str",
        "bool_",
        "float",
        "int",
        "double",
        "Float32",
        "UINT8",
        "i16",
        "u16",
        "i32",
        "u32",
        "i64",
        "u64",
        "f32",
        "f64",
        "<f32",
        ">u16",
        "<float32",
        " u1",
        "u1 ",
        "x",
    ];
    spellings.extend(names.iter().map(|s| s.to_string()));
    let numpy = numpy_dtypes(&spellings);
    let ours_only = ["i16", "u16", "i32", "u32", "i64", "u64", "f32", "f64"];
    let mut accepted = 0;
    for (sp, np) in spellings.iter().zip(&numpy) {
        match (DType::parse_spelling(sp), np) {
            (Ok((d, e)), Some((size, kind, descr))) => {
                accepted += 1;
                let k = match d {
                    DType::Bool => "b",
                    DType::I8 | DType::I16 | DType::I32 | DType::I64 => "i",
                    DType::U8 | DType::U16 | DType::U32 | DType::U64 => "u",
                    _ => "f",
                };
                assert_eq!((d.size(), k), (*size, kind.as_str()), "'{sp}': {d} vs numpy's {descr}");
                // The byte order: the spelling's, else the default (little), as numpy's `str` spells it.
                assert_eq!(&d.descr(e.unwrap_or(Endian::Little)), descr, "'{sp}'");
            }
            (Ok((d, _)), None) => assert!(ours_only.contains(&sp.as_str()), "'{sp}' read as {d}, numpy refuses it"),
            (Err(m), _) => {
                assert!(!ours_only.contains(&sp.as_str()), "'{sp}' refused: {m}");
                assert!(m.contains(&format!("'{sp}'")), "the refusal names what was given: {m}");
            }
        }
    }
    assert!(accepted >= 5 * 13 + 12, "{accepted} numpy spellings accepted");
    // The reported misreadings, through the command line.
    let d = scratch("dtype");
    let raw = d.join("r.raw");
    std::fs::write(&raw, (0..4i64).flat_map(i64::to_le_bytes).collect::<Vec<u8>>()).unwrap();
    for (dt, want) in [("<i8", "int64"), ("<u8", "uint64"), ("u8", "uint64"), ("int64", "int64")] {
        let o = run_in(&d, &["info", s(&raw), "--dtype", dt, "--shape", "2x2", "--json"]);
        assert!(o.status.success(), "{dt}: {}", stderr(&o));
        let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["dtype"], want, "{dt}");
    }
    let o = run_in(&d, &["info", s(&raw), "--dtype", "<U4", "--shape", "2x2"]);
    assert_one_line_error(&o, &["'<U4'", "string"], "<U4");
    // A one-byte reading spelled u8 meets a size mismatch that says what u8 is.
    let o = run_in(&d, &["info", s(&raw), "--dtype", "u8", "--shape", "4x8"]);
    assert_one_line_error(&o, &["uint64", "'u1'"], "u8 of bytes");
}

/// A float64 record file of `pts` (x, y).
fn write_f64_points(p: &Path, pts: &[(f64, f64)]) {
    let b: Vec<u8> = pts.iter().flat_map(|&(x, y)| [x, y]).flat_map(f64::to_le_bytes).collect();
    std::fs::write(p, b).unwrap();
}

/// A `.npy` file's uint32 values (the count grids `render --points -o X.npy` writes).
fn npy_u32(p: &Path) -> Vec<u32> {
    let b = std::fs::read(p).unwrap();
    let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
    b[10 + hl..].chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect()
}

#[test]
fn extents_across_float64s_range_bin_by_the_halved_rule() {
    let d = scratch("wide");
    let n = 5000;
    // x spread over −1.7e308 … 1.7e308 (both ends present), y over 0 … 1.
    let mut pts: Vec<(f64, f64)> = (0..n)
        .map(|i| {
            let u = ((i as f64) * 0.618_033_988_749_895).fract();
            ((u * 2.0 - 1.0) * 1.7e308, ((i as f64) * 0.414_213_562_373_095).fract())
        })
        .collect();
    pts.push((-1.7e308, 0.0));
    pts.push((1.7e308, 1.0));
    let data = d.join("wide.bin");
    write_f64_points(&data, &pts);
    let out = d.join("g.npy");
    let o = run_in(
        &d,
        &["render", s(&data), "--points", "--dtype", "f64", "--columns", "2", "--size", "64x16", "-o", s(&out)],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // numpy: datashader's rule on the halved extent (hi − lo overflows): s = n / (hi/2 − lo/2) / 2, t = −lo·s.
    let script = format!(
        "import numpy as np\nr = np.fromfile('{}', '<f8').reshape(-1, 2)\nx, y = r[:, 0], r[:, 1]\n\
         def idx(v, lo, hi, n):\n    with np.errstate(over='ignore'):\n        span = hi - lo\n    \
         s = n / span if np.isfinite(span) else n / (hi * 0.5 - lo * 0.5) * 0.5\n    t = -lo * s\n    \
         return np.minimum(np.trunc(v * s + t).astype(np.int64), n - 1)\n\
         g = np.zeros((16, 64), np.uint32)\n\
         np.add.at(g, (idx(y, y.min(), y.max(), 16), idx(x, x.min(), x.max(), 64)), 1)\n\
         print(' '.join(map(str, g.ravel())))\n",
        s(&data)
    );
    let py = Command::new(python()).args(["-c", &script]).output().unwrap();
    assert!(py.status.success(), "{}", String::from_utf8_lossy(&py.stderr));
    let want: Vec<u32> = String::from_utf8_lossy(&py.stdout).split_whitespace().map(|v| v.parse().unwrap()).collect();
    let got = npy_u32(&out);
    assert_eq!(got, want);
    // Not everything in column 0 (the overflow's symptom): the points spread over every column.
    assert!((0..64).all(|c| (0..16).any(|r| got[r * 64 + c] > 0)));
}

#[test]
fn spans_below_float_resolution_are_padded_and_render() {
    let d = scratch("thin");
    let up = f64::from_bits(1e300f64.to_bits() + 3);
    for (name, xs) in [("equal", [1e300, 1e300]), ("ulps", [1e300, up])] {
        let data = d.join(format!("{name}.bin"));
        let pts: Vec<(f64, f64)> = (0..200).map(|i| (xs[i % 2], i as f64)).collect();
        write_f64_points(&data, &pts);
        let out = d.join(format!("{name}.npy"));
        let args =
            ["render", s(&data), "--points", "--dtype", "f64", "--columns", "2", "--size", "32x20", "-o", s(&out)];
        let o = run_in(&d, &args);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains("padded"), "{name}: {}", stderr(&o));
        let g = npy_u32(&out);
        assert_eq!(g.iter().map(|&c| u64::from(c)).sum::<u64>(), 200, "{name}: every point drawn");
        // All x within a few ulps: the centre columns (15 or 16: the centre's index rounds) hold them all.
        let cols: Vec<usize> = (0..32).filter(|&c| (0..20).any(|r| g[r * 32 + c] > 0)).collect();
        assert!(!cols.is_empty() && cols.iter().all(|c| (15..=16).contains(c)), "{name}: columns {cols:?}");
    }
    // A region given that thin is a clear error, not a silent grid.
    let data = d.join("equal.bin");
    let region = format!("1e300,0,{up:e},200");
    let o = run_in(
        &d,
        &[
            "render",
            s(&data),
            "--points",
            "--dtype",
            "f64",
            "--columns",
            "2",
            "--region",
            &region,
            "-o",
            s(&d.join("x.npy")),
        ],
    );
    assert_one_line_error(&o, &["too narrow"], "thin region");
}

/// The cache files of kind `ext` under `dir/cache/points`.
fn cache_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("cache/points"))
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == ext));
    v
}

/// Flips two bytes of `p` (XOR 0x01 at 1/3 and 2/3 of it, or the given offsets).
fn flip_two(p: &Path, at: Option<[usize; 2]>) {
    let mut b = std::fs::read(p).unwrap();
    let [i, j] = at.unwrap_or([b.len() / 3, 2 * b.len() / 3]);
    b[i] ^= 0x01;
    b[j] ^= 0x01;
    std::fs::write(p, b).unwrap();
}

#[test]
fn damaged_point_caches_are_detected_and_rebuilt() {
    let d = scratch("caches");
    // Text points: the conversion cache (.f64 and its report .txt), and the bounds cache.
    let text = d.join("p.txt");
    let body: String =
        (0..3000).map(|i| format!("{} {}\n", (i * 37 % 1000) as f64 * 0.01, (i * 91 % 700) as f64)).collect();
    std::fs::write(&text, body).unwrap();
    let want = d.join("want.npy");
    let args = |out: &Path| -> Vec<String> {
        ["render", s(&text), "--points", "--size", "40x30", "-o", s(out)].map(String::from).to_vec()
    };
    let a: Vec<String> = args(&want);
    let o = run_in(&d, &a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
    let oracle = npy_u32(&want);
    assert_eq!(oracle.iter().sum::<u32>(), 3000);
    for (ext, at) in [("f64", None), ("txt", Some([10, 20])), ("bounds", Some([1, 5]))] {
        let files = cache_files(&d, ext);
        assert_eq!(files.len(), 1, "one .{ext} cache file: {files:?}");
        flip_two(&files[0], at);
        let got = d.join(format!("got-{ext}.npy"));
        let a = args(&got);
        let o = run_in(&d, &a.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(o.status.success(), "{ext}: {}", stderr(&o));
        assert!(stderr(&o).contains("damaged"), ".{ext}: the rebuild is noted: {}", stderr(&o));
        assert_eq!(npy_u32(&got), oracle, ".{ext}: the render equals the undamaged one");
        // Rebuilt: the next run finds it intact and says nothing.
        let o = run_in(&d, &a.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(!stderr(&o).contains("damaged"), ".{ext}: {}", stderr(&o));
        assert_eq!(npy_u32(&got), oracle);
    }
}

#[test]
fn text_points_skip_a_byte_order_mark_and_bound_their_lines() {
    let d = scratch("text");
    let bom = d.join("bom.txt");
    std::fs::write(&bom, "\u{feff}1.5 2.5\n3 4\n5 6\n").unwrap();
    let o = run_in(&d, &["info", s(&bom), "--points", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["points"], 3, "the first point is kept, not taken as a header");
    assert_eq!(v["bounds"][0], 1.5);
    // A 50 MB line between two points: malformed, skipped, and never held in memory.
    let long = d.join("long.txt");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&long).unwrap());
        f.write_all(b"1 2\n").unwrap();
        let chunk = "7 ".repeat(1 << 19);
        for _ in 0..50 {
            f.write_all(chunk.as_bytes()).unwrap();
        }
        f.write_all(b"\n3 4\n").unwrap();
    }
    // Peak memory is measured by a small python parent: a child forked straight from this big, busy test
    // process would count the test process's pages as its own (Linux's ru_maxrss covers the pre-exec mm).
    let c = vastview_command(&["info", s(&long), "--points", "--json"], &[("VASTVIEW_CACHE_DIR", s(&d.join("cache")))]);
    let exe = c.get_program().to_owned();
    let args: Vec<_> = c.get_args().map(|a| a.to_owned()).collect();
    let wrapper = "import resource, subprocess, sys\n\
        r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)\n\
        sys.stdout.write(r.stdout.decode())\n\
        sys.stderr.write('%d %d' % (r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n";
    let mut w = Command::new(python());
    w.arg("-c").arg(wrapper).arg(exe).args(args);
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => w.env(k, v),
            None => w.env_remove(k),
        };
    }
    let o = w.output().unwrap();
    let text = stdout(&o);
    let tail = stderr(&o);
    let mut it = tail.split_whitespace().rev();
    let (maxrss_kb, rc): (f64, i32) = (
        it.next().and_then(|x| x.parse().ok()).unwrap_or(f64::NAN),
        it.next().and_then(|x| x.parse().ok()).unwrap_or(-1),
    );
    assert_eq!(rc, 0, "{text} {tail}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((v["points"].as_u64(), v["malformed_lines"].as_u64()), (Some(2), Some(1)), "{v}");
    assert_eq!(v["first_malformed_lines"][0], 2);
    // Peak memory (kB): far below the line's 50 MB (whole-line buffering took 3 times the line).
    let peak_mb = maxrss_kb / 1024.0;
    assert!(peak_mb < 40.0, "peak RSS {peak_mb:.1} MB converting a 50 MB line");
}

#[test]
fn the_index_hint_is_the_whole_command() {
    let d = scratch("hint dir");
    let data = d.join("it's points.bin");
    let pts: Vec<u8> = (0..300).flat_map(|i| [i as f32, (i % 17) as f32, 1.0]).flat_map(f32::to_le_bytes).collect();
    std::fs::write(&data, pts).unwrap();
    let out = d.join("h.png");
    let render = [
        "render",
        s(&data),
        "--points",
        "--dtype",
        "f32",
        "--columns",
        "3",
        "--y",
        "2",
        "--x",
        "1",
        "-o",
        s(&out),
        "-v",
    ];
    let o = run_in(&d, &render);
    assert!(o.status.success(), "{}", stderr(&o));
    let quoted = format!("'{}'", s(&data).replace('\'', "'\\''"));
    let want = format!("`vastview index {quoted} --points --dtype f32 --columns 3 --x 1 --y 2` builds one");
    assert!(stderr(&o).contains(&want), "want {want} in: {}", stderr(&o));
    // The command it prints builds the index the render then uses.
    let o =
        run_in(&d, &["index", s(&data), "--points", "--dtype", "f32", "--columns", "3", "--x", "1", "--y", "2", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run_in(&d, &render);
    assert!(stderr(&o).contains("index: ") && !stderr(&o).contains("index: none"), "{}", stderr(&o));
}

#[test]
fn tests_never_use_the_real_cache() {
    // Set before the harness started (tests/common), so in-process library calls and children use it.
    let dir = std::env::var_os("VASTVIEW_CACHE_DIR").map(PathBuf::from).unwrap_or_default();
    assert!(dir.starts_with(std::env::temp_dir()), "{}", dir.display());
    assert_eq!(vastview::diskcache::root().unwrap(), dir);
}
