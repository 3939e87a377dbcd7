//! Text point files (`x y z` or `x,y,z` per line, optional header line): converted once, streaming, into a
//! cached float64 record file; malformed lines are counted and their first line numbers kept.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{Error, Result};

/// How many malformed line numbers a report keeps.
const KEEP_BAD: usize = 5;
/// Bumped when the cached binary layout changes, so old cache files are not reused.
const CACHE_VERSION: u32 = 1;

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

    fn to_text(&self) -> String {
        let bad: Vec<String> = self.first_malformed.iter().map(|n| n.to_string()).collect();
        format!(
            "version {CACHE_VERSION}\ncolumns {}\nlines {}\nrecords {}\nmalformed {}\nfirst_malformed {}\nheader {}\n",
            self.columns,
            self.lines,
            self.records,
            self.malformed,
            bad.join(","),
            self.header.as_deref().unwrap_or("")
        )
    }

    fn from_text(s: &str) -> Option<TextReport> {
        let mut r = TextReport::default();
        let mut version = None;
        for line in s.lines() {
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
                "header" => r.header = (!v.is_empty()).then(|| v.to_string()),
                _ => {}
            }
        }
        (version == Some(CACHE_VERSION) && r.columns > 0).then_some(r)
    }
}

/// A cache file for `input` in `points/` of the shared cache directory, named from the file's identity
/// (canonical path, size, mtime, header hash: [`crate::diskcache::Identity`]) and `key`, ending in `ext`.
pub fn cache_path(input: &Path, key: &str, ext: &str) -> Result<PathBuf> {
    let id = crate::diskcache::Identity::of(input)?;
    crate::diskcache::entry_path("points", &id.key(&format!("points v{CACHE_VERSION} {key}")), ext)
}

/// Returns the cached binary of a text point file, converting it first when there is none.
pub fn convert_cached(input: &Path) -> Result<(PathBuf, TextReport)> {
    let meta = std::fs::metadata(input).map_err(|e| Error::io(input, e))?;
    let bin = cache_path(input, "text", "f64")?;
    let report_path = bin.with_extension("txt");
    if let (Ok(text), Ok(m)) = (std::fs::read_to_string(&report_path), std::fs::metadata(&bin)) {
        if let Some(r) = TextReport::from_text(&text) {
            if r.records > 0 && m.len() == r.records * r.columns * 8 {
                return Ok((bin, r));
            }
        }
    }
    let dir = bin.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let file = std::fs::File::open(input).map_err(|e| Error::io(input, e))?;
    let tmp = bin.with_extension(format!("tmp-{}", std::process::id()));
    let out = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let res = convert(input, std::io::BufReader::with_capacity(1 << 20, file), out, meta.len(), &tmp);
    let report = match res {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, &bin).map_err(|e| Error::io(&bin, e))?;
    crate::diskcache::write_atomic(&report_path, report.to_text().as_bytes(), None)?;
    Ok((bin, report))
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
    let mut line = Vec::new();
    let mut vals: Vec<f64> = Vec::new();
    let mut read = 0u64;
    let mut last_progress = Instant::now();
    let mut progressed = false;
    loop {
        line.clear();
        let got = text.read_until(b'\n', &mut line).map_err(|e| Error::io(input, e))?;
        if got == 0 {
            break;
        }
        read += got as u64;
        r.lines += 1;
        let Ok(s) = std::str::from_utf8(&line) else {
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
            w.write_all(&v.to_le_bytes()).map_err(werr)?;
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
        };
        assert_eq!(TextReport::from_text(&r.to_text()), Some(r));
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
