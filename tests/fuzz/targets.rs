//! The fuzz targets: every parser of untrusted bytes, driven through the public API the command line
//! uses (files written to tmpfs and opened like a user's): `.npy` headers (images and point arrays), raw
//! layout flags and sizes, FITS headers and HDUs, text points, raw point records, the pyramid and point-index cache files
//! (damaged caches must be rejected, never panic), and the display/region/size/colour flags.
//!
//! Targets that touch the disk cache need `VASTVIEW_CACHE_DIR` pointing at a scratch directory
//! ([`set_up_cache_dir`]): the caller sets it before any thread reads the environment.

use std::path::{Path, PathBuf};

use clap::Parser;

use vastview::cli::{Cli, Command};
use vastview::dtype::{DType, Endian, Order};
use vastview::geom::Rect;
use vastview::source::points::{open_points, PointFormat, PointSpec};
use vastview::source::{self, ArraySource, RegionBuf};

use super::engine::{self, havoc, mutate_bytes, replace_digits_or_insert, Outcome, Rng, Target, INTERESTING};

/// The names of all targets, in the order `all` runs them.
pub const ALL: [&str; 12] = [
    "npy",
    "npy_points",
    "raw",
    "text_points",
    "points_raw",
    "flags",
    "pyramid_cache",
    "index_cache",
    "fits",
    "tiff",
    "hdf5",
    "netcdf",
];

/// Makes the target called `name`, with its scratch files under `dir`.
pub fn make(name: &str, dir: &Path) -> Option<Box<dyn Target>> {
    let d = dir.join(name);
    let _ = std::fs::create_dir_all(&d);
    Some(match name {
        "npy" => Box::new(Npy { file: d.join("in.npy") }),
        "npy_points" => Box::new(NpyPoints { file: d.join("in.npy") }),
        "raw" => Box::new(Raw { file: d.join("in.raw") }),
        "text_points" => Box::new(TextPoints { file: d.join("in.txt") }),
        "points_raw" => Box::new(PointsRaw { file: d.join("in.bin") }),
        "flags" => Box::new(Flags),
        "pyramid_cache" => Box::new(PyramidCache::new(&d)),
        "index_cache" => Box::new(IndexCache::new(&d)),
        "fits" => Box::new(Fits { file: d.join("in.fits") }),
        "tiff" => Box::new(Tiff { file: d.join("in.tif") }),
        "hdf5" => Box::new(Container { name: "hdf5", file: d.join("in.h5") }),
        "netcdf" => Box::new(Container { name: "netcdf", file: d.join("in.nc") }),
        _ => return None,
    })
}

/// Points `VASTVIEW_CACHE_DIR` at `dir/cache` (call before other threads start) and returns it.
pub fn set_up_cache_dir(dir: &Path) -> PathBuf {
    let c = dir.join("cache");
    let _ = std::fs::create_dir_all(&c);
    std::env::set_var("VASTVIEW_CACHE_DIR", &c);
    c
}

fn cache_root() -> PathBuf {
    PathBuf::from(std::env::var_os("VASTVIEW_CACHE_DIR").unwrap_or_default())
}

/// Forgets what earlier inputs left in the cache (text conversions, bounds), so every input runs alike.
fn clear_cache(kind: &str) {
    let d = cache_root().join(kind);
    if d.exists() {
        let _ = std::fs::remove_dir_all(&d);
    }
}

fn write(path: &Path, bytes: &[u8]) -> std::result::Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("scratch write failed: {e}"))
}

fn err(e: vastview::Error) -> String {
    e.to_string()
}

/// Reads what a user would read from an opened image: corners, a small region, a probe, a sample.
fn exercise_image(src: &dyn ArraySource) -> Outcome {
    let info = src.info().clone();
    let _ = vastview::headless::info_text(&info);
    let _ = vastview::headless::info_json(&info);
    let im = info.image;
    let (w, h, n) = (im.width, im.height, im.slices);
    // The stored bytes must be exactly what the layout says (a file too short is an error, not a map
    // that faults).
    // A FITS image converted on read (BLANK with BSCALE: stored int32 shown as float64) stores BITPIX's width.
    let bitpix = info.extra.get("header").and_then(|h| h.as_array()).and_then(|cards| {
        cards.iter().find(|c| c.get("key").and_then(|k| k.as_str()) == Some("BITPIX"))?.get("value")?.as_i64()
    });
    let esz = bitpix.map_or(info.dtype.size() as u64, |b| b.unsigned_abs() / 8);
    let elems = info.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).expect("element count of an opened file");
    assert!(info.header_size + elems * esz <= info.file_size, "{info:?}: data runs past the end of the file");
    let mut buf = RegionBuf::default();
    let r = Rect::new(0, 0, w.min(4), h.min(4));
    src.read_region(0, r, &mut buf).map_err(err)?;
    src.read_region(n - 1, Rect::new(w - 1, h - 1, w, h), &mut buf).map_err(err)?;
    let v = vastview::headless::probe_text(src, n - 1, w - 1, h - 1).map_err(err)?;
    if !im.is_color() {
        let xs = [0, w / 2, w - 1];
        let ys = [0, h / 2, h - 1];
        let s = src.sample_grid(0, &xs, &ys).map_err(err)?;
        assert_eq!(s.len(), 9, "sample_grid returned {} values for 3x3", s.len());
    }
    assert!(src.read_region(0, Rect::new(w, 0, w + 1, 1), &mut buf).is_err(), "a read outside the image succeeded");
    Ok(format!("opened {:?} {} {}", info.shape.len(), info.dtype, v.len().min(3)))
}

// ---------------------------------------------------------------------------------------------------
// .npy: header-aware mutations

const DESCRS: [&str; 40] = [
    "<f4",
    ">f4",
    "|f4",
    "=f4",
    "<f8",
    ">f8",
    "<f2",
    "|u1",
    "<u1",
    "|i1",
    "|b1",
    "|?",
    "<u2",
    ">u2",
    "<i2",
    "<u4",
    ">i4",
    "<u8",
    "<i8",
    ">i8",
    "<c8",
    "<c16",
    "|O",
    "<U4",
    "|S5",
    "|V8",
    "<M8[ns]",
    "<m8",
    "<f16",
    "<f3",
    "f4",
    "",
    "<",
    "<f",
    "<i0",
    "<u99999999999999999999",
    "\u{e9}f4",
    "<f4 ",
    " <f4",
    "[('a', '<f4')]",
];

const FORTRAN: [&str; 7] = ["False", "True", "0", "None", "false", "Tru", "'False'"];

