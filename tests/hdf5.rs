//! HDF5 files written by h5py and NetCDF files written by netCDF4-python (tests/oracle_hdf5.py): values read
//! through `source::open` equal the reference libraries' exactly for every layout (contiguous little- and
//! big-endian, chunked with gzip+shuffle, fletcher32, scale-offset, compact, partly written chunks, 4-D),
//! NetCDF-4 CF variables equal netCDF4-python's masked, unpacked values with dimension names and
//! coordinates, classic CDF-1/2/5 files (record variables too) read in place, datasets are listed and
//! chosen by path, and damaged files get one line and exit 2 without being modified.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
use vastview::source::{self, ArraySource, OpenSpec, RegionBuf};

use crate::common::*;

fn oracle_hdf5() -> &'static (PathBuf, Value) {
    static ORACLE: OnceLock<(PathBuf, Value)> = OnceLock::new();
    ORACLE.get_or_init(|| run_oracle("oracle_hdf5.py", "vastview-oracle-hdf5", "numpy, h5py and netCDF4"))
}

fn open(path: &str, member: Option<&str>) -> std::sync::Arc<dyn ArraySource> {
    let spec = OpenSpec { path: PathBuf::from(path), member: member.map(str::to_string), ..Default::default() };
    source::open(&spec).unwrap_or_else(|e| panic!("{path} {member:?}: {e}"))
}

fn values(src: &dyn ArraySource) -> Vec<f64> {
    all_scalars(src).iter().map(|s| s.to_f64()).collect()
}

/// An oracle .npy, every slice.
fn npy(p: &Path) -> (Vec<u64>, Vec<f64>) {
    let src = source::npy::open_npy(p).expect("open npy");
    (src.info().shape.clone(), values(&src))
}

fn assert_same(name: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{name}: value count");
    let bad = got.iter().zip(want).position(|(a, b)| a.to_bits() != b.to_bits() && !(a.is_nan() && b.is_nan()));
    if let Some(i) = bad {
        panic!("{name}: at {i}: {} vs the reference library's {}", got[i], want[i]);
    }
}

fn cases() -> Vec<&'static Value> {
    oracle_hdf5().1["cases"].as_array().expect("cases").iter().collect()
}

