//! The format registry and the N-D axis model from the command line: detection by magic number before
//! extension, `--format`, unknown files, N-D `.npy` arrays (C and Fortran order) read through `--index`
//! and `--slice`, and `info` listing the axes. numpy writes the files and says what each slice holds.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::common::{python, read_npy, stderr, stdout, vastview};

/// numpy writes a 4-D (t=3, c=2, 5, 7) int32 array in C and Fortran order, a copy of the C one under a
/// name with no extension, and the expected slice (t=2, c=1) as its own file.
fn files() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("vastview-formats-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let script = r#"
import sys, numpy as np, shutil
d = sys.argv[1]
a = np.random.default_rng(7).integers(-1000, 1000, (3, 2, 5, 7)).astype(np.int32)
np.save(f"{d}/c.npy", a)
np.save(f"{d}/f.npy", np.asfortranarray(a))
shutil.copy(f"{d}/c.npy", f"{d}/noext")
np.save(f"{d}/want_t2_c1.npy", a[2, 1])
np.save(f"{d}/want_t0_c1.npy", a[0, 1])
open(f"{d}/junk.bin", "wb").write(b"not an array, nothing claims this" * 10)
"#;
        let out = Command::new(python()).arg("-c").arg(script).arg(&dir).output().expect("python3");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        dir
    })
}

fn p(name: &str) -> String {
    files().join(name).display().to_string()
}

