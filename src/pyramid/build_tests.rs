//! Tests of the pyramid pass against direct computations on the data: stored levels, statistics,
//! resuming after a cancel, and damaged or stale files.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use super::Progress;
use crate::dtype::DType;
use crate::error::Error;
use crate::pyramid::levels::tile_texels;
use crate::pyramid::persist::{find, find_or_build, locate, BuildJob};
use crate::pyramid::store::{Method, Store};
use crate::pyramid::tilestats::{StatsAcc, TileStats};
use crate::source::{self, ArraySource, OpenSpec, RegionBuf};

/// One cache directory for the whole test process (the variable is process-wide), checkpoints at
/// every tile row.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("vv-pyr-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::env::set_var(crate::diskcache::ENV_DIR, d.join("cache"));
        std::env::set_var("VASTVIEW_CHECKPOINT_MS", "0");
        d
    })
}

/// Writes an .npy of `w × h` values `f(x, y)` as f32, f64 or u16 and opens it.
fn npy(name: &str, dtype: DType, w: u64, h: u64, f: impl Fn(u64, u64) -> f64) -> (PathBuf, Arc<dyn ArraySource>) {
    let path = dir().join(name);
    let mut b = crate::headless::npy_header(&dtype.descr(crate::dtype::Endian::Little), &[h, w]);
    for y in 0..h {
        for x in 0..w {
            let v = f(x, y);
            match dtype {
                DType::U16 => b.extend_from_slice(&(v as u16).to_le_bytes()),
                DType::F64 => b.extend_from_slice(&v.to_le_bytes()),
                _ => b.extend_from_slice(&(v as f32).to_le_bytes()),
            }
        }
    }
    std::fs::write(&path, b).unwrap();
    let src = source::open(&OpenSpec { path: path.clone(), ..Default::default() }).unwrap();
    (path, src)
}

fn field(x: u64, y: u64) -> f64 {
    if (x * 7 + y * 3) % 97 == 0 {
        f64::NAN
    } else {
        ((x as f64) * 0.013).sin() * 100.0 + (y as f64) * 0.5 + 1000.0
    }
}

fn f32s(b: &RegionBuf) -> Vec<f32> {
    bytemuck::cast_slice::<u8, f32>(b.bytes()).to_vec()
}