/// A dimension for a shape tuple, as text.
fn dim(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => rng.pick(&["0", "1", "2", "3", "4", "5", "7", "64", "65", "255", "256", "1000"]).to_string(),
        1 => rng.pick(&INTERESTING).to_string(),
        2 => rng
            .pick(&["18446744073709551616", "99999999999999999999999", "-1", "1.5", " 2 ", "3L", "0x10", "", "None"])
            .to_string(),
        3 => (1u64 << rng.below(64)).to_string(),
        _ => (1 + rng.below(9)).to_string(),
    }
}

/// A header dict in numpy's layout with randomly chosen (often invalid) fields.
fn npy_dict(rng: &mut Rng) -> String {
    let q = if rng.chance(0.9) { '\'' } else { '"' };
    let descr = if rng.chance(0.05) {
        "[('x', '<f4'), ('y', '<f4')]".to_string()
    } else {
        format!("{q}{}{q}", rng.pick(&DESCRS))
    };
    let fortran = rng.pick(&FORTRAN).to_string();
    let n = *rng.pick(&[0usize, 1, 2, 2, 2, 3, 3, 4, 5]);
    let dims: Vec<String> = (0..n).map(|_| dim(rng)).collect();
    let shape = match n {
        1 if rng.chance(0.7) => format!("({},)", dims[0]),
        _ => format!("({}{})", dims.join(", "), if rng.chance(0.2) { "," } else { "" }),
    };
    let mut items = vec![
        format!("{q}descr{q}: {descr}"),
        format!("{q}fortran_order{q}: {fortran}"),
        format!("{q}shape{q}: {shape}"),
    ];
    if rng.chance(0.1) {
        items.remove(rng.below(3));
    }
    if rng.chance(0.05) {
        let k = rng.below(items.len());
        items.push(items[k].clone());
    }
    if rng.chance(0.05) {
        items.push(format!("{q}extra{q}: 1"));
    }
    if rng.chance(0.3) {
        let k = rng.below(items.len());
        let it = items.remove(k);
        items.push(it);
    }
    format!("{{{}, }}", items.join(", "))
}

/// Where an .npy file's data starts, when its preamble is readable.
fn npy_data_offset(v: &[u8]) -> Option<usize> {
    if v.len() < 10 || &v[..6] != b"\x93NUMPY" {
        return None;
    }
    match v[6] {
        1 => Some(10 + u16::from_le_bytes([v[8], v[9]]) as usize),
        _ if v.len() >= 12 => Some(12 + u32::from_le_bytes([v[8], v[9], v[10], v[11]]) as usize),
        _ => None,
    }
    .filter(|&o| o <= v.len())
}

/// Bytes a shape of `dims` needs for `descr`, if they are sensible (for resizing the data to fit).
fn data_bytes(header: &str) -> Option<usize> {
    let descr = header.split("descr").nth(1)?.split(['\'', '"']).nth(2)?;
    let (d, _) = DType::parse_descr(descr).ok()?;
    let shape = header.split("shape").nth(1)?.split('(').nth(1)?.split(')').next()?;
    let mut n = 1usize;
    for p in shape.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        n = n.checked_mul(p.trim_end_matches('L').parse::<usize>().ok()?)?;
    }
    n.checked_mul(d.size()).filter(|&b| b <= 1 << 16)
}

fn npy_mutate(rng: &mut Rng, v: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    match rng.below(10) {
        0..=3 => {
            // A new header over the old data.
            let data = npy_data_offset(v).map(|o| v[o..].to_vec()).unwrap_or_default();
            let dict = npy_dict(rng);
            let major = *rng.pick(&[1u8, 1, 1, 2, 3, 0, 4, 255]);
            let minor = if rng.chance(0.9) { 0 } else { rng.next() as u8 };
            let pre = if major == 1 { 10 } else { 12 };
            let mut text = dict.into_bytes();
            if rng.chance(0.8) {
                while (pre + text.len() + 1) % 64 != 0 {
                    text.push(b' ');
                }
                text.push(b'\n');
            }
            let mut len = text.len() as u64;
            if rng.chance(0.15) {
                len = match rng.below(4) {
                    0 => *rng.pick(&INTERESTING),
                    1 => len.wrapping_add(1 + rng.below(8) as u64),
                    2 => len.saturating_sub(1 + rng.below(8) as u64),
                    _ => rng.next(),
                };
            }
            let mut out = b"\x93NUMPY".to_vec();
            out.extend_from_slice(&[major, minor]);
            if major == 1 {
                out.extend_from_slice(&(len as u16).to_le_bytes());
            } else {
                out.extend_from_slice(&(len as u32).to_le_bytes());
            }
            out.extend_from_slice(&text);
            let header = String::from_utf8_lossy(&text).into_owned();
            match (rng.below(3), data_bytes(&header)) {
                (0 | 1, Some(n)) => out.extend((0..n).map(|i| (i * 37 % 251) as u8)),
                _ => out.extend_from_slice(&data),
            }
            *v = out;
        }
        4 => {
            // Only the header length field.
            if v.len() >= 12 {
                let x = *rng.pick(&INTERESTING);
                if v[6] == 1 {
                    v[8..10].copy_from_slice(&(x as u16).to_le_bytes());
                } else {
                    v[8..12].copy_from_slice(&(x as u32).to_le_bytes());
                }
            }
        }
        5 => {
            // Truncate anywhere, or grow the data.
            if rng.chance(0.5) && !v.is_empty() {
                let at = rng.below(v.len());
                v.truncate(at);
            } else {
                let k = 1 + rng.below(64);
                v.extend((0..k).map(|_| rng.next() as u8));
            }
        }
        6 => {
            // A version byte.
            if v.len() > 7 {
                v[6 + rng.below(2)] = *rng.pick(&[0u8, 1, 2, 3, 4, 255]);
            }
        }
        _ => havoc(rng, v, corpus),
    }
}

/// `.npy` images: `info`, `probe`, region reads through `source::open`.
struct Npy {
    file: PathBuf,
}

impl Target for Npy {
    fn name(&self) -> &'static str {
        "npy"
    }
    fn mutate(&self, rng: &mut Rng, v: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        npy_mutate(rng, v, corpus)
    }
    fn run(&mut self, input: &[u8]) -> Outcome {
        write(&self.file, input)?;
        let spec = source::OpenSpec { path: self.file.clone(), ..Default::default() };
        let src = source::open(&spec).map_err(err)?;
        // The header the parser saw must be the one in the file.
        let h = {
            let f = std::fs::File::open(&self.file).map_err(|e| e.to_string())?;
            source::npy::read_header(&self.file, &f, input.len() as u64).expect("header of an opened file")
        };
        assert_eq!(h.shape, src.info().shape);
        exercise_image(src.as_ref())
    }
}

/// `.npy` point arrays: `info --points` (bounds pass, bounds cache) through `open_points`. Inputs
/// without the magic go to the text converter.
struct NpyPoints {
    file: PathBuf,
}

