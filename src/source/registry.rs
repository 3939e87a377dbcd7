//! The format registry: every file format declares here how it is recognised (magic bytes, then
//! extension) and how it opens; detection, `--format`, the dialog filters, `--help` text and the desktop
//! MIME list all come from [`FORMATS`]. Adding a format is one file under `source/` plus one line below.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{ArraySource, OpenSpec};
use crate::error::{Error, Result};

/// How many leading bytes detection reads.
pub const HEAD_BYTES: usize = 4096;

/// What detection knows about a candidate file.
pub struct Probe<'a> {
    pub path: &'a Path,
    /// The first [`HEAD_BYTES`] bytes (fewer for a shorter file).
    pub head: &'a [u8],
}

impl Probe<'_> {
    /// The lower-case file name, for extension tests (`x.ome.tif` keeps both parts).
    pub fn file_name(&self) -> String {
        self.path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default()
    }
    pub fn has_extension(&self, exts: &[&str]) -> bool {
        let name = self.file_name();
        exts.iter().any(|e| name.ends_with(&format!(".{e}")))
    }
}

/// A magic number at a byte offset, for detection and for the shared-mime-info entry.
#[derive(Debug, Clone, Copy)]
pub struct Magic {
    pub offset: usize,
    pub bytes: &'static [u8],
}

impl Magic {
    pub fn matches(&self, head: &[u8]) -> bool {
        head.get(self.offset..self.offset + self.bytes.len()) == Some(self.bytes)
    }
}

/// One file format.
pub struct FormatSpec {
    /// The registry name `--format` takes and `info` prints (`npy`, `tiff`, `fits`).
    pub name: &'static str,
    /// The name for people, as the file dialog shows it.
    pub title: &'static str,
    /// File name extensions, lower case, without the dot, most common first.
    pub extensions: &'static [&'static str],
    /// The MIME type (the first is the one registered for double-click), most specific first.
    pub mime: &'static [&'static str],
    /// Magic numbers; any one matching claims the file.
    pub magic: &'static [Magic],
    /// Whether `install-desktop` makes vastview the default application for this type (`false`: listed
    /// under Open With only, e.g. TIFF, which photo viewers own).
    pub default_app: bool,
    /// A stricter content check after a magic number matched (e.g. FITS's `SIMPLE  =` card with `T`);
    /// `None`: the magic number alone decides.
    pub confirm: Option<fn(&Probe) -> bool>,
    /// Recognises a directory as this format (Zarr stores); `None`: the format is files only.
    pub dir: Option<fn(&Path) -> bool>,
    /// Opens the file (`spec.member` selects a part of it, if the format has parts).
    pub open: fn(&OpenSpec) -> Result<Arc<dyn ArraySource>>,
    /// The parts of a file that open on their own as images (HDF5 datasets, NetCDF variables, the arrays of
    /// a Zarr group), for the window's list; `None`: the format has no such parts.
    pub parts: Option<ListParts>,
}

/// Lists a file's parts ([`FormatSpec::parts`]).
pub type ListParts = fn(&Path) -> Result<Vec<Part>>;

/// One part of a file that opens on its own: `member` goes in [`OpenSpec::member`]; `label` is for people
/// (`/group/ds (300, 517) uint16`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub member: String,
    pub label: String,
}

impl std::fmt::Debug for FormatSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl FormatSpec {
    fn claims_by_content(&self, p: &Probe) -> bool {
        self.magic.iter().any(|m| m.matches(p.head)) && self.confirm.is_none_or(|f| f(p))
    }
}

fn open_npy(spec: &OpenSpec) -> Result<Arc<dyn ArraySource>> {
    if let Some(m) = &spec.member {
        return Err(Error::request(&spec.path, format!("an .npy file holds one array; there is no part '{m}'")));
    }
    Ok(Arc::new(super::npy::open_npy(&spec.path)?))
}

