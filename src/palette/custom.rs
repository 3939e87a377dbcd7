//! Colormaps the user brings: a `.txt`/`.csv` of RGB rows, a ParaView colormap `.json`, or a list of colours
//! (`#000000,#ff0000,#ffff00`, interpolated in Oklab). Every result is a 256-entry table; values are rounded.

use std::path::Path;

use super::{Colormap, SpecError};

/// Colormap files are small: anything bigger is not one.
const MAX_FILE: u64 = 16 << 20;

/// The file a spec names (`FILE` or `FILE.json:NAME`), with the map name of the second form, if it exists.
pub(super) fn file_of(spec: &str) -> Option<(&Path, Option<&str>)> {
    if std::fs::metadata(spec).is_ok() {
        return Some((Path::new(spec), None));
    }
    let (f, name) = spec.rsplit_once(':')?;
    (f.to_ascii_lowercase().ends_with(".json") && std::fs::metadata(f).is_ok()).then(|| (Path::new(f), Some(name)))
}

/// A colormap from a file or a colour list; `Unknown` when `spec` is neither (and does not look like a path).
pub(super) fn load(spec: &str) -> Result<Colormap, SpecError> {
    if let Some((path, name)) = file_of(spec) {
        let err = |msg: String| SpecError::File(path.to_path_buf(), msg);
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        if !meta.is_file() {
            return Err(err("not a regular file".into()));
        }
        if meta.len() > MAX_FILE {
            return Err(err(format!("{} bytes: too big for a colormap (at most {MAX_FILE})", meta.len())));
        }
        let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|_| err("not UTF-8 text".into()))?;
        let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let table = if is_json { paraview(&text, name) } else { rows(&text) }.map_err(err)?;
        return Ok(Colormap { name: spec.to_string(), table });
    }
    if spec.contains(',') || spec.starts_with('#') {
        let table = list(spec).map_err(SpecError::List)?;
        return Ok(Colormap { name: spec.to_string(), table });
    }
    let ext = Path::new(spec).extension().map(|e| e.to_ascii_lowercase());
    if spec.contains('/') || ext.is_some_and(|e| e == "txt" || e == "csv" || e == "json") {
        return Err(SpecError::File(spec.into(), "no such file".into()));
    }
    Err(SpecError::Unknown)
}

/// `#rgb`, `#rrggbb` (or `rrggbb`; `#rrggbbaa`, alpha ignored) as 0..1 components.
fn hex(s: &str) -> Option<[f64; 3]> {
    let h = s.strip_prefix('#').unwrap_or(s);
    if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let v = |i: usize, n: usize| u8::from_str_radix(&h[i..i + n], 16).ok().map(f64::from);
    match h.len() {
        3 if s.starts_with('#') => Some([v(0, 1)? * 17.0 / 255.0, v(1, 1)? * 17.0 / 255.0, v(2, 1)? * 17.0 / 255.0]),
        6 | 8 => Some([v(0, 2)? / 255.0, v(2, 2)? / 255.0, v(4, 2)? / 255.0]),
        _ => None,
    }
}

fn to_u8(c: [f64; 3]) -> [u8; 4] {
    let q = |v: f64| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    [q(c[0]), q(c[1]), q(c[2]), 255]
}

/// 256 entries from colours at evenly spaced positions (entry i at i/255), each segment interpolated by `mix`.
fn spread(colors: &[[f64; 3]], mix: impl Fn([f64; 3], [f64; 3], f64) -> [f64; 3]) -> [[u8; 4]; 256] {
    let mut table = [[0u8, 0, 0, 255]; 256];
    let n = colors.len();
    for (i, e) in table.iter_mut().enumerate() {
        let x = i as f64 / 255.0 * (n - 1) as f64;
        let k = (x.floor() as usize).min(n - 2);
        *e = to_u8(mix(colors[k], colors[k + 1], x - k as f64));
    }
    table
}

fn lerp(a: [f64; 3], b: [f64; 3], s: f64) -> [f64; 3] {
    [a[0] + (b[0] - a[0]) * s, a[1] + (b[1] - a[1]) * s, a[2] + (b[2] - a[2]) * s]
}