impl Target for NpyPoints {
    fn name(&self) -> &'static str {
        "npy_points"
    }
    fn corpus(&self) -> &'static str {
        "npy"
    }
    fn mutate(&self, rng: &mut Rng, v: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        npy_mutate(rng, v, corpus)
    }
    fn run(&mut self, input: &[u8]) -> Outcome {
        write(&self.file, input)?;
        let r = exercise_points(&self.file, &PointSpec::default());
        clear_cache("points");
        r
    }
}

/// `info --points` of an opened point set, text and JSON.
fn exercise_points(path: &Path, spec: &PointSpec) -> Outcome {
    let src = open_points(path, spec).map_err(err)?;
    assert!(src.columns >= 1 && src.x < src.columns && src.y < src.columns);
    let esz = src.dtype.size() as u64;
    let bytes = src.len.checked_mul(src.columns).and_then(|n| n.checked_mul(esz)).expect("record bytes");
    match &src.format {
        PointFormat::Text { report, binary } => {
            assert_eq!(report.records, src.len, "text report and binary disagree");
            let blen = std::fs::metadata(binary).map(|m| m.len()).unwrap_or(0);
            assert_eq!(blen, bytes, "converted binary size");
        }
        PointFormat::Raw => assert_eq!(src.data_offset + bytes, src.file_size, "raw records fill the file"),
        PointFormat::Npy { .. } => assert!(src.data_offset + bytes <= src.file_size, "npy data past the end"),
    }
    let t = vastview::headless_points::points_info_text(&src).map_err(err)?;
    let _ = vastview::headless_points::points_info_json(&src).map_err(err)?;
    src.check_faulted().map_err(err)?;
    Ok(format!("points {} {} {}", src.format.name(), src.columns, t.lines().count()))
}

// ---------------------------------------------------------------------------------------------------
// Raw layout flags

const RAW_TOKENS: [&[&str]; 6] = [
    &[
        "f32",
        "float32",
        "<f4",
        ">f8",
        "u8",
        "uint8",
        "<u8",
        "<i8",
        "i8",
        "int64",
        "<U4",
        "|S2",
        "c8",
        "complex64",
        "bool",
        "?",
        "|b1",
        "=u2",
        "f16",
        "<f2",
        "<f16",
        "f4",
        "float",
        "",
        " u16 ",
        "F32",
        "<",
        "|",
        "object",
    ],
    &[
        "1x1",
        "4x5",
        "0x5",
        "5x0",
        "1x1x3",
        "2x2x4",
        "2x2x5",
        "3x1x1",
        "2x2x2x2",
        "7",
        "x",
        ",,",
        "1*1",
        "-1x2",
        "1x-1",
        "18446744073709551615x2",
        "4294967296x4294967296",
        "65536x65536x65536",
        "1x18446744073709551615",
        "2,3",
        "2 x 3",
    ],
    &["0", "1", "7", "8", "16", "18446744073709551615", "9223372036854775807", "-1", "abc", "1e3", ""],
    &["C", "F", "c", "f", "fortran", "Fortran", "", "A", "K", "row"],
    &["", "little", "big", "<", ">", "le", "BE", "native", "=", "x"],
    &["", "0", "1", "8", "80", "160", "65536", "4095"],
];

/// Whether `--dtype` takes numpy's descr strings with numpy's meaning (`<i8` = int64): today `<i8` is read
/// as int8. pending defect 5: set to true once that fix is merged.
pub const DESCR_ROUND_TRIP: bool = true;

/// Raw layout flags (`--dtype --shape --offset --order --endian`, one per line, then the file size) parsed
/// by clap and `open_spec`, then the file opened and read.
struct Raw {
    file: PathBuf,
}

fn lines(input: &[u8], n: usize) -> Vec<String> {
    let s = String::from_utf8_lossy(input);
    let mut v: Vec<String> = s.split('\n').map(str::to_string).collect();
    v.resize(n.max(v.len()), String::new());
    v
}

impl Target for Raw {
    fn name(&self) -> &'static str {
        "raw"
    }
    fn max_len(&self) -> usize {
        4096
    }
    fn mutate(&self, rng: &mut Rng, v: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        if rng.chance(0.6) {
            let mut l = lines(v, 6);
            let k = rng.below(6);
            l[k] = if rng.chance(0.8) {
                rng.pick(RAW_TOKENS[k]).to_string()
            } else {
                let mut b = l[k].clone().into_bytes();
                mutate_bytes(rng, &mut b, corpus);
                String::from_utf8_lossy(&b).into_owned()
            };
            *v = l.join("\n").into_bytes();
        } else {
            havoc(rng, v, corpus);
        }
    }
    fn run(&mut self, input: &[u8]) -> Outcome {
        let l = lines(input, 6);
        // The parsers alone, on whatever was given.
        let d = DType::parse_user(&l[0]);
        let _ = DType::parse_descr(&l[0]);
        if let Some((dt, e)) = d {
            // A spelling that parses names one of the types, and that type's own spellings parse back to it.
            assert_eq!(DType::parse_user(dt.name()).map(|x| x.0), Some(dt));
            if DESCR_ROUND_TRIP {
                assert_eq!(DType::parse_user(&dt.descr(e.unwrap_or(Endian::Little))).map(|x| x.0), Some(dt));
            }
        }
        if let Some(s) = source::raw::parse_shape(&l[1]) {
            assert!((2..=3).contains(&s.len()));
        }
        let _ = (Endian::parse(&l[4]), Order::parse(&l[3]));
        // The file: the given size, else exactly what the layout needs when that is small.
        let need = (|| {
            let (dt, _) = d?;
            let shape = source::raw::parse_shape(&l[1])?;
            let off: u64 = l[2].trim().parse().ok()?;
            shape.iter().try_fold(dt.size() as u64, |a, &x| a.checked_mul(x))?.checked_add(off)
        })();
        let size = match l[5].trim().parse::<u64>() {
            Ok(n) => n.min(1 << 16),
            Err(_) => need.filter(|&n| n <= 1 << 16).unwrap_or(64),
        };
        write(&self.file, &(0..size).map(|i| (i * 131 % 256) as u8).collect::<Vec<_>>())?;
        let path = self.file.to_string_lossy().into_owned();
        let mut args = vec!["vastview", "info", &path, "--dtype", &l[0], "--shape", &l[1], "--offset", &l[2]];
        args.extend(["--order", &l[3]]);
        if !l[4].is_empty() {
            args.extend(["--endian", &l[4]]);
        }
        let cli = Cli::try_parse_from(&args).map_err(|e| format!("clap: {}", e.kind()))?;
        let Some(Command::Info(a)) = cli.command else { panic!("info parsed as another command") };
        let spec = vastview::cli::open_spec(a.input, a.demo, &a.input_args).map_err(err)?;
        let raw = spec.raw.clone().expect("a raw spec from --dtype and --shape");
        let src = source::open(&spec).map_err(err)?;
        let elems: u64 = raw.shape.iter().product();
        assert_eq!(raw.offset + elems * raw.dtype.size() as u64, size, "a raw file opened with the wrong size");
        exercise_image(src.as_ref())
    }
}

