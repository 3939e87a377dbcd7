//! Metadata the TIFF family keeps in ImageDescription: ImageJ's `key=value` lines, tifffile's
//! `{"shape": [...]}` and OME-XML (a small hand parser for the elements and attributes vastview uses).

/// ImageJ hyperstack metadata.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageJ {
    pub images: u64,
    pub channels: u64,
    pub slices: u64,
    pub frames: u64,
    pub unit: Option<String>,
    pub spacing: Option<f64>,
    pub finterval: Option<f64>,
}

/// Parses an ImageJ ImageDescription (`ImageJ=1.11a\nimages=24\nchannels=2\n…`).
pub fn imagej(desc: &str) -> Option<ImageJ> {
    if !desc.starts_with("ImageJ=") {
        return None;
    }
    let mut m = ImageJ { images: 1, channels: 1, slices: 1, frames: 1, ..Default::default() };
    for line in desc.lines() {
        let Some((k, v)) = line.split_once('=') else { continue };
        let v = v.trim();
        match k.trim() {
            "images" => m.images = v.parse().unwrap_or(1),
            "channels" => m.channels = v.parse().unwrap_or(1),
            "slices" => m.slices = v.parse().unwrap_or(1),
            "frames" => m.frames = v.parse().unwrap_or(1),
            "unit" => m.unit = Some(v.replace("\\u00B5", "µ")).filter(|u| !u.is_empty()),
            "spacing" => m.spacing = v.parse().ok(),
            "finterval" => m.finterval = v.parse().ok(),
            _ => {}
        }
    }
    Some(m)
}

/// tifffile's shaped-series description `{"shape": [4, 3, 64, 64], ...}`: the shape.
pub fn shaped(desc: &str) -> Option<Vec<u64>> {
    let t = desc.trim_start();
    if !t.starts_with('{') {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(t.trim_end_matches('\0')).ok()?;
    v.get("shape")?.as_array()?.iter().map(|d| d.as_u64()).collect()
}

/// One XML start (or empty-element) tag: its local name (namespace prefix dropped) and attributes.
#[derive(Debug, Clone)]
pub struct Tag {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub closing: bool,
    pub empty: bool,
}

impl Tag {
    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attrs.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }
}