/// Every stored tile against block means (or maxima) computed straight from the data.
fn check_levels(src: &dyn ArraySource, store: &Store, method: Method) {
    let lv = store.levels();
    let mut t = RegionBuf::default();
    for level in 1..lv.count {
        let g = lv.grid(level);
        for ty in 0..g.rows() {
            for tx in 0..g.cols() {
                assert!(store.read_tile(0, level, tx, ty, &mut t).unwrap().is_some(), "tile {level}/{tx},{ty} missing");
                let got = t.to_f64();
                let want: Vec<f64> = match method {
                    Method::Mean => {
                        let d = tile_texels(src, 0, &lv, level, tx, ty).unwrap();
                        d.values_every(1)
                    }
                    Method::Max => block_max(src, &lv, level, tx, ty),
                };
                assert_eq!(got.len(), want.len());
                for (i, (a, b)) in got.iter().zip(want.iter()).enumerate() {
                    let b = if src.info().dtype == DType::U16 { b.round() } else { *b };
                    let ok = (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-4 * b.abs().max(1.0);
                    assert!(ok, "level {level} tile {tx},{ty} texel {i}: {a} vs {b}");
                }
            }
        }
    }
}

fn block_max(src: &dyn ArraySource, lv: &crate::pyramid::levels::Levels, level: u32, tx: u64, ty: u64) -> Vec<f64> {
    let r = lv.grid(level).tile_rect(tx, ty);
    let f = 1u64 << level;
    let mut b = RegionBuf::default();
    let mut out = Vec::new();
    for y in r.y0..r.y1 {
        for x in r.x0..r.x1 {
            let rect = crate::geom::Rect::new(x * f, y * f, ((x + 1) * f).min(lv.width), ((y + 1) * f).min(lv.height));
            src.read_region(0, rect, &mut b).unwrap();
            let m = b.to_f64().into_iter().filter(|v| !v.is_nan()).fold(f64::NEG_INFINITY, f64::max);
            out.push(if m == f64::NEG_INFINITY { f64::NAN } else { m });
        }
    }
    out
}

#[test]
fn levels_are_block_means_and_maxima_of_the_data() {
    let (_, src) = npy("mean.npy", DType::F32, 1000, 600, field);
    let store = find_or_build(src.as_ref(), Method::Mean, &Progress::default()).unwrap();
    assert!(store.is_complete());
    assert_eq!(store.levels().count, 3);
    check_levels(src.as_ref(), &store, Method::Mean);
    // Found again without building, and it is the same file.
    let again = find(src.as_ref(), Method::Mean).unwrap().expect("cached");
    assert_eq!(again.path(), store.path());

    let max = find_or_build(src.as_ref(), Method::Max, &Progress::default()).unwrap();
    assert_ne!(max.path(), store.path());
    check_levels(src.as_ref(), &max, Method::Max);

    let (_, u) = npy("u16.npy", DType::U16, 700, 530, |x, y| ((x * 37 + y * 91) % 65536) as f64);
    let us = find_or_build(u.as_ref(), Method::Mean, &Progress::default()).unwrap();
    check_levels(u.as_ref(), &us, Method::Mean);
}

#[test]
fn statistics_match_the_data() {
    let (_, src) = npy("stats.npy", DType::F32, 900, 700, |x, y| {
        if x == 5 && y == 9 {
            f64::INFINITY
        } else if x == 6 && y == 600 {
            f64::NEG_INFINITY
        } else {
            field(x, y)
        }
    });
    let store = find_or_build(src.as_ref(), Method::Mean, &Progress::default()).unwrap();
    let range = store.hist_range();
    let mut b = RegionBuf::default();
    src.read_region(0, crate::geom::Rect::new(0, 0, 900, 700), &mut b).unwrap();
    let all: Vec<f32> = f32s(&b);
    let mut acc = StatsAcc::default();
    acc.add(&all, &range, range.scale());
    let want = acc.finish();
    let got = store.slice_stats(0).unwrap().expect("stats");
    assert_eq!((got.count, got.nan, got.pos_inf, got.neg_inf), (want.count, want.nan, 1, 1));
    assert_eq!((got.min, got.max), (want.min, want.max));
    assert_eq!(got.hist, want.hist);
    let finite: Vec<f64> = all.iter().map(|&v| f64::from(v)).filter(|v| v.is_finite()).collect();
    let mean = finite.iter().sum::<f64>() / finite.len() as f64;
    let std = (finite.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / finite.len() as f64).sqrt();
    assert!((got.mean() - mean).abs() < 1e-9 * mean.abs(), "{} vs {mean}", got.mean());
    assert!((got.std() - std).abs() < 1e-9 * std, "{} vs {std}", got.std());
    // A level-0 tile's record equals its own values' statistics.
    let mut t = RegionBuf::default();
    src.read_region(0, crate::geom::Rect::new(256, 512, 512, 700), &mut t).unwrap();
    let mut a = StatsAcc::default();
    a.add(&f32s(&t), &range, range.scale());
    let s: TileStats = store.read_stats(0, 0, 1, 2).unwrap().expect("tile stats");
    assert_eq!((s.count, s.min, s.max, s.hist), (a.finish().count, a.finish().min, a.finish().max, a.finish().hist));
}

#[test]
fn a_cancelled_build_resumes_to_the_same_file() {
    resume_case("resume", DType::F32, field);
}

/// Float64 levels keep their current tile row of values in the checkpoint (nothing of it is stored).
#[test]
fn a_cancelled_float64_build_resumes_to_the_same_file() {
    resume_case("resume64", DType::F64, |x, y| field(x, y) + 1e9);
}

fn resume_case(name: &str, dtype: DType, f: fn(u64, u64) -> f64) {
    let (_, src) = npy(&format!("{name}.npy"), dtype, 1000, 1300, f);
    let (_, fresh_src) = npy(&format!("{name}_fresh.npy"), dtype, 1000, 1300, f);
    let fresh = find_or_build(fresh_src.as_ref(), Method::Mean, &Progress::default()).unwrap();

    let job = BuildJob::prepare(src.as_ref(), Method::Mean).unwrap();
    assert!(!job.resuming);
    let p = Progress::default();
    // About 40 % of the data (the cancel lands on a level-0 tile-row boundary).
    p.cancel_after.store(2 * 1000 * 1300 * dtype.size() as u64 / 4, Ordering::Relaxed);
    assert!(matches!(job.run(src.as_ref(), &p), Err(Error::Cancelled)));
    assert!(job.paths.partial.exists() && job.paths.resume.exists() && !job.paths.done.exists());
    let partial_tiles = job.store.tiles_done();
    drop(job);

    let job = BuildJob::prepare(src.as_ref(), Method::Mean).unwrap();
    assert!(job.resuming);
    assert!(job.store.tiles_done() <= partial_tiles);
    let p = Progress::default();
    let store = job.run(src.as_ref(), &p).unwrap();
    assert!(p.resumed_from.load(Ordering::Relaxed) > 0);
    if dtype == DType::F32 {
        check_levels(src.as_ref(), &store, Method::Mean);
    } else {
        check_offset_tiles(src.as_ref(), &store);
    }
    // Same tiles and statistics as the uninterrupted build.
    let lv = store.levels();
    let (mut a, mut b) = (RegionBuf::default(), RegionBuf::default());
    for level in 0..lv.count {
        let g = lv.grid(level);
        for ty in 0..g.rows() {
            for tx in 0..g.cols() {
                if level > 0 {
                    let oa = store.read_tile(0, level, tx, ty, &mut a).unwrap();
                    let ob = fresh.read_tile(0, level, tx, ty, &mut b).unwrap();
                    assert!(oa.is_some() && oa.map(f64::to_bits) == ob.map(f64::to_bits));
                    assert_eq!(a.bytes(), b.bytes(), "level {level} tile {tx},{ty}");
                }
                assert_eq!(store.read_stats(0, level, tx, ty).unwrap(), fresh.read_stats(0, level, tx, ty).unwrap());
            }
        }
    }
}

/// Every stored tile of a float64 file against the exact path: its offset is the median of the tile's
/// finite block means (computed from the data in f64) and its float32 residuals are those means minus
/// the offset, as uploads of exactly computed tiles have them.
fn check_offset_tiles(src: &dyn ArraySource, store: &Store) {
    assert!(store.layout.offsets && store.layout.dtype == DType::F32 && store.meta.dtype == "float32");
    let lv = store.levels();
    let mut t = RegionBuf::default();
    for level in 1..lv.count {
        let g = lv.grid(level);
        for ty in 0..g.rows() {
            for tx in 0..g.cols() {
                let offset = store.read_tile(0, level, tx, ty, &mut t).unwrap().expect("tile stored");
                let want = tile_texels(src, 0, &lv, level, tx, ty).unwrap();
                // The cascade sums in another order than block_reduce: equal to a few f64 ulps.
                assert!((offset - want.offset).abs() <= 1e-12 * want.offset.abs(), "{offset} vs {}", want.offset);
                let got = f32s(&t);
                let exact = want.values_every(1);
                assert_eq!(got.len(), exact.len());
                for (i, (&r, &v)) in got.iter().zip(&exact).enumerate() {
                    assert_eq!(r.is_nan(), v.is_nan(), "level {level} tile {tx},{ty} texel {i}");
                    if !v.is_nan() {
                        // Residual precision: a float32 ulp of the residual (plus the offset's few ulps).
                        let err = (f64::from(r) + offset - v).abs();
                        assert!(err <= 1e-6 * (v - offset).abs().max(1.0), "texel {i}: {r} + {offset} vs {v}");
                    }
                }
            }
        }
    }
}

#[test]
fn float64_levels_are_stored_as_offset_plus_float32_residuals() {
    // A large offset with noise far below float32 resolution at 1e9, NaN holes, and a few huge values
    // (the median keeps the bulk precise).
    let f = |x: u64, y: u64| {
        if (x * 7 + y * 3) % 97 == 0 {
            f64::NAN
        } else if (x, y) == (3, 4) {
            1e15
        } else {
            1e9 + ((x as f64) * 0.37).sin() + (y as f64) * 1e-3
        }
    };
    let (_, src) = npy("f64.npy", DType::F64, 1100, 700, f);
    let store = find_or_build(src.as_ref(), Method::Mean, &Progress::default()).unwrap();
    check_offset_tiles(src.as_ref(), &store);
    // Half the tile bytes of float64 levels: float32 residuals plus one 8-byte offset per tile.
    let (_, f32src) = npy("f64_as_f32.npy", DType::F32, 1100, 700, f);
    let f32store = find_or_build(f32src.as_ref(), Method::Mean, &Progress::default()).unwrap();
    assert_eq!(store.layout.slot_bytes, f32store.layout.slot_bytes + 8);
    assert_eq!(store.layout.file_size, f32store.layout.file_size + 8 * store.layout.stored_tiles());
    // The statistics are those of the exact float64 data.
    let mut b = RegionBuf::default();
    src.read_region(0, crate::geom::Rect::new(0, 0, 1100, 700), &mut b).unwrap();
    let all = b.to_f64();
    let mut acc = StatsAcc::default();
    acc.add(&all, &store.hist_range(), store.hist_range().scale());
    let want = acc.finish();
    let got = store.slice_stats(0).unwrap().expect("stats");
    assert_eq!((got.count, got.nan, got.min, got.max, got.hist), (want.count, want.nan, want.min, want.max, want.hist));
    // A flipped bit in a tile's offset fails the tile's checksum.
    let (file, at) = (store.path().to_path_buf(), store.layout.data_offset + 3);
    drop(store);
    flip_byte(&file, at);
    let s = find(src.as_ref(), Method::Mean).unwrap().expect("header still fine");
    let e = s.read_tile(0, 1, 0, 0, &mut RegionBuf::default()).unwrap_err();
    assert!(matches!(e, Error::Cache { .. }), "{e}");
}

fn flip_byte(path: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::options().read(true).write(true).open(path).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x40], at).unwrap();
}

