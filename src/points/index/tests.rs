//! Unit tests of the point index: queries against full scans (every aggregate, random extents, edges,
//! NaN/inf points), tiny and degenerate sets, a cancelled build resumed into the same bytes, damaged files.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::build::BuildJob;
use super::{Paths, PointIndex};
use crate::diskcache::Identity;
use crate::dtype::DType;
use crate::error::Error;
use crate::points::bin::scan_bounds;
use crate::points::{aggregate, Agg, Extent, Grid};
use crate::pyramid::Progress;
use crate::source::points::{open_points, PointSource, PointSpec};

/// A fresh directory for one test.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vv-pindex-unit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A tiny deterministic generator (xorshift), uniform in [0, 1).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Writes raw little-endian records and opens them as points (`columns` values of `dtype`).
fn write_points(d: &Path, name: &str, dtype: DType, columns: u64, vals: &[f64]) -> PointSource {
    let p = d.join(name);
    let mut b = Vec::new();
    for v in vals {
        match dtype {
            DType::F32 => b.extend_from_slice(&(*v as f32).to_le_bytes()),
            _ => b.extend_from_slice(&v.to_le_bytes()),
        }
    }
    std::fs::write(&p, b).unwrap();
    let spec = PointSpec { dtype: Some(dtype), columns: Some(columns), ..PointSpec::default() };
    open_points(&p, &spec).unwrap()
}

/// Builds the index of `src` under `d` (no cache directory involved).
fn build_in(d: &Path, src: &PointSource, tag: &str, progress: &Progress) -> Result<PointIndex, Error> {
    let paths = Paths::for_done(d.join(format!("{tag}.vvi")));
    let b = scan_bounds(src)?;
    let job = BuildJob::prepare_at(src, Identity::of(&src.path)?, paths, &b)?;
    Ok(job.run(src, progress)?.0)
}

fn same_grid(a: &Grid, b: &Grid, rtol: f64) -> Result<(), String> {
    match (a, b) {
        (Grid::Count(a), Grid::Count(b)) => {
            let d = a.iter().zip(b).filter(|(x, y)| x != y).count();
            if a.len() != b.len() || d > 0 {
                return Err(format!("{d} of {} counts differ", a.len()));
            }
        }
        (Grid::Float(a), Grid::Float(b)) => {
            let bad = a.iter().zip(b).filter(|(x, y)| {
                if rtol == 0.0 {
                    x.to_bits() != y.to_bits()
                } else {
                    !((x.is_nan() && y.is_nan()) || (*x - *y).abs() <= rtol * y.abs())
                }
            });
            let d = bad.count();
            if a.len() != b.len() || d > 0 {
                return Err(format!("{d} of {} values differ", a.len()));
            }
        }
        _ => return Err("different grid kinds".into()),
    }
    Ok(())
}

/// Compares `ix.aggregate` with the full scan for `extent`, every aggregate the file allows.
fn check(ix: &PointIndex, src: &PointSource, e: &Extent, w: usize, h: usize, aggs: &[Agg]) {
    for &agg in aggs {
        let (g1, s1) = ix.aggregate(e, w, h, agg).unwrap();
        let (g2, s2) = aggregate(src, e, w, h, agg).unwrap();
        let rtol = if matches!(agg, Agg::Sum | Agg::Mean) { 1e-12 } else { 0.0 };
        if let Err(m) = same_grid(&g1, &g2, rtol) {
            panic!("{e:?} {w}x{h} {}: {m}", agg.name());
        }
        assert_eq!(s1, s2, "{e:?} {w}x{h} {}", agg.name());
        if agg == Agg::Count {
            // The estimate bounds the truth from above.
            let Grid::Count(c) = &g1 else { unreachable!() };
            assert!(ix.points_in(e) >= c.iter().map(|&v| u64::from(v)).sum::<u64>());
        }
    }
}

