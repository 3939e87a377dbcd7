//! The TIFF family against tifffile: tests/oracle_tiff.py writes every compression × predictor × dtype ×
//! tiled/striped × contiguous/planar × byte order × BigTIFF, multi-page stacks, an ImageJ hyperstack, an
//! OME-TIFF with a SubIFD pyramid and a second series, a COG with overview IFDs, bilevel, one huge strip
//! and JPEG; every value vastview reads (library reads, `probe`, `render -o x.npy`) must equal what
//! tifffile reads (JPEG: within a few levels of what imagecodecs decodes). Then a malformed corpus (made
//! here: truncations at many offsets, IFD loops, offsets past the end, absurd sizes, unsupported
//! compression and sample formats) must give exit code 2 and one line naming the file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::common::{python, stderr, stdout, vastview};
use crate::fuzz::targets::{data_at, good_tiff, tags_8x8, tags_8x8_without, tiny_tiff};
use vastview::source::{self, ArraySource, OpenSpec, RegionBuf};

/// Runs tests/oracle_tiff.py once per test process: (dir, cases).
fn oracle() -> &'static (PathBuf, Vec<Value>) {
    static ORACLE: OnceLock<(PathBuf, Vec<Value>)> = OnceLock::new();
    ORACLE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("vastview-oracle-tiff-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle_tiff.py");
        let out = Command::new(python()).arg(&script).arg(&dir).output().expect("run python3");
        assert!(out.status.success(), "oracle_tiff.py failed (tifffile and imagecodecs are needed): {}", stderr(&out));
        let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest");
        let m: Value = serde_json::from_str(&text).expect("manifest json");
        (dir, m["cases"].as_array().expect("cases").clone())
    })
}

fn open(dir: &Path, case: &Value) -> vastview::Result<std::sync::Arc<dyn ArraySource>> {
    let spec = OpenSpec {
        path: dir.join(case["file"].as_str().unwrap()),
        member: case["member"].as_str().map(String::from),
        ..Default::default()
    };
    source::open(&spec)
}

/// Every slice of `src`, read whole, against the .npy `expected` (same layout), exactly or within `tol`.
fn compare_all(src: &dyn ArraySource, expected: &Path, tol: f64) -> Result<(), String> {
    let want = source::npy::open_npy(expected).map_err(|e| e.to_string())?;
    let (a, b) = (src.info().image, want.info().image);
    if (a.slices, a.height, a.width, a.channels) != (b.slices, b.height, b.width, b.channels) {
        return Err(format!("image {a:?}, tifffile's {b:?}"));
    }
    if src.info().dtype != want.info().dtype {
        return Err(format!("dtype {} vs {}", src.info().dtype, want.info().dtype));
    }
    let (mut g, mut w) = (RegionBuf::default(), RegionBuf::default());
    for s in 0..a.slices {
        src.read_region(s, a.rect(), &mut g).map_err(|e| e.to_string())?;
        want.read_region(s, b.rect(), &mut w).map_err(|e| e.to_string())?;
        if tol == 0.0 {
            if g.bytes() != w.bytes() {
                let i = g.bytes().iter().zip(w.bytes()).position(|(x, y)| x != y).unwrap_or(0);
                let esz = src.info().dtype.size();
                return Err(format!(
                    "slice {s}: element {} differs: {:?} vs {:?}",
                    i / esz,
                    g.scalars().get(i / esz),
                    w.scalars().get(i / esz)
                ));
            }
        } else {
            let (gv, wv) = (g.to_f64(), w.to_f64());
            if let Some(i) = (0..gv.len()).find(|&i| (gv[i] - wv[i]).abs() > tol) {
                return Err(format!("slice {s}: element {i}: {} vs {} (tolerance {tol})", gv[i], wv[i]));
            }
        }
    }
    Ok(())
}

