//! Output files of `vastview render` (issue 15): an output that is an input is refused, a device or
//! FIFO is written through (and a full disk is an error naming it), enlarged and very wide outputs,
//! missing directories, quoted paths, exports that sample nothing, JPEG/TIFF against the PNG of the same
//! render, and `probe` outside the image.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;

/// A fresh directory for one test.
fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vastview-hout-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Writes an .npy of `descr` with `shape` and little-endian element bytes `data`.
fn write_npy(p: &Path, descr: &str, shape: &[u64], data: &[u8]) {
    let mut b = vastview::headless::npy_header(descr, shape);
    b.extend_from_slice(data);
    std::fs::write(p, b).unwrap();
}

/// An 80x64 float32 image with value 3·x + 1000·y (every pixel distinct).
fn image(dir: &Path) -> PathBuf {
    let p = dir.join("img.npy");
    let data: Vec<u8> = (0..64u32)
        .flat_map(|y| (0..80u32).map(move |x| (3 * x + 1000 * y) as f32))
        .flat_map(f32::to_le_bytes)
        .collect();
    write_npy(&p, "<f4", &[64, 80], &data);
    p
}

/// A 20x16 uint8 image whose values 0..=255 show as gray levels (gray colormap, limits 0,255).
fn gray_image(dir: &Path) -> PathBuf {
    let p = dir.join("gray.npy");
    let data: Vec<u8> = (0..16u32).flat_map(|y| (0..20u32).map(move |x| ((x * 13 + y * 71) % 256) as u8)).collect();
    write_npy(&p, "|u1", &[16, 20], &data);
    p
}

/// 500 points (N, 2) float64 spread over a small square.
fn points(dir: &Path) -> PathBuf {
    let p = dir.join("pts.npy");
    let data: Vec<u8> = (0..500u32)
        .flat_map(|i| {
            let x = f64::from(i % 37) * 0.7 + f64::from(i) * 1e-3;
            let y = f64::from((i * 7) % 29) * 1.3;
            [x, y]
        })
        .flat_map(f64::to_le_bytes)
        .collect();
    write_npy(&p, "<f8", &[500, 2], &data);
    p
}

/// Exit code 2 and exactly one line of stderr containing every one of `words`.
fn one_line_error(o: &Output, words: &[&str]) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "exit {:?}: {e}", o.status.code());
    assert_eq!(e.lines().count(), 1, "not one line: {e:?}");
    for w in words {
        assert!(e.contains(w), "{w:?} not in {e:?}");
    }
}

/// The file's bytes and modification time.
fn snapshot(p: &Path) -> (Vec<u8>, std::time::SystemTime) {
    (std::fs::read(p).unwrap(), std::fs::metadata(p).unwrap().modified().unwrap())
}