#[test]
fn damaged_or_stale_files_are_never_trusted() {
    let (path, src) = npy("damage.npy", DType::F32, 600, 600, field);
    let store = find_or_build(src.as_ref(), Method::Mean, &Progress::default()).unwrap();
    let file = store.path().to_path_buf();
    let data_at = store.layout.data_offset;
    drop(store);
    // A flipped bit in a tile: the tile fails its checksum.
    flip_byte(&file, data_at + 10);
    let s = find(src.as_ref(), Method::Mean).unwrap().expect("header still fine");
    let e = s.read_tile(0, 1, 0, 0, &mut RegionBuf::default()).unwrap_err();
    assert!(matches!(e, Error::Cache { .. }), "{e}");
    drop(s);
    // A damaged header or a truncated file: deleted, not found.
    flip_byte(&file, 30);
    assert!(find(src.as_ref(), Method::Mean).unwrap().is_none());
    assert!(!file.exists());
    let store = find_or_build(src.as_ref(), Method::Mean, &Progress::default()).unwrap();
    drop(store);
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::File::options().write(true).open(&file).unwrap().set_len(len - 1).unwrap();
    assert!(find(src.as_ref(), Method::Mean).unwrap().is_none());
    // A changed data file has another key: the old pyramid is not found for it.
    let store = find_or_build(src.as_ref(), Method::Mean, &Progress::default()).unwrap();
    let old = locate(src.as_ref(), Method::Mean).unwrap().unwrap().1.done;
    assert_eq!(store.path(), old);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (_, src2) = npy("damage.npy", DType::F32, 600, 600, |x, y| field(x, y) + 1.0);
    assert_eq!(src2.info().path, path);
    assert_ne!(locate(src2.as_ref(), Method::Mean).unwrap().unwrap().1.done, old);
    assert!(find(src2.as_ref(), Method::Mean).unwrap().is_none());
}