// ---------------------------------------------------------------------------------------------------
// Text points

const POINT_TOKENS: [&str; 16] = [
    "1 2\n",
    "1,2,3\n",
    "x y z\n",
    "x,y\n",
    "\n",
    "# c\n",
    "1e308 -1.7e308\n",
    "nan nan\n",
    "\u{feff}",
    "\r\n",
    "1;2;3;4\n",
    "1 2 3 4 5 6 7 8\n",
    "0x1 2\n",
    "\u{0}\u{1}\n",
    "\u{ff}\n",
    "1\t\t2\n",
];

fn text_mutate(rng: &mut Rng, v: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    match rng.below(6) {
        0 => {
            // Insert a whole line at a line start.
            let starts: Vec<usize> = std::iter::once(0)
                .chain(v.iter().enumerate().filter(|(_, &c)| c == b'\n').map(|(i, _)| i + 1))
                .collect();
            let at = *rng.pick(&starts);
            let t = rng.pick(&POINT_TOKENS).as_bytes().to_vec();
            v.splice(at..at, t);
        }
        1 => {
            let x = rng.pick(&engine::TEXT_TOKENS).as_bytes().to_vec();
            replace_digits_or_insert(rng, v, &x);
        }
        2 => {
            // Duplicate or delete a line.
            let s: Vec<Vec<u8>> = v.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
            let k = rng.below(s.len());
            let mut s2 = s.clone();
            if rng.chance(0.5) {
                s2.insert(k, s[k].clone());
            } else {
                s2.remove(k);
            }
            *v = s2.join(&b'\n');
        }
        3 => {
            // A very long line (bounded by max_len).
            let n = 1 + rng.below(20000);
            let at = rng.below(v.len() + 1);
            let t: Vec<u8> = (0..n).map(|i| if i % 7 == 6 { b' ' } else { b'1' + (i % 9) as u8 }).collect();
            v.splice(at..at, t);
        }
        _ => havoc(rng, v, corpus),
    }
}

/// Text point files through `open_points`: the converter (line parser, header, malformed lines), its
/// cache, then `info --points`.
struct TextPoints {
    file: PathBuf,
}

impl Target for TextPoints {
    fn name(&self) -> &'static str {
        "text_points"
    }
    fn mutate(&self, rng: &mut Rng, v: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        text_mutate(rng, v, corpus)
    }
    fn run(&mut self, input: &[u8]) -> Outcome {
        if input.starts_with(b"\x93NUMPY") {
            return Ok("npy magic: not this target".into());
        }
        write(&self.file, input)?;
        let r = exercise_points(&self.file, &PointSpec::default());
        clear_cache("points");
        r
    }
}

// ---------------------------------------------------------------------------------------------------
// Raw point records

/// Raw point records: 5 bytes of layout (dtype, columns, offset, x/y/value columns, endian), then the file.
struct PointsRaw {
    file: PathBuf,
}

impl Target for PointsRaw {
    fn name(&self) -> &'static str {
        "points_raw"
    }
    fn run(&mut self, input: &[u8]) -> Outcome {
        let b = |i: usize| input.get(i).copied().unwrap_or(0);
        let dtype = match b(0) % 5 {
            0 => Some(DType::F32),
            1 => Some(DType::F64),
            2 => Some(*DType::all().get(b(0) as usize / 5 % 12).unwrap_or(&DType::U8)),
            _ => None,
        };
        let columns = match b(1) {
            255 => None,
            254 => Some(u64::MAX),
            253 => Some(1 << 61),
            c => Some(u64::from(c % 6)),
        };
        let offset = match b(2) {
            255 => u64::MAX,
            254 => 1 << 62,
            o => u64::from(o % 24),
        };
        let c = b(3);
        let value = (c >> 4) & 7;
        let spec = PointSpec {
            dtype,
            endian: if b(4) & 1 == 0 { Endian::Little } else { Endian::Big },
            columns: if dtype.is_some() { columns } else { None },
            offset,
            x: u64::from(c & 3),
            y: u64::from((c >> 2) & 3),
            value: (value != 7).then_some(u64::from(value)),
        };
        write(&self.file, input.get(5..).unwrap_or(&[]))?;
        let r = exercise_points(&self.file, &spec);
        clear_cache("points");
        r
    }
}

// ---------------------------------------------------------------------------------------------------
// Display, region, size and colour flags

const FLAG_TOKENS: [&str; 40] = [
    "0,0,4,3",
    "0,0,1,1",
    "4,3,0,0",
    "0,0,18446744073709551615,1",
    "1,2,3",
    "1,2,3,4,5",
    "40x30",
    "0x0",
    "1x18446744073709551615",
    "1048576x4096",
    "x",
    "0,1",
    "-1e308,1e308",
    "nan,1",
    "inf,-inf",
    "1,1",
    "2,1",
    "0.5,99.5",
    "-1,101",
    "ff0000ff",
    "#00ff00",
    "ff00ff",
    "fff",
    "zzzzzzzz",
    "ff0000ff00",
    "é0000000",
    "viridis",
    "magma_r",
    "nope",
    "_r",
    "log",
    "eqhist",
    "asinh",
    "0",
    "-1",
    "1e400",
    "NaN",
    "mean",
    "max",
    "auto",
];

/// Render and window flags (`--region --size --limits --percentiles --nan-color --colormap --scale --gamma
/// --downsample`, window `--center --window-size --zoom`, points `--background --alpha --agg
/// --point-size`) through clap and the validators `render_spec` and `launch_options`; `parse_rgba` alone.
struct Flags;

fn flag_args(input: &[u8]) -> (u8, Vec<std::ffi::OsString>) {
    use std::os::unix::ffi::OsStringExt;
    let mut fields = input.split(|&c| c == b'\n');
    let mode = fields.next().and_then(|f| f.first().copied()).unwrap_or(b'r');
    (mode, fields.map(|f| std::ffi::OsString::from_vec(f.to_vec())).collect())
}