/// Rows of `R G B` (or `R,G,B`, `R;G;B`; a 4th value, alpha, is ignored), or hex colours one per line. Values are
/// 0..1 floats, or 0..255 when any value is above 1 (hex rows always). 256 rows are the table; other counts are
/// spread over it, interpolated linearly in the given (sRGB) values as matplotlib's `from_list` does. Blank lines,
/// `#`/`//` comments and one header line before the first row are skipped.
fn rows(text: &str) -> Result<[[u8; 4]; 256], String> {
    let mut rows = Vec::new();
    let (mut hexes, mut nums, mut header, mut max) = (false, false, false, 0f64);
    for (i, line) in text.lines().enumerate() {
        let l = line.trim().trim_start_matches('\u{feff}');
        if l.is_empty() || l.starts_with("//") {
            continue;
        }
        if let Some(c) = hex(l) {
            rows.push(c.map(|v| v * 255.0));
            hexes = true;
            continue;
        }
        if l.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> =
            l.split(|c: char| c == ',' || c == ';' || c.is_whitespace()).filter(|f| !f.is_empty()).collect();
        let vals: Option<Vec<f64>> = fields.iter().map(|f| f.parse::<f64>().ok()).collect();
        let shown: String = l.chars().take(40).collect();
        match vals {
            None if rows.is_empty() && !header => header = true,
            None => return Err(format!("line {}: not a row of numbers: '{shown}'", i + 1)),
            Some(v) if v.len() == 3 || v.len() == 4 => {
                if let Some(bad) = v.iter().find(|x| !x.is_finite() || **x < 0.0) {
                    return Err(format!("line {}: value {bad} (want 0..1 or 0..255)", i + 1));
                }
                max = v[..3].iter().fold(max, |m, &x| m.max(x));
                rows.push([v[0], v[1], v[2]]);
                nums = true;
            }
            Some(v) => return Err(format!("line {}: {} values (want R G B)", i + 1, v.len())),
        }
    }
    if hexes && nums {
        return Err("mixes hex colours and rows of numbers".into());
    }
    if rows.len() < 2 {
        return Err(format!("{} colour rows (at least 2 needed)", rows.len()));
    }
    let scale = if hexes || max > 1.0 { 255.0 } else { 1.0 };
    if max > 255.0 {
        return Err(format!("value {max} above 255"));
    }
    let colors: Vec<[f64; 3]> = rows.iter().map(|r| r.map(|v| v / scale)).collect();
    Ok(spread(&colors, lerp))
}

/// `#rrggbb,#rrggbb,...`: evenly spaced, interpolated in Oklab (Björn Ottosson's, from linear sRGB).
fn list(spec: &str) -> Result<[[u8; 4]; 256], String> {
    let colors: Vec<[f64; 3]> = spec
        .split(',')
        .map(|c| {
            hex(c.trim())
                .filter(|_| c.trim().starts_with('#'))
                .ok_or_else(|| format!("'{}' is not a #rrggbb colour", c.trim()))
        })
        .collect::<Result<_, _>>()?;
    if colors.len() < 2 {
        return Err("a colour list needs at least 2 colours".into());
    }
    Ok(spread(&colors, |a, b, s| oklab_to_srgb(lerp(srgb_to_oklab(a), srgb_to_oklab(b), s))))
}