#[test]
fn values_shape_and_dtype_equal_h5py_and_netcdf4_for_every_layout() {
    let (dir, _) = oracle_hdf5();
    assert!(cases().len() >= 16);
    for c in cases() {
        let name = c["name"].as_str().expect("name");
        let src = open(c["path"].as_str().expect("path"), c["member"].as_str());
        let info = src.info();
        let shape: Vec<u64> = c["shape"].as_array().expect("shape").iter().map(|v| v.as_u64().expect("dim")).collect();
        assert_eq!(info.shape, shape, "{name}");
        assert_eq!(info.dtype.name(), c["dtype"].as_str().expect("dtype"), "{name}");
        let (_, want) = npy(&dir.join(format!("{name}.npy")));
        assert_same(name, &values(src.as_ref()), &want);
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
fn formats_layouts_and_byte_orders_are_reported() {
    let (_, m) = oracle_hdf5();
    let h5 = m["h5"].as_str().expect("h5");
    let src = open(h5, Some("/contiguous_u16"));
    let detail = |src: &dyn ArraySource, k: &str| {
        src.info().details.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default()
    };
    assert_eq!(src.info().format.name, "hdf5");
    assert!(detail(src.as_ref(), "layout").contains("memory-mapped"), "{:?}", src.info().details);
    assert!(src.rows_in_place(0, 0, 2).is_some(), "contiguous little-endian data is lent in place");
    let be = open(h5, Some("bigendian_i32"));
    assert_eq!(be.info().endian, vastview::dtype::Endian::Big);
    let gz = open(h5, Some("/deep/er/gzip_shuffle_f32"));
    assert!(detail(gz.as_ref(), "layout").contains("shuffle, deflate"), "{:?}", gz.info().details);
    assert_eq!(gz.chunk_shape(), Some((50, 64)));
    let cdf2 = open(
        m["cases"].as_array().expect("c").iter().find(|c| c["name"] == "cdf2_temp").expect("cdf2")["path"]
            .as_str()
            .expect("p"),
        None,
    );
    assert_eq!(cdf2.info().format.name, "netcdf");
    assert_eq!(cdf2.info().format.version.as_deref(), Some("CDF-2"));
    assert_eq!(cdf2.info().member.as_deref(), Some("temp"), "the first image variable by default");
}

#[test]
fn netcdf4_dimensions_coordinates_and_cf_conventions() {
    let (_, m) = oracle_hdf5();
    let nc4 = m["nc4"].as_str().expect("nc4");
    let sst = open(nc4, None);
    let info = sst.info();
    assert_eq!(info.member.as_deref(), Some("/sst"), "the one image variable is chosen");
    assert_eq!(info.format.flavour.as_deref(), Some("NetCDF-4"));
    let names: Vec<&str> = info.axes.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["time", "lat", "lon"]);
    assert_eq!(info.axes[1].unit.as_deref(), Some("degrees_north"));
    // Coordinates as netCDF4 reads them, and the readout text for a pixel.
    let coords = &m["coords"];
    for (k, name) in [(0, "time"), (1, "lat"), (2, "lon")] {
        let want: Vec<f64> = coords[name].as_array().expect("c").iter().map(|v| v.as_f64().expect("f")).collect();
        let got = info.axes[k].coords.as_ref().unwrap_or_else(|| panic!("{name} has coordinates"));
        assert_eq!(&got[..], &want[..], "{name}");
    }
    let lat7 = coords["lat"][7].as_f64().expect("lat");
    let lon3 = coords["lon"][3].as_f64().expect("lon");
    let text = source::axes::position_text(&info.axes, 1, 2, 3, 7).expect("position");
    let f = |v: f64| vastview::numfmt::format_f32(v as f32);
    assert_eq!(
        text,
        format!("time 59.0 days since 2000-01-01, lat {} degrees_north, lon {} degrees_east", f(lat7), f(lon3))
    );
    // probe names the coordinates and shows the unpacked value.
    let o = vastview(&["probe", nc4, "3", "7", "--index", "time=2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!("lat {} degrees_north", f(lat7))), "{}", stdout(&o));
    // The CF note, long_name and units are in `info`.
    let o = vastview(&["info", nc4]);
    let t = stdout(&o);
    assert!(t.contains("sea surface temperature") && t.contains("degC") && t.contains("_FillValue -32767"), "{t}");
    assert!(t.contains("lat=90") && t.contains("-89.5") && t.contains("89.5"), "coordinate range: {t}");
    // Float data keeps its dtype; its fill values are NaN.
    let p = open(nc4, Some("precip"));
    assert_eq!(p.info().dtype.name(), "float32");
    assert!(values(p.as_ref()).iter().filter(|v| v.is_nan()).count() == 8);
}

#[test]
fn datasets_are_listed_and_chosen_by_path() {
    let (_, m) = oracle_hdf5();
    let h5 = m["h5"].as_str().expect("h5");
    let o = vastview(&["info", h5]);
    let t = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    for d in
        ["/contiguous_u16 (300, 517) uint16", "/deep/er/gzip_shuffle_f32 (3, 200, 190) float32", "/vector (10,) int64"]
    {
        assert!(t.contains(d), "{d} listed in {t}");
    }
    assert!(t.contains("the first of"), "{t}");
    // FILE:/path, --dataset and --variable select the same thing.
    let by_path = vastview(&["info", &format!("{h5}:/deep/er/gzip_shuffle_f32"), "--json"]);
    let by_flag = vastview(&["info", h5, "--dataset", "deep/er/gzip_shuffle_f32", "--json"]);
    assert!(by_path.status.success() && by_flag.status.success(), "{}{}", stderr(&by_path), stderr(&by_flag));
    let jp: Value = serde_json::from_str(&stdout(&by_path)).expect("json");
    let jf: Value = serde_json::from_str(&stdout(&by_flag)).expect("json");
    assert_eq!(jp["shape"], serde_json::json!([3, 200, 190]));
    assert_eq!(jp["shape"], jf["shape"]);
    // Wrong choices: one line, exit 2, naming what there is.
    for (member, want) in [
        ("/nope", "there is no dataset '/nope'"),
        ("/vector", "1 dimension"),
        ("/label", "string"),
        ("/lzf_u16", "LZF"),
    ] {
        let o = vastview(&["render", &format!("{h5}:{member}"), "-o", "/dev/null.png"]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{member}: {e}");
        assert_eq!(e.trim().lines().count(), 1, "{e}");
        assert!(e.contains(want), "{member}: wanted '{want}' in {e}");
    }
}

#[test]
fn the_parts_a_window_lists_are_the_image_datasets_and_each_opens() {
    let (dir, m) = oracle_hdf5();
    let h5 = Path::new(m["h5"].as_str().expect("h5"));
    let mut got: Vec<String> = source::registry::parts(h5).into_iter().map(|p| p.member).collect();
    let mut want = strs(&m["h5_images"]);
    got.sort();
    want.sort();
    assert_eq!(got, want, "h5py's image datasets");
    for p in source::registry::parts(h5) {
        let spec = OpenSpec { path: h5.to_path_buf(), member: Some(p.member.clone()), ..Default::default() };
        // Listed even when its filter is one vastview cannot decode: opening it then says so.
        let src = match source::open(&spec) {
            Ok(s) => s,
            Err(e) if p.member == "/lzf_u16" && e.to_string().contains("LZF") => continue,
            Err(e) => panic!("{}: {e}", p.member),
        };
        assert!(p.label.starts_with(&p.member) && p.label.contains(&source::fmt_shape(&src.info().shape)), "{p:?}");
    }
    let nc: Vec<String> = source::registry::parts(&dir.join("cdf1.nc")).into_iter().map(|p| p.member).collect();
    assert_eq!(nc, strs(&m["nc_images"]));
    assert!(source::registry::parts(&dir.join("cf_sst.npy")).is_empty(), ".npy has no parts");
}

#[test]
fn renders_of_hdf5_equal_the_data_through_matplotlib_limits() {
    // The render path end to end: a chunked dataset renders as its values say (min/max limits, gray).
    let (dir, m) = oracle_hdf5();
    let h5 = m["h5"].as_str().expect("h5");
    let out = dir.join("gz.npy");
    let o = vastview(&[
        "render",
        &format!("{h5}:/deep/er/gzip_shuffle_f32"),
        "--slice",
        "2",
        "--region",
        "0,0,190,200",
        "--size",
        "190x200",
        "-o",
        out.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (shape, got) = read_npy(&out);
    let (_, want) = npy(&dir.join("deep_er_gzip_shuffle_f32.npy"));
    assert_eq!(shape, [200, 190]);
    assert_same("render .npy", &got, &want[2 * 200 * 190..]);
}

#[test]
fn damaged_files_get_one_line_and_exit_2() {
    let (dir, m) = oracle_hdf5();
    let h5 = PathBuf::from(m["h5"].as_str().expect("h5"));
    let original = std::fs::read(&h5).expect("read");
    let bad = dir.join("bad");
    std::fs::create_dir_all(&bad).expect("mkdir");
    let write = |name: &str, bytes: &[u8]| {
        let p = bad.join(name);
        std::fs::write(&p, bytes).expect("write");
        p
    };
    let check = |p: &Path, member: Option<&str>, want: &str| {
        let arg = match member {
            Some(mb) => format!("{}:{mb}", p.display()),
            None => p.display().to_string(),
        };
        let o = vastview(&["render", &arg, "-o", "/dev/null.png"]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{arg}: {e}");
        assert_eq!(e.trim().lines().count(), 1, "{e}");
        assert!(e.contains(want), "{arg}: wanted '{want}' in {e}");
        assert!(!e.contains("panicked"), "{e}");
    };
    // A broken superblock (the signature kept, the version and sizes garbage).
    let mut b = original.clone();
    for x in &mut b[8..40] {
        *x = 0xff;
    }
    check(&write("superblock.h5", &b), None, "superblock.h5");
    // Cut short: the object headers or chunks are past the end.
    check(&write("short.h5", &original[..original.len() / 3]), Some("/deep/er/gzip_shuffle_f32"), "short.h5");
    check(&write("tiny.h5", &original[..12]), None, "tiny.h5");
    // A .h5 name on something else, and a NetCDF name on a file that is not one.
    check(&write("text.h5", b"hello, I am not HDF5"), None, "text.h5");
    check(&write("text.nc", b"CDF\x01 and then nothing sensible"), None, "text.nc");
    // Every compressed chunk overwritten: decoding fails with the chunk named, not a panic.
    let gz = open(h5.to_str().expect("utf8"), Some("/deep/er/gzip_shuffle_f32"));
    assert!(gz.info().file_size > 0);
    let mut c = original.clone();
    let n = c.len();
    for x in &mut c[n / 2..n / 2 + n / 8] {
        *x = 0x5a;
    }
    let p = write("chunks.h5", &c);
    let o = vastview(&["render", &format!("{}:/deep/er/gzip_shuffle_f32", p.display()), "-o", "/dev/null.png"]);
    assert!(o.status.code() == Some(2) || o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    // The user's file is untouched by all this.
    assert_eq!(std::fs::read(&h5).expect("read"), original);
}

#[test]
fn the_window_draws_a_chunked_dataset_as_render_does() {
    if gpu_session().is_none() {
        return;
    }
    let (dir, m) = oracle_hdf5();
    let file = format!("{}:/deep/er/gzip_shuffle_f32", m["h5"].as_str().expect("h5"));
    let shot = dir.join("window_h5.png");
    let look = ["--colormap", "viridis", "--limits", "-2.5,2.5"];
    let mut args = vec![file.as_str(), "--screenshot", shot.to_str().expect("utf8"), "--window-size", "900x600"];
    args.extend(["--zoom", "2"]);
    args.extend(look);
    let Some(out) = crate::window::under_xvfb(&args) else { return };
    let err = stderr(&out);
    assert!(out.status.success(), "window exited {:?}: {err}", out.status.code());
    let [ox, oy, vw, vh] = crate::window::data_area(&err).unwrap_or_else(|| panic!("no data area line in: {err}"));
    let png = dir.join("render_h5.png");
    let mut rargs = vec!["render", file.as_str(), "--region", "0,0,190,200", "--size", "190x200"];
    rargs.extend(look);
    rargs.extend(["-o", png.to_str().expect("utf8")]);
    let r = vastview(&rargs);
    assert!(r.status.success(), "{}", stderr(&r));
    let (_, _, want) = read_png(&png);
    let (sw, _, px) = read_png(&shot);
    let (wd, h, zoom) = (190.0, 200.0, 2.0);
    let (mut compared, mut bad) = (0, Vec::new());
    for sy in 0..vh as u32 {
        for sx in 0..vw as u32 {
            let x = ((f64::from(sx) + 0.5 - vw / 2.0) / zoom + wd / 2.0).floor();
            let y = ((f64::from(sy) + 0.5 - vh / 2.0) / zoom + h / 2.0).floor();
            if x < 0.0 || y < 0.0 || x >= wd || y >= h {
                continue;
            }
            let k = ((y * wd + x) as usize) * 4;
            let at = (((oy as u32 + sy) * sw + ox as u32 + sx) * 4) as usize;
            compared += 1;
            let (g, w) = (&px[at..at + 3], &want[k..k + 3]);
            if g.iter().zip(w).any(|(a, b)| (i32::from(*a) - i32::from(*b)).abs() > 2) && bad.len() < 5 {
                bad.push(format!("screen ({sx},{sy}) data ({x},{y}): window {g:?}, render {w:?}"));
            }
        }
    }
    assert_eq!(compared, 190 * 200 * 4, "the whole slice is on screen at zoom 2");
    assert!(bad.is_empty(), "window differs from render: {}", bad.join("; "));
}