/// `.npy` (numpy's own array format).
pub static NPY: FormatSpec = FormatSpec {
    name: "npy",
    title: "NumPy array",
    extensions: &["npy"],
    mime: &["application/x-npy"],
    magic: &[Magic { offset: 0, bytes: b"\x93NUMPY" }],
    default_app: true,
    confirm: None,
    dir: None,
    open: open_npy,
    parts: None,
};

/// Every format vastview opens by detection, in the order they are tried and listed.
pub static FORMATS: &[&FormatSpec] =
    &[&NPY, &super::tiff::TIFF, &super::fits::FITS, &super::zarr::ZARR, &super::hdf5::HDF5, &super::netcdf::NETCDF];

/// The format named `name` (case-insensitive; `tif` is `tiff`).
pub fn by_name(name: &str) -> Option<&'static FormatSpec> {
    let n = name.to_ascii_lowercase();
    FORMATS.iter().copied().find(|f| f.name == n || f.extensions.contains(&n.as_str()))
}

/// Every MIME type the registry's formats have, in registry order, without repeats.
pub fn mime_types() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = Vec::new();
    for m in FORMATS.iter().flat_map(|f| f.mime.iter().copied()) {
        if !v.contains(&m) {
            v.push(m);
        }
    }
    v
}

/// The file dialog's filters: one per format (title, extensions), the first one all of them together.
pub fn dialog_filters() -> Vec<(String, Vec<&'static str>)> {
    let mut all: Vec<&'static str> = FORMATS.iter().flat_map(|f| f.extensions.iter().copied()).collect();
    all.dedup();
    let mut v = vec![("All supported arrays".to_string(), all)];
    v.extend(FORMATS.iter().map(|f| (f.title.to_string(), f.extensions.to_vec())));
    v
}

/// The names of all formats, comma-separated: for help text and errors.
pub fn names() -> String {
    FORMATS.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
}

