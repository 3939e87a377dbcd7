//! Text point files (`x y z` or `x,y,z` per line, optional header line): converted once, streaming, into a
//! cached float64 record file; malformed lines are counted and their first line numbers kept.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{Error, Result};

/// The longest line read (bytes, with its newline): a longer one is malformed, counted and skipped
/// without being held in memory.
pub const MAX_LINE: usize = 1 << 20;
/// How many malformed line numbers a report keeps.
const KEEP_BAD: usize = 5;
/// Bumped when the cached binary layout changes, so old cache files are not reused.
const CACHE_VERSION: u32 = 2;

/// What the conversion found in the text.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TextReport {
    /// Values per record (fields on the first data line).
    pub columns: u64,
    pub lines: u64,
    pub records: u64,
    pub header: Option<String>,
    pub malformed: u64,
    /// The first few malformed lines, 1-based.
    pub first_malformed: Vec<u64>,
    /// CRC-32 of the converted binary (`records × columns` little-endian float64 values).
    pub crc32: u32,
}

impl TextReport {
    pub fn summary(&self) -> String {
        let mut s = format!("{} lines, {} points of {} values", self.lines, self.records, self.columns);
        if let Some(h) = &self.header {
            s.push_str(&format!(", header '{h}'"));
        }
        if self.malformed > 0 {
            s.push_str(&format!(", {} malformed lines skipped (first: {})", self.malformed, self.malformed_lines()));
        }
        s
    }

    fn malformed_lines(&self) -> String {
        self.first_malformed.iter().map(|n| format!("line {n}")).collect::<Vec<_>>().join(", ")
    }

    /// The report file: `key value` lines, the last one `check` with the CRC-32 of all before it.
    fn to_text(&self) -> String {
        let bad: Vec<String> = self.first_malformed.iter().map(|n| n.to_string()).collect();
        let header: String = self.header.as_deref().unwrap_or("").chars().filter(|c| *c != '\n').collect();
        let body = format!(
            "version {CACHE_VERSION}\ncolumns {}\nlines {}\nrecords {}\nmalformed {}\nfirst_malformed {}\ncrc32 {:08x}\nheader {}\n",
            self.columns,
            self.lines,
            self.records,
            self.malformed,
            bad.join(","),
            self.crc32,
            header
        );
        format!("{body}check {:08x}\n", crc32fast::hash(body.as_bytes()))
    }

    /// Reads [`TextReport::to_text`] back: `None` when any byte of it changed, or it is of another version.
    fn from_text(s: &str) -> Option<TextReport> {
        let (body, check) = s.strip_suffix('\n')?.rsplit_once("check ")?;
        if check.len() != 8 || u32::from_str_radix(check, 16).ok()? != crc32fast::hash(body.as_bytes()) {
            return None;
        }
        let mut r = TextReport::default();
        let mut version = None;
        let mut crc = None;
        for line in body.lines() {
            let (k, v) = line.split_once(' ').unwrap_or((line, ""));
            match k {
                "version" => version = v.parse::<u32>().ok(),
                "columns" => r.columns = v.parse().ok()?,
                "lines" => r.lines = v.parse().ok()?,
                "records" => r.records = v.parse().ok()?,
                "malformed" => r.malformed = v.parse().ok()?,
                "first_malformed" => {
                    r.first_malformed = v.split(',').filter(|x| !x.is_empty()).filter_map(|x| x.parse().ok()).collect()
                }
                "crc32" => crc = u32::from_str_radix(v, 16).ok(),
                "header" => r.header = (!v.is_empty()).then(|| v.to_string()),
                _ => {}
            }
        }
        r.crc32 = crc?;
        (version == Some(CACHE_VERSION) && r.columns > 0).then_some(r)
    }
}