#[test]
fn every_case_reads_what_tifffile_reads() {
    let (dir, cases) = oracle();
    assert!(cases.len() > 150, "the matrix is missing cases: {}", cases.len());
    let mut bad = Vec::new();
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let r = (|| -> Result<(), String> {
            let src = open(dir, c).map_err(|e| e.to_string())?;
            let info = src.info();
            compare_all(src.as_ref(), &dir.join(c["expected"].as_str().unwrap()), c["tol"].as_f64().unwrap())?;
            if let Some(f) = c["flavour"].as_str() {
                let got = info.format.flavour.clone().unwrap_or_default();
                if !got.contains(f) {
                    return Err(format!("flavour {got:?}, expected {f}"));
                }
            }
            if let Some(axes) = c["axes"].as_array() {
                let got: Vec<&str> = info.axes.iter().map(|a| a.name.as_str()).collect();
                let want: Vec<&str> = axes.iter().filter_map(|a| a.as_str()).collect();
                if got != want {
                    return Err(format!("axes {got:?}, expected {want:?}"));
                }
            }
            let details = format!("{:?}", info.details);
            if c["mapped"].as_bool() == Some(true) && !details.contains("memory-mapped in place") {
                return Err(format!("not memory-mapped: {details}"));
            }
            if c["one_strip"].as_bool() == Some(true) && !details.contains("one compressed strip") {
                return Err(format!("no one-strip note: {details}"));
            }
            if c["stream"].as_bool() == Some(true) {
                // Streamed strips: a read far down, then one above it (the stream restarts), then below.
                if !details.contains("decoded as a stream") {
                    return Err(format!("not streamed: {details}"));
                }
                let want = source::npy::open_npy(&dir.join(c["expected"].as_str().unwrap())).unwrap();
                let (w, h) = (info.image.width, info.image.height);
                let s = info.image.slices - 1;
                let (mut g, mut e) = (RegionBuf::default(), RegionBuf::default());
                for r in [(w / 3, h - 5, w, h), (0, 0, 7, 3), (1, h / 2, w / 2, h / 2 + 40), (0, 10, w, 11)] {
                    let r = vastview::geom::Rect::new(r.0, r.1, r.2, r.3);
                    src.read_region(s, r, &mut g).map_err(|e| e.to_string())?;
                    want.read_region(s, r, &mut e).map_err(|e| e.to_string())?;
                    if g.bytes() != e.bytes() {
                        return Err(format!("streamed read of {r:?} differs"));
                    }
                }
            }
            if let Some(names) = c["channel_names"].as_array() {
                for n in names {
                    if !details.contains(n.as_str().unwrap()) {
                        return Err(format!("channel {n} not in {details}"));
                    }
                }
                let sx = info.axes.iter().find(|a| a.name == "x").and_then(|a| a.scale);
                if sx != c["scale_x"].as_f64() {
                    return Err(format!("x scale {sx:?}"));
                }
            }
            if let Some(levels) = c["levels"].as_array() {
                let path = dir.join(c["file"].as_str().unwrap());
                let t = source::tiff::open_tiff(&path, c["member"].as_str()).map_err(|e| e.to_string())?;
                let lv = t.levels().map_err(|e| e.to_string())?;
                // Through the trait: the reduced levels with vastview's level geometry, numbered 1, 2, ...
                let through_trait = src.native_levels();
                let numbers: Vec<u32> = through_trait.iter().map(|(k, _)| *k).collect();
                if numbers != (1..lv.len() as u32).collect::<Vec<_>>() {
                    return Err(format!("native_levels gives levels {numbers:?}, levels() {}", lv.len()));
                }
                if lv.len() != levels.len() + 1 {
                    return Err(format!("{} levels, tifffile has {}", lv.len(), levels.len() + 1));
                }
                if !details.contains("levels") {
                    return Err(format!("levels not in the details: {details}"));
                }
                for (k, e) in levels.iter().enumerate() {
                    compare_all(lv[k + 1].as_ref(), &dir.join(e.as_str().unwrap()), 0.0)
                        .map_err(|m| format!("level {}: {m}", k + 1))?;
                }
            }
            Ok(())
        })();
        if let Err(e) = r {
            bad.push(format!("{name}: {e}"));
        }
    }
    assert!(bad.is_empty(), "{} of {} cases differ:\n{}", bad.len(), cases.len(), bad.join("\n"));
}

