//! Colormaps: every built-in table against matplotlib's (and colorcet's, when installed) exactly, `render`
//! through a sample of them and through colormap files and colour lists against tests/oracle_cmaps.py's tables,
//! bad colormap files as one-line errors, and `vastview colormaps`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
use vastview::palette::Colormap;

use crate::common::*;

/// Runs tests/oracle_cmaps.py once into a fresh directory and returns (dir, cmaps.json).
fn cmaps() -> &'static (PathBuf, Value) {
    static ORACLE: OnceLock<(PathBuf, Value)> = OnceLock::new();
    ORACLE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("vastview-oracle-cmaps-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle_cmaps.py");
        let out = std::process::Command::new(python()).arg(&script).arg(&dir).output().expect("run python3");
        assert!(out.status.success(), "oracle_cmaps.py failed: {}", String::from_utf8_lossy(&out.stderr));
        let text = std::fs::read_to_string(dir.join("cmaps.json")).expect("cmaps.json");
        (dir, serde_json::from_str(&text).expect("cmaps json"))
    })
}

/// A table as the oracle writes it: 256 × RGB as 1536 hex digits.
fn table_of(hex: &Value) -> Vec<[u8; 3]> {
    let s = hex.as_str().expect("hex table");
    let b: Vec<u8> = (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect();
    assert_eq!(b.len(), 768);
    b.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect()
}

fn differs(name: &str, got: &[[u8; 4]; 256], want: &[[u8; 3]], tol: i32) -> Option<String> {
    (0..256).find_map(|i| {
        let bad = (0..3).any(|k| (i32::from(got[i][k]) - i32::from(want[i][k])).abs() > tol);
        bad.then(|| format!("{name}[{i}]: {:?} vs {:?}", &got[i][..3], want[i]))
    })
}

#[test]
fn every_builtin_table_is_matplotlibs_or_colorcets_exactly() {
    let (_, m) = cmaps();
    let tables = m["tables"].as_object().expect("tables");
    let mut failures = Vec::new();
    for (name, hex) in tables {
        match Colormap::by_name(name) {
            None => failures.push(format!("{name}: missing")),
            Some(c) => failures.extend(differs(name, &c.table, &table_of(hex), 0)),
        }
    }
    assert!(failures.is_empty(), "{} of {} tables differ:\n{}", failures.len(), tables.len(), failures.join("\n"));
    let names = Colormap::names();
    assert!(tables.len() >= 182 && names.len() >= 182, "{} {}", tables.len(), names.len());
    if m["colorcet"].as_bool() == Some(true) {
        // Nothing beyond what matplotlib and colorcet name, and all of it.
        let mut extra: Vec<&String> = names.iter().filter(|n| !tables.contains_key(*n)).collect();
        extra.truncate(10);
        assert!(extra.is_empty(), "names neither matplotlib nor colorcet has: {extra:?}");
        assert_eq!(names.len(), tables.len());
    } else {
        eprintln!("colormaps test: colorcet is not installed, its tables were not compared (scripts/setup.sh)");
    }
    // matplotlib's spelling is the name; a unique case-insensitive match is accepted too.
    assert_eq!(Colormap::by_name("spectral").map(|c| c.name), Some("Spectral".to_string()));
    assert_eq!(Colormap::by_name("TAB10_R").map(|c| c.name), Some("tab10_r".to_string()));
}

#[test]
fn custom_colormaps_match_an_independent_computation() {
    let (_, m) = cmaps();
    let mut n = 0;
    for case in m["renders"].as_array().expect("renders") {
        let spec = case["spec"].as_str().unwrap_or_default();
        let c = Colormap::resolve(spec).unwrap_or_else(|e| panic!("{spec}: {e:?}"));
        let tol = case["tol"].as_i64().unwrap_or(0) as i32;
        assert_eq!(differs(spec, &c.table, &table_of(&case["table"]), tol), None);
        n += usize::from(case.get("custom").is_some());
    }
    assert!(n >= 9, "{n} custom cases");
}

#[test]
fn rendered_colormaps_match_matplotlib_colorcet_and_the_oracle() {
    if gpu_session().is_none() {
        return;
    }
    let (dir, m) = cmaps();
    let (_, k) = read_npy(&dir.join("ramp_k.npy"));
    let ramp = dir.join("ramp.npy");
    let limits = m["limits"].as_str().unwrap_or_default();
    let mut failures = Vec::new();
    let cases = m["renders"].as_array().expect("renders");
    for (i, case) in cases.iter().enumerate() {
        let spec = case["spec"].as_str().unwrap_or_default();
        let png = dir.join(format!("out_{i}.png"));
        let out = vastview(&[
            "render",
            ramp.to_str().unwrap_or_default(),
            "-o",
            png.to_str().unwrap_or_default(),
            "--colormap",
            spec,
            "--limits",
            limits,
        ]);
        if !out.status.success() {
            failures.push(format!("{spec}: {}", stderr(&out)));
            continue;
        }
        let (w, _, got) = read_png(&png);
        let table = table_of(&case["table"]);
        let want: Vec<u8> = k.iter().flat_map(|&e| table[e as usize].into_iter().chain([255])).collect();
        let tol = case["tol"].as_i64().unwrap_or(0) as i32;
        if let Some(msg) = compare_rgba(&got, &want, w as usize, tol) {
            failures.push(format!("{spec}: {msg}"));
        }
    }
    assert!(cases.len() >= 30);
    assert!(failures.is_empty(), "{} of {} renders differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn bad_colormap_files_and_lists_are_one_line_errors_with_exit_code_2() {
    let (dir, m) = cmaps();
    let ramp = dir.join("ramp.npy");
    for case in m["errors"].as_array().expect("errors") {
        let spec = case["spec"].as_str().unwrap_or_default();
        let out = vastview(&[
            "render",
            ramp.to_str().unwrap_or_default(),
            "-o",
            "/tmp/vastview-never.png",
            "--colormap",
            spec,
        ]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{spec}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{spec}: {err}");
        for want in [case["expect"].as_str().unwrap_or_default(), case["names"].as_str().unwrap_or_default()] {
            assert!(err.contains(want), "{spec}: {err:?} lacks {want:?}");
        }
    }
    let missing = std::path::Path::new("/tmp/vastview-never.png");
    assert!(!missing.exists());
}

#[test]
fn colormaps_lists_the_names_and_help_points_to_it() {
    let out = vastview(&["colormaps"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let words: Vec<&str> = text.split_whitespace().collect();
    for want in ["viridis", "tab10", "cubehelix", "Spectral", "twilight_shifted", "fire", "bmy", "kbc", "rainbow4"] {
        assert!(words.contains(&want), "{want} missing:\n{text}");
    }
    let help = stdout(&vastview(&["render", "--help"]));
    assert!(help.contains("vastview colormaps") && help.contains("Oklab"), "{help}");
}