#[test]
fn nd_arrays_read_any_slice_by_index_in_both_memory_orders() {
    let (_, want) = read_npy(&files().join("want_t2_c1.npy"));
    for f in ["c.npy", "f.npy", "noext"] {
        let out = files().join(format!("got_{f}.npy"));
        // dim_0 = t, dim_1 = c: by name and by number.
        for index in ["dim_0=2,dim_1=1", "0=2,1=1"] {
            let o = vastview(&["render", &p(f), "--index", index, "-o", out.to_str().unwrap()]);
            assert!(o.status.success(), "{f} {index}: {}", stderr(&o));
            let (shape, got) = read_npy(&out);
            assert_eq!(shape, [5, 7]);
            assert_eq!(got, want, "{f} --index {index}");
        }
        // --slice is the flat number over the outer axes: t=2, c=1 is 2*2+1.
        let o = vastview(&["render", &p(f), "--slice", "5", "-o", out.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(read_npy(&out).1, want, "{f} --slice 5");
        // Axes not named keep --slice's index: --slice 1 is t=0 c=1.
        let (_, want0) = read_npy(&files().join("want_t0_c1.npy"));
        let o = vastview(&["render", &p(f), "--slice", "1", "--index", "dim_1=1", "-o", out.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(read_npy(&out).1, want0);
        // probe names the index and prints numpy's value.
        let o = vastview(&["probe", &p(f), "3", "4", "--index", "dim_0=2,dim_1=1"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v = want[4 * 7 + 3] as i64;
        assert_eq!(stdout(&o).trim(), format!("int32 [4, 3] (x=3, y=4, dim_0=2 dim_1=1): {v}"));
    }
}

#[test]
fn bad_indexes_are_one_line_errors_naming_the_axes() {
    for (index, want) in [
        ("dim_0=3", "out of range (the axis has 3 entries)"),
        ("y=1", "is displayed, not indexed (the outer axes are dim_0, dim_1)"),
        ("t=1", "no axis named 't' (the axes are dim_0, dim_1, y, x)"),
        ("dim_0", "is not AXIS=I"),
        ("dim_0=x", "'x' is not an index"),
        ("9=0", "axis 9 does not exist"),
    ] {
        let o = vastview(&["probe", &p("c.npy"), "0", "0", "--index", index]);
        assert_eq!(o.status.code(), Some(2), "{index}");
        let e = stderr(&o);
        assert!(e.contains(want) && e.contains("c.npy") && e.trim().lines().count() == 1, "{index}: {e}");
    }
    let o = vastview(&["probe", &p("c.npy"), "0", "0", "--slice", "6"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("slice 6 is out of range (the stack has 6 slices)"), "{}", stderr(&o));
}

#[test]
fn info_lists_axes_and_the_format_detected_by_magic() {
    let o = vastview(&["info", &p("noext"), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["format"], "npy");
    assert_eq!(v["format_version"], "1.0");
    let names: Vec<&str> = v["axes"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["dim_0", "dim_1", "y", "x"]);
    let sizes: Vec<u64> = v["axes"].as_array().unwrap().iter().map(|a| a["size"].as_u64().unwrap()).collect();
    assert_eq!(sizes, [3, 2, 5, 7]);
    assert_eq!(v["slices"], 6);
    let o = vastview(&["info", &p("c.npy")]);
    let t = stdout(&o);
    assert!(t.contains("axes:         dim_0=3, dim_1=2, y=5, x=7"), "{t}");
    assert!(t.contains("6 slice(s) over dim_0 x dim_1"), "{t}");
}

#[test]
fn unknown_files_and_unknown_formats_name_what_was_tried() {
    let o = vastview(&["info", &p("junk.bin")]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    let names = vastview::source::registry::names();
    assert!(e.contains("junk.bin") && e.contains(&format!("tried {names}")) && e.contains("--dtype"), "{e}");
    let o = vastview(&["info", &p("c.npy"), "--format", "nosuch"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--format 'nosuch' is not a format vastview knows"), "{}", stderr(&o));
    // --format npy forces the reader: its own error for a file that is not one.
    let o = vastview(&["info", &p("junk.bin"), "--format", "npy"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("junk.bin"), "{}", stderr(&o));
    // A part of a one-array file.
    let o = vastview(&["info", &format!("{}[1]", p("c.npy"))]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("holds one array"), "{}", stderr(&o));
    // --help lists the registry's formats.
    let o = vastview(&["--help"]);
    for f in vastview::source::registry::FORMATS {
        assert!(stdout(&o).contains(f.title), "{} missing from --help", f.name);
    }
}

/// A channel axis drawn as an additive composite: each channel through its black-to-colour ramp and its limits,
/// the colours added and clipped at 255, as numpy computes it from the data (matplotlib's binning of t into 256).
#[test]
fn channel_axes_render_as_additive_composites_equal_to_numpy() {
    if crate::common::gpu_session().is_none() {
        return;
    }
    let d = files();
    let script = r#"
import sys, numpy as np
d = sys.argv[1]
a = np.random.default_rng(3).integers(0, 1000, (3, 20, 30)).astype(np.uint16)
np.save(f"{d}/c3.npy", a)
lims = [(0, 1000), (100, 900), (0, 500)]
cols = [(0, 255, 0), (255, 0, 255), (0, 255, 255)]
out = np.zeros((20, 30, 4), np.int64)
out[..., 3] = 255
for k in range(3):
    lo, hi = lims[k]
    t = np.clip((a[k].astype(np.float64) - lo) / (hi - lo), 0, 1)
    i = np.clip(np.floor(t * 256), 0, 255).astype(np.int64)
    for c in range(3):
        out[..., c] += ((cols[k][c] * np.arange(256) + 127) // 255)[i]
np.save(f"{d}/c3_want.npy", np.minimum(out, 255).astype(np.uint8))
np.save(f"{d}/c3_want_1.npy", np.clip(np.floor(np.clip((a[1].astype(np.float64) - 100) / 800.0, 0, 1) * 256), 0, 255).astype(np.uint8))
"#;
    let o = Command::new(python()).arg("-c").arg(script).arg(d).output().expect("python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let png = d.join("c3.png");
    let o = vastview(&[
        "render",
        &p("c3.npy"),
        "--channel-axis",
        "dim_0",
        "--channel-limits",
        "0,1000;100,900;0,500",
        "-o",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (w, h, got) = crate::common::read_png(&png);
    assert_eq!((w, h), (30, 20));
    let (_, want) = read_npy(&d.join("c3_want.npy"));
    let want: Vec<u8> = want.iter().map(|&v| v as u8).collect();
    assert_eq!(crate::common::compare_rgba(&got, &want, 30, 0), None);
    // --index on the channel axis shows that channel alone, through --colormap (gray: R = G = B = the index).
    let o = vastview(&[
        "render",
        &p("c3.npy"),
        "--channel-axis",
        "dim_0",
        "--index",
        "dim_0=1",
        "--limits",
        "100,900",
        "--colormap",
        "gray",
        "-o",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, _, got) = crate::common::read_png(&png);
    let (_, idx) = read_npy(&d.join("c3_want_1.npy"));
    let gray = vastview::palette::Colormap::by_name("gray").unwrap();
    for (px, i) in got.chunks_exact(4).zip(&idx) {
        assert_eq!(px, gray.table[*i as usize], "one channel through gray");
    }
    // Bad composite flags.
    for (args, want) in [
        (vec!["--channel-axis", "y"], "not an outer axis"),
        (vec!["--channel-axis", "dim_0", "--channel-colormaps", "green,red"], "names 2 colormaps for 3 channels"),
        (vec!["--channel-axis", "dim_0", "--channel-limits", "0,1;0,2"], "gives 2 pairs for 3 channels"),
        (vec!["--channel-axis", "dim_0", "--channel-colormaps", "green,red,nosuchmap"], "unknown colormap 'nosuchmap'"),
    ] {
        let c3 = p("c3.npy");
        let mut a = vec!["render", c3.as_str()];
        a.extend(args);
        a.extend(["-o", png.to_str().unwrap()]);
        let o = vastview(&a);
        assert_eq!(o.status.code(), Some(2), "{a:?}");
        assert!(stderr(&o).contains(want), "{a:?}: {}", stderr(&o));
    }
}

/// A TIFF's own pyramid (OME-TIFF SubIFDs, written by tifffile) is what a shrunk render reads: `-v` names the
/// native level and the exported values are the level's as tifffile reads them; OME channel names reach the
/// composite; 16-bit RGB is drawn red, green, blue with one pair of limits, as numpy computes it.
#[test]
fn tiff_native_levels_channels_and_16_bit_rgb() {
    let d = files();
    let script = r#"
import sys, numpy as np, tifffile
d = sys.argv[1]
a = np.random.default_rng(1).integers(0, 60000, (2, 1000, 1500)).astype(np.uint16)
with tifffile.TiffWriter(f"{d}/pyr.ome.tif", bigtiff=True) as t:
    t.write(a, subifds=2, tile=(256, 256), compression="zlib",
            metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP"]}})
    for f in (2, 4):
        t.write(a[:, ::f, ::f], subfiletype=1, tile=(256, 256), compression="zlib")
with tifffile.TiffFile(f"{d}/pyr.ome.tif") as t:
    for k, lv in enumerate(t.series[0].levels):
        np.save(f"{d}/pyr_level{k}.npy", lv.asarray()[1])
rgb = np.random.default_rng(2).integers(0, 4096, (20, 30, 3)).astype(np.uint16)
tifffile.imwrite(f"{d}/rgb16.tif", rgb, photometric="rgb")
lo, hi = 100.0, 4000.0
i = np.clip(np.floor(np.clip((rgb.astype(np.float64) - lo) / (hi - lo), 0, 1) * 256), 0, 255).astype(np.uint8)
out = np.full((20, 30, 4), 255, np.uint8)
out[..., :3] = i
np.save(f"{d}/rgb16_want.npy", out)
"#;
    let o = Command::new(python()).arg("-c").arg(script).arg(d).output().expect("python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (size, level) in [("750x500", 1), ("375x250", 2)] {
        let out = d.join(format!("pyr_got{level}.npy"));
        let o = vastview(&[
            "render",
            &p("pyr.ome.tif"),
            "--index",
            "c=1",
            "--size",
            size,
            "-v",
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stderr(&o).contains(&format!("native level {level} stored in the file")), "{}", stderr(&o));
        let (_, want) = read_npy(&d.join(format!("pyr_level{level}.npy")));
        let (_, got) = read_npy(&out);
        assert_eq!(got, want, "level {level}, channel 1");
    }
    let o = vastview(&["info", &p("pyr.ome.tif"), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["channels"][1]["name"], "GFP", "{v}");
    if crate::common::gpu_session().is_none() {
        return;
    }
    let png = d.join("pyr.png");
    let o = vastview(&["render", &p("pyr.ome.tif"), "--size", "375x250", "-v", "-o", png.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("channel c=1 (GFP): magenta"), "{}", stderr(&o));
    let png = d.join("rgb16.png");
    let o = vastview(&["render", &p("rgb16.tif"), "--limits", "100,4000", "-o", png.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (w, _, got) = crate::common::read_png(&png);
    let (_, want) = read_npy(&d.join("rgb16_want.npy"));
    let want: Vec<u8> = want.iter().map(|&v| v as u8).collect();
    assert_eq!(crate::common::compare_rgba(&got, &want, w as usize, 0), None);
}