/// Runs a python snippet with `args`; panics with its stderr when it fails; returns stdout.
fn py(code: &str, args: &[&Path]) -> String {
    let o = Command::new(python()).arg("-c").arg(code).args(args).output().expect("python");
    assert!(o.status.success(), "python failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn an_output_that_is_an_input_is_refused() {
    let d = tmp("alias");
    let img = image(&d);
    let pts = points(&d);
    std::os::unix::fs::symlink(&img, d.join("link.npy")).unwrap();
    std::fs::hard_link(&img, d.join("hard.npy")).unwrap();
    std::os::unix::fs::symlink(&pts, d.join("ptslink.png")).unwrap();
    std::fs::write(d.join("raw.bin"), vec![7u8; 6]).unwrap();
    let before = snapshot(&img);
    let before_pts = snapshot(&pts);
    let dotted = format!("{}/./sub/../img.npy", d.display());
    std::fs::create_dir_all(d.join("sub")).unwrap();
    let cases: Vec<Vec<String>> = vec![
        vec!["render".into(), s(&img).into(), "-o".into(), s(&img).into(), "--size".into(), "40x32".into()],
        vec!["render".into(), s(&img).into(), "-o".into(), dotted.clone()],
        vec!["render".into(), s(&img).into(), "-o".into(), s(&d.join("link.npy")).into()],
        vec!["render".into(), s(&img).into(), "-o".into(), s(&d.join("hard.npy")).into()],
        vec!["render".into(), s(&d.join("link.npy")).into(), "-o".into(), s(&img).into()],
        vec!["render".into(), s(&pts).into(), "--points".into(), "-o".into(), s(&pts).into()],
        vec!["render".into(), s(&pts).into(), "--points".into(), "-o".into(), s(&d.join("ptslink.png")).into()],
        vec![
            "render".into(),
            s(&d.join("raw.bin")).into(),
            "--dtype".into(),
            "uint8".into(),
            "--shape".into(),
            "2x3".into(),
            "-o".into(),
            format!("{}/raw.bin", d.display()),
        ],
    ];
    for args in &cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = vastview(&a);
        one_line_error(&o, &["is the input file", "refusing to overwrite"]);
    }
    assert_eq!(snapshot(&img), before, "the image was modified");
    assert_eq!(snapshot(&pts), before_pts, "the point file was modified");
    assert_eq!(std::fs::read(d.join("raw.bin")).unwrap(), vec![7u8; 6]);
    assert!(std::fs::symlink_metadata(d.join("link.npy")).unwrap().file_type().is_symlink());
    // A different file of the same name elsewhere is fine.
    let o = vastview(&["render", s(&img), "-o", s(&d.join("sub/img.npy"))]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_device_or_fifo_is_written_through_and_a_full_disk_is_an_error_naming_it() {
    let d = tmp("dev");
    let img = image(&d);
    std::os::unix::fs::symlink("/dev/full", d.join("full.npy")).unwrap();
    std::os::unix::fs::symlink("/dev/null", d.join("null.npy")).unwrap();
    let o = vastview(&["render", s(&img), "-o", s(&d.join("full.npy"))]);
    one_line_error(&o, &["full.npy", "No space left on device"]);
    let o = vastview(&["render", s(&img), "-o", s(&d.join("null.npy"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    for (link, dev) in [("full.npy", "/dev/full"), ("null.npy", "/dev/null")] {
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::symlink_metadata(d.join(link)).unwrap().file_type().is_symlink(), "{link} was replaced");
        assert!(std::fs::metadata(dev).unwrap().file_type().is_char_device(), "{dev} was replaced");
    }
    // A FIFO gets the same bytes a regular file would, and stays a FIFO.
    let fifo = d.join("pipe.npy");
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let o = vastview(&["render", s(&img), "-o", s(&fifo), "--region", "3,4,50,60"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let through = reader.join().unwrap();
    let o = vastview(&["render", s(&img), "-o", s(&d.join("plain.npy")), "--region", "3,4,50,60"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(through, std::fs::read(d.join("plain.npy")).unwrap());
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    // A PNG straight to /dev/full (no extension: PNG) is the same error.
    if gpu_session().is_some() {
        let o = vastview(&["render", s(&img), "-o", "/dev/full"]);
        one_line_error(&o, &["/dev/full", "No space left on device"]);
        assert!(std::fs::metadata("/dev/full").unwrap().file_type().is_char_device());
    }
    // Points too.
    let pts = points(&d);
    let o = vastview(&["render", s(&pts), "--points", "-o", s(&d.join("full.npy"))]);
    one_line_error(&o, &["full.npy", "No space left on device"]);
}

/// numpy's nearest-pixel enlargement of `a`'s region (and block means on shrunk axes) against the export.
const CHECK_EXPORT: &str = "import numpy as np, sys
a = np.load(sys.argv[1]).astype(np.float64); got = np.load(sys.argv[2])
x0, y0, x1, y1, w, h, sl = (int(v) for v in sys.argv[3:10])
if a.ndim == 3 and a.shape[2] > 4: a = a[sl]
a = a[y0:y1, x0:x1]
def along(a, axis, out):
    n = a.shape[axis]
    if out >= n:
        return np.take(a, ((2 * np.arange(out) + 1) * n) // (2 * out), axis=axis)
    assert n % out == 0
    return a.reshape(a.shape[:axis] + (out, n // out) + a.shape[axis + 1:]).mean(axis=axis + 1)
want = along(along(a, 0, h), 1, w).astype(np.float32)
assert got.dtype == np.float32, got.dtype
assert got.shape == want.shape, (got.shape, want.shape)
assert np.array_equal(got, want), np.argwhere(got != want)[:5].tolist()
";

#[test]
fn enlarged_exports_are_numpys_nearest_pixels() {
    let d = tmp("enlarge");
    let img = image(&d);
    // A 3-slice stack and an RGB image.
    let stack = d.join("stack.npy");
    let data: Vec<u8> = (0..3 * 10 * 12u32).map(|i| (i * 7) as f32).flat_map(f32::to_le_bytes).collect();
    write_npy(&stack, "<f4", &[3, 10, 12], &data);
    let rgb = d.join("rgb.npy");
    let data: Vec<u8> = (0..9 * 11 * 3u32).map(|i| (i * 5 % 256) as u8).collect();
    write_npy(&rgb, "|u1", &[9, 11, 3], &data);
    // (file, region x0,y0,x1,y1, size w,h, slice)
    let cases: Vec<(&Path, [u64; 4], [u64; 2], u64)> = vec![
        (&img, [0, 0, 80, 64], [81, 64], 0),
        (&img, [0, 0, 80, 64], [80, 65], 0),
        (&img, [0, 0, 80, 64], [160, 128], 0),
        (&img, [0, 0, 80, 64], [203, 71], 0),
        (&img, [10, 5, 17, 9], [50, 33], 0),
        (&img, [0, 0, 80, 64], [40, 128], 0),    // x shrunk by 2, y enlarged
        (&img, [0, 0, 80, 64], [240, 32], 0),    // x enlarged, y shrunk by 2
        (&img, [0, 0, 80, 64], [1 << 20, 2], 0), // very wide (and y shrunk by 32)
        (&stack, [0, 0, 12, 10], [25, 21], 1),
        (&rgb, [0, 0, 11, 9], [23, 10], 0),
    ];
    for (i, (file, r, size, slice)) in cases.iter().enumerate() {
        let out = d.join(format!("out{i}.npy"));
        let region = format!("{},{},{},{}", r[0], r[1], r[2], r[3]);
        let sz = format!("{}x{}", size[0], size[1]);
        let sl = slice.to_string();
        let o = vastview(&["render", s(file), "-o", s(&out), "--region", &region, "--size", &sz, "--slice", &sl]);
        assert!(o.status.success(), "case {i} {sz}: {}", stderr(&o));
        let nums: Vec<String> = r.iter().chain(size.iter()).chain([slice]).map(u64::to_string).collect();
        let mut cmd = Command::new(python());
        cmd.arg("-c").arg(CHECK_EXPORT).arg(file).arg(&out).args(&nums);
        let p = cmd.output().expect("python");
        assert!(p.status.success(), "case {i} {sz}: {}", String::from_utf8_lossy(&p.stderr));
    }
}

/// The colour each value of a uint8 image gets, from its 1:1 render (gray, limits -0.5,255.5).
fn colour_of_values(d: &Path, img: &Path) -> std::collections::HashMap<u8, Vec<u8>> {
    let png = d.join("one.png");
    let o = vastview(&["render", s(img), "-o", s(&png), "--colormap", "gray", "--limits", "-0.5,255.5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, _, px) = read_png(&png);
    let (_, vals) = read_npy(img);
    vals.iter().zip(px.chunks_exact(4)).map(|(&v, p)| (v as u8, p.to_vec())).collect()
}

#[test]
fn enlarged_png_and_npy_export_take_the_same_pixels() {
    if gpu_session().is_none() {
        return;
    }
    let d = tmp("enlarge-png");
    let g = gray_image(&d);
    let colour = colour_of_values(&d, &g);
    for size in ["21x16", "20x17", "57x43", "64x19"] {
        let png = d.join(format!("e{size}.png"));
        let npy = d.join(format!("e{size}.npy"));
        let look = ["--colormap", "gray", "--limits", "-0.5,255.5", "--size", size];
        let o = vastview(&[&["render", s(&g), "-o", s(&png)][..], &look].concat());
        assert!(o.status.success(), "{}", stderr(&o));
        let o = vastview(&[&["render", s(&g), "-o", s(&npy)][..], &look].concat());
        assert!(o.status.success(), "{}", stderr(&o));
        let (w, _, px) = read_png(&png);
        let (shape, vals) = read_npy(&npy);
        assert_eq!(shape[1], u64::from(w));
        let bad = px.chunks_exact(4).zip(&vals).filter(|(p, v)| colour[&(**v as u8)] != *p).count();
        assert_eq!(bad, 0, "{size}: {bad} pixels of the PNG are not the exported value");
    }
}

#[test]
fn a_very_wide_render_completes_with_bounded_memory() {
    // A band of 1024 rows of a 2^20-wide output would be 4 GiB: bands shrink as the width grows.
    let rows = vastview::headless::band_rows(1 << 20, 1024);
    assert!(rows >= 1 && rows * (1 << 20) * 4 <= vastview::headless::BAND_BYTES, "{rows} rows");
    assert_eq!(vastview::headless::band_rows(4096, 1024), 1024);
    assert_eq!(vastview::headless::band_rows(u64::MAX / 2, 1024), 1);
    if gpu_session().is_none() {
        return;
    }
    let d = tmp("wide");
    let g = d.join("row4.npy");
    write_npy(&g, "|u1", &[4, 20], &(0..80u8).map(|v| v * 3).collect::<Vec<u8>>());
    let colour = colour_of_values(&d, &g);
    let png = d.join("wide.png");
    let o = vastview(&[
        "render",
        s(&g),
        "-o",
        s(&png),
        "--size",
        "1048576x4",
        "--colormap",
        "gray",
        "--limits",
        "-0.5,255.5",
        "-v",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (w, h, px) = read_png(&png);
    assert_eq!((w, h), (1 << 20, 4));
    // Each output pixel is the data pixel under its centre.
    let (_, vals) = read_npy(&g);
    for (i, p) in px.chunks_exact(4).enumerate().step_by(997) {
        let (x, y) = ((i % (1 << 20)) as u64, (i / (1 << 20)) as u64);
        let (sx, sy) = (((2 * x + 1) * 20) / (2 << 20), y);
        assert_eq!(p, &colour[&(vals[(sy * 20 + sx) as usize] as u8)][..], "pixel ({x}, {y})");
    }
    let e = stderr(&o);
    let peak: f64 = e
        .split("peak RSS (VmHWM) ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in {e}"));
    assert!(peak < 1024.0, "peak RSS {peak} MB");
}

#[test]
fn missing_directories_are_refused_not_created() {
    let d = tmp("missing");
    let img = image(&d);
    let pts = points(&d);
    for out in [d.join("no/such/x.npy"), d.join("no/x.png"), d.join("no/x.tif")] {
        let o = vastview(&["render", s(&img), "-o", s(&out)]);
        one_line_error(&o, &["does not exist", s(out.parent().unwrap())]);
        let o = vastview(&["render", s(&pts), "--points", "-o", s(&out)]);
        one_line_error(&o, &["does not exist", s(out.parent().unwrap())]);
    }
    assert!(!d.join("no").exists(), "the directory was created");
    // A directory as the output, and a file as its directory.
    let o = vastview(&["render", s(&img), "-o", s(&d)]);
    one_line_error(&o, &["directory"]);
    let o = vastview(&["render", s(&img), "-o", &format!("{}/x.npy", img.display())]);
    one_line_error(&o, &["is not a directory"]);
}

#[test]
fn paths_with_control_characters_are_quoted_in_the_one_line_error() {
    let d = tmp("quote");
    let img = image(&d);
    let bad_in = d.join("a\nb.npy");
    let o = vastview(&["info", s(&bad_in)]);
    one_line_error(&o, &["a\\nb.npy\"", "such file"]);
    let bad_out = d.join("new\ndir/x.npy");
    let o = vastview(&["render", s(&img), "-o", s(&bad_out)]);
    one_line_error(&o, &["\"", "new\\ndir", "does not exist"]);
    // Plain paths are shown as they are.
    let o = vastview(&["info", s(&d.join("plain.npy"))]);
    one_line_error(&o, &[&format!("{}: ", d.join("plain.npy").display())]);
    assert!(!stderr(&o).contains('"'));
    // A non-UTF-8 name is escaped, not replaced by U+FFFD.
    use std::os::unix::ffi::OsStrExt;
    let raw = d.join(std::ffi::OsStr::from_bytes(b"bad\xffname.npy"));
    let o = vastview_command(&["info"], &[]).arg(&raw).output().unwrap();
    one_line_error(&o, &["bad\\xFFname.npy\""]);
}

/// A source that counts the samples drawn for colour limits. Its info says "demo", so that no
/// pyramid is looked up in a cache directory.
struct Counting {
    inner: std::sync::Arc<dyn vastview::source::ArraySource>,
    info: vastview::source::SourceInfo,
    samples: std::sync::atomic::AtomicU64,
}

impl vastview::source::ArraySource for Counting {
    fn info(&self) -> &vastview::source::SourceInfo {
        &self.info
    }
    fn read_region(
        &self,
        slice: u64,
        rect: vastview::geom::Rect,
        out: &mut vastview::source::RegionBuf,
    ) -> vastview::Result<()> {
        self.inner.read_region(slice, rect, out)
    }
    fn sample_grid(&self, slice: u64, xs: &[u64], ys: &[u64]) -> vastview::Result<Vec<f64>> {
        self.samples.fetch_add((xs.len() * ys.len()) as u64, std::sync::atomic::Ordering::Relaxed);
        self.inner.sample_grid(slice, xs, ys)
    }
}

#[test]
fn an_npy_export_samples_nothing_for_colour_limits() {
    use vastview::headless::{plan, LimitsSpec, RenderSpec};
    let d = tmp("nosample");
    let img = image(&d);
    let inner = vastview::source::npy::open_npy(&img).unwrap();
    let mut info = vastview::source::ArraySource::info(&inner).clone();
    info.format = vastview::source::Format::DEMO;
    let src = Counting { inner: std::sync::Arc::new(inner), info, samples: Default::default() };
    let spec = RenderSpec { size: Some((40, 32)), ..Default::default() };
    plan(&src, &spec).unwrap();
    let with_limits = src.samples.swap(0, std::sync::atomic::Ordering::Relaxed);
    assert!(with_limits > 0, "percentile limits sample the data");
    let p = plan(&src, &RenderSpec { limits: LimitsSpec::Unused, ..spec }).unwrap();
    assert_eq!(src.samples.load(std::sync::atomic::Ordering::Relaxed), 0, "an export sampled for limits");
    assert!(p.limits_from.contains("nothing sampled"));
    // The command line asks for no limits when it exports .npy.
    let o = vastview(&["render", s(&img), "-o", s(&d.join("x.npy")), "--size", "40x32", "-v"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing sampled"), "{}", stderr(&o));
}

/// Decodes an image file with PIL (any format) into RGBA (or RGB) .npy.
const DECODE: &str = "import numpy as np, sys
from PIL import Image
import tifffile
p, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
if p.endswith(('.tif', '.tiff')):
    a = tifffile.imread(p)
    with tifffile.TiffFile(p) as t:
        pg = t.pages[0]
        assert pg.compression == 1 and pg.photometric == 2 and pg.extrasamples == (2,), (pg.compression, pg.photometric, pg.extrasamples)
    b = np.asarray(Image.open(p).convert('RGBA'))
    assert np.array_equal(a, b), 'tifffile and PIL disagree'
else:
    im = Image.open(p)
    assert im.format == mode, (im.format, mode)
    a = np.asarray(im.convert('RGB' if mode == 'JPEG' else 'RGBA'))
np.save(out, a)
";

/// Compares JPEG and TIFF outputs with the PNG of the same render: TIFF exactly, JPEG against the PNG
/// composited over black (mean absolute difference below 3).
fn check_formats(d: &Path, png: &Path, tif: &Path, jpg: &Path) {
    let (w, h, px) = read_png(png);
    let dec = |p: &Path, mode: &str| {
        let out = p.with_extension(format!("{mode}.npy"));
        py(DECODE, &[p, &out, Path::new(mode)]);
        let (shape, v) = read_npy(&out);
        (shape, v.iter().map(|&x| x as u8).collect::<Vec<u8>>())
    };
    let (shape, t) = dec(tif, "TIFF");
    assert_eq!(shape, [u64::from(h), u64::from(w), 4]);
    assert!(t == px, "the TIFF's pixels differ from the PNG's");
    let (shape, j) = dec(jpg, "JPEG");
    assert_eq!(shape, [u64::from(h), u64::from(w), 3]);
    let want: Vec<u8> = px.chunks_exact(4).flat_map(vastview::output::over_black).collect();
    let diff: f64 =
        j.iter().zip(&want).map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs()).sum::<f64>() / want.len() as f64;
    assert!(diff < 3.0, "JPEG mean abs diff {diff}");
    let _ = d;
}

#[test]
fn jpeg_and_tiff_outputs_match_the_png() {
    let d = tmp("formats");
    let pts = points(&d);
    let out = |e: &str| d.join(format!("p.{e}"));
    for e in ["png", "tif", "jpg"] {
        let o = vastview(&["render", s(&pts), "--points", "-o", s(&out(e)), "--size", "97x61", "--colormap", "magma"]);
        assert!(o.status.success(), "{e}: {}", stderr(&o));
    }
    check_formats(&d, &out("png"), &out("tif"), &out("jpg"));
    // Strips (the big-image path) too.
    let env = [("VASTVIEW_POINT_STRIP_PX", "700")];
    for e in ["png", "tiff", "jpeg"] {
        let o =
            vastview_env(&["render", s(&pts), "--points", "-o", s(&out(&format!("s.{e}"))), "--size", "64x40"], &env);
        assert!(o.status.success(), "{e}: {}", stderr(&o));
    }
    check_formats(&d, &out("s.png"), &out("s.tiff"), &out("s.jpeg"));
    if gpu_session().is_some() {
        let img = image(&d);
        for e in ["png", "tif", "jpg"] {
            let o = vastview(&["render", s(&img), "-o", s(&d.join(format!("i.{e}"))), "--size", "300x100"]);
            assert!(o.status.success(), "{e}: {}", stderr(&o));
        }
        check_formats(&d, &d.join("i.png"), &d.join("i.tif"), &d.join("i.jpg"));
    }
}

#[test]
fn unknown_extensions_and_oversized_jpegs_are_refused() {
    let d = tmp("ext");
    let img = image(&d);
    let pts = points(&d);
    for name in ["x.bmp", "x.gif", "x.png.bak"] {
        let out = d.join(name);
        let o = vastview(&["render", s(&img), "-o", s(&out)]);
        one_line_error(&o, &["unknown output format", ".png, .jpg/.jpeg, .tif/.tiff or .npy"]);
        let o = vastview(&["render", s(&pts), "--points", "-o", s(&out)]);
        one_line_error(&o, &["unknown output format"]);
        assert!(!out.exists());
    }
    let o = vastview(&["render", s(&img), "-o", s(&d.join("big.jpg")), "--size", "70000x2"]);
    one_line_error(&o, &["too big for a JPEG", ".tiff"]);
    let o = vastview(&["render", s(&pts), "--points", "-o", s(&d.join("big.jpg")), "--size", "65536x1"]);
    one_line_error(&o, &["too big for a JPEG"]);
    assert!(!d.join("big.jpg").exists());
}

#[test]
fn probe_outside_the_image_names_the_pixel_and_the_image_size() {
    let d = tmp("probe");
    let img = image(&d);
    for (x, y) in [("80", "0"), ("0", "64"), ("5000", "9")] {
        let o = vastview(&["probe", s(&img), x, y]);
        one_line_error(&o, &[&format!("pixel ({x}, {y}) is outside the 80 x 64 image")]);
    }
    let o = vastview(&["probe", s(&img), "79", "63"]);
    assert!(o.status.success());
    assert!(stdout(&o).trim_end().ends_with(": 63237.0"), "{}", stdout(&o));
}