impl Target for Flags {
    fn name(&self) -> &'static str {
        "flags"
    }
    fn max_len(&self) -> usize {
        4096
    }
    fn mutate(&self, rng: &mut Rng, v: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        if rng.chance(0.5) {
            let mut l: Vec<Vec<u8>> = v.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
            let k = rng.below(l.len());
            if k == 0 && rng.chance(0.5) {
                l[0] = vec![*rng.pick(b"rwp")];
            } else {
                l[k] = rng.pick(&FLAG_TOKENS).as_bytes().to_vec();
            }
            *v = l.join(&b'\n');
        } else {
            havoc(rng, v, corpus);
        }
    }
    fn run(&mut self, input: &[u8]) -> Outcome {
        let (mode, f) = flag_args(input);
        let get = |i: usize| f.get(i).cloned().unwrap_or_default();
        let mut out = String::new();
        if let Some(s) = f.first().and_then(|s| s.to_str()) {
            if let Some(c) = vastview::palette::parse_rgba(s) {
                let hex = format!("{:02x}{:02x}{:02x}{:02x}", c[0], c[1], c[2], c[3]);
                assert_eq!(vastview::palette::parse_rgba(&hex), Some(c), "{s:?} -> {hex}");
                out.push_str("rgba ");
            }
        }
        let mut args: Vec<std::ffi::OsString> = vec!["vastview".into()];
        let names: &[&str] = match mode {
            b'w' => {
                args.push("--demo".into());
                &["--center", "--window-size", "--zoom", "--limits", "--nan-color", "--colormap", "--scale"]
            }
            b'p' => {
                args.extend(["points.txt".into(), "--points".into()]);
                &["--center", "--background", "--alpha", "--agg", "--point-size", "--scale", "--colormap"]
            }
            _ => {
                args.extend(["render".into(), "in.npy".into(), "-o".into(), "out.png".into()]);
                &[
                    "--region",
                    "--size",
                    "--limits",
                    "--percentiles",
                    "--nan-color",
                    "--colormap",
                    "--scale",
                    "--gamma",
                    "--downsample",
                ]
            }
        };
        for (i, n) in names.iter().enumerate() {
            let v = get(i);
            if !v.is_empty() {
                args.push(format!("{n}={}", v.to_string_lossy()).into());
            }
        }
        let cli = Cli::try_parse_from(&args).map_err(|e| format!("clap: {}", e.kind()))?;
        match cli.command {
            Some(Command::Render(a)) => {
                let s = vastview::cli::render_spec(&a, Path::new("in.npy")).map_err(err)?;
                if let Some(r) = s.region {
                    assert!(r.x0 < r.x1 && r.y0 < r.y1, "empty region accepted");
                }
                if let Some((w, h)) = s.size {
                    assert!(w > 0 && h > 0, "empty size accepted");
                }
                out.push_str("render");
            }
            None => {
                #[cfg(feature = "gui")]
                {
                    let o = vastview::cli::launch_options(&cli.view).map_err(err)?;
                    assert!(o.window_size.0 > 0 && o.window_size.1 > 0);
                    out.push_str("window");
                }
            }
            Some(_) => panic!("flags parsed as another command"),
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------------
// Cache files: damaged copies of a real pyramid and a real point index

/// JSON values worth putting in a cache header.
const JSON_VALUES: [&str; 22] = [
    "0",
    "1",
    "-1",
    "2",
    "13",
    "14",
    "64",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "9007199254740993",
    "1e308",
    "-1e308",
    "1.7976931348623157e308",
    "0.5",
    "-0.0",
    "null",
    "true",
    "\"x\"",
    "[]",
    "{}",
];

/// Mutates a cache file that starts with magic, u32 JSON length, u32 CRC-32 of the JSON, JSON: mostly
/// inside the JSON (then, usually, with length and CRC fixed so the fields are what gets tested),
/// else anywhere in the first `head` bytes, else the length.
fn cache_mutate(rng: &mut Rng, v: &mut Vec<u8>, corpus: &[Vec<u8>], head: usize) {
    let len = v.get(8..12).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize).unwrap_or(0);
    if rng.chance(0.7) && 16 + len <= v.len() {
        let mut json = v[16..16 + len].to_vec();
        for _ in 0..1 + rng.below(3) {
            match rng.below(4) {
                0 | 1 => {
                    // Replace a value after a ':' with an interesting one.
                    let colons: Vec<usize> =
                        json.iter().enumerate().filter(|(_, &c)| c == b':').map(|(i, _)| i + 1).collect();
                    if colons.is_empty() {
                        continue;
                    }
                    let a = *rng.pick(&colons);
                    let b = a + json[a..].iter().take_while(|&&c| c != b',' && c != b'}' && c != b']').count();
                    let b = if json.get(a) == Some(&b'[') && rng.chance(0.5) {
                        a + json[a..].iter().position(|&c| c == b']').map_or(0, |p| p + 1)
                    } else {
                        b
                    };
                    json.splice(a..b, rng.pick(&JSON_VALUES).bytes());
                }
                2 => {
                    if let Some(p) = json.windows(4).position(|w| w == b"true") {
                        json.splice(p..p + 4, *b"false");
                    } else if let Some(p) = json.windows(5).position(|w| w == b"false") {
                        json.splice(p..p + 5, *b"true");
                    }
                }
                _ => mutate_bytes(rng, &mut json, &[]),
            }
        }
        let mut out = v[..16].to_vec();
        if rng.chance(0.9) {
            out[8..12].copy_from_slice(&(json.len() as u32).to_le_bytes());
        }
        if rng.chance(0.9) {
            out[12..16].copy_from_slice(&crc32fast::hash(&json).to_le_bytes());
        }
        out.extend_from_slice(&json);
        // Keep the later parts where they were (the header block has a fixed size): take the growth out of
        // the zero padding after the JSON, or pad a shrunk JSON with zeros.
        let rest = &v[16 + len..];
        if json.len() >= len {
            out.extend_from_slice(&rest[(json.len() - len).min(rest.len())..]);
        } else {
            out.extend(std::iter::repeat_n(0u8, len - json.len()));
            out.extend_from_slice(rest);
        }
        *v = out;
    } else if rng.chance(0.8) {
        let h = head.min(v.len());
        if h == 0 {
            return;
        }
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(h);
            match rng.below(3) {
                0 => v[i] ^= 1 << rng.below(8),
                1 => v[i] = rng.next() as u8,
                _ => {
                    let x = rng.pick(&INTERESTING).to_le_bytes();
                    let i = i & !7;
                    if i + 8 <= v.len() {
                        v[i..i + 8].copy_from_slice(&x);
                    }
                }
            }
        }
    } else if !v.is_empty() {
        match rng.below(3) {
            0 => {
                let at = rng.below(v.len());
                v.truncate(at);
            }
            1 => v.extend(std::iter::repeat_n(0u8, 1 + rng.below(8192))),
            _ => mutate_bytes(rng, v, corpus),
        }
    }
}

/// An .npy file of `shape` f32 values `f(i)` (the header from the library's own export writer).
pub(crate) fn npy_f32(shape: &[u64], f: impl Fn(u64) -> f32) -> Vec<u8> {
    let mut v = vastview::headless::npy_header("<f4", shape);
    let n: u64 = shape.iter().product();
    for i in 0..n {
        v.extend_from_slice(&f(i).to_le_bytes());
    }
    v
}

