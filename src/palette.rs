//! Colormaps (exact 256-entry tables generated from matplotlib), scale modes and display settings.

use std::fmt;

/// The tables in `assets/colormaps/`, written by `scripts/gen_colormaps.py` from matplotlib.
const TABLES: &[(&str, &str)] = &[
    ("gray", include_str!("../assets/colormaps/gray.txt")),
    ("viridis", include_str!("../assets/colormaps/viridis.txt")),
    ("magma", include_str!("../assets/colormaps/magma.txt")),
    ("inferno", include_str!("../assets/colormaps/inferno.txt")),
    ("plasma", include_str!("../assets/colormaps/plasma.txt")),
    ("cividis", include_str!("../assets/colormaps/cividis.txt")),
    ("turbo", include_str!("../assets/colormaps/turbo.txt")),
    ("twilight", include_str!("../assets/colormaps/twilight.txt")),
    ("coolwarm", include_str!("../assets/colormaps/coolwarm.txt")),
    ("hot", include_str!("../assets/colormaps/hot.txt")),
    ("RdBu", include_str!("../assets/colormaps/RdBu.txt")),
    ("Greys", include_str!("../assets/colormaps/Greys.txt")),
];

/// A 256-entry RGBA palette.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Colormap {
    pub name: String,
    pub table: [[u8; 4]; 256],
}

impl Colormap {
    /// `by_name`, or the one-line error naming `path`, the unknown name and the known ones.
    pub fn named(path: &std::path::Path, name: &str) -> crate::error::Result<Colormap> {
        Colormap::by_name(name).ok_or_else(|| {
            crate::error::Error::request(
                path,
                format!("unknown colormap '{name}' (known: {})", Colormap::names().join(", ")),
            )
        })
    }

    /// A colormap by matplotlib name; a `_r` suffix reverses it (`viridis_r`). Case-sensitive like
    /// matplotlib, but a unique case-insensitive match is accepted too.
    pub fn by_name(name: &str) -> Option<Colormap> {
        let (base, reversed) = match name.strip_suffix("_r") {
            Some(b) => (b, true),
            None => (name, false),
        };
        let (n, text) = TABLES
            .iter()
            .find(|(n, _)| *n == base)
            .or_else(|| TABLES.iter().find(|(n, _)| n.eq_ignore_ascii_case(base)))?;
        let mut table = [[0u8, 0, 0, 255]; 256];
        let mut lines = text.lines();
        for entry in table.iter_mut() {
            let line = lines.next()?;
            let v = u32::from_str_radix(line.trim(), 16).ok()?;
            *entry = [(v >> 16) as u8, (v >> 8) as u8, v as u8, 255];
        }
        if reversed {
            table.reverse();
        }
        Some(Colormap { name: if reversed { format!("{n}_r") } else { n.to_string() }, table })
    }

    /// Every available name, forward maps first, then the reversed forms.
    pub fn names() -> Vec<String> {
        let fwd = TABLES.iter().map(|(n, _)| n.to_string());
        let rev = TABLES.iter().map(|(n, _)| format!("{n}_r"));
        fwd.chain(rev).collect()
    }

    /// The table as bytes for the palette texture (256 × RGBA8).
    pub fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.table)
    }

    /// The color of normalized value `t` (0..1), picked as matplotlib does: entry floor(t·256), clipped.
    pub fn color(&self, t: f64) -> [u8; 4] {
        self.table[palette_index(t)]
    }
}

/// The palette entry of normalized value `t` (0..1): floor(t·256) clipped to 0..255, matplotlib's rule.
pub fn palette_index(t: f64) -> usize {
    (t * 256.0).floor().clamp(0.0, 255.0) as usize
}

/// The stretch applied after limits: t = (v − lo)/(hi − lo) clipped to 0..1, then one of these.
/// `log` and `asinh` are astropy's LogStretch(a=1000) and AsinhStretch(a=0.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scale {
    #[default]
    Linear,
    Log,
    Sqrt,
    Asinh,
}