fn srgb_decode(c: f64) -> f64 {
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

fn srgb_encode(c: f64) -> f64 {
    if c <= 0.0031308 {
        12.92 * c
    } else {
        1.055 * c.powf(1.0 / 2.4) - 0.055
    }
}

fn srgb_to_oklab(c: [f64; 3]) -> [f64; 3] {
    let [r, g, b] = c.map(srgb_decode);
    let l = (0.4122214708 * r + 0.5363325363 * g + 0.0514459929 * b).cbrt();
    let m = (0.2119034982 * r + 0.6806995451 * g + 0.1073969566 * b).cbrt();
    let s = (0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * b).cbrt();
    [
        0.2104542553 * l + 0.7936177850 * m - 0.0040720468 * s,
        1.9779984951 * l - 2.4285922050 * m + 0.4505937099 * s,
        0.0259040371 * l + 0.7827717662 * m - 0.8086757660 * s,
    ]
}

fn oklab_to_srgb(c: [f64; 3]) -> [f64; 3] {
    let [ll, a, b] = c;
    let l = (ll + 0.3963377774 * a + 0.2158037573 * b).powi(3);
    let m = (ll - 0.1055613458 * a - 0.0638541728 * b).powi(3);
    let s = (ll - 0.0894841775 * a - 1.2914855480 * b).powi(3);
    [
        4.0767416621 * l - 3.3077115913 * m + 0.2309699292 * s,
        -1.2684380046 * l + 2.6097574011 * m - 0.3413193965 * s,
        -0.0041960863 * l - 0.7034186147 * m + 1.7076147010 * s,
    ]
    .map(|v| srgb_encode(v.clamp(0.0, 1.0)))
}

/// ParaView's colormap JSON: a list of presets (or one), each with `Name`, `RGBPoints` `[x, r, g, b, ...]` (0..1)
/// and `ColorSpace`: `RGB` (the default), `Lab`/`CIELAB` or `Diverging`, interpolated as VTK's
/// vtkColorTransferFunction does, sampled at 256 evenly spaced x from the first point to the last.
fn paraview(text: &str, name: Option<&str>) -> Result<[[u8; 4]; 256], String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let presets: Vec<&serde_json::Value> = match &v {
        serde_json::Value::Array(a) => a.iter().collect(),
        o => vec![o],
    };
    let with_points: Vec<&serde_json::Value> =
        presets.iter().copied().filter(|p| p.get("RGBPoints").is_some()).collect();
    let preset = match name {
        Some(n) => with_points.iter().find(|p| p.get("Name").and_then(|x| x.as_str()) == Some(n)).ok_or_else(|| {
            let names: Vec<&str> = with_points.iter().filter_map(|p| p.get("Name")?.as_str()).take(10).collect();
            format!("no preset named '{n}' with RGBPoints (there are: {})", names.join(", "))
        })?,
        None => with_points.first().ok_or("no preset with RGBPoints (IndexedColors presets are not supported)")?,
    };
    let pts: Vec<f64> = preset
        .get("RGBPoints")
        .and_then(|p| p.as_array())
        .ok_or("RGBPoints is not a list")?
        .iter()
        .map(|x| x.as_f64().filter(|f| f.is_finite()))
        .collect::<Option<_>>()
        .ok_or("RGBPoints holds a value that is not a finite number")?;
    if pts.len() < 8 || pts.len() % 4 != 0 {
        return Err(format!("RGBPoints has {} numbers (want x,r,g,b for 2 or more points)", pts.len()));
    }
    let nodes: Vec<(f64, [f64; 3])> = pts.chunks_exact(4).map(|c| (c[0], [c[1], c[2], c[3]])).collect();
    if nodes.windows(2).any(|w| w[1].0 < w[0].0) || nodes[0].0 >= nodes[nodes.len() - 1].0 {
        return Err("RGBPoints x values must increase".into());
    }
    let space = preset.get("ColorSpace").and_then(|s| s.as_str()).unwrap_or("RGB");
    let mix: fn([f64; 3], [f64; 3], f64) -> [f64; 3] = match space.to_ascii_lowercase().as_str() {
        "rgb" => lerp,
        "lab" | "cielab" => |a, b, s| lab_to_rgb(lerp(rgb_to_lab(a), rgb_to_lab(b), s)),
        "diverging" => diverging,
        _ => return Err(format!("ColorSpace '{space}' is not supported (RGB, Lab and Diverging are)")),
    };
    let (x0, x1) = (nodes[0].0, nodes[nodes.len() - 1].0);
    let mut table = [[0u8, 0, 0, 255]; 256];
    for (i, e) in table.iter_mut().enumerate() {
        let x = x0 + (x1 - x0) * i as f64 / 255.0;
        let k = nodes.windows(2).position(|w| x < w[1].0).unwrap_or(nodes.len() - 2);
        let (a, b) = (nodes[k], nodes[k + 1]);
        let s = if b.0 > a.0 { ((x - a.0) / (b.0 - a.0)).clamp(0.0, 1.0) } else { 1.0 };
        *e = to_u8(mix(a.1, b.1, s));
    }
    Ok(table)
}

