//! Channel composites: each channel of a channel axis drawn through its own black-to-colour ramp (or any
//! colormap) and limits, the channels added together (saturating), as fluorescence viewers show them.

use super::Colormap;

/// The colours channels get by default, in order (OME channel colours, when a file has them, come first).
pub const DEFAULT_COLORS: [(&str, [u8; 3]); 8] = [
    ("green", [0, 255, 0]),
    ("magenta", [255, 0, 255]),
    ("cyan", [0, 255, 255]),
    ("yellow", [255, 255, 0]),
    ("red", [255, 0, 0]),
    ("blue", [0, 0, 255]),
    ("orange", [255, 128, 0]),
    ("white", [255, 255, 255]),
];

/// At most this many channels are blended.
pub const MAX_CHANNELS: usize = 8;

/// A linear ramp from black to `rgb` (value 0 → black, 255 → the colour): the additive channel colormap.
pub fn ramp(name: &str, rgb: [u8; 3]) -> Colormap {
    let mut table = [[0u8, 0, 0, 255]; 256];
    for (i, e) in table.iter_mut().enumerate() {
        for k in 0..3 {
            // Exact integer rounding of rgb·i/255.
            e[k] = ((u32::from(rgb[k]) * i as u32 + 127) / 255) as u8;
        }
    }
    Colormap { name: name.to_string(), table }
}

/// A channel ramp by colour name (`green`, `magenta`, …) or `#rrggbb`; `None` for anything else.
pub fn ramp_named(spec: &str) -> Option<Colormap> {
    if let Some((_, rgb)) = DEFAULT_COLORS.iter().find(|(n, _)| n.eq_ignore_ascii_case(spec)) {
        return Some(ramp(spec, *rgb));
    }
    let hex = spec.strip_prefix('#').filter(|h| h.len() == 6 && h.chars().all(|c| c.is_ascii_hexdigit()))?;
    let v = u32::from_str_radix(hex, 16).ok()?;
    Some(ramp(spec, [(v >> 16) as u8, (v >> 8) as u8, v as u8]))
}

/// Adds `src` (RGBA8) onto `dst`, saturating per component: additive blending of one more channel.
pub fn add_onto(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = d.saturating_add(*s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramps_run_from_black_to_the_colour() {
        let g = ramp_named("green").unwrap();
        assert_eq!(g.table[0], [0, 0, 0, 255]);
        assert_eq!(g.table[255], [0, 255, 0, 255]);
        assert_eq!(g.table[128], [0, 128, 0, 255]);
        let c = ramp_named("#ff8000").unwrap();
        assert_eq!(c.table[255], [255, 128, 0, 255]);
        assert!(ramp_named("viridis").is_none() && ramp_named("#ff80").is_none());
        let mut a = vec![200u8, 10, 0, 255];
        add_onto(&mut a, &[100, 10, 5, 255]);
        assert_eq!(a, [255, 20, 5, 255]);
    }
}