impl Scale {
    pub const ALL: [Scale; 4] = [Scale::Linear, Scale::Log, Scale::Sqrt, Scale::Asinh];
    pub fn name(self) -> &'static str {
        match self {
            Scale::Linear => "linear",
            Scale::Log => "log",
            Scale::Sqrt => "sqrt",
            Scale::Asinh => "asinh",
        }
    }
    pub fn parse(s: &str) -> Option<Scale> {
        Scale::ALL.into_iter().find(|m| m.name() == s.to_ascii_lowercase())
    }
    /// The shader's mode number (`shaders/tile.wgsl`).
    pub fn code(self) -> u32 {
        self as u32
    }
    /// The same stretch on the CPU, in f64 (the reference the shader is tested against).
    pub fn apply(self, t: f64) -> f64 {
        match self {
            Scale::Linear => t,
            Scale::Log => (1000.0 * t + 1.0).ln() / 1001f64.ln(),
            Scale::Sqrt => t.sqrt(),
            Scale::Asinh => (t / 0.1).asinh() / 10f64.asinh(),
        }
    }
}

impl fmt::Display for Scale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How scalar data becomes color: everything the fragment shader needs besides the tiles.
#[derive(Debug, Clone, PartialEq)]
pub struct Display {
    pub colormap: Colormap,
    pub lo: f64,
    pub hi: f64,
    pub scale: Scale,
    /// Exponent applied after the scale: t ↦ t^gamma (matplotlib PowerNorm's convention).
    pub gamma: f64,
    /// Color of NaN pixels, RGBA. Default transparent.
    pub nan_color: [u8; 4],
}

impl Display {
    /// The color of value `v`, computed on the CPU exactly as the shader does (in f64).
    pub fn color_of(&self, v: f64) -> [u8; 4] {
        if v.is_nan() {
            return self.nan_color;
        }
        let range = self.hi - self.lo;
        let t = if range == 0.0 { 0.0 } else { ((v - self.lo) / range).clamp(0.0, 1.0) };
        let t = self.scale.apply(t);
        let t = if self.gamma != 1.0 && t > 0.0 { t.powf(self.gamma) } else { t };
        self.colormap.color(t)
    }
}

/// Parses `RRGGBB` or `RRGGBBAA` hex (an optional leading `#`).
pub fn parse_rgba(s: &str) -> Option<[u8; 4]> {
    let s = s.trim().trim_start_matches('#');
    if !(s.len() == 6 || s.len() == 8) || !s.is_ascii() {
        return None;
    }
    let v = u32::from_str_radix(s, 16).ok()?;
    Some(if s.len() == 6 {
        [(v >> 16) as u8, (v >> 8) as u8, v as u8, 255]
    } else {
        [(v >> 24) as u8, (v >> 16) as u8, (v >> 8) as u8, v as u8]
    })
}

/// The note for display flags given with an RGB(A) image, which is drawn as stored (None: no such flag).
pub fn rgb_note(path: &std::path::Path, flags: &[&str]) -> Option<String> {
    (!flags.is_empty()).then(|| {
        format!(
            "{}: {} ignored for RGB(A) images (their colors are drawn as stored)",
            path.display(),
            match flags {
                [one] => format!("{one} is"),
                more => format!("{} are", more.join(", ")),
            }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_loads_and_reverses() {
        for name in Colormap::names() {
            let c = Colormap::by_name(&name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(c.name, name);
        }
        let v = Colormap::by_name("viridis").unwrap();
        let r = Colormap::by_name("viridis_r").unwrap();
        assert_eq!(v.table[0], r.table[255]);
        // matplotlib: viridis(0) = (68, 1, 84), viridis(255) = (253, 231, 36)
        assert_eq!(v.table[0], [68, 1, 84, 255]);
        assert_eq!(v.table[255], [253, 231, 36, 255]);
        assert!(Colormap::by_name("nope").is_none());
    }

    #[test]
    fn picks_entries_like_matplotlib() {
        let g = Colormap::by_name("gray").unwrap();
        assert_eq!(g.color(0.0)[0], 0);
        assert_eq!(g.color(1.0)[0], 255);
        assert_eq!(g.color(0.5)[0], g.table[128][0]);
        assert_eq!(g.color(-3.0)[0], 0);
    }

    #[test]
    fn parses_colors() {
        assert_eq!(parse_rgba("ff000080"), Some([255, 0, 0, 128]));
        assert_eq!(parse_rgba("#00ff00"), Some([0, 255, 0, 255]));
        assert_eq!(parse_rgba("xyz"), None);
    }
}