/// vtkMath::RGBToLab: sRGB -> XYZ (D65) -> CIELAB with VTK's constants.
fn rgb_to_lab(c: [f64; 3]) -> [f64; 3] {
    let [r, g, b] = c.map(srgb_decode);
    let x = (r * 0.4124 + g * 0.3576 + b * 0.1805) / 0.9505;
    let y = r * 0.2126 + g * 0.7152 + b * 0.0722;
    let z = (r * 0.0193 + g * 0.1192 + b * 0.9505) / 1.089;
    let f = |t: f64| if t > 0.008856 { t.cbrt() } else { 7.787 * t + 16.0 / 116.0 };
    let (fx, fy, fz) = (f(x), f(y), f(z));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// vtkMath::LabToRGB: CIELAB -> XYZ -> sRGB, scaled down when a component exceeds 1, negatives clipped.
fn lab_to_rgb(c: [f64; 3]) -> [f64; 3] {
    let fy = (c[0] + 16.0) / 116.0;
    let (fx, fz) = (c[1] / 500.0 + fy, fy - c[2] / 200.0);
    let f = |t: f64| if t * t * t > 0.008856 { t * t * t } else { (t - 16.0 / 116.0) / 7.787 };
    let (x, y, z) = (0.9505 * f(fx), f(fy), 1.089 * f(fz));
    let rgb = [
        x * 3.2406 + y * -1.5372 + z * -0.4986,
        x * -0.9689 + y * 1.8758 + z * 0.0415,
        x * 0.0557 + y * -0.2040 + z * 1.0570,
    ]
    .map(srgb_encode);
    let max = rgb.iter().fold(0f64, |m, &v| m.max(v));
    rgb.map(|v| if max > 1.0 { v / max } else { v }.max(0.0))
}

/// Kenneth Moreland's diverging interpolation in Msh space, as vtkColorTransferFunction's `Diverging` space.
fn diverging(a: [f64; 3], b: [f64; 3], s: f64) -> [f64; 3] {
    use std::f64::consts::PI;
    let msh = |lab: [f64; 3]| {
        let m = (lab[0] * lab[0] + lab[1] * lab[1] + lab[2] * lab[2]).sqrt();
        let s = if m > 0.001 { (lab[0] / m).acos() } else { 0.0 };
        let h = if s > 0.001 { lab[2].atan2(lab[1]) } else { 0.0 };
        [m, s, h]
    };
    let angle_diff = |a1: f64, a2: f64| {
        let mut d = (a1 - a2).abs();
        while d >= 2.0 * PI {
            d -= 2.0 * PI;
        }
        if d > PI {
            2.0 * PI - d
        } else {
            d
        }
    };
    let adjust_hue = |m: [f64; 3], unsat_m: f64| {
        if m[0] >= unsat_m - 0.1 {
            return m[2];
        }
        let spin = m[1] * (unsat_m * unsat_m - m[0] * m[0]).sqrt() / (m[0] * m[1].sin());
        if m[2] > -0.3 * PI {
            m[2] + spin
        } else {
            m[2] - spin
        }
    };
    let (mut m1, mut m2, mut s) = (msh(rgb_to_lab(a)), msh(rgb_to_lab(b)), s);
    if m1[1] > 0.05 && m2[1] > 0.05 && angle_diff(m1[2], m2[2]) > 0.33 * PI {
        let mid = m1[0].max(m2[0]).max(88.0);
        if s < 0.5 {
            m2 = [mid, 0.0, 0.0];
            s *= 2.0;
        } else {
            m1 = [mid, 0.0, 0.0];
            s = 2.0 * s - 1.0;
        }
    }
    if m1[1] < 0.05 && m2[1] > 0.05 {
        m1[2] = adjust_hue(m2, m1[0]);
    } else if m2[1] < 0.05 && m1[1] > 0.05 {
        m2[2] = adjust_hue(m1, m2[0]);
    }
    let [m, sat, h] = lerp(m1, m2, s);
    lab_to_rgb([m * sat.cos(), m * sat.sin() * h.cos(), m * sat.sin() * h.sin()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oklab_round_trips_and_lists_interpolate() {
        for c in [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.2, 0.5, 0.9]] {
            let back = oklab_to_srgb(srgb_to_oklab(c));
            assert!((0..3).all(|k| (back[k] - c[k]).abs() < 1e-6), "{c:?} -> {back:?}");
        }
        let t = list("#000000, #ffffff").unwrap();
        assert_eq!((t[0], t[255]), ([0, 0, 0, 255], [255, 255, 255, 255]));
        assert!(list("#000000").is_err() && list("#000000,red").is_err());
    }

    #[test]
    fn rows_detect_their_scale_and_spread() {
        let ints: String = (0..256).map(|i| format!("{i},{i},{}\n", 255 - i)).collect();
        let t = rows(&ints).unwrap();
        assert!((0..256).all(|i| t[i] == [i as u8, i as u8, 255 - i as u8, 255]));
        let t = rows("r g b\n0 0 0\n1 0.5 1\n").unwrap();
        assert_eq!((t[0], t[255], t[51]), ([0, 0, 0, 255], [255, 128, 255, 255], [51, 26, 51, 255]));
        assert!(rows("0 0 0\n").is_err() && rows("0 0\n1 1\n").is_err() && rows("0 0 0\n300 0 0\n").is_err());
        assert!(rows("0 0 0\nx y z\n").is_err() && rows("#000000\n1 1 1\n").is_err());
    }

    #[test]
    fn paraview_rgb_and_diverging() {
        let j = r#"[{"Name":"bw","ColorSpace":"RGB","RGBPoints":[-1,0,0,0, 1,1,1,1]}]"#;
        let t = paraview(j, None).unwrap();
        assert_eq!((t[0], t[255], t[128]), ([0, 0, 0, 255], [255, 255, 255, 255], [128, 128, 128, 255]));
        // Cool to Warm: the white-ish midpoint of Moreland's map (221, 221, 221) at the centre.
        let cw =
            r#"{"ColorSpace":"Diverging","RGBPoints":[0,0.23137,0.298039,0.752941, 1,0.705882,0.0156863,0.14902]}"#;
        let t = paraview(cw, None).unwrap();
        assert!(t[0][2] > 180 && t[255][0] > 170);
        assert!((0..3).all(|k| t[127][k] > 200 && t[128][k] > 200), "{:?} {:?}", t[127], t[128]);
        assert!(paraview(r#"[{"ColorSpace":"HSV","RGBPoints":[0,0,0,0,1,1,1,1]}]"#, None).is_err());
        assert!(paraview(r#"[{"RGBPoints":[1,0,0,0,0,1,1,1]}]"#, None).is_err());
    }
}
