//! The library API: palette and contrast changes upload no tile bytes, the colormap tables are
//! matplotlib's, and a file that shrinks under its memory map gives an error instead of SIGBUS.

use vastview::headless::{self, LimitsSpec, RenderSpec};
use vastview::palette::{Colormap, Scale};
use vastview::source::{self, OpenSpec, RegionBuf};

use crate::common::*;

#[test]
fn colormap_tables_are_matplotlibs() {
    let (_, m) = oracle();
    let maps = m["colormaps"].as_object().expect("colormaps");
    assert!(maps.len() >= 18);
    for (name, table) in maps {
        let c = Colormap::by_name(name).unwrap_or_else(|| panic!("{name} missing"));
        for (i, rgb) in table.as_array().expect("table").iter().enumerate() {
            for k in 0..3 {
                let want = rgb[k].as_i64().unwrap_or(-1);
                let got = i64::from(c.table[i][k]);
                assert!((got - want).abs() <= 2, "{name}[{i}][{k}]: {got} vs matplotlib {want}");
            }
        }
    }
}

#[test]
fn palette_limits_scale_and_gamma_changes_upload_no_tiles() {
    let Some(mut session) = gpu_session() else { return };
    let (dir, m) = oracle();
    let src = source::open(&OpenSpec { path: dir.join("cmap_data.npy"), ..Default::default() }).expect("open");
    let mut spec = RenderSpec { limits: LimitsSpec::Explicit(-5.0, 11.0), ..Default::default() };
    let mut first_tile_bytes = None;
    let mut last_lut = session.tiles.stats.lut_bytes;
    let mut checked = 0;
    for case in m["render"].as_array().expect("cases") {
        let name = case["name"].as_str().unwrap_or_default();
        let Some(cmap) = name.strip_prefix("cmap_") else { continue };
        spec.colormap = cmap.to_string();
        let plan = headless::plan(src.as_ref(), &spec).expect("plan");
        let got = session.render_rgba(src.as_ref(), &plan).expect("render");
        let (_, want) = read_npy(&dir.join(case["expected"].as_str().unwrap_or_default()));
        let want: Vec<u8> = want.iter().map(|&v| v as u8).collect();
        assert_eq!(compare_rgba(&got, &want, plan.out_w as usize, 2), None, "{name}");
        let s = session.tiles.stats;
        match first_tile_bytes {
            None => first_tile_bytes = Some(s.tile_bytes),
            Some(b) => assert_eq!(s.tile_bytes, b, "{name}: a palette change uploaded tile bytes"),
        }
        assert!(s.lut_bytes - last_lut <= 1024, "{name}: palette upload {} bytes", s.lut_bytes - last_lut);
        last_lut = s.lut_bytes;
        checked += 1;
    }
    assert_eq!(checked, 24);
    // Limits, scale and gamma: uniforms only.
    let before = session.tiles.stats;
    let mut prev = Vec::new();
    for (lim, scale, gamma) in
        [((0.0, 5.0), Scale::Log, 1.0), ((-5.0, 0.0), Scale::Sqrt, 2.0), ((1.0, 2.0), Scale::Asinh, 0.5)]
    {
        spec.limits = LimitsSpec::Explicit(lim.0, lim.1);
        spec.scale = scale;
        spec.gamma = gamma;
        let plan = headless::plan(src.as_ref(), &spec).expect("plan");
        let img = session.render_rgba(src.as_ref(), &plan).expect("render");
        assert_ne!(img, prev, "the change had no effect");
        prev = img;
    }
    let after = session.tiles.stats;
    assert_eq!(after.tile_bytes, before.tile_bytes);
    assert_eq!(after.tiles, before.tiles);
    assert_eq!(after.lut_bytes, before.lut_bytes);
    // Each render wrote at most the 48-byte uniform and one 48-byte instance per tile.
    assert!(after.uniform_bytes - before.uniform_bytes <= 3 * (48 + 48), "{after:?}");
}

#[test]
fn tiles_upload_in_the_dtypes_own_width() {
    let Some(mut session) = gpu_session() else { return };
    let (dir, _) = oracle();
    // 40 x 70 images of each dtype: bytes per texel 1, 2 or 4 (64-bit as a 4-byte residual).
    for (dt, bpp) in [
        ("uint8", 1),
        ("int8", 1),
        ("bool", 1),
        ("uint16", 2),
        ("int16", 2),
        ("float16", 2),
        ("float32", 4),
        ("int32", 4),
        ("float64", 4),
        ("uint64", 4),
    ] {
        let src =
            source::open(&OpenSpec { path: dir.join(format!("d_{dt}.npy")), ..Default::default() }).expect("open");
        let spec = RenderSpec { limits: LimitsSpec::Explicit(0.0, 1.0), ..Default::default() };
        let plan = headless::plan(src.as_ref(), &spec).expect("plan");
        let before = session.tiles.stats.tile_bytes;
        session.render_rgba(src.as_ref(), &plan).expect("render");
        assert_eq!(session.tiles.stats.tile_bytes - before, 40 * 70 * bpp, "{dt}");
    }
}

#[test]
fn gpu_tiles_stay_within_their_budget() {
    if gpu_session().is_none() {
        return;
    }
    let mut session = vastview::headless::Session::with_budget(1 << 20).expect("session");
    let (dir, _) = oracle();
    let src = source::open(&OpenSpec { path: dir.join("big.npy"), ..Default::default() }).expect("open");
    let spec = RenderSpec { limits: LimitsSpec::Explicit(0.0, 1.0), ..Default::default() };
    let plan = headless::plan(src.as_ref(), &spec).expect("plan");
    session.render_rgba(src.as_ref(), &plan).expect("render");
    // Within one frame the chunk's tiles are pinned; the next frame brings the store back to budget.
    session.tiles.begin_frame();
    let (used, budget) = session.tiles.resident_bytes();
    assert!(used <= budget, "{used} > {budget}");
    // 600 x 2100 f32 is 5 MB of tiles: most were evicted along the way.
    assert!(session.tiles.stats.tile_bytes >= 600 * 2100 * 4);
}

#[test]
fn a_file_that_shrinks_while_mapped_is_an_error_not_a_crash() {
    let dir = std::env::temp_dir().join(format!("vastview-shrink-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let p = dir.join("shrink.npy");
    let data = vec![0u8; 1 << 20];
    let mut bytes = headless::npy_header("<f4", &[512, 512]);
    bytes.extend_from_slice(&data);
    std::fs::write(&p, &bytes).expect("write");
    let src = source::open(&OpenSpec { path: p.clone(), ..Default::default() }).expect("open");
    let f = std::fs::OpenOptions::new().write(true).open(&p).expect("open rw");
    f.set_len(4096).expect("truncate");
    let mut buf = RegionBuf::default();
    let r = src.read_region(0, vastview::geom::Rect::new(0, 300, 512, 512), &mut buf);
    let e = r.expect_err("reading past the new end must fail");
    assert!(e.to_string().contains("shrank"), "{e}");
    assert!(e.to_string().contains("shrink.npy"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