/// One line per format for `--help`: `npy    NumPy array (.npy)`.
pub fn help_text() -> String {
    FORMATS
        .iter()
        .map(|f| {
            let exts = f.extensions.iter().map(|e| format!(".{e}")).collect::<Vec<_>>().join(" ");
            format!("  {:<6} {} ({exts})", f.name, f.title)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Splits `file.fits[2]` into the file and the part, when the path as given does not exist but the
/// file before the brackets does.
pub fn split_member(path: &Path) -> Option<(PathBuf, String)> {
    if path.exists() {
        return None;
    }
    let s = path.to_str()?;
    let open = s.rfind('[')?;
    let inner = s.strip_suffix(']')?.get(open + 1..)?;
    let base = PathBuf::from(&s[..open]);
    (!inner.is_empty() && base.is_file()).then(|| (base, inner.to_string()))
}

/// Splits `file.h5:/group/ds` (or `file.nc:sst`) into the file and the part, when the path as given does
/// not exist but the file before the last `:` does.
pub fn split_colon_member(path: &Path) -> Option<(PathBuf, String)> {
    if path.exists() {
        return None;
    }
    let s = path.to_str()?;
    let (file, inner) = s.rsplit_once(':')?;
    let base = PathBuf::from(file);
    (!inner.is_empty() && base.is_file()).then(|| (base, inner.to_string()))
}

/// Reads the first bytes of `path` after the regular-file checks of [`super::open_file`].
fn read_head(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let (file, _) = super::open_file(path)?;
    let mut head = Vec::with_capacity(HEAD_BYTES);
    file.take(HEAD_BYTES as u64).read_to_end(&mut head).map_err(|e| Error::io(path, e))?;
    Ok(head)
}

/// Which format a file is: the one whose magic number (and content check) matches; with none, the one
/// whose extension matches (so its own reader says what is wrong); two claims are an error naming both.
pub fn detect(path: &Path, head: &[u8]) -> Result<&'static FormatSpec> {
    let probe = Probe { path, head };
    let by_content: Vec<_> = FORMATS.iter().copied().filter(|f| f.claims_by_content(&probe)).collect();
    match by_content.as_slice() {
        [one] => return Ok(one),
        [a, b, ..] => {
            return Err(Error::bad_input(
                path,
                format!("both {} and {} claim this file; choose one with --format", a.name, b.name),
            ))
        }
        [] => {}
    }
    if let Some(f) = FORMATS.iter().copied().find(|f| probe.has_extension(f.extensions)) {
        return Ok(f);
    }
    Err(Error::bad_input(
        path,
        format!("not a format vastview recognises (tried {}); for raw binary give --dtype and --shape", names()),
    ))
}

/// Extensions read as text points (x y [value] per line) when a file is opened without flags.
pub const TEXT_POINT_EXTENSIONS: [&str; 6] = ["txt", "csv", "xyz", "tsv", "dat", "pts"];

/// The one answer to "image or points?" for a file opened without flags: points when it is an array a
/// format reads whose shape says points ([`super::SourceInfo::looks_like_points`]: an (N, 2|3) float `.npy`),
/// or, when no format claims its content, text with a points extension.
pub fn is_point_file(path: &Path) -> bool {
    let Ok(head) = read_head(path) else { return false };
    let probe = Probe { path, head: &head };
    if FORMATS.iter().any(|f| f.claims_by_content(&probe)) {
        let spec = OpenSpec { path: path.to_path_buf(), ..Default::default() };
        return open(&spec).is_ok_and(|s| s.info().looks_like_points());
    }
    probe.has_extension(&TEXT_POINT_EXTENSIONS)
}

/// The format of `path` as [`open`] finds it without `--format`.
fn format_of(path: &Path) -> Result<&'static FormatSpec> {
    match FORMATS.iter().copied().find(|f| f.dir.is_some_and(|d| d(path))) {
        Some(f) => Ok(f),
        None => detect(path, &read_head(path)?),
    }
}

/// The file named by `path` without a part written into it (`file.h5:/ds`, `file.fits[2]`), and that part.
pub fn split_part(path: &Path) -> (PathBuf, Option<String>) {
    match split_member(path).or_else(|| split_colon_member(path)) {
        Some((base, member)) => (base, Some(member)),
        None => (path.to_path_buf(), None),
    }
}

/// The parts of `path` that open on their own (see [`FormatSpec::parts`]); empty when its format has
/// none or it cannot be read.
pub fn parts(path: &Path) -> Vec<Part> {
    format_of(path).ok().and_then(|f| f.parts).and_then(|list| list(path).ok()).unwrap_or_default()
}

/// Opens `spec.path` with the format `--format` names, or the one detected.
pub fn open(spec: &OpenSpec) -> Result<Arc<dyn ArraySource>> {
    let mut spec = spec.clone();
    if let Some((base, member)) = split_member(&spec.path).or_else(|| split_colon_member(&spec.path)) {
        if spec.member.is_some() {
            return Err(Error::request(
                &spec.path,
                "give the part either in the path (brackets or FILE:PART) or with --hdu/--dataset, not both",
            ));
        }
        spec.path = base;
        spec.member = Some(member);
    }
    let format = match &spec.format {
        Some(name) => by_name(name).ok_or_else(|| {
            Error::request(&spec.path, format!("--format '{name}' is not a format vastview knows ({})", names()))
        })?,
        None => format_of(&spec.path)?,
    };
    (format.open)(&spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_prefers_magic_and_names_the_formats_tried() {
        let f = detect(Path::new("a.bin"), b"\x93NUMPY\x01\x00").unwrap();
        assert_eq!(f.name, "npy");
        assert_eq!(detect(Path::new("a.npy"), b"junk").unwrap().name, "npy");
        let e = detect(Path::new("a.bin"), b"junk").unwrap_err().to_string();
        assert!(e.contains("a.bin") && e.contains("tried npy"), "{e}");
    }

    #[test]
    fn every_format_is_complete() {
        for f in FORMATS {
            let recognised = !f.magic.is_empty() || f.dir.is_some();
            assert!(!f.extensions.is_empty() && !f.mime.is_empty() && recognised, "{}", f.name);
            assert_eq!(by_name(f.name).map(|g| g.name), Some(f.name));
        }
        assert!(help_text().contains(".npy"));
    }
}