/// CRC-32 of a whole file, read in parallel pieces (combined): about memory speed when it is cached.
fn file_crc32(path: &Path) -> std::io::Result<u32> {
    use rayon::prelude::*;
    use std::os::unix::fs::FileExt;
    const PIECE: u64 = 8 << 20;
    let f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let pieces: Vec<u64> = (0..len.div_ceil(PIECE)).collect();
    let crcs: Vec<crc32fast::Hasher> = pieces
        .par_iter()
        .map(|&i| {
            let (a, n) = (i * PIECE, PIECE.min(len - i * PIECE));
            let mut buf = vec![0u8; n as usize];
            f.read_exact_at(&mut buf, a)?;
            let mut h = crc32fast::Hasher::new();
            h.update(&buf);
            Ok(h)
        })
        .collect::<std::io::Result<_>>()?;
    let mut total = crc32fast::Hasher::new();
    for h in crcs {
        total.combine(&h);
    }
    Ok(total.finalize())
}

/// A cache file for `input` in `points/` of the shared cache directory, named from the file's identity
/// (canonical path, size, mtime, header hash: [`crate::diskcache::Identity`]) and `key`, ending in `ext`.
pub fn cache_path(input: &Path, key: &str, ext: &str) -> Result<PathBuf> {
    let id = crate::diskcache::Identity::of(input)?;
    crate::diskcache::entry_path("points", &id.key(&format!("points v{CACHE_VERSION} {key}")), ext)
}

/// Returns the cached binary of a text point file, converting it first when there is none.
pub fn convert_cached(input: &Path) -> Result<(PathBuf, TextReport)> {
    convert_cached_noted(input).map(|(b, r, _)| (b, r))
}

/// [`convert_cached`], with a note for the user when a cached conversion was found damaged and redone.
///
/// The cached binary is checked against the CRC-32 its report records on **every** open (one read of the
/// whole binary, in parallel: about memory speed when it is in the page cache, disk speed when not); the
/// report carries a CRC-32 of itself. Anything changed in either is converted again.
pub fn convert_cached_noted(input: &Path) -> Result<(PathBuf, TextReport, Option<String>)> {
    let (file, len) = super::open_file(input)?;
    let bin = cache_path(input, "text", "f64")?;
    let report_path = bin.with_extension("txt");
    let mut note = None;
    let cached_report = std::fs::read(&report_path).ok();
    let cached_bin = std::fs::metadata(&bin).ok();
    if cached_report.is_some() || cached_bin.is_some() {
        let report = cached_report.as_deref().and_then(|t| std::str::from_utf8(t).ok()).and_then(TextReport::from_text);
        let intact = match (&report, &cached_bin) {
            (Some(r), Some(m)) => {
                r.records > 0
                    && r.records.checked_mul(r.columns).and_then(|v| v.checked_mul(8)) == Some(m.len())
                    && file_crc32(&bin).ok() == Some(r.crc32)
            }
            _ => false,
        };
        if let (true, Some(r)) = (intact, report) {
            return Ok((bin, r, None));
        }
        note = Some(format!(
            "the cached conversion {} was damaged (checksum mismatch or missing part): converted again",
            bin.display()
        ));
        let _ = std::fs::remove_file(&bin);
        let _ = std::fs::remove_file(&report_path);
    }
    let dir = bin.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = bin.with_extension(format!("tmp-{}", std::process::id()));
    let out = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let res = convert(input, std::io::BufReader::with_capacity(1 << 20, file), out, len, &tmp);
    let report = match res {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, &bin).map_err(|e| Error::io(&bin, e))?;
    crate::diskcache::write_atomic(&report_path, report.to_text().as_bytes(), None)?;
    Ok((bin, report, note))
}

/// Splits a line into fields on commas, semicolons and whitespace (runs of them count once).
fn fields(line: &str) -> impl Iterator<Item = &str> {
    line.split(|c: char| c == ',' || c == ';' || c.is_whitespace()).filter(|f| !f.is_empty())
}