fn local(name: &str) -> String {
    name.rsplit(':').next().unwrap_or(name).to_string()
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

/// The tags of an XML text in order (comments, processing instructions and text skipped).
pub fn tags(xml: &str) -> Vec<Tag> {
    let b = xml.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(p) = xml.get(i..).and_then(|s| s.find('<')) {
        i += p + 1;
        if xml[i..].starts_with("!--") {
            i = xml[i..].find("-->").map_or(b.len(), |e| i + e + 3);
            continue;
        }
        if xml[i..].starts_with('?') || xml[i..].starts_with('!') {
            i = xml[i..].find('>').map_or(b.len(), |e| i + e + 1);
            continue;
        }
        let closing = xml[i..].starts_with('/');
        if closing {
            i += 1;
        }
        let ns = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' && b[i] != b'/' {
            i += 1;
        }
        let name = local(&xml[ns..i]);
        let mut attrs = Vec::new();
        let mut empty = false;
        loop {
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            match b.get(i) {
                None => break,
                Some(b'>') => {
                    i += 1;
                    break;
                }
                Some(b'/') => {
                    empty = true;
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let ks = i;
            while i < b.len() && b[i] != b'=' && b[i] != b'>' && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            let key = local(&xml[ks..i]);
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if b.get(i) != Some(&b'=') {
                continue;
            }
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let Some(&q) = b.get(i).filter(|&&q| q == b'"' || q == b'\'') else { break };
            i += 1;
            let vs = i;
            while i < b.len() && b[i] != q {
                i += 1;
            }
            attrs.push((key, unescape(&xml[vs..i.min(b.len())])));
            i += 1;
        }
        out.push(Tag { name, attrs, closing, empty });
    }
    out
}

/// An OME channel: name and colour (`#rrggbbaa`).
#[derive(Debug, Clone, PartialEq)]
pub struct OmeChannel {
    pub name: Option<String>,
    pub color: Option<String>,
    pub samples: u64,
}

/// One OME `Image` (a series): its sizes, dimension order, physical sizes and where its planes are.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OmeImage {
    pub name: Option<String>,
    pub order: String,
    pub size: [u64; 5],
    /// (x, y, z) physical sizes and units.
    pub physical: [(Option<f64>, Option<String>); 3],
    pub time_increment: Option<(f64, Option<String>)>,
    pub channels: Vec<OmeChannel>,
    /// The first IFD of the image's planes (the smallest `TiffData IFD`).
    pub first_ifd: u64,
    pub planes_listed: Option<u64>,
}

impl OmeImage {
    /// Size of axis `a` (one of `XYZCT`).
    pub fn size_of(&self, a: char) -> u64 {
        match a {
            'X' => self.size[0],
            'Y' => self.size[1],
            'Z' => self.size[2],
            'C' => self.size[3],
            'T' => self.size[4],
            _ => 1,
        }
    }
}

/// OME's signed 32-bit RGBA colour as `#rrggbbaa`.
fn ome_color(v: &str) -> Option<String> {
    let n: i64 = v.trim().parse().ok()?;
    Some(format!("#{:08x}", n as u32))
}

/// The `Image` elements of an OME-XML document.
pub fn ome(xml: &str) -> Vec<OmeImage> {
    let mut out = Vec::new();
    let mut cur: Option<OmeImage> = None;
    for t in tags(xml) {
        match (t.name.as_str(), t.closing) {
            ("Image", false) => {
                cur = Some(OmeImage { name: t.attr("Name").map(String::from), ..Default::default() });
                if t.empty {
                    out.extend(cur.take());
                }
            }
            ("Image", true) => out.extend(cur.take()),
            ("Pixels", false) => {
                if let Some(im) = cur.as_mut() {
                    im.order = t.attr("DimensionOrder").unwrap_or("XYZCT").to_ascii_uppercase();
                    for (k, a) in ["SizeX", "SizeY", "SizeZ", "SizeC", "SizeT"].iter().enumerate() {
                        im.size[k] = t.attr(a).and_then(|v| v.trim().parse().ok()).unwrap_or(1).max(1);
                    }
                    for (k, a) in ["X", "Y", "Z"].iter().enumerate() {
                        let v = t.attr(&format!("PhysicalSize{a}")).and_then(|v| v.trim().parse().ok());
                        let u = t.attr(&format!("PhysicalSize{a}Unit")).map(String::from);
                        im.physical[k] = (v, u.or_else(|| v.map(|_| "µm".to_string())));
                    }
                    if let Some(v) = t.attr("TimeIncrement").and_then(|v| v.trim().parse().ok()) {
                        im.time_increment =
                            Some((v, t.attr("TimeIncrementUnit").map(String::from).or(Some("s".into()))));
                    }
                }
            }
            ("Channel", false) => {
                if let Some(im) = cur.as_mut() {
                    im.channels.push(OmeChannel {
                        name: t.attr("Name").map(String::from),
                        color: t.attr("Color").and_then(ome_color),
                        samples: t.attr("SamplesPerPixel").and_then(|v| v.trim().parse().ok()).unwrap_or(1).max(1),
                    });
                }
            }
            ("TiffData", false) => {
                if let Some(im) = cur.as_mut() {
                    let ifd = t.attr("IFD").and_then(|v| v.trim().parse().ok()).unwrap_or(0);
                    let n: Option<u64> = t.attr("PlaneCount").and_then(|v| v.trim().parse().ok());
                    im.first_ifd = if im.planes_listed.is_none() { ifd } else { im.first_ifd.min(ifd) };
                    im.planes_listed = Some(im.planes_listed.unwrap_or(0).saturating_add(n.unwrap_or(1)));
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_imagej_shaped_and_ome() {
        let m =
            imagej("ImageJ=1.11a\nimages=24\nchannels=2\nslices=3\nframes=4\nhyperstack=true\nunit=micron\n").unwrap();
        assert_eq!((m.images, m.channels, m.slices, m.frames), (24, 2, 3, 4));
        assert_eq!(shaped("{\"shape\": [4, 3, 64, 64]}"), Some(vec![4, 3, 64, 64]));
        let x = r#"<?xml version="1.0"?><OME xmlns="x"><Image ID="Image:0" Name="a"><Pixels DimensionOrder="XYCZT" SizeX="64" SizeY="32" SizeC="2" SizeZ="1" SizeT="3" PhysicalSizeX="0.5" Type="uint16"><Channel ID="c0" Name="DAPI" Color="-16776961" SamplesPerPixel="1"/><Channel Name="GFP"/><TiffData IFD="0" PlaneCount="6"/></Pixels></Image><ome:Image Name="b"><ome:Pixels SizeX="8" SizeY="8"><ome:TiffData IFD="6"/></ome:Pixels></ome:Image></OME>"#;
        let v = ome(x);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].size, [64, 32, 1, 2, 3]);
        assert_eq!(v[0].physical[0], (Some(0.5), Some("µm".into())));
        assert_eq!(v[0].channels[0].color.as_deref(), Some("#ff0000ff"));
        assert_eq!(v[0].planes_listed, Some(6));
        assert_eq!(v[1].first_ifd, 6);
    }
}
