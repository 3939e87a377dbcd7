//! The command line: `probe` against numpy's str(), `info --json` against numpy's view of the file,
//! and every kind of bad input giving one line, the file's name and exit code 2.

use crate::common::*;

#[test]
fn probe_prints_what_numpy_prints_for_every_dtype_order_and_byte_order() {
    let (dir, m) = oracle();
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in m["probe"].as_array().expect("probe cases") {
        let file = dir.join(case["file"].as_str().unwrap_or_default());
        let extra = strs(&case["args"]);
        for p in case["probes"].as_array().expect("probes") {
            let (x, y, s) = (p[0].to_string(), p[1].to_string(), p[2].to_string());
            let want = p[3].as_str().unwrap_or_default();
            let mut args = vec!["probe", file.to_str().unwrap_or_default(), &x, &y, "--slice", &s];
            args.extend(extra.iter().map(String::as_str));
            let out = vastview(&args);
            let text = stdout(&out);
            let got = text.split_whitespace().last().unwrap_or_default();
            // Multi-element values are arrays; compare the whole tail for those.
            let ok = out.status.success() && (got == want || text.trim_end().ends_with(want));
            checked += 1;
            if !ok {
                failures.push(format!(
                    "{} ({x},{y},slice {s}): got {:?} want {want:?} {}",
                    case["file"],
                    text.trim(),
                    stderr(&out)
                ));
            }
        }
    }
    assert!(checked > 500, "only {checked} probes");
    assert!(failures.is_empty(), "{} of {checked} probes differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn info_json_matches_numpy() {
    let (dir, m) = oracle();
    for case in m["probe"].as_array().expect("cases") {
        let file = dir.join(case["file"].as_str().unwrap_or_default());
        let mut args = vec!["info", file.to_str().unwrap_or_default(), "--json"];
        let extra = strs(&case["args"]);
        args.extend(extra.iter().map(String::as_str));
        let out = vastview(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        let got: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
        for k in ["shape", "dtype", "memory_order", "byte_order", "format"] {
            assert_eq!(got[k], case["info"][k], "{}: {k}", case["file"]);
        }
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert_eq!(got["file_size"], size, "{}", case["file"]);
        let header = got["header_size"].as_u64().unwrap_or(0);
        assert!(header.is_multiple_of(16) || case["info"]["format"] == "raw", "{}: header {header}", case["file"]);
    }
    // Plain text has the same facts.
    let out = vastview(&["info", dir.join("p_uint16_big_F.npy").to_str().unwrap_or_default()]);
    let t = stdout(&out);
    for want in ["npy 1.0", "(9, 11)", "uint16", "big", "F", "11 x 9"] {
        assert!(t.contains(want), "{t}");
    }
}

#[test]
fn bad_input_is_one_line_naming_the_file_with_exit_code_2() {
    let (dir, m) = oracle();
    for case in m["errors"].as_array().expect("errors") {
        let name = case["file"].as_str().unwrap_or_default();
        let file = dir.join(name);
        let extra = strs(&case["args"]);
        for cmd in ["info", "render"] {
            let mut args = vec![cmd, file.to_str().unwrap_or_default()];
            if cmd == "render" {
                args.extend(["-o", "/tmp/vastview-never-written.png"]);
            }
            args.extend(extra.iter().map(String::as_str));
            let out = vastview(&args);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{} ({cmd}): {err}", case["name"]);
            assert_eq!(err.trim_end().lines().count(), 1, "{}: more than one line: {err}", case["name"]);
            assert!(err.contains(name), "{}: does not name the file: {err}", case["name"]);
            let expect = case["expect"].as_str().unwrap_or_default();
            assert!(err.contains(expect), "{}: {err:?} lacks {expect:?}", case["name"]);
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}

#[test]
fn bad_requests_are_clear_errors() {
    let (dir, _) = oracle();
    let img = dir.join("img.npy");
    let img = img.to_str().unwrap_or_default();
    for (args, expect) in [
        (vec!["render", img, "-o", "/tmp/x.png", "--region", "0,0,600,10"], "outside"),
        (vec!["render", img, "-o", "/tmp/x.png", "--colormap", "nope"], "unknown colormap"),
        (vec!["render", img, "-o", "/tmp/x.png", "--slice", "3"], "slice 3"),
        (vec!["render", img, "-o", "/tmp/x.png", "--limits", "a,b"], "--limits"),
        (vec!["render", img, "-o", "/tmp/x.png", "--scale", "cubic"], "--scale"),
        (vec!["probe", img, "512", "0"], "outside"),
    ] {
        let out = vastview(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(expect), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("img.npy"), "{}", stderr(&out));
    }
    assert!(!std::path::Path::new("/tmp/x.png").exists() || std::fs::remove_file("/tmp/x.png").is_ok());
}

#[test]
fn the_data_file_is_never_modified() {
    let (dir, _) = oracle();
    let f = dir.join("img.npy");
    let before = std::fs::read(&f).expect("read");
    let mtime = std::fs::metadata(&f).and_then(|m| m.modified()).ok();
    let out_png = dir.join("never_modified.png");
    let out = vastview(&["render", f.to_str().unwrap_or_default(), "-o", out_png.to_str().unwrap_or_default()]);
    assert!(out.status.success() || out.status.code() == Some(1), "{}", stderr(&out));
    assert_eq!(std::fs::read(&f).expect("read"), before);
    assert_eq!(std::fs::metadata(&f).and_then(|m| m.modified()).ok(), mtime);
}
