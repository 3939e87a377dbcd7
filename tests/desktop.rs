//! Desktop integration: `install_into` writes the launcher, MIME package and icons under a scratch XDG
//! data home, and — where shared-mime-info, desktop-file-utils and xdg-utils are installed — the desktop
//! tools then answer `application/x-npy` for .npy files and `vastview.desktop` as their default
//! application; `uninstall_from` takes all of it back and touches nothing it did not write.
//! Checks needing a missing program are skipped with a line on stderr.

use std::path::{Path, PathBuf};
use std::process::Command;

use vastview::desktop::{install_into, uninstall_from, XdgDirs, DESKTOP_ID, MARKER, MIME_TYPE};

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vastview-desktop-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Separate home, data home and config home under `root`, so the test shows XDG_* are honoured.
fn dirs(root: &Path) -> XdgDirs {
    XdgDirs {
        home: root.join("home"),
        data_home: root.join("data"),
        config_home: root.join("config"),
        search_path: None,
    }
}

fn have(program: &str) -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file())).unwrap_or(false)
}

fn skipped(what: &str, needs: &str) {
    eprintln!("desktop test: not checked (needs {needs}): {what}");
}

fn asset(rel: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets").join(rel)).expect("read asset")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs xdg-mime as a generic (no desktop environment) session of the scratch user would: only the
/// scratch directories are searched, so the answers come from what install wrote.
fn xdg_mime(root: &Path, args: &[&str]) -> String {
    let d = dirs(root);
    let out = Command::new("xdg-mime")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &d.home)
        .env("XDG_DATA_HOME", &d.data_home)
        .env("XDG_CONFIG_HOME", &d.config_home)
        .env("XDG_DATA_DIRS", root.join("system-data"))
        .env("XDG_CONFIG_DIRS", root.join("system-config"))
        .env("XDG_CURRENT_DESKTOP", "X-Generic")
        .output()
        .expect("run xdg-mime");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Every file install writes, in its order.
fn installed(d: &XdgDirs) -> [PathBuf; 8] {
    [
        d.desktop_file(),
        d.mime_package(),
        d.icon_svg(),
        d.icon_png(),
        d.bash_completion(),
        d.zsh_completion(),
        d.fish_completion(),
        d.man_page(),
    ]
}

/// Every file under `root`, relative to it, sorted.
fn files_under(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push(p.strip_prefix(root).expect("under root").to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// A 2x3 little-endian float32 .npy (version 1.0 header, padded to 64 bytes).
fn npy_bytes() -> Vec<u8> {
    let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }".to_string();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(header.len() as u16).to_le_bytes());
    b.extend_from_slice(header.as_bytes());
    b.extend(std::iter::repeat_n(0u8, 24));
    b
}

#[test]
fn install_registers_npy_files_and_uninstall_takes_back_exactly_what_it_wrote() {
    let root = scratch("roundtrip");
    let d = dirs(&root);
    let exe = Path::new(env!("CARGO_BIN_EXE_vastview"));
    // The user already has defaults of their own; they must survive install + uninstall byte for byte.
    let list_before =
        "[Default Applications]\ntext/plain=gedit.desktop\n\n[Added Associations]\nimage/png=eog.desktop;\n";
    std::fs::create_dir_all(&d.config_home).expect("mkdir config");
    std::fs::write(d.mimeapps_list(), list_before).expect("write mimeapps.list");

    let report = install_into(&d, exe).expect("install");
    let expected = installed(&d);
    assert_eq!(report.files, expected, "notes: {:?}", report.notes);
    assert_eq!(d.desktop_file(), d.data_home.join("applications/vastview.desktop"));
    assert_eq!(d.mime_package(), d.data_home.join("mime/packages/vastview.xml"));
    assert_eq!(d.icon_svg(), d.data_home.join("icons/hicolor/scalable/apps/vastview.svg"));
    assert_eq!(d.icon_png(), d.data_home.join("icons/hicolor/256x256/apps/vastview.png"));
    for p in &expected {
        // Written by rename from a temporary name: no temporary is left beside it.
        let dir = p.parent().expect("parent");
        let leftovers: Vec<_> = std::fs::read_dir(dir)
            .expect("list")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    // The launcher: the absolute binary, one file argument, the MIME type, the icon.
    let desktop = read(&d.desktop_file());
    let lines: Vec<&str> = desktop.lines().collect();
    assert_eq!(lines[0], "[Desktop Entry]");
    let exe_s = exe.to_str().expect("utf-8 exe");
    assert!(Path::new(exe_s).is_absolute());
    assert_eq!(lines.iter().filter(|l| l.starts_with("Exec=")).collect::<Vec<_>>(), [&format!("Exec={exe_s} %f")]);
    assert!(lines.contains(&format!("TryExec={exe_s}").as_str()), "{desktop}");
    for want in ["Type=Application", "Icon=vastview", "Terminal=false"] {
        assert!(lines.contains(&want), "{want} missing from:\n{desktop}");
    }
    // Every MIME type of the registry's formats, npy first.
    let mime_line = lines.iter().find(|l| l.starts_with("MimeType=")).expect("MimeType=");
    let listed: Vec<&str> = mime_line["MimeType=".len()..].split(';').filter(|m| !m.is_empty()).collect();
    assert_eq!(listed, vastview::desktop::mime_types(), "{mime_line}");
    assert_eq!(listed[0], MIME_TYPE);
    assert!(desktop.contains(MARKER));
    // The MIME package: generated from the registry (one entry per format); the icons: exactly the assets.
    let xml = read(&d.mime_package());
    assert_eq!(xml, vastview::desktop::mime_xml());
    for f in vastview::source::registry::FORMATS {
        assert!(xml.contains(&format!(r#"<mime-type type="{}">"#, f.mime[0])), "{} missing from:\n{xml}", f.name);
        for e in f.extensions {
            assert!(xml.contains(&format!(r#"<glob pattern="*.{e}"/>"#)), "*.{e} missing from:\n{xml}");
        }
    }
    for want in [
        r#"<mime-type type="application/x-npy">"#,
        "<comment>NumPy array</comment>",
        r#"<glob pattern="*.npy"/>"#,
        r#"<match type="string" offset="0" value="\x93NUMPY"/>"#,
    ] {
        assert!(xml.contains(want), "{want} missing from:\n{xml}");
    }
    assert_eq!(std::fs::read(d.icon_svg()).expect("read svg"), asset("icons/vastview.svg"));
    assert!(read(&d.icon_svg()).contains("<svg"));
    assert_eq!(std::fs::read(d.icon_png()).expect("read png"), asset("icons/vastview-256.png"));
    let png = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(d.icon_png()).expect("open png")));
    let info = png.read_info().expect("png header").info().clone();
    assert_eq!((info.width, info.height), (256, 256));

    if have("desktop-file-validate") {
        let out = Command::new("desktop-file-validate").arg(d.desktop_file()).output().expect("validate");
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && text.trim().is_empty(), "desktop-file-validate: {text}");
    } else {
        skipped("the .desktop file passes desktop-file-validate", "desktop-file-utils");
    }

    // The databases the helpers build from those files.
    if have("update-mime-database") {
        assert!(report.notes.iter().any(|n| n.starts_with("ran update-mime-database")), "{:?}", report.notes);
        let globs = read(&d.data_home.join("mime/globs2"));
        assert!(globs.lines().any(|l| l.ends_with(":application/x-npy:*.npy")), "{globs}");
        let magic = std::fs::read(d.data_home.join("mime/magic")).expect("mime/magic");
        assert!(magic.windows(6).any(|w| w == b"\x93NUMPY"), "the \\x93 escape was not decoded");
    } else {
        skipped("update-mime-database builds the MIME database", "shared-mime-info");
    }
    if have("update-desktop-database") {
        let cache = read(&d.data_home.join("applications/mimeinfo.cache"));
        assert!(cache.lines().any(|l| l == "application/x-npy=vastview.desktop;"), "{cache}");
    } else {
        skipped("update-desktop-database lists vastview for application/x-npy", "desktop-file-utils");
    }

    // What the desktop sees: the default application and the type of .npy files.
    let npy = root.join("work/data.npy");
    let no_ext = root.join("work/array");
    std::fs::create_dir_all(root.join("work")).expect("mkdir work");
    std::fs::write(&npy, npy_bytes()).expect("write npy");
    std::fs::write(&no_ext, npy_bytes()).expect("write npy without extension");
    let xdg = have("xdg-mime");
    let filetype = xdg && have("mimetype") && have("update-mime-database");
    if xdg {
        let list = read(&d.mimeapps_list());
        assert!(list.lines().any(|l| l == "application/x-npy=vastview.desktop"), "{list}");
        assert!(list.contains("text/plain=gedit.desktop") && list.contains("image/png=eog.desktop;"), "{list}");
        assert_eq!(xdg_mime(&root, &["query", "default", MIME_TYPE]), DESKTOP_ID);
    } else {
        skipped("xdg-mime query default application/x-npy prints vastview.desktop", "xdg-utils");
        assert_eq!(read(&d.mimeapps_list()), list_before);
    }
    if filetype {
        let npy_s = npy.to_str().expect("utf-8");
        assert_eq!(xdg_mime(&root, &["query", "filetype", npy_s]), MIME_TYPE, "by the *.npy glob");
        assert_eq!(xdg_mime(&root, &["query", "filetype", no_ext.to_str().expect("utf-8")]), MIME_TYPE, "by magic");
    } else {
        skipped(
            "xdg-mime query filetype some.npy prints application/x-npy (by glob and by magic)",
            "xdg-utils, libfile-mimeinfo-perl or shared-mime-info",
        );
    }

    // Installing again replaces vastview's own files without complaint.
    let again = install_into(&d, exe).expect("reinstall");
    assert_eq!(again.files, expected);

    // Uninstall: every file gone, the user's mimeapps.list back as it was, the desktop no longer answers vastview.
    let removed = uninstall_from(&d).expect("uninstall");
    let mut want_removed = expected.to_vec();
    if xdg {
        want_removed.push(d.mimeapps_list());
    }
    assert_eq!(removed.files, want_removed, "notes: {:?}", removed.notes);
    for p in &expected {
        assert!(!p.exists(), "{} still there", p.display());
    }
    assert_eq!(read(&d.mimeapps_list()), list_before);
    if have("update-mime-database") {
        let globs = read(&d.data_home.join("mime/globs2"));
        assert!(!globs.contains("application/x-npy"), "{globs}");
    }
    if have("update-desktop-database") {
        let cache = read(&d.data_home.join("applications/mimeinfo.cache"));
        assert!(!cache.contains("vastview"), "{cache}");
    }
    if xdg {
        assert_ne!(xdg_mime(&root, &["query", "default", MIME_TYPE]), DESKTOP_ID);
    }
    if filetype {
        assert_ne!(xdg_mime(&root, &["query", "filetype", npy.to_str().expect("utf-8")]), MIME_TYPE);
    }
    // Nothing left to remove: a second uninstall does nothing.
    let nothing = uninstall_from(&d).expect("uninstall again");
    assert!(nothing.files.is_empty() && nothing.notes.is_empty(), "{nothing:?}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn without_the_helper_programs_install_writes_the_files_and_notes_each_missing_one() {
    let root = scratch("nohelpers");
    let mut d = dirs(&root);
    d.search_path = Some(root.join("empty-bin").into_os_string());
    let report = install_into(&d, Path::new(env!("CARGO_BIN_EXE_vastview"))).expect("install");
    assert_eq!(report.files, installed(&d));
    assert!(report.files.iter().all(|p| p.is_file()));
    for (program, package) in [
        ("update-mime-database", "shared-mime-info"),
        ("update-desktop-database", "desktop-file-utils"),
        ("xdg-mime", "xdg-utils"),
    ] {
        assert!(
            report.notes.iter().any(|n| n.starts_with(&format!("{program} not found (package {package})"))),
            "{program}: {:?}",
            report.notes
        );
    }
    assert_eq!(report.notes.len(), 3, "{:?}", report.notes);
    assert!(!d.mimeapps_list().exists(), "nothing else may write mimeapps.list");
    assert!(!d.data_home.join("mime/mime.cache").exists());

    let removed = uninstall_from(&d).expect("uninstall");
    assert_eq!(removed.files, report.files);
    assert!(removed.files.iter().all(|p| !p.exists()));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn files_vastview_did_not_write_are_never_replaced_or_removed() {
    let root = scratch("foreign");
    let mut d = dirs(&root);
    d.search_path = Some(root.join("empty-bin").into_os_string());
    let exe = Path::new(env!("CARGO_BIN_EXE_vastview"));
    let mine = "[Desktop Entry]\nType=Application\nName=My own vastview\nExec=/opt/vv %f\n";
    std::fs::create_dir_all(d.desktop_file().parent().expect("parent")).expect("mkdir");
    std::fs::write(d.desktop_file(), mine).expect("write");

    // Install refuses before writing anything.
    let err = install_into(&d, exe).expect_err("install over a foreign file");
    let msg = err.to_string();
    assert!(msg.contains("vastview.desktop") && msg.contains("not written by vastview"), "{msg}");
    assert_eq!(read(&d.desktop_file()), mine);
    for p in [d.mime_package(), d.icon_svg(), d.icon_png()] {
        assert!(!p.exists(), "{} was written", p.display());
    }

    // Uninstall leaves it (and a foreign icon) alone, and takes only vastview out of a shared default.
    std::fs::create_dir_all(d.icon_png().parent().expect("parent")).expect("mkdir");
    std::fs::write(d.icon_png(), b"\x89PNG not ours").expect("write");
    std::fs::create_dir_all(&d.config_home).expect("mkdir");
    std::fs::write(
        d.mimeapps_list(),
        "[Added Associations]\napplication/x-npy=vastview.desktop;\n\n[Default Applications]\n\
         application/x-npy=vastview.desktop;napari.desktop;\ntext/plain=gedit.desktop\n",
    )
    .expect("write mimeapps.list");
    let report = uninstall_from(&d).expect("uninstall");
    assert_eq!(read(&d.desktop_file()), mine);
    assert_eq!(std::fs::read(d.icon_png()).expect("read"), b"\x89PNG not ours");
    assert_eq!(report.files, [d.mimeapps_list()]);
    assert_eq!(
        read(&d.mimeapps_list()),
        "[Added Associations]\napplication/x-npy=vastview.desktop;\n\n[Default Applications]\n\
         application/x-npy=napari.desktop;\ntext/plain=gedit.desktop\n"
    );
    let left: Vec<_> = report.notes.iter().filter(|n| n.starts_with("left ")).collect();
    assert_eq!(left.len(), 2, "{:?}", report.notes);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn exec_line_quotes_an_awkward_binary_path_as_the_desktop_entry_spec_says() {
    let root = scratch("quoting");
    let mut d = dirs(&root);
    d.search_path = Some(root.join("empty-bin").into_os_string());
    let bin_dir = root.join(r#"odd "q" $x 100%"#);
    std::fs::create_dir_all(&bin_dir).expect("mkdir");
    let exe = bin_dir.join("vastview");
    std::fs::write(&exe, b"").expect("write fake binary");
    install_into(&d, &exe).expect("install");
    let desktop = read(&d.desktop_file());
    let r = root.to_str().expect("utf-8 temp dir");
    assert!(!r.contains(['"', '\\', '$', '%', ' ']), "the expected line below assumes a plain temp dir: {r}");
    // Quoted for the space; \" and \$ inside the quotes; %% for %; then every \ doubled by the string escape.
    let want = format!(r#"Exec="{r}/odd \\"q\\" \\$x 100%%/vastview" %f"#);
    assert!(desktop.lines().any(|l| l == want), "want {want} in:\n{desktop}");
    assert!(desktop.lines().any(|l| l == format!(r#"TryExec={r}/odd "q" $x 100%/vastview"#)), "{desktop}");
    if have("desktop-file-validate") {
        let out = Command::new("desktop-file-validate").arg(d.desktop_file()).output().expect("validate");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
    // A path that is not a file is refused.
    assert!(install_into(&d, &root.join("missing")).is_err());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn install_writes_completions_and_a_man_page_that_parse_and_uninstall_leaves_the_tree_as_before() {
    let root = scratch("completions");
    let mut d = dirs(&root);
    d.search_path = Some(root.join("empty-bin").into_os_string());
    std::fs::create_dir_all(&d.data_home).expect("mkdir data");
    std::fs::create_dir_all(&d.config_home).expect("mkdir config");
    let before = files_under(&root);
    let report = install_into(&d, Path::new(env!("CARGO_BIN_EXE_vastview"))).expect("install");
    assert_eq!(report.files, installed(&d));
    assert_eq!(d.bash_completion(), d.data_home.join("bash-completion/completions/vastview"));
    assert_eq!(d.zsh_completion(), d.data_home.join("zsh/site-functions/_vastview"));
    assert_eq!(d.fish_completion(), d.config_home.join("fish/completions/vastview.fish"));
    assert_eq!(d.man_page(), d.data_home.join("man/man1/vastview.1"));
    let subcommands = [
        "render",
        "info",
        "probe",
        "pyramid",
        "stats",
        "index",
        "cache",
        "install-desktop",
        "uninstall-desktop",
        "colormaps",
        "completions",
        "manpage",
    ];
    // The installed files are what `vastview completions SHELL` / `vastview manpage` print, plus the marker.
    for (path, args) in [
        (d.bash_completion(), vec!["completions", "bash"]),
        (d.zsh_completion(), vec!["completions", "zsh"]),
        (d.fish_completion(), vec!["completions", "fish"]),
        (d.man_page(), vec!["manpage"]),
    ] {
        let text = read(&path);
        let printed = crate::common::vastview(&args);
        assert!(printed.status.success(), "{args:?}: {}", crate::common::stderr(&printed));
        let printed = crate::common::stdout(&printed);
        assert!(text.contains(MARKER), "{}", path.display());
        let without: String = text.lines().filter(|l| !l.contains(MARKER)).map(|l| format!("{l}\n")).collect();
        assert_eq!(without, printed, "{}", path.display());
        let plain = text.replace("\\-", "-"); // roff's escaped hyphen
        for sub in subcommands {
            assert!(plain.contains(sub), "{} lacks {sub}", path.display());
        }
    }
    assert!(read(&d.zsh_completion()).starts_with("#compdef vastview\n"));
    let bash = Command::new("bash").arg("-n").arg(d.bash_completion()).output().expect("bash -n");
    assert!(bash.status.success(), "bash -n: {}", String::from_utf8_lossy(&bash.stderr));
    if have("zsh") {
        let zsh = Command::new("zsh").arg("-n").arg(d.zsh_completion()).output().expect("zsh -n");
        assert!(zsh.status.success(), "zsh -n: {}", String::from_utf8_lossy(&zsh.stderr));
    } else {
        skipped("the zsh completion passes zsh -n", "zsh");
    }
    if have("man") {
        let man = Command::new("man")
            .args(["-l", "-P", "cat"])
            .arg(d.man_page())
            .env("MANWIDTH", "100")
            .env("LC_ALL", "C")
            .output()
            .expect("man -l");
        let text = String::from_utf8_lossy(&man.stdout);
        assert!(man.status.success(), "man -l: {}", String::from_utf8_lossy(&man.stderr));
        for want in
            ["SYNOPSIS", "VASTVIEW RENDER", "VASTVIEW UNINSTALL-DESKTOP", "--colormap"].into_iter().chain(subcommands)
        {
            assert!(text.contains(want), "man -l output lacks {want}:\n{text}");
        }
    } else {
        skipped("the man page renders with man -l", "man-db");
    }

    // xdg-mime (not on this search path) would have created mimeapps.list holding only vastview's default.
    std::fs::write(d.mimeapps_list(), "[Default Applications]\napplication/x-npy=vastview.desktop\n").expect("write");
    let removed = uninstall_from(&d).expect("uninstall");
    let mut want: Vec<PathBuf> = installed(&d).to_vec();
    want.push(d.mimeapps_list());
    assert_eq!(removed.files, want, "{:?}", removed.notes);
    assert!(!d.mimeapps_list().exists(), "an empty mimeapps.list was left behind");
    assert_eq!(files_under(&root), before);
    // Only the directories install made are gone: the data and config homes stay.
    assert!(d.data_home.is_dir() && d.config_home.is_dir());
    assert!(!d.data_home.join("bash-completion").exists() && !d.config_home.join("fish").exists());
    let _ = std::fs::remove_dir_all(&root);
}