/// Streams `text` into float64 records in `out`, with a progress line on stderr.
pub fn convert(
    input: &Path,
    mut text: impl BufRead,
    out: std::fs::File,
    total: u64,
    out_path: &Path,
) -> Result<TextReport> {
    let t0 = Instant::now();
    let mut w = std::io::BufWriter::with_capacity(1 << 20, out);
    let werr = |e: std::io::Error| Error::io(out_path, e);
    let mut r = TextReport::default();
    let mut crc = crc32fast::Hasher::new();
    let mut line = Vec::new();
    let mut vals: Vec<f64> = Vec::new();
    let mut read = 0u64;
    let mut last_progress = Instant::now();
    let mut progressed = false;
    loop {
        let (got, too_long) = read_line_bounded(&mut text, &mut line, MAX_LINE).map_err(|e| Error::io(input, e))?;
        if got == 0 {
            break;
        }
        read += got as u64;
        r.lines += 1;
        if too_long {
            bad(&mut r);
            continue;
        }
        // A UTF-8 byte-order mark before the first line is not part of it.
        let body = if r.lines == 1 { line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&line) } else { &line[..] };
        let Ok(s) = std::str::from_utf8(body) else {
            if r.lines == 1 {
                return Err(Error::bad_input(
                    input,
                    "neither .npy nor text: for raw point records give --dtype f32|f64 and --columns N",
                ));
            }
            bad(&mut r);
            continue;
        };
        let s = s.trim();
        if s.is_empty() || s.starts_with('#') {
            continue;
        }
        vals.clear();
        let mut ok = true;
        for f in fields(s) {
            match f.parse::<f64>() {
                Ok(v) => vals.push(v),
                Err(_) => {
                    ok = false;
                    break;
                }
            }
        }
        if r.columns == 0 {
            if !ok || vals.len() < 2 {
                if r.header.is_none() && r.records == 0 && r.malformed == 0 {
                    let printable = s.chars().all(|c| !c.is_control() || c == '\t');
                    if !printable {
                        return Err(Error::bad_input(
                            input,
                            "neither .npy nor text: for raw point records give --dtype f32|f64 and --columns N",
                        ));
                    }
                    r.header = Some(s.chars().take(200).collect());
                } else {
                    bad(&mut r);
                }
                continue;
            }
            r.columns = vals.len() as u64;
        }
        if !ok || vals.len() as u64 != r.columns {
            bad(&mut r);
            continue;
        }
        for v in &vals {
            let b = v.to_le_bytes();
            crc.update(&b);
            w.write_all(&b).map_err(werr)?;
        }
        r.records += 1;
        if r.records % 65536 == 0 && last_progress.elapsed().as_secs_f64() > 0.5 {
            last_progress = Instant::now();
            progressed = true;
            let secs = t0.elapsed().as_secs_f64();
            eprint!(
                "\rconverting {}: {:.0} of {:.0} MB ({:.0} %), {} points, {:.1} MB/s   ",
                input.display(),
                read as f64 / 1e6,
                total as f64 / 1e6,
                100.0 * read as f64 / total.max(1) as f64,
                r.records,
                read as f64 / 1e6 / secs.max(1e-9)
            );
        }
    }
    w.flush().map_err(werr)?;
    r.crc32 = crc.finalize();
    if progressed {
        eprintln!();
    }
    if r.records == 0 {
        let why = if r.malformed > 0 {
            format!("no readable points: {} malformed lines (first: {})", r.malformed, r.malformed_lines())
        } else {
            "no points: the text has no data lines".to_string()
        };
        return Err(Error::bad_input(input, why));
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "converted {}: {} in {:.2} s ({:.1} MB/s) -> {}",
        input.display(),
        r.summary(),
        secs,
        read as f64 / 1e6 / secs.max(1e-9),
        out_path.with_extension("f64").display()
    );
    Ok(r)
}