/// A damaged copy of a real pyramid (of a 300 x 300 float32 image of zeros, so the tile data after the
/// tables is all zeros and is appended as a sparse tail) put where the cache looks for it, then `find`
/// (which validates it and deletes it when damaged) and every tile and statistic read back.
struct PyramidCache {
    src: std::sync::Arc<dyn ArraySource>,
    done: PathBuf,
    seed: Vec<u8>,
    tail: u64,
}

impl PyramidCache {
    fn new(dir: &Path) -> PyramidCache {
        let data = dir.join("zeros.npy");
        std::fs::write(&data, npy_f32(&[300, 300], |_| 0.0)).expect("write the pyramid's data file");
        let src = source::open(&source::OpenSpec { path: data, ..Default::default() }).expect("open zeros.npy");
        let method = vastview::pyramid::Method::Mean;
        let store = vastview::pyramid::persist::find_or_build(src.as_ref(), method, &Default::default())
            .expect("build the seed pyramid");
        let done = store.path().to_path_buf();
        let bytes = std::fs::read(&done).expect("read the seed pyramid");
        let head = store.layout.data_offset as usize;
        let (seed, tail) = if bytes[head..].iter().all(|&b| b == 0) {
            (bytes[..head].to_vec(), (bytes.len() - head) as u64)
        } else {
            (bytes, 0)
        };
        drop(store);
        PyramidCache { src, done, seed, tail }
    }
}

impl Target for PyramidCache {
    fn name(&self) -> &'static str {
        "pyramid_cache"
    }
    fn extra_seeds(&mut self) -> Vec<Vec<u8>> {
        vec![self.seed.clone()]
    }
    fn max_len(&self) -> usize {
        self.seed.len() + 65536
    }
    fn mutate(&self, rng: &mut Rng, v: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        cache_mutate(rng, v, corpus, self.seed.len());
    }
    fn run(&mut self, input: &[u8]) -> Outcome {
        write(&self.done, input)?;
        let f = std::fs::OpenOptions::new().write(true).open(&self.done).map_err(|e| e.to_string())?;
        f.set_len(input.len() as u64 + self.tail).map_err(|e| e.to_string())?;
        drop(f);
        let _ = vastview::pyramid::Store::read_meta(&self.done);
        let Some(store) =
            vastview::pyramid::persist::find(self.src.as_ref(), vastview::pyramid::Method::Mean).map_err(err)?
        else {
            return Err("rejected".into());
        };
        let levels = store.levels();
        let mut buf = RegionBuf::default();
        let mut tiles = 0;
        for l in 0..levels.count {
            let g = levels.grid(l);
            for ty in 0..g.rows() {
                for tx in 0..g.cols() {
                    if l > 0 && store.read_tile(0, l, tx, ty, &mut buf).map_err(err)?.is_some() {
                        tiles += 1;
                    }
                    let _ = store.read_stats(0, l, tx, ty).map_err(err)?;
                }
            }
        }
        let st = store.slice_stats(0).map_err(err)?;
        let _ = (store.hist_range(), st.map(|s| s.count));
        Ok(format!("accepted {tiles} tiles"))
    }
}

/// A damaged copy of a real point index (of 300 float32 points with a value column) put where the
/// cache looks for it, then `PointIndex::find` (validates, deletes when damaged) and queries.
struct IndexCache {
    src: vastview::source::points::PointSource,
    done: PathBuf,
    seed: Vec<u8>,
}

impl IndexCache {
    fn new(dir: &Path) -> IndexCache {
        let data = dir.join("points.npy");
        let v = npy_f32(&[300, 3], |i| ((i * 7919) % 1000) as f32 / 10.0 - 30.0);
        std::fs::write(&data, v).expect("write the index's point file");
        let src = open_points(&data, &PointSpec::default()).expect("open points.npy");
        let (ix, _) =
            vastview::points::index::build::build_or_find(&src, &Default::default()).expect("build the seed index");
        let done = ix.path().to_path_buf();
        drop(ix);
        let seed = std::fs::read(&done).expect("read the seed index");
        IndexCache { src, done, seed }
    }
}

impl Target for IndexCache {
    fn name(&self) -> &'static str {
        "index_cache"
    }
    fn extra_seeds(&mut self) -> Vec<Vec<u8>> {
        vec![self.seed.clone()]
    }
    fn max_len(&self) -> usize {
        self.seed.len() + 65536
    }
    fn mutate(&self, rng: &mut Rng, v: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        if rng.chance(0.25) && v.len() > 4096 {
            // Damage the tables, then make the footer's offsets checksum agree (so the offsets checks run).
            let i = 4096 + rng.below(v.len() - 4096);
            v[i] = rng.next() as u8;
            let len = u32::from_le_bytes([v[8], v[9], v[10], v[11]]) as usize;
            let meta: Option<vastview::points::index::IndexMeta> =
                v.get(16..16 + len).and_then(|j| serde_json::from_slice(j).ok());
            if let Some(meta) = meta {
                let esz = if meta.dtype == "float64" { 8 } else { 4 };
                let l = vastview::points::index::Layout::new(
                    meta.level.min(13),
                    meta.indexed.min(1 << 40),
                    meta.record_values.min(8),
                    esz,
                    meta.value_column.is_some(),
                );
                let (a, b) = (l.offsets_at as usize, l.counts_at as usize);
                if b <= v.len() {
                    let crc = crc32fast::hash(&v[a..b]).to_le_bytes();
                    let f = 4096 - 64;
                    v[f + 8..f + 12].copy_from_slice(&crc);
                    let fc = crc32fast::hash(&v[f..f + 16]).to_le_bytes();
                    v[f + 16..f + 20].copy_from_slice(&fc);
                }
            }
        } else {
            cache_mutate(rng, v, corpus, 4096);
        }
    }
    fn run(&mut self, input: &[u8]) -> Outcome {
        write(&self.done, input)?;
        let _ = vastview::points::index::read_meta(&self.done);
        let ix = vastview::points::index::PointIndex::find(&self.src).map_err(err)?.ok_or("rejected")?;
        let e = ix.meta.extent();
        let n = ix.points_in(&e);
        for agg in [vastview::points::Agg::Count, vastview::points::Agg::Mean, vastview::points::Agg::Max] {
            let _ = ix.aggregate(&e, 7, 5, agg).map_err(err)?;
        }
        let half = vastview::points::Extent { xmax: (e.xmin + e.xmax) / 2.0, ..e };
        let _ = ix.aggregate(&half, 3, 3, vastview::points::Agg::Sum).map_err(err)?;
        let _ = ix.coarse_counts(&e, 4, 4).map_err(err)?;
        for l in 0..=ix.meta.level {
            let _ = ix.level_counts(l).map_err(err)?;
            let _ = ix.level_values(l).map_err(err)?;
        }
        Ok(format!("accepted {n}"))
    }
}

// ---------------------------------------------------------------------------------------------------
// FITS: card-aware mutations