/// The value `probe` prints (after the last `: `).
fn probe_value(out: &str) -> String {
    out.trim().rsplit(": ").next().unwrap_or("").to_string()
}

#[test]
fn probe_and_render_npy_equal_tifffile() {
    let (dir, cases) = oracle();
    let out_dir = dir.join("cli-out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let check = |c: &Value| -> Result<(), String> {
        let name = c["name"].as_str().unwrap();
        let mut file = dir.join(c["file"].as_str().unwrap()).to_str().unwrap().to_string();
        if let Some(m) = c["member"].as_str() {
            file = format!("{file}[{m}]");
        }
        for p in c["probes"].as_array().unwrap().iter().take(2) {
            let (s, x, y) = (p[0].as_u64().unwrap(), p[1].as_u64().unwrap(), p[2].as_u64().unwrap());
            let o = vastview(&["probe", &file, &x.to_string(), &y.to_string(), "--slice", &s.to_string()]);
            if !o.status.success() {
                return Err(format!("probe failed: {}", stderr(&o)));
            }
            let want = p[3].as_str().unwrap();
            if probe_value(&stdout(&o)) != want {
                return Err(format!("probe {x},{y} slice {s}: {:?}, numpy says {want}", stdout(&o)));
            }
        }
        let r: Vec<u64> = c["region"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        let slices = c["slices"].as_u64().unwrap();
        let s = slices - 1;
        let npy = out_dir.join(format!("{name}.npy"));
        let region = format!("{},{},{},{}", r[0], r[1], r[2], r[3]);
        let o =
            vastview(&["render", &file, "--region", &region, "-o", npy.to_str().unwrap(), "--slice", &s.to_string()]);
        if !o.status.success() {
            return Err(format!("render failed: {}", stderr(&o)));
        }
        let got = source::npy::open_npy(&npy).map_err(|e| e.to_string())?;
        let want = source::npy::open_npy(&dir.join(c["expected"].as_str().unwrap())).map_err(|e| e.to_string())?;
        let (mut g, mut w) = (RegionBuf::default(), RegionBuf::default());
        got.read_region(0, got.info().image.rect(), &mut g).map_err(|e| e.to_string())?;
        want.read_region(s, vastview::geom::Rect::new(r[0], r[1], r[2], r[3]), &mut w).map_err(|e| e.to_string())?;
        let tol = c["tol"].as_f64().unwrap();
        let same = if tol == 0.0 {
            g.bytes() == w.bytes() && got.info().dtype == want.info().dtype
        } else {
            g.to_f64().iter().zip(w.to_f64()).all(|(a, b)| (a - b).abs() <= tol) && g.count() == w.count()
        };
        if !same {
            return Err(format!("render {region} slice {s} to .npy differs from tifffile's values"));
        }
        Ok(())
    };
    let bad = std::sync::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|sc| {
        for _ in 0..4 {
            sc.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(c) = cases.get(i) else { break };
                if let Err(e) = check(c) {
                    bad.lock().unwrap().push(format!("{}: {e}", c["name"].as_str().unwrap()));
                }
            });
        }
    });
    let bad = bad.into_inner().unwrap();
    assert!(bad.is_empty(), "{} of {} cases differ:\n{}", bad.len(), cases.len(), bad.join("\n"));
}