/// A source whose reads fail from row `fail_at` on (a data file that shrank, a disk error).
struct FailingSource {
    inner: Arc<dyn ArraySource>,
    fail_at: u64,
}

impl ArraySource for FailingSource {
    fn info(&self) -> &crate::source::SourceInfo {
        self.inner.info()
    }
    fn read_region(&self, slice: u64, rect: crate::geom::Rect, out: &mut RegionBuf) -> crate::error::Result<()> {
        if rect.y1 > self.fail_at {
            return Err(Error::FileShrank { path: self.info().path.clone() });
        }
        self.inner.read_region(slice, rect, out)
    }
    fn sample_grid(&self, slice: u64, xs: &[u64], ys: &[u64]) -> crate::error::Result<Vec<f64>> {
        self.inner.sample_grid(slice, xs, ys)
    }
}

#[test]
fn a_failed_build_deletes_its_partial_file_and_checkpoint() {
    let (_, inner) = npy("fails.npy", DType::F32, 700, 1300, field);
    let src = FailingSource { inner, fail_at: 900 };
    let job = BuildJob::prepare(&src, Method::Mean).unwrap();
    let r = job.run(&src, &Progress::default());
    assert!(matches!(r, Err(Error::FileShrank { .. })), "{:?}", r.err());
    assert!(!job.paths.partial.exists() && !job.paths.resume.exists() && !job.paths.done.exists());
    // A cancelled build keeps both, to resume.
    let job = BuildJob::prepare(&src, Method::Mean).unwrap();
    let p = Progress::default();
    p.cancel_after.store(1, Ordering::Relaxed);
    assert!(matches!(job.run(&src, &p), Err(Error::Cancelled)));
    assert!(job.paths.partial.exists() && job.paths.resume.exists());
    // While this job holds the partial file, a second builder fails and leaves it as it is.
    let before = std::fs::read(&job.paths.partial).unwrap();
    assert!(matches!(BuildJob::prepare(&src, Method::Mean), Err(Error::Request { .. })));
    assert!(std::fs::read(&job.paths.partial).unwrap() == before);
}