/// Keywords the FITS reader acts on, and some it must survive.
const FITS_KEYS: [&str; 24] = [
    "SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "NAXIS4", "PCOUNT", "GCOUNT", "BZERO",
    "BSCALE", "BLANK", "EXTNAME", "EXTVER", "CTYPE1", "CUNIT2", "CDELT1", "CD1_1", "PC2_2", "GROUPS", "ZIMAGE",
    "CONTINUE", "END",
];
const FITS_VALUES: [&str; 26] = [
    "T",
    "F",
    "0",
    "1",
    "-1",
    "2",
    "3",
    "8",
    "-32",
    "-64",
    "16",
    "999",
    "1000",
    "2880",
    "4294967296",
    "9223372036854775808",
    "32768",
    "-128",
    "1.5D3",
    "1E300",
    "'IMAGE   '",
    "'BINTABLE'",
    "'SCI&'",
    "'it''s'",
    "(1, 2)",
    "'",
];

fn fits_card(rng: &mut Rng) -> [u8; 80] {
    let mut c = [b' '; 80];
    let key = if rng.chance(0.1) { "HIERARCH ESO DET" } else { rng.pick(&FITS_KEYS) };
    let val = rng.pick(&FITS_VALUES);
    let text = if key == "CONTINUE" || key == "END" || rng.chance(0.05) {
        format!("{key:<8}  {val}")
    } else {
        format!("{key:<8}= {val:>20} / fuzz")
    };
    let n = text.len().min(80);
    c[..n].copy_from_slice(&text.as_bytes()[..n]);
    c
}

fn fits_mutate(rng: &mut Rng, v: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    let cards = v.len() / 80;
    match rng.below(8) {
        // Replace a card in the first blocks with a generated one.
        0..=2 if cards > 0 => {
            let i = rng.below(cards.min(108));
            v[i * 80..i * 80 + 80].copy_from_slice(&fits_card(rng));
        }
        // Insert a card (shifting the rest: headers, data and later HDUs move off their blocks).
        3 => {
            let at = rng.below(cards + 1) * 80;
            v.splice(at..at, fits_card(rng));
        }
        // Blank out an END card, or the whole END block.
        4 => {
            if let Some(p) = v.chunks_exact(80).position(|c| c.starts_with(b"END     ")) {
                v[p * 80..p * 80 + 3].copy_from_slice(b"   ");
            }
        }
        // Cut at or near a block edge, or grow by whole blocks.
        5 => {
            let blocks = v.len() / 2880;
            let at = rng.below(blocks + 1) * 2880;
            let at = match rng.below(3) {
                0 => at.saturating_sub(1 + rng.below(80)),
                1 => at,
                _ => at + rng.below(80),
            };
            v.resize(at, 0);
        }
        6 => v.extend(std::iter::repeat_n(0u8, 2880 * (1 + rng.below(2)))),
        // Numbers in place: NAXISn, BITPIX, PCOUNT become interesting values.
        _ => {
            let x = *rng.pick(&INTERESTING);
            let tok = if rng.chance(0.3) { format!("-{x}") } else { x.to_string() };
            replace_digits_or_insert(rng, v, tok.as_bytes());
            if rng.chance(0.5) {
                mutate_bytes(rng, v, corpus);
            }
        }
    }
}

/// FITS files: the header/HDU parser on the bytes, then `source::open` of every HDU (default, then by
/// number), `info`, reads, probes and `physical_value` of the probed values.
struct Fits {
    file: PathBuf,
}

impl Target for Fits {
    fn name(&self) -> &'static str {
        "fits"
    }
    fn mutate(&self, rng: &mut Rng, v: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        if rng.chance(0.7) {
            fits_mutate(rng, v, corpus)
        } else {
            havoc(rng, v, corpus)
        }
    }
    fn run(&mut self, input: &[u8]) -> Outcome {
        use vastview::source::fits;
        let list = fits::read_hdus(&self.file, input);
        write(&self.file, input)?;
        let (mut last, mut opened) = (String::new(), false);
        let n = list.as_ref().map(|l| l.hdus.len()).unwrap_or(0);
        for member in std::iter::once(None).chain((0..n.min(4)).map(|k| Some(k.to_string()))) {
            let spec = source::OpenSpec { path: self.file.clone(), member: member.clone(), ..Default::default() };
            let src = match source::open(&spec) {
                Ok(s) => s,
                Err(e) => {
                    last = err(e);
                    continue;
                }
            };
            let info = src.info().clone();
            let hdus = list.as_ref().expect("a file that opened has a readable HDU list");
            let k = info.member.as_deref().and_then(|m| m.strip_prefix("hdu ")).and_then(|k| k.parse::<usize>().ok());
            let hdu = &hdus.hdus[k.expect("the member names the HDU")];
            assert_eq!(hdu.data_start, info.header_size, "the HDU list and the opened source disagree");
            assert!(hdu.data_start + hdu.data_len <= input.len() as u64, "data past the end: {hdu:?}");
            last = exercise_image(src.as_ref())?;
            opened = true;
            if let Some(s) = info.scaling {
                for v in src.probe(0, 0, 0).map_err(err)? {
                    let _ = fits::physical_value(&s, &v).numpy_str();
                }
            }
        }
        if opened {
            Ok(last)
        } else {
            Err(last)
        }
    }
}
// TIFF: the IFD parser, series/axes metadata (ImageJ, OME-XML), levels and every decoder.

/// A TIFF (seeds: `fuzz/corpus/tiff/`, tifffile-written by tests/corpus/make_tiff_seeds.py, plus the
/// test writer's tiny files) opened with `source::open`, then `info`, corner reads, `probe`,
/// `sample_grid` and a corner of every native level.
struct Tiff {
    file: PathBuf,
}

impl Target for Tiff {
    fn name(&self) -> &'static str {
        "tiff"
    }
    fn extra_seeds(&mut self) -> Vec<Vec<u8>> {
        let px: Vec<u8> = (0..64).collect();
        vec![
            good_tiff(),
            tiny_tiff(&tags_8x8(32773, 64, &[]), &[0x3F; 64], 0),
            tiny_tiff(&tags_8x8(1, 64, &[(266, 3, 1, 2)]), &px, 0),
        ]
    }
    fn mutate(&self, rng: &mut Rng, v: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        // Mostly byte havoc; sometimes an interesting number written over an IFD entry's value field.
        if rng.below(3) == 0 && v.len() > 16 {
            let at = 8 + 2 + 12 * rng.below(((v.len() - 10) / 12).max(1)) + 8;
            let x = *rng.pick(&INTERESTING);
            for (k, b) in (x as u32).to_le_bytes().iter().enumerate() {
                if let Some(d) = v.get_mut(at + k) {
                    *d = *b;
                }
            }
        } else {
            havoc(rng, v, corpus);
        }
    }
    fn run(&mut self, input: &[u8]) -> Outcome {
        write(&self.file, input)?;
        let src = source::tiff::open_tiff(&self.file, None).map_err(err)?;
        let mut r = exercise_chunked(&src)?;
        for lv in src.levels().map_err(err)?.iter().skip(1) {
            r.push_str(&exercise_chunked(lv.as_ref())?);
        }
        Ok(r)
    }
}