/// Reads one line (up to and with its `\n`) into `line` (cleared first), holding at most `max` bytes of
/// it: the rest of a longer line is read and dropped. Returns the bytes consumed (0 at the end) and
/// whether the line was longer than `max` (then `line` holds only its start). Memory stays bounded by
/// `max` and the reader's buffer whatever the input.
pub fn read_line_bounded(text: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> std::io::Result<(usize, bool)> {
    line.clear();
    let mut consumed = 0;
    let mut too_long = false;
    loop {
        let buf = match text.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok((consumed, too_long));
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = max.saturating_sub(line.len());
        if take > room {
            too_long = true;
        }
        if !too_long {
            line.extend_from_slice(&buf[..take]);
        }
        text.consume(take);
        consumed += take;
        if done {
            return Ok((consumed, too_long));
        }
    }
}

fn bad(r: &mut TextReport) {
    r.malformed += 1;
    if r.first_malformed.len() < KEEP_BAD {
        r.first_malformed.push(r.lines);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trips() {
        let r = TextReport {
            columns: 3,
            lines: 10,
            records: 7,
            header: Some("x y z".into()),
            malformed: 2,
            first_malformed: vec![4, 9],
            crc32: 0xdead_beef,
        };
        let t = r.to_text();
        assert_eq!(TextReport::from_text(&t), Some(r));
        // Any byte changed (a digit of a count, of the checksum) is caught.
        for i in 0..t.len() {
            let mut b = t.clone().into_bytes();
            b[i] = if b[i] == b'7' { b'8' } else { b'7' };
            if let Ok(s) = String::from_utf8(b) {
                if s != t {
                    assert_eq!(TextReport::from_text(&s), None, "byte {i} changed: {s}");
                }
            }
        }
    }

    #[test]
    fn lines_are_read_with_a_bound() {
        // A 5 MB line between two short ones, through a small reader buffer.
        let mut text = b"1 2\n".to_vec();
        text.extend(std::iter::repeat_n(b'7', 5 << 20));
        text.extend_from_slice(b"\n3 4");
        let mut rd = std::io::BufReader::with_capacity(4096, &text[..]);
        let mut line = Vec::new();
        let max = 1000;
        assert_eq!(read_line_bounded(&mut rd, &mut line, max).unwrap(), (4, false));
        assert_eq!(line, b"1 2\n");
        assert_eq!(read_line_bounded(&mut rd, &mut line, max).unwrap(), ((5 << 20) + 1, true));
        assert!(line.capacity() <= 2 * max, "the long line was not held: capacity {}", line.capacity());
        assert_eq!(read_line_bounded(&mut rd, &mut line, max).unwrap(), (3, false));
        assert_eq!(line, b"3 4");
        assert_eq!(read_line_bounded(&mut rd, &mut line, max).unwrap(), (0, false));
    }

    #[test]
    fn a_byte_order_mark_is_not_a_header() {
        let dir = std::env::temp_dir().join(format!("vv-text-bom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let out = dir.join("o.f64");
        let text = "\u{feff}1 2\n3 4\n";
        let r = convert(Path::new("in.txt"), text.as_bytes(), std::fs::File::create(&out).expect("f"), 40, &out)
            .expect("convert");
        assert_eq!((r.records, r.header), (2, None));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn converts_with_header_and_bad_lines() {
        let dir = std::env::temp_dir().join(format!("vv-text-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let out = dir.join("o.f64");
        let text = "x,y,z\n1,2,3\n\n4 5 6\nbad line here\n7,8\n9;10;11\n";
        let r = convert(Path::new("in.txt"), text.as_bytes(), std::fs::File::create(&out).expect("f"), 40, &out)
            .expect("convert");
        assert_eq!((r.columns, r.records, r.malformed), (3, 3, 2));
        assert_eq!(r.first_malformed, vec![5, 6]);
        assert_eq!(r.header.as_deref(), Some("x,y,z"));
        let b = std::fs::read(&out).expect("read");
        let v: Vec<f64> = b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect();
        assert_eq!(v, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 9.0, 10.0, 11.0]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
