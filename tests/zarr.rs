//! Zarr v2/v3 and OME-Zarr stores written by zarr-python (tests/oracle_zarr.py): values read through
//! `source::open` equal zarr-python's exactly for every codec chain (zstd, blosc lz4+bitshuffle and
//! zstd+shuffle, gzip with big-endian bytes, sharding, transpose), missing chunks are the fill value,
//! OME-Zarr multiscales are native levels with axes, pixel sizes and omero channels, groups name their
//! arrays, and damaged stores get one line and exit 2 without being modified.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
use vastview::source::{self, ArraySource, OpenSpec, RegionBuf};

use crate::common::*;

fn oracle_zarr() -> &'static (PathBuf, Value) {
    static ORACLE: OnceLock<(PathBuf, Value)> = OnceLock::new();
    ORACLE.get_or_init(|| run_oracle("oracle_zarr.py", "vastview-oracle-zarr", "numpy and zarr"))
}

fn open_path(p: &Path) -> std::sync::Arc<dyn ArraySource> {
    source::open(&OpenSpec { path: p.to_path_buf(), ..Default::default() })
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// An oracle .npy, every slice: (shape, values).
fn npy(p: &Path) -> (Vec<u64>, Vec<f64>) {
    let src = vastview::source::npy::open_npy(p).expect("open npy");
    (src.info().shape.clone(), all_values(&src))
}

fn all_values(src: &dyn ArraySource) -> Vec<f64> {
    all_scalars(src).iter().map(|s| s.to_f64()).collect()
}

fn assert_same(name: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{name}: value count");
    let bad = got.iter().zip(want).position(|(a, b)| a.to_bits() != b.to_bits() && !(a.is_nan() && b.is_nan()));
    assert!(
        bad.is_none(),
        "{name}: at {}: {} vs zarr-python {}",
        bad.unwrap_or(0),
        got[bad.unwrap_or(0)],
        want[bad.unwrap_or(0)]
    );
}

#[test]
fn values_shape_and_dtype_equal_zarr_python_for_every_codec_chain() {
    let (dir, m) = oracle_zarr();
    let cases = m["cases"].as_array().expect("cases");
    assert!(cases.len() >= 7);
    for c in cases {
        let name = c["name"].as_str().expect("name");
        let src = open_path(Path::new(c["path"].as_str().expect("path")));
        let info = src.info();
        let shape: Vec<u64> = c["shape"].as_array().expect("shape").iter().map(|v| v.as_u64().expect("dim")).collect();
        assert_eq!(info.shape, shape, "{name}");
        assert_eq!(info.dtype.name(), c["dtype"].as_str().expect("dtype"), "{name}");
        assert_eq!(info.format.name, "zarr", "{name}");
        let (wshape, want) = npy(&dir.join(format!("{name}.npy")));
        assert_eq!(wshape, shape, "{name}");
        assert_same(name, &all_values(src.as_ref()), &want);
        // A region off the origin, across chunk edges, of the last slice.
        let im = info.image;
        let r = vastview::geom::Rect::new(im.width / 3, im.height / 4, im.width - 1, im.height - 2);
        let mut buf = RegionBuf::default();
        src.read_region(im.slices - 1, r, &mut buf).expect("region");
        let base = ((im.slices - 1) * im.width * im.height) as usize;
        let want_r: Vec<f64> = (r.y0..r.y1)
            .flat_map(|y| (r.x0..r.x1).map(move |x| (y * im.width + x) as usize))
            .map(|i| want[base + i])
            .collect();
        let got_r: Vec<f64> = buf.scalars().iter().map(|s| s.to_f64()).collect();
        assert_same(&format!("{name} region"), &got_r, &want_r);
    }
}

#[test]
fn missing_chunks_are_the_fill_value() {
    let (dir, _) = oracle_zarr();
    let src = open_path(&dir.join("v3_fill.zarr"));
    let v = all_values(src.as_ref());
    assert_eq!(v[0], 7.5);
    assert_eq!(v[16 * 64 + 32], 0.0);
    assert_eq!(v.iter().filter(|&&x| x == 7.5).count(), 64 * 64 - 256);
}

#[test]
fn ome_zarr_levels_axes_pixel_sizes_and_channels() {
    let (dir, _) = oracle_zarr();
    let src = open_path(&dir.join("ome.zarr"));
    let info = src.info();
    assert_eq!(info.format.flavour.as_deref(), Some("OME-Zarr 0.4"));
    let names: Vec<&str> = info.axes.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["c", "y", "x"]);
    assert_eq!(info.axes[1].scale, Some(0.5));
    assert_eq!(info.axes[2].scale, Some(0.25));
    assert_eq!(info.axes[2].unit.as_deref(), Some("micrometer"));
    assert_eq!(info.channels.len(), 2);
    assert_eq!(info.channels[0].name.as_deref(), Some("DAPI"));
    assert_eq!(info.channels[1].color, Some([0, 255, 0]));
    assert_eq!(info.channels[0].window, Some((10.0, 3000.0)));
    let levels = src.native_levels();
    assert_eq!(levels.iter().map(|l| l.0).collect::<Vec<_>>(), [1, 2]);
    for (k, l) in std::iter::once((0, src.clone())).chain(levels) {
        let (_, want) = npy(&dir.join(format!("ome_{k}.npy")));
        assert_same(&format!("level {k}"), &all_values(l.as_ref()), &want);
    }
    // `render -v` of a small view reads the coarsest native level and says so.
    let out = dir.join("ome.png");
    let o = vastview(&[
        "render",
        dir.join("ome.zarr").to_str().expect("utf8"),
        "--size",
        "50x64",
        "-o",
        out.to_str().expect("utf8"),
        "-v",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("native level 2"), "{}", stderr(&o));
    // An array inside the store opens by its path.
    let lv1 = open_path(&dir.join("ome.zarr/1"));
    assert_eq!(lv1.info().shape, vec![2, 128, 100]);
}

#[test]
fn a_group_names_its_arrays_and_an_array_path_opens_it() {
    let (dir, _) = oracle_zarr();
    let g = dir.join("group.zarr");
    let o = vastview(&["info", g.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(e.contains("a (10, 12) uint8") && e.contains("sub/b (20, 30) float32"), "{e}");
    let b = open_path(&g.join("sub/b"));
    assert!(all_values(b.as_ref()).iter().all(|&v| v == 1.5));
    // The window's list of the group's parts, each opening by its path as a member; `..` is refused.
    let parts = source::registry::parts(&g);
    let labels: Vec<&str> = parts.iter().map(|p| p.label.as_str()).collect();
    assert_eq!(labels, ["a (10, 12) uint8", "sub/b (20, 30) float32"]);
    let spec = OpenSpec { path: g.clone(), member: Some("sub/b".into()), ..Default::default() };
    assert_eq!(source::open(&spec).expect("member").info().shape, [20, 30]);
    let spec = OpenSpec { path: g.join("sub"), member: Some("../a".into()), ..Default::default() };
    assert!(source::open(&spec).is_err());
    assert!(source::registry::parts(&dir.join("ome.zarr")).is_empty(), "an OME image opens as one");
}

#[test]
fn a_store_s_cache_identity_follows_its_chunks() {
    let (dir, _) = oracle_zarr();
    let p = dir.join("identity.zarr");
    copy_store(&dir.join("v3_fill.zarr"), &p);
    let key = || vastview::diskcache::Identity::of(&p).expect("identity").key("t");
    let before = key();
    assert_eq!(before, key(), "stable while nothing changes");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let chunk = p.join("c/1/2");
    let bytes = std::fs::read(&chunk).expect("chunk");
    std::fs::write(&chunk, [bytes.as_slice(), b"x"].concat()).expect("rewrite");
    assert_ne!(before, key(), "a rewritten chunk makes cached results stale");
}

/// A copy of one oracle store under a new name, for damaging.
fn copy_store(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    let o = std::process::Command::new("cp").arg("-r").arg(from).arg(to).output().expect("cp");
    assert!(o.status.success());
}

fn assert_one_line_error(path: &Path, contains: &str) {
    let o = vastview(&["render", path.to_str().expect("utf8"), "-o", "/dev/null.png"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{}: {e}", path.display());
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(e.contains(contains), "{}: wanted '{contains}' in {e}", path.display());
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn damaged_stores_get_one_line_and_exit_2() {
    let (dir, _) = oracle_zarr();
    let bad = dir.join("bad");
    std::fs::create_dir_all(&bad).expect("mkdir");
    // A copy of the oracle store `from` as `bad/NAME.zarr` with its file `file` rewritten by `edit`.
    let damaged = |from: &str, name: &str, file: &str, edit: &dyn Fn(Vec<u8>) -> Vec<u8>| {
        let p = bad.join(format!("{name}.zarr"));
        copy_store(&dir.join(from), &p);
        let bytes = std::fs::read(p.join(file)).expect("read");
        std::fs::write(p.join(file), edit(bytes)).expect("write");
        p
    };
    let replace = |from: &'static str, to: &'static str| {
        move |b: Vec<u8>| String::from_utf8(b).expect("utf8").replace(from, to).into_bytes()
    };
    // Unknown codec, named.
    let p = damaged("v3_zstd_u16.zarr", "codec", "zarr.json", &replace("\"zstd\"", "\"frobnicate\""));
    assert_one_line_error(&p, "frobnicate");
    // A corrupt compressed chunk, and a chunk shorter than it should be.
    let p = damaged("v3_zstd_u16.zarr", "chunk", "c/0/0", &|_| b"this is not zstd".to_vec());
    assert_one_line_error(&p, "chunk");
    let p = damaged("v2_blosc_zstd_shuffle_i16.zarr", "short", "0.0.0.0", &|b| b[..b.len() / 2].to_vec());
    assert_one_line_error(&p, "chunk");
    // A shape of 2^62.
    let huge = |b: Vec<u8>| {
        let mut v: Value = serde_json::from_slice(&b).expect("json");
        v["shape"] = serde_json::json!([1u64 << 62, 1u64 << 62]);
        v.to_string().into_bytes()
    };
    let p = damaged("v3_zstd_u16.zarr", "huge", "zarr.json", &huge);
    assert_one_line_error(&p, "huge.zarr");
    // Metadata that is not JSON, and no metadata at all.
    let p = damaged("v3_zstd_u16.zarr", "json", "zarr.json", &|_| b"{ not json".to_vec());
    assert_one_line_error(&p, "json.zarr");
    let p = bad.join("empty.zarr");
    std::fs::create_dir_all(&p).expect("mkdir");
    assert_one_line_error(&p, "empty.zarr");
    // An OME dataset path that leaves the image.
    let p = damaged("ome.zarr", "escape", ".zattrs", &replace("\"path\": \"1\"", "\"path\": \"../../v3_fill.zarr\""));
    assert_one_line_error(&p, "leaves");
    // The user's stores are untouched by all this: the oracle copy still reads exactly.
    let (_, want) = npy(&dir.join("v3_zstd_u16.npy"));
    assert_same("after", &all_values(open_path(&dir.join("v3_zstd_u16.zarr")).as_ref()), &want);
}