#[test]
fn a_series_out_of_range_is_one_line() {
    let (dir, _) = oracle();
    let f = dir.join("ome.ome.tif");
    let o = vastview(&["info", &format!("{}[7]", f.display())]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(e.contains("ome.ome.tif") && e.contains("series 7 does not exist"), "{e}");
    let o = vastview(&["info", &format!("{}[1]", f.display())]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn tiny_tiff_is_read_like_tifffile() {
    let d = std::env::temp_dir().join(format!("vastview-tiny-tiff-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("good.tif");
    std::fs::write(&p, good_tiff()).unwrap();
    let o = vastview(&["probe", p.to_str().unwrap(), "3", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(probe_value(&stdout(&o)), "19");
}

/// Bad files made from scratch: (name, bytes, whether `info` alone must already fail).
fn malformed() -> Vec<(String, Vec<u8>, bool)> {
    let px: Vec<u8> = (0..64).collect();
    let at = data_at(10);
    let mut v: Vec<(String, Vec<u8>, bool)> = vec![
        ("ifd_loop.tif".into(), tiny_tiff(&tags_8x8(1, 64, &[]), &px, 8), true),
        ("first_ifd_past_end.tif".into(), b"II*\0\xff\xff\0\0".to_vec(), true),
        ("header_only.tif".into(), b"II*\0".to_vec(), true),
        ("strip_past_end.tif".into(), tiny_tiff(&tags_8x8(1, 64, &[(273, 4, 1, 100_000)]), &px, 0), true),
        ("count_past_end.tif".into(), tiny_tiff(&tags_8x8(1, 1_000_000, &[]), &px, 0), true),
        ("data_short.tif".into(), tiny_tiff(&tags_8x8(1, 60, &[]), &px[..60], 0), false),
        ("jpeg2000.tif".into(), tiny_tiff(&tags_8x8(34712, 64, &[]), &px, 0), true),
        ("complex.tif".into(), tiny_tiff(&tags_8x8(1, 64, &[(258, 3, 1, 32), (339, 3, 1, 6)]), &px, 0), true),
        ("bits12.tif".into(), tiny_tiff(&tags_8x8(1, 64, &[(258, 3, 1, 12)]), &px, 0), true),
        ("zero_width.tif".into(), tiny_tiff(&tags_8x8(1, 64, &[(256, 3, 1, 0)]), &px, 0), true),
        (
            "huge_image.tif".into(),
            tiny_tiff(&tags_8x8(1, 64, &[(256, 4, 1, 4_000_000_000), (257, 4, 1, 4_000_000_000)]), &px, 0),
            true,
        ),
        (
            "absurd_tile.tif".into(),
            tiny_tiff(
                &tags_8x8_without(
                    1,
                    64,
                    &[(322, 4, 1, 1 << 30), (323, 4, 1, 1 << 30), (324, 4, 1, at), (325, 4, 1, 64)],
                    &[273, 278, 279, 284],
                ),
                &px,
                0,
            ),
            true,
        ),
        ("too_few_strips.tif".into(), tiny_tiff(&tags_8x8(1, 64, &[(278, 3, 1, 1)]), &px, 0), true),
        ("lzw_garbage.tif".into(), tiny_tiff(&tags_8x8(5, 64, &[]), &[0xAB; 64], 0), false),
        ("deflate_garbage.tif".into(), tiny_tiff(&tags_8x8(8, 64, &[]), &[0x13; 64], 0), false),
        ("zstd_garbage.tif".into(), tiny_tiff(&tags_8x8(50000, 64, &[]), &[0x28; 64], 0), false),
        ("jpeg_garbage.tif".into(), tiny_tiff(&tags_8x8(7, 64, &[]), &[0xFF; 64], 0), false),
        ("subifd_loop.tif".into(), tiny_tiff(&tags_8x8(1, 64, &[(330, 4, 1, 8)]), &px, 0), true),
        ("bigtiff_bad_offset_size.tif".into(), b"II+\0\x04\0\0\0\x10\0\0\0\0\0\0\0".to_vec(), true),
        ("bad_version.tif".into(), b"II\x2b\x01\x08\0\0\0\0\0\0\0".to_vec(), true),
    ];
    // An IFD claiming 65535 entries in a short file.
    let mut f = b"II*\0\x08\0\0\0\xff\xff".to_vec();
    f.extend_from_slice(&[0; 40]);
    v.push(("entries_past_end.tif".into(), f, true));
    // A good file cut at many offsets: in the header, the IFD, the next pointer, the data.
    let good = good_tiff();
    for cut in [1, 3, 5, 7, 9, 10, 21, 50, 100, 129, 133, 134, 150, good.len() - 1] {
        v.push((format!("truncated_at_{cut:03}.tif"), good[..cut.min(good.len() - 1)].to_vec(), true));
    }
    v
}

#[test]
fn malformed_tiffs_get_one_line_and_exit_2() {
    let d = std::env::temp_dir().join(format!("vastview-bad-tiff-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let mut bad = Vec::new();
    let mut runs = 0;
    for (name, bytes, at_open) in malformed() {
        let p = d.join(&name);
        std::fs::write(&p, &bytes).unwrap();
        let f = p.to_str().unwrap();
        let png = d.join(format!("{name}.png"));
        let mut cmds: Vec<Vec<&str>> =
            vec![vec!["probe", f, "0", "0"], vec!["render", f, "-o", png.to_str().unwrap(), "--size", "8x8"]];
        // `stats` first says it builds a pyramid, so a data error found while reading is its second
        // line; files bad at open must fail it with one line.
        if at_open {
            cmds.push(vec!["info", f]);
            cmds.push(vec!["stats", f]);
        }
        for args in cmds {
            runs += 1;
            let o = vastview(&args);
            let e = stderr(&o);
            let lines = e.lines().filter(|l| !l.trim().is_empty()).count();
            if o.status.code() != Some(2) || lines != 1 || !e.contains(&name) || e.contains("panicked") {
                bad.push(format!("{} -> exit {:?}, stderr {e:?}", args.join(" "), o.status.code()));
            }
        }
    }
    assert!(bad.is_empty(), "{} of {runs} runs wrong:\n{}", bad.len(), bad.join("\n"));
}

#[test]
fn unsupported_compression_is_named() {
    let d = std::env::temp_dir().join(format!("vastview-tiff-named-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("j2k.tif");
    let px: Vec<u8> = (0..64).collect();
    std::fs::write(&p, tiny_tiff(&tags_8x8(34712, 64, &[]), &px, 0)).unwrap();
    let o = vastview(&["info", p.to_str().unwrap()]);
    assert!(stderr(&o).contains("compression 34712 (JPEG 2000) is not supported"), "{}", stderr(&o));
}

#[test]
fn imagej_with_one_ifd_reads_the_images_that_follow_it() {
    // ImageJ's files above 4 GB: one IFD, `images=3`, the other planes contiguous after the first.
    let d = std::env::temp_dir().join(format!("vastview-tiff-ij-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let px: Vec<u8> = (0..192).map(|i| i as u8).collect();
    let desc = b"ImageJ=1.11a\nimages=3\nslices=3\n\0";
    let mut data = px.clone();
    data.extend_from_slice(desc);
    let tags = tags_8x8(1, 64, &[(270, 2, desc.len() as u32, data_at(10) + 192)]);
    let p = d.join("ij_one_ifd.tif");
    std::fs::write(&p, tiny_tiff(&tags, &data, 0)).unwrap();
    let src = source::open(&OpenSpec { path: p.clone(), ..Default::default() }).unwrap();
    let info = src.info();
    assert_eq!(info.shape, [3, 8, 8]);
    assert_eq!(info.axes[0].name, "z");
    assert!(info.format.flavour.as_deref().unwrap_or("").contains("ImageJ"));
    let mut b = RegionBuf::default();
    for s in 0..3 {
        src.read_region(s, info.image.rect(), &mut b).unwrap();
        assert_eq!(b.bytes(), &px[s as usize * 64..(s as usize + 1) * 64], "slice {s}");
    }
    // One image more than the file holds is refused.
    let desc = b"ImageJ=1.11a\nimages=4\nslices=4\n\0";
    let mut data = px.clone();
    data.extend_from_slice(desc);
    let tags = tags_8x8(1, 64, &[(270, 2, desc.len() as u32, data_at(10) + 192)]);
    std::fs::write(&p, tiny_tiff(&tags, &data, 0)).unwrap();
    let o = vastview(&["info", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("ImageJ says 4 images"), "{}", stderr(&o));
}

#[test]
fn bilevel_fill_order_2_is_read_bit_reversed() {
    let d = std::env::temp_dir().join(format!("vastview-tiff-fill-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let rows: Vec<u8> = vec![0b1000_0001, 0b0100_0000, 0xFF, 0, 0b1010_1010, 0b0000_1111, 0b1100_0000, 1];
    let stored: Vec<u8> = rows.iter().map(|b| b.reverse_bits()).collect();
    let tags = tags_8x8(1, 8, &[(258, 3, 1, 1), (266, 3, 1, 2)]);
    let p = d.join("fill2.tif");
    std::fs::write(&p, tiny_tiff(&tags, &stored, 0)).unwrap();
    let src = source::open(&OpenSpec { path: p, ..Default::default() }).unwrap();
    let mut b = RegionBuf::default();
    src.read_region(0, src.info().image.rect(), &mut b).unwrap();
    let want: Vec<u8> = rows.iter().flat_map(|&r| (0..8).map(move |x| (r >> (7 - x)) & 1)).collect();
    assert_eq!(b.bytes(), &want[..]);
}

#[test]
fn vastviews_own_tiff_output_reads_back() {
    // `render -o x.tif` writes RGBA8 strips; reading it back gives the PNG's pixels.
    let d = std::env::temp_dir().join(format!("vastview-tiff-own-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let (dir, _) = oracle();
    let input = dir.join("m_float32_zlib_floatingpoint_tile.tif");
    let (png, tif) = (d.join("o.png"), d.join("o.tif"));
    for out in [&png, &tif] {
        let o = vastview(&["render", input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let (w, h, want) = crate::common::read_png(&png);
    let src = source::open(&OpenSpec { path: tif, ..Default::default() }).unwrap();
    assert_eq!((src.info().image.width, src.info().image.height), (u64::from(w), u64::from(h)));
    assert_eq!(src.info().image.channels, 4);
    let mut b = RegionBuf::default();
    src.read_region(0, src.info().image.rect(), &mut b).unwrap();
    assert_eq!(b.bytes(), &want[..]);
}

/// A compressed tiled TIFF with no pyramid: the preview reads rows from the top of each tile row (only
/// the tiles' first rows are decoded), in order: block k of a tile row reads its k-th row. Its values are
/// numpy's means of those rows of what tifffile wrote, for Deflate, Zstandard and LZW with the predictor.
#[test]
fn a_compressed_tiled_preview_reads_the_tile_heads_and_equals_numpy() {
    let dir = std::env::temp_dir().join(format!("vastview-tiffheads-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let script = r#"
import sys, numpy as np, tifffile
d = sys.argv[1]
rng = np.random.default_rng(7)
a = (rng.integers(0, 60000, size=(768, 1024))).astype(np.uint16)
for name, kw in [("deflate", dict(compression="zlib")), ("zstd", dict(compression="zstd")),
                 ("lzw", dict(compression="lzw", predictor=True))]:
    tifffile.imwrite(f"{d}/{name}.tif", a, tile=(256, 256), **kw)
# 768 rows -> 12 output rows: 4 blocks per 256-row tile row, which read that tile row's rows 0..3.
rows = [t * 256 + k for t in range(3) for k in range(4)]
want = a[rows].astype(np.float64).reshape(12, 16, 64).mean(axis=2).astype(np.float32)
np.save(f"{d}/want.npy", want)
"#;
    let out = Command::new(python()).arg("-c").arg(script).arg(&dir).output().expect("run python3");
    assert!(out.status.success(), "tifffile: {}", stderr(&out));
    let (_, want) = crate::common::read_npy(&dir.join("want.npy"));
    for name in ["deflate", "zstd", "lzw"] {
        let f = dir.join(format!("{name}.tif"));
        let o = dir.join(format!("{name}_preview.npy"));
        let out =
            vastview(&["render", f.to_str().unwrap(), "--size", "16x12", "--preview", "-v", "-o", o.to_str().unwrap()]);
        let err = stderr(&out);
        assert!(out.status.success(), "{name}: {err}");
        assert!(err.contains("near the top of each tile row") && err.contains("256-row band"), "{name}: {err}");
        let (shape, got) = crate::common::read_npy(&o);
        assert_eq!(shape, [12, 16], "{name}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{name}: output pixel {i}: {g} vs numpy {w}");
        }
        // The exact image is still the data's block means (whole tiles decoded, replacing the heads).
        let e = dir.join(format!("{name}_exact.npy"));
        let out = vastview(&["render", f.to_str().unwrap(), "--size", "16x12", "--exact", "-o", e.to_str().unwrap()]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
