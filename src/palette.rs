//! Colormaps (exact 256-entry tables generated from matplotlib and colorcet, or read from a file or a colour list),
//! scale modes and display settings.

use std::fmt;

pub mod composite;
mod custom;

/// The tables `scripts/gen_colormaps.py` writes from matplotlib and colorcet: 256 RGB8 rows (768 bytes) each.
const TABLES: &[u8] = include_bytes!("../assets/colormaps/tables.bin");
/// One line per name: NAME, table index, source (matplotlib|colorcet), 1 when the window's menu lists it.
const NAMES: &str = include_str!("../assets/colormaps/names.tsv");

/// One named table of `NAMES`.
#[derive(Debug, Clone, Copy)]
struct Entry {
    name: &'static str,
    table: usize,
    source: &'static str,
    menu: bool,
}

fn entries() -> &'static [Entry] {
    static E: std::sync::OnceLock<Vec<Entry>> = std::sync::OnceLock::new();
    E.get_or_init(|| {
        NAMES
            .lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                let name = f.next()?;
                let table = f.next()?.parse().ok().filter(|&i: &usize| (i + 1) * 768 <= TABLES.len())?;
                Some(Entry { name, table, source: f.next()?, menu: f.next()? == "1" })
            })
            .collect()
    })
}

/// A 256-entry RGBA palette.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Colormap {
    pub name: String,
    pub table: [[u8; 4]; 256],
}

impl Colormap {
    /// `resolve`, or the one-line error: naming the colormap file and its problem, or naming `path` (the data the
    /// colormap was asked for) and the unknown name.
    pub fn named(path: &std::path::Path, spec: &str) -> crate::error::Result<Colormap> {
        Colormap::resolve(spec).map_err(|e| match e {
            SpecError::File(f, msg) => crate::error::Error::bad_input(f, format!("colormap file: {msg}")),
            SpecError::List(msg) => crate::error::Error::request(path, format!("colormap '{spec}': {msg}")),
            SpecError::Unknown => {
                let like: Vec<String> = Colormap::names()
                    .into_iter()
                    .filter(|n| n.to_ascii_lowercase().contains(&spec.to_ascii_lowercase()))
                    .take(6)
                    .collect();
                let like = if like.is_empty() { String::new() } else { format!("; similar: {}", like.join(", ")) };
                crate::error::Error::request(
                    path,
                    format!(
                        "unknown colormap '{spec}' (`vastview colormaps` lists the {} names; a .txt/.csv/.json \
                         file or a list of #rrggbb colours works too{like})",
                        Colormap::names().len()
                    ),
                )
            }
        })
    }

    /// A colormap from a name (`by_name`), a file (`.txt`/`.csv` rows of RGB, ParaView `.json`; `FILE.json:NAME`
    /// picks one map of several) or a comma-separated list of `#rrggbb` colours interpolated in Oklab. A `_r`
    /// suffix reverses any of them.
    pub fn resolve(spec: &str) -> Result<Colormap, SpecError> {
        if let Some(c) = Colormap::by_name(spec) {
            return Ok(c);
        }
        // A channel colour (`green`, `magenta`, `#ff8000`): a black-to-colour ramp, for composites.
        if let Some(c) = composite::ramp_named(spec) {
            return Ok(c);
        }
        if let Some(base) =
            spec.strip_suffix("_r").filter(|b| custom::file_of(spec).is_none() && custom::file_of(b).is_some())
        {
            let mut c = custom::load(base)?;
            c.table.reverse();
            c.name = spec.to_string();
            return Ok(c);
        }
        custom::load(spec)
    }

    /// A built-in colormap by matplotlib (or colorcet) name; a `_r` suffix reverses it (`viridis_r`).
    /// Case-sensitive like matplotlib, but a unique case-insensitive match is accepted too.
    pub fn by_name(name: &str) -> Option<Colormap> {
        Colormap::exact(name).or_else(|| {
            let mut like = Colormap::names().into_iter().filter(|n| n.eq_ignore_ascii_case(name));
            match (like.next(), like.next()) {
                (Some(n), None) => Colormap::exact(&n),
                _ => None,
            }
        })
    }

    fn exact(name: &str) -> Option<Colormap> {
        let find = |n: &str| entries().iter().find(|e| e.name == n);
        let (e, reversed) = match find(name) {
            Some(e) => (e, false),
            None => (find(name.strip_suffix("_r")?)?, true),
        };
        let mut table = [[0u8, 0, 0, 255]; 256];
        for (entry, rgb) in table.iter_mut().zip(TABLES[e.table * 768..(e.table + 1) * 768].chunks_exact(3)) {
            *entry = [rgb[0], rgb[1], rgb[2], 255];
        }
        if reversed {
            table.reverse();
        }
        Some(Colormap { name: name.to_string(), table })
    }

    /// Every built-in name: the forward maps (the twelve common ones first, then matplotlib's, then colorcet's),
    /// then the reversed `_r` forms.
    pub fn names() -> Vec<String> {
        let fwd: Vec<&Entry> = entries().iter().filter(|e| !e.name.ends_with("_r")).collect();
        let rev = fwd.iter().map(|e| format!("{}_r", e.name));
        fwd.iter().map(|e| e.name.to_string()).chain(rev).collect()
    }

    /// The forward maps the window's menu offers, in order: the twelve common ones, matplotlib's others, one name
    /// per colorcet table.
    pub fn menu_names() -> Vec<String> {
        entries().iter().filter(|e| e.menu).map(|e| e.name.to_string()).collect()
    }

    /// `vastview colormaps`: the forward names by source, each list on one wrapped paragraph.
    pub fn listing() -> String {
        let mut text = String::new();
        for (source, title) in [("matplotlib", "matplotlib"), ("colorcet", "colorcet (CC-BY 4.0; also as cet_NAME)")] {
            let names: Vec<&str> = entries()
                .iter()
                .filter(|e| e.source == source && !e.name.ends_with("_r") && !e.name.starts_with("cet_"))
                .map(|e| e.name)
                .collect();
            text.push_str(&format!("{title}, {} maps:\n", names.len()));
            let mut line = String::new();
            for n in names {
                if !line.is_empty() && line.len() + n.len() + 1 > 100 {
                    text.push_str(&format!("  {line}\n"));
                    line.clear();
                }
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(n);
            }
            text.push_str(&format!("  {line}\n"));
        }
        text.push_str(
            "Add _r to reverse any of them. Also: --colormap FILE.txt|FILE.csv (rows of RGB, 0..1 or 0..255), \
             FILE.json (ParaView), or '#rrggbb,#rrggbb,...' (interpolated in Oklab).\n",
        );
        text
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

/// Why a colormap spec could not be used.
#[derive(Debug, Clone, PartialEq)]
pub enum SpecError {
    /// Neither a built-in name, a file nor a colour list.
    Unknown,
    /// The colormap file and what is wrong with it.
    File(std::path::PathBuf, String),
    /// A malformed colour list.
    List(String),
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
