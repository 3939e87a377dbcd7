//! What `info` says about an array source, as text lines and as a stable JSON object: format and version,
//! shape, axes (names, units, scales), dtype and layout, the value scaling, and the format's own details.

use crate::source::SourceInfo;

/// `info` as text lines.
pub fn info_text(info: &SourceInfo) -> String {
    let im = info.image;
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<14}{v}\n"));
    line("path:", info.path.display().to_string());
    line("format:", info.format.name());
    if let Some(m) = &info.member {
        line("part:", m.clone());
    }
    line("shape:", crate::source::fmt_shape(&info.shape));
    let axes: Vec<String> = info
        .axes
        .iter()
        .map(|a| {
            let mut t = format!("{}={}", a.name, a.size);
            if let Some(c) = a.coords.as_ref().filter(|c| !c.is_empty()) {
                let (first, last) = (c[0], c[c.len() - 1]);
                let u = a.unit.as_deref().map_or(String::new(), |u| format!(" {u}"));
                t.push_str(&format!(
                    " ({} … {}{u})",
                    crate::source::axes::coord_str(first),
                    crate::source::axes::coord_str(last)
                ));
                return t;
            }
            match (a.scale, &a.unit) {
                (Some(sc), Some(u)) => t.push_str(&format!(" ({} {u})", crate::numfmt::format_f64(sc))),
                (Some(sc), None) => t.push_str(&format!(" ({})", crate::numfmt::format_f64(sc))),
                (None, Some(u)) => t.push_str(&format!(" ({u})")),
                (None, None) => {}
            }
            t
        })
        .collect();
    line("axes:", axes.join(", "));
    line("dtype:", info.dtype.name().to_string());
    if let Some(sc) = info.scaling {
        let blank = sc.blank.map_or(String::new(), |b| format!(", blank {b}"));
        line(
            "scaling:",
            format!(
                "physical = stored x {} + {} ({}{blank})",
                crate::numfmt::format_f64(sc.scale),
                crate::numfmt::format_f64(sc.offset),
                sc.physical.name()
            ),
        );
    }
    line("byte order:", info.endian.name().to_string());
    line("memory order:", info.order.name().to_string());
    line("file size:", format!("{} bytes", info.file_size));
    line("header size:", format!("{} bytes", info.header_size));
    let kind = if im.is_color() { format!("{}-channel color", im.channels) } else { "scalar".into() };
    let outer = info.outer_axes();
    let slices = if outer.len() > 1 || outer.first().is_some_and(|a| !a.name.starts_with("dim_")) {
        format!("{} slice(s) over {}", im.slices, outer.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(" x "))
    } else {
        format!("{} slice(s)", im.slices)
    };
    line("image:", format!("{} x {} (width x height), {slices}, {kind}", im.width, im.height));
    if !info.channels.is_empty() {
        let ch: Vec<String> = info
            .channels
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut t = format!("{i}");
                if let Some(n) = &c.name {
                    t.push_str(&format!(" {n}"));
                }
                if let Some([r, g, b]) = c.color {
                    t.push_str(&format!(" #{r:02x}{g:02x}{b:02x}"));
                }
                if let Some((lo, hi)) = c.window {
                    t.push_str(&format!(
                        " window {}..{}",
                        crate::numfmt::format_f64(lo),
                        crate::numfmt::format_f64(hi)
                    ));
                }
                t
            })
            .collect();
        line("channels:", ch.join(", "));
    }
    for (k, v) in &info.details {
        line(&format!("{k}:"), v.clone());
    }
    s
}

/// `info --json`: a stable JSON object.
pub fn info_json(info: &SourceInfo) -> serde_json::Value {
    let mut v = serde_json::json!({
        "path": info.path.display().to_string(),
        "format": info.format.name,
        "format_version": info.format.version,
        "format_flavour": info.format.flavour,
        "part": info.member,
        "shape": info.shape,
        "axes": info.axes,
        "dtype": info.dtype.name(),
        "byte_order": info.endian.name(),
        "memory_order": info.order.name(),
        "file_size": info.file_size,
        "header_size": info.header_size,
        "width": info.image.width,
        "height": info.image.height,
        "slices": info.image.slices,
        "channels": info.image.channels,
        "details": info.details.iter().map(|(k, v)| serde_json::json!([k, v])).collect::<Vec<_>>(),
    });
    for (k, a) in info.axes.iter().enumerate() {
        if let Some(c) = a.coords.as_ref().filter(|c| !c.is_empty()) {
            v["axes"][k]["coord_range"] = serde_json::json!([c[0], c[c.len() - 1]]);
        }
    }
    if let Some(sc) = info.scaling {
        v["scaling"] = serde_json::json!({
            "scale": sc.scale, "offset": sc.offset, "blank": sc.blank, "physical_dtype": sc.physical.name(),
        });
    }
    if !info.channels.is_empty() {
        v["channels"] = serde_json::json!(info.channels);
    }
    if !info.extra.is_null() {
        v["extra"] = info.extra.clone();
    }
    v
}