#[test]
fn queries_equal_full_scans_for_every_aggregate() {
    let d = dir("scan");
    let n = 2_500_017usize; // three chunks, the last one partial
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut v = Vec::with_capacity(n * 3);
    for i in 0..n {
        let (x, y) = (r.next() * 20.0 - 10.0, (r.next() * r.next()) * 8.0 - 3.0);
        let val = (r.next() * 100.0).round() / 4.0;
        let (x, y, val) = match i % 50_000 {
            7 => (f64::NAN, y, val),
            8 => (x, f64::INFINITY, val),
            9 => (f64::NEG_INFINITY, f64::NAN, val),
            10 => (x, y, f64::NAN),
            // Points exactly on the extents used below.
            11 => (-2.0, 1.5, val),
            12 => (3.0, -1.0, val),
            13 => (-10.0, -3.0, val), // the data's own corner
            _ => (x, y, val),
        };
        v.extend_from_slice(&[x, y, val]);
    }
    let src = write_points(&d, "xyz.bin", DType::F32, 3, &v);
    let ix = build_in(&d, &src, "xyz", &Progress::default()).unwrap();
    assert!(ix.meta.level >= 1, "level {}", ix.meta.level);
    assert_eq!(ix.meta.nonfinite, 3 * (n as u64).div_ceil(50_000));
    assert_eq!(ix.meta.indexed + ix.meta.nonfinite, n as u64);
    let all = ix.meta.extent();
    assert_eq!(ix.points_in(&all), ix.meta.indexed);
    let coarse: u64 = ix.coarse_counts(&all, 64, 64).unwrap().iter().map(|&c| u64::from(c)).sum();
    assert_eq!(coarse, ix.meta.indexed);
    let top = ix.level_counts(0).unwrap();
    assert_eq!(top, vec![ix.meta.indexed]);
    let vals = ix.level_values(0).unwrap().unwrap();
    assert_eq!(vals[0].valued, ix.meta.indexed - (n as u64).div_ceil(50_000));
    let fixed = [
        (Extent { xmin: -2.0, ymin: -1.0, xmax: 3.0, ymax: 1.5 }, 64, 40),
        (all, 200, 100),
        (Extent { xmin: -50.0, ymin: -50.0, xmax: 50.0, ymax: 50.0 }, 33, 77),
        (Extent { xmin: 9.5, ymin: 4.0, xmax: 30.0, ymax: 9.0 }, 10, 10),
        (Extent { xmin: 20.0, ymin: 20.0, xmax: 30.0, ymax: 30.0 }, 5, 5), // nothing there
        (Extent { xmin: -10.0, ymin: -3.0, xmax: -9.999, ymax: -2.999 }, 3, 3),
    ];
    for (e, w, h) in fixed {
        check(&ix, &src, &e, w, h, &Agg::ALL);
    }
    for _ in 0..12 {
        let (cx, cy) = (r.next() * 26.0 - 13.0, r.next() * 12.0 - 4.0);
        let (hw, hh) = (r.next().powi(3) * 12.0 + 1e-3, r.next().powi(3) * 6.0 + 1e-3);
        let e = Extent { xmin: cx - hw, ymin: cy - hh, xmax: cx + hw, ymax: cy + hh };
        let (w, h) = (1 + (r.next() * 300.0) as usize, 1 + (r.next() * 300.0) as usize);
        check(&ix, &src, &e, w, h, &[Agg::Count, Agg::Max, Agg::Mean]);
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn tiny_identical_and_two_column_sets() {
    let d = dir("tiny");
    // One point; five points; all identical (the extent is padded); an f64 (x, y) file without values.
    for (name, vals) in [
        ("one.bin", vec![1.5, -2.0, 7.0]),
        ("five.bin", vec![0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 0.5, 0.25, 3.0, 1.0, 1.0, 4.0, f64::NAN, 0.0, 5.0]),
        ("same.bin", [2.0, 3.0, 1.0].repeat(1000)),
    ] {
        let src = write_points(&d, name, DType::F64, 3, &vals);
        let ix = build_in(&d, &src, name, &Progress::default()).unwrap();
        assert_eq!(ix.meta.level, 0, "{name}");
        let all = ix.meta.extent();
        for e in [all, Extent { xmin: -1.0, ymin: -3.0, xmax: 3.0, ymax: 3.5 }] {
            check(&ix, &src, &e, 7, 5, &Agg::ALL);
        }
    }
    let xy: Vec<f64> = (0..5000).flat_map(|i| [i as f64, (i * i % 977) as f64]).collect();
    let src = write_points(&d, "xy.bin", DType::F64, 2, &xy);
    let ix = build_in(&d, &src, "xy", &Progress::default()).unwrap();
    assert_eq!((ix.meta.record_values, ix.meta.value_column), (2, None));
    assert!(ix.level_values(0).unwrap().is_none());
    check(&ix, &src, &Extent { xmin: 100.0, ymin: 0.0, xmax: 2000.0, ymax: 500.0 }, 50, 30, &[Agg::Count]);
    let e = ix.aggregate(&ix.meta.extent(), 4, 4, Agg::Mean).unwrap_err();
    assert!(e.to_string().contains("needs a value column"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

/// x, y (and value) f32 records over a few chunks: a build cancelled in pass 2 (and one cancelled right
/// after pass 1) resumes into the very bytes of an uninterrupted build (value pyramids included).
#[test]
fn a_cancelled_build_resumes_into_the_same_bytes() {
    for columns in [2, 3] {
        resume_case(columns);
    }
}

fn resume_case(columns: u64) {
    let d = dir(&format!("resume{columns}"));
    let n = 4_700_000usize;
    let mut r = Rng(42);
    let v: Vec<f64> = (0..n)
        .flat_map(|_| [r.next() * 3.0, (r.next() - 0.5).powi(3), r.next() * 1e3])
        .enumerate()
        .filter(|(i, _)| (*i as u64 % 3) < columns)
        .map(|(_, v)| v)
        .collect();
    let src = write_points(&d, "pts.bin", DType::F32, columns, &v);
    let fresh = build_in(&d, &src, "fresh", &Progress::default()).unwrap();
    let want = std::fs::read(fresh.path()).unwrap();
    for (tag, cancel_after, cancel) in [("mid", 1, false), ("pass1", 0, true)] {
        let p = Progress::default();
        p.cancel_after.store(cancel_after, Ordering::Relaxed);
        p.cancel.store(cancel, Ordering::Relaxed);
        match build_in(&d, &src, tag, &p) {
            Err(Error::Cancelled) => {}
            other => panic!("{tag}: expected a cancel, got {other:?}"),
        }
        let paths = Paths::for_done(d.join(format!("{tag}.vvi")));
        assert!(paths.partial.exists() && paths.resume.exists() && !paths.done.exists(), "{tag}");
        let p = Progress::default();
        let ix = build_in(&d, &src, tag, &p).unwrap();
        let resumed = p.resumed_from.load(Ordering::Relaxed);
        assert!(resumed >= n as u64, "{tag}: resumed from {resumed}");
        if tag == "mid" {
            assert!(resumed > n as u64, "{tag}: resumed only after pass 1");
        }
        assert!(!paths.partial.exists() && !paths.resume.exists(), "{tag}: leftovers");
        assert!(std::fs::read(ix.path()).unwrap() == want, "{tag}: the resumed file differs from a fresh build");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_index_can_be_shared_with_other_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<PointIndex>();
}

/// A second builder of the same index is refused while the first holds the partial file.
#[test]
fn a_second_builder_is_refused() {
    let d = dir("busy");
    let v: Vec<f64> = (0..5000).flat_map(|i| [i as f64, (i % 7) as f64]).collect();
    let src = write_points(&d, "p.bin", DType::F64, 2, &v);
    let paths = Paths::for_done(d.join("p.vvi"));
    let b = scan_bounds(&src).unwrap();
    let id = Identity::of(&src.path).unwrap();
    let first = BuildJob::prepare_at(&src, id.clone(), paths.clone(), &b).unwrap();
    match BuildJob::prepare_at(&src, id, paths, &b) {
        Err(e @ Error::Request { .. }) => assert!(e.to_string().contains("another vastview process"), "{e}"),
        other => panic!("expected a refusal, got {:?}", other.map(|j| j.resuming)),
    }
    let ix = first.run(&src, &Progress::default()).unwrap().0;
    assert_eq!(ix.meta.indexed, 5000);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn damaged_files_are_refused() {
    use std::os::unix::fs::FileExt;
    let d = dir("damage");
    let v: Vec<f64> = (0..20_000).flat_map(|i| [(i % 100) as f64, (i / 100) as f64, i as f64]).collect();
    let src = write_points(&d, "p.bin", DType::F32, 3, &v);
    let ix = build_in(&d, &src, "p", &Progress::default()).unwrap();
    let good = std::fs::read(ix.path()).unwrap();
    let (offsets_at, counts_at, crcs_at) = (ix.layout.offsets_at, ix.layout.counts_at, ix.layout.crcs_at);
    let points_end = ix.layout.file_size - 5;
    let path = ix.path().to_path_buf();
    drop(ix);
    let flip = |at: u64| {
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.write_all_at(&[good[at as usize] ^ 0x40], at).unwrap();
    };
    type Damage<'a> = Box<dyn Fn() + 'a>;
    let cases: Vec<(&str, Damage)> = vec![
        ("header", Box::new(|| flip(20))),
        ("offsets", Box::new(|| flip(offsets_at + 9))),
        ("footer", Box::new(|| flip(super::FOOTER_AT))),
        ("pyramid", Box::new(|| flip(counts_at))),
        ("crcs", Box::new(|| flip(crcs_at + 1))),
        ("points", Box::new(|| flip(points_end))),
        ("truncated", Box::new(|| std::fs::File::options().write(true).open(&path).unwrap().set_len(5000).unwrap())),
    ];
    for (what, damage) in cases {
        std::fs::write(&path, &good).unwrap();
        damage();
        match PointIndex::open(&path, &src) {
            Err(Error::Cache { .. }) if what != "pyramid" && what != "points" => {}
            Ok(ix) if what == "points" => {
                // The damaged cell's points fail their checksum when a query reads them.
                let e = ix.aggregate(&ix.meta.extent(), 10, 10, Agg::Count).unwrap_err();
                assert!(matches!(e, Error::Cache { .. }) && e.to_string().contains("checksum"), "{e}");
            }
            Ok(ix) if what == "pyramid" => {
                // The offsets are fine (queries work); the pyramids fail their checksum when used.
                assert!(matches!(ix.level_counts(0), Err(Error::Cache { .. })));
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}
