//! The N-dimensional axis model: named axes with optional units and scales, which two are displayed, and
//! how an index over the other ("outer") axes maps to the flat slice number the rest of the pipeline uses.

use std::path::Path;

use crate::error::{Error, Result};

/// One axis of a stored array.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Axis {
    /// `y`, `x`, `t`, `c`, `z`, or `dim_3` when the file names none.
    pub name: String,
    pub size: u64,
    /// Physical unit of one step (`µm`, `s`, `deg`), when the file says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Physical size of one step along the axis, when the file says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    /// The coordinate of each index along the axis (a NetCDF coordinate variable such as `lat`), when the
    /// file gives one; `info --json` carries only its first and last values (`coord_range`).
    #[serde(skip)]
    pub coords: Option<std::sync::Arc<[f64]>>,
}

impl Axis {
    pub fn new(name: impl Into<String>, size: u64) -> Axis {
        Axis { name: name.into(), size, unit: None, scale: None, coords: None }
    }

    /// Whether the name marks a channel axis (`C`, `c`, `channel`, `channels`, `S` samples).
    pub fn is_channel(&self) -> bool {
        matches!(self.name.to_ascii_lowercase().as_str(), "c" | "channel" | "channels" | "ch" | "s" | "sample")
    }
}

/// Axes named `dim_0 … dim_{n-3}`, then `y`, `x` (and `c` for an interleaved colour axis): numpy's
/// layout when a file names nothing.
pub fn default_axes(shape: &[u64], interleaved_channels: bool) -> Vec<Axis> {
    let n = shape.len();
    let spatial_end = if interleaved_channels { n.saturating_sub(1) } else { n };
    shape
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let name = if interleaved_channels && i == n - 1 {
                "c".to_string()
            } else if i + 1 == spatial_end {
                "x".to_string()
            } else if i + 2 == spatial_end {
                "y".to_string()
            } else {
                format!("dim_{i}")
            };
            Axis::new(name, size)
        })
        .collect()
}

/// The outer axes of `axes` (all but the displayed y, x and an interleaved channel axis), outermost first.
/// Their sizes multiply to the number of slices; the last one varies fastest.
pub fn outer(axes: &[Axis], channels: u64) -> &[Axis] {
    let inner = if channels > 1 { 3 } else { 2 };
    &axes[..axes.len().saturating_sub(inner)]
}

/// The flat slice number of the index `idx` (one entry per outer axis), row-major.
pub fn slice_of(outer: &[Axis], idx: &[u64]) -> u64 {
    outer.iter().zip(idx).fold(0u64, |s, (a, &i)| s * a.size + i)
}

/// The index over the outer axes of flat slice `slice`.
pub fn index_of(outer: &[Axis], slice: u64) -> Vec<u64> {
    let sizes: Vec<u64> = outer.iter().map(|a| a.size).collect();
    unflatten(&sizes, slice)
}

/// The index over axes of `sizes` (outermost first, the last varying fastest) of flat number `slice`.
pub fn unflatten(sizes: &[u64], mut slice: u64) -> Vec<u64> {
    let mut idx = vec![0; sizes.len()];
    for (k, &n) in sizes.iter().enumerate().rev() {
        idx[k] = slice % n.max(1);
        slice /= n.max(1);
    }
    idx
}