// HDF5 and NetCDF: superblocks, object headers, B-trees, chunk indexes, filters, CF attributes.

/// An HDF5 or NetCDF file (seeds: `fuzz/corpus/hdf5/`, `fuzz/corpus/netcdf/`, h5py/netCDF4-written) opened
/// by detection, its parts (datasets, variables) listed, and up to three of them opened and read like TIFF.
struct Container {
    name: &'static str,
    file: PathBuf,
}

impl Target for Container {
    fn name(&self) -> &'static str {
        self.name
    }
    fn mutate(&self, rng: &mut Rng, v: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        // Mostly byte havoc; sometimes an interesting number over a 4- or 8-byte field (sizes, addresses).
        if rng.below(3) == 0 && v.len() > 8 {
            let at = rng.below(v.len() - 8);
            let x = *rng.pick(&INTERESTING);
            let wide = rng.below(2) == 0;
            let bytes = x.to_le_bytes();
            for (k, b) in bytes.iter().take(if wide { 8 } else { 4 }).enumerate() {
                v[at + k] = *b;
            }
        } else {
            havoc(rng, v, corpus);
        }
    }
    fn run(&mut self, input: &[u8]) -> Outcome {
        write(&self.file, input)?;
        let parts = source::registry::parts(&self.file);
        let mut r = format!("{} parts; ", parts.len().min(4));
        // The label stays a class (part count and shapes), not the parts' names, which mutation varies.
        let members: Vec<Option<String>> =
            if parts.is_empty() { vec![None] } else { parts.into_iter().take(3).map(|p| Some(p.member)).collect() };
        for member in members {
            let spec = source::OpenSpec { path: self.file.clone(), member, ..Default::default() };
            let src = source::open(&spec).map_err(err)?;
            r.push_str(&exercise_chunked(src.as_ref())?);
        }
        Ok(r)
    }
}

/// Like [`exercise_image`], for sources whose stored bytes are compressed (no size-vs-file check).
fn exercise_chunked(src: &dyn ArraySource) -> Outcome {
    let info = src.info().clone();
    let _ = vastview::headless::info_text(&info);
    let _ = vastview::headless::info_json(&info);
    let im = info.image;
    let (w, h, n) = (im.width, im.height, im.slices);
    let mut buf = RegionBuf::default();
    src.read_region(0, Rect::new(0, 0, w.min(4), h.min(4)), &mut buf).map_err(err)?;
    src.read_region(n - 1, Rect::new(w - 1, h - 1, w, h), &mut buf).map_err(err)?;
    let v = vastview::headless::probe_text(src, n - 1, w - 1, h - 1).map_err(err)?;
    if !im.is_color() {
        let s = src.sample_grid(0, &[0, w / 2, w - 1], &[0, h / 2, h - 1]).map_err(err)?;
        assert_eq!(s.len(), 9, "sample_grid returned {} values for 3x3", s.len());
    }
    assert!(src.read_region(0, Rect::new(w, 0, w + 1, 1), &mut buf).is_err(), "a read outside the image succeeded");
    Ok(format!("opened {:?} {} {}", info.shape.len(), info.dtype, v.len().min(3)))
}

// ---------------------------------------------------------------------------------------------------
// A tiny TIFF writer for the fuzz seeds and the malformed corpus (tests/tiff.rs).

/// A little-endian classic TIFF with one IFD at byte 8 holding `tags` (tag, type, count, inline value
/// or offset), then `data` (its offset is [`data_at`] of the tag count), and `next` as the next IFD.
pub fn tiny_tiff(tags: &[(u16, u16, u32, u32)], data: &[u8], next: u32) -> Vec<u8> {
    let mut v = b"II*\0\x08\0\0\0".to_vec();
    let mut t = tags.to_vec();
    t.sort_by_key(|e| e.0);
    v.extend_from_slice(&(t.len() as u16).to_le_bytes());
    for (tag, typ, count, val) in t {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&typ.to_le_bytes());
        v.extend_from_slice(&count.to_le_bytes());
        if typ == 3 && count == 1 {
            v.extend_from_slice(&(val as u16).to_le_bytes());
            v.extend_from_slice(&[0, 0]);
        } else {
            v.extend_from_slice(&val.to_le_bytes());
        }
    }
    v.extend_from_slice(&next.to_le_bytes());
    v.extend_from_slice(data);
    v
}

/// Where [`tiny_tiff`]'s data starts for `n` tags.
pub fn data_at(n: usize) -> u32 {
    (8 + 2 + 12 * n + 4) as u32
}

/// The tags of an 8 x 8 uint8 image in one strip of `count` bytes at `data_at(10)`, with `extra`
/// replacing tags of the same number or added in place of the ones `remove` names (keep 10 tags in all,
/// so the data offset holds).
pub fn tags_8x8(compression: u32, count: u32, extra: &[(u16, u16, u32, u32)]) -> Vec<(u16, u16, u32, u32)> {
    tags_8x8_without(compression, count, extra, &[])
}

pub fn tags_8x8_without(
    compression: u32,
    count: u32,
    extra: &[(u16, u16, u32, u32)],
    remove: &[u16],
) -> Vec<(u16, u16, u32, u32)> {
    let at = data_at(10);
    let mut t = vec![
        (256, 3, 1, 8),
        (257, 3, 1, 8),
        (258, 3, 1, 8),
        (259, 3, 1, compression),
        (262, 3, 1, 1),
        (273, 4, 1, at),
        (277, 3, 1, 1),
        (278, 3, 1, 8),
        (279, 4, 1, count),
        (284, 3, 1, 1),
    ];
    t.retain(|x| !remove.contains(&x.0));
    for e in extra {
        if let Some(x) = t.iter_mut().find(|x| x.0 == e.0) {
            *x = *e;
        } else {
            t.push(*e);
        }
    }
    // Optional tags (defaults apply) make room for added ones.
    for opt in [284u16, 262, 278] {
        if t.len() > 10 && !extra.iter().any(|e| e.0 == opt) {
            t.retain(|x| x.0 != opt);
        }
    }
    assert_eq!(t.len(), 10, "tags_8x8 keeps 10 tags");
    t
}

/// A good 8 x 8 uint8 TIFF (values 0..64).
pub fn good_tiff() -> Vec<u8> {
    let px: Vec<u8> = (0..64).collect();
    tiny_tiff(&tags_8x8(1, 64, &[]), &px, 0)
}