/// The coordinates of data pixel (`x`, `y`) of `slice` along every axis that has coordinate values
/// (`time 730.5 days since 2000-01-01, lat 45.25, lon -3.5`), outermost axis first; `None` when no axis has
/// any. `channels` > 1: the last axis is an interleaved channel axis (never with coordinates).
pub fn position_text(axes: &[Axis], channels: u64, slice: u64, x: u64, y: u64) -> Option<String> {
    let out = outer(axes, channels);
    let mut at = index_of(out, slice);
    at.push(y);
    at.push(x);
    let parts: Vec<String> = axes
        .iter()
        .zip(&at)
        .filter_map(|(a, &i)| {
            let v = *a.coords.as_ref()?.get(i as usize)?;
            let unit = a.unit.as_deref().map_or(String::new(), |u| format!(" {u}"));
            Some(format!("{} {}{unit}", a.name, coord_str(v)))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// A coordinate as numpy prints it, in float32 digits when the value is a float32 (most coordinate
/// variables are), so that `45.1f32` reads `45.1`, not `45.099998474121094`.
pub fn coord_str(v: f64) -> String {
    if f64::from(v as f32) == v {
        crate::numfmt::format_f32(v as f32)
    } else {
        crate::numfmt::format_f64(v)
    }
}

/// `t=3 c=1` style text of a slice's index, or `slice N` when there is a single unnamed outer axis.
pub fn describe_slice(outer: &[Axis], slice: u64) -> String {
    let idx = index_of(outer, slice);
    if outer.is_empty() {
        return String::new();
    }
    outer.iter().zip(idx).map(|(a, i)| format!("{}={i}", a.name)).collect::<Vec<_>>().join(" ")
}

/// Resolves `--index AXIS=I[,AXIS=I…]` (AXIS by name or 0-based stored-axis number) plus the short form
/// `--slice N` (the single outer axis, or the flat slice number) to a flat slice number.
pub fn resolve_index(path: &Path, axes: &[Axis], channels: u64, index: Option<&str>, slice: u64) -> Result<u64> {
    let out = outer(axes, channels);
    let total: u64 = out.iter().map(|a| a.size).product();
    let Some(spec) = index.filter(|s| !s.trim().is_empty()) else {
        if slice >= total.max(1) {
            return Err(Error::request(
                path,
                format!("slice {slice} is out of range (the stack has {} slices)", total.max(1)),
            ));
        }
        return Ok(slice);
    };
    let mut idx = index_of(out, slice.min(total.saturating_sub(1)));
    let n_outer = out.len();
    for part in spec.split(',') {
        let (name, val) = part.split_once('=').ok_or_else(|| {
            Error::request(path, format!("--index '{part}' is not AXIS=I (AXIS a name like t or a number)"))
        })?;
        let (name, val) = (name.trim(), val.trim());
        let k = match name.parse::<usize>() {
            Ok(n) => n,
            Err(_) => axes
                .iter()
                .position(|a| a.name == name)
                .or_else(|| axes.iter().position(|a| a.name.eq_ignore_ascii_case(name)))
                .ok_or_else(|| {
                    Error::request(
                        path,
                        format!(
                            "--index: no axis named '{name}' (the axes are {})",
                            axes.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    )
                })?,
        };
        if k >= axes.len() {
            return Err(Error::request(path, format!("--index: axis {k} does not exist (rank {})", axes.len())));
        }
        if k >= n_outer {
            return Err(Error::request(
                path,
                format!("--index: axis '{}' is displayed, not indexed (the outer axes are {})", axes[k].name, {
                    let names: Vec<&str> = out.iter().map(|a| a.name.as_str()).collect();
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                }),
            ));
        }
        let i: u64 = val.parse().map_err(|_| Error::request(path, format!("--index: '{val}' is not an index")))?;
        if i >= axes[k].size {
            return Err(Error::request(
                path,
                format!("--index: {}={i} is out of range (the axis has {} entries)", axes[k].name, axes[k].size),
            ));
        }
        idx[k] = i;
    }
    Ok(slice_of(out, &idx))
}

/// The outer axis (its position among the outer axes) shown as a channel composite: the one `given` names
/// (`--channel-axis`, by name or stored-axis number), else the first outer axis with a channel name
/// (`c`, `channel`, …). `None` when there is none.
pub fn channel_axis(path: &Path, axes: &[Axis], channels: u64, given: Option<&str>) -> Result<Option<usize>> {
    let out = outer(axes, channels);
    let Some(g) = given else {
        return Ok(out.iter().position(Axis::is_channel));
    };
    let k = match g.parse::<usize>() {
        Ok(n) => n,
        Err(_) => axes.iter().position(|a| a.name == g || a.name.eq_ignore_ascii_case(g)).ok_or_else(|| {
            Error::request(
                path,
                format!(
                    "--channel-axis: no axis named '{g}' (the axes are {})",
                    axes.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )
        })?,
    };
    if k >= out.len() {
        return Err(Error::request(
            path,
            format!("--channel-axis: axis {g} is not an outer axis (it is displayed or absent)"),
        ));
    }
    Ok(Some(k))
}

/// Whether `--index` text names the outer axis `k` (then that axis shows one entry, not a composite).
pub fn index_names(axes: &[Axis], k: usize, index: Option<&str>) -> bool {
    index.is_some_and(|s| {
        s.split(',').filter_map(|p| p.split_once('=')).any(|(n, _)| {
            let n = n.trim();
            n.parse::<usize>().map_or_else(|_| axes[k].name == n || axes[k].name.eq_ignore_ascii_case(n), |i| i == k)
        })
    })
}

/// `slice` with the index on outer axis `k` replaced by `entry`.
pub fn with_entry(outer: &[Axis], slice: u64, k: usize, entry: u64) -> u64 {
    let mut idx = index_of(outer, slice);
    idx[k] = entry;
    slice_of(outer, &idx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_round_trip_and_index_resolves() {
        let axes = vec![Axis::new("t", 4), Axis::new("c", 3), Axis::new("y", 10), Axis::new("x", 20)];
        let out = outer(&axes, 1);
        assert_eq!(out.len(), 2);
        for s in 0..12 {
            assert_eq!(slice_of(out, &index_of(out, s)), s);
        }
        assert_eq!(index_of(out, 7), vec![2, 1]);
        let p = Path::new("f");
        assert_eq!(resolve_index(p, &axes, 1, Some("t=2,c=1"), 0).unwrap(), 7);
        assert_eq!(resolve_index(p, &axes, 1, Some("0=3"), 0).unwrap(), 9);
        assert_eq!(resolve_index(p, &axes, 1, Some("C=2"), 3).unwrap(), 5);
        assert!(resolve_index(p, &axes, 1, Some("t=4"), 0).unwrap_err().to_string().contains("out of range"));
        assert!(resolve_index(p, &axes, 1, Some("y=1"), 0).unwrap_err().to_string().contains("displayed"));
        assert!(resolve_index(p, &axes, 1, Some("q=1"), 0).unwrap_err().to_string().contains("no axis named"));
        assert!(resolve_index(p, &axes, 1, None, 12).is_err());
        assert_eq!(describe_slice(out, 7), "t=2 c=1");
    }

    #[test]
    fn default_names_follow_numpy_layout() {
        let a = default_axes(&[2, 3, 4, 5], false);
        let names: Vec<_> = a.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["dim_0", "dim_1", "y", "x"]);
        let a = default_axes(&[4, 5, 3], true);
        let names: Vec<_> = a.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["y", "x", "c"]);
    }
}
