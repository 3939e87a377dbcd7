//! Desktop integration for the current user (freedesktop.org/XDG): installs and removes the
//! `vastview.desktop` launcher, a shared-mime-info package for every format of the source registry (globs and
//! magic numbers) and the hicolor icons, refreshes the MIME and desktop databases, makes vastview the default
//! application for the formats that ask for it (`.npy`, FITS; TIFF is listed under Open With), and
//! installs the bash, zsh and fish completions and the vastview(1) man page generated from the clap definitions.
//!
//! Every file this module writes carries [`MARKER`], so uninstalling (and reinstalling) touches only
//! files vastview wrote; a foreign file at one of its paths makes `install` refuse before writing anything.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// The name of the launcher, as `xdg-mime` and `mimeapps.list` refer to it.
pub const DESKTOP_ID: &str = "vastview.desktop";
/// The MIME type of vastview's own format (`.npy`); [`mime_types`] lists all it registers.
pub const MIME_TYPE: &str = "application/x-npy";
/// The text every installed file contains; only files containing it are ever replaced or removed.
pub const MARKER: &str = "Written by vastview install-desktop";

const DESKTOP_TEMPLATE: &str = include_str!("../assets/vastview.desktop");
/// The MIME package name of versions that registered `.npy` only (removed by uninstall too).
const LEGACY_MIME_PACKAGE: &str = "mime/packages/vastview-npy.xml";
const ICON_SVG: &str = include_str!("../assets/icons/vastview.svg");
const ICON_PNG: &[u8] = include_bytes!("../assets/icons/vastview-256.png");

/// Ownership checks read at most this much of an existing file.
const MAX_OWNED_FILE: u64 = 1 << 20;

/// What `install` or `uninstall` did: the files it wrote (install) or removed and edited (uninstall),
/// and one line per thing worth telling the user (programs run, programs missing, files left alone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallReport {
    pub files: Vec<PathBuf>,
    pub notes: Vec<String>,
}

/// Where the user's desktop files live, and where helper programs are looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdgDirs {
    /// The home directory (given to helper programs as HOME).
    pub home: PathBuf,
    /// `$XDG_DATA_HOME`, by default `~/.local/share`: holds applications/, mime/ and icons/.
    pub data_home: PathBuf,
    /// `$XDG_CONFIG_HOME`, by default `~/.config`: holds mimeapps.list.
    pub config_home: PathBuf,
    /// The PATH searched for update-mime-database, update-desktop-database and xdg-mime
    /// (and given to them); `None` means this process's PATH.
    pub search_path: Option<OsString>,
}

impl XdgDirs {
    /// The directories the XDG base-directory spec gives this process: `$XDG_DATA_HOME` and
    /// `$XDG_CONFIG_HOME` when set to absolute paths, otherwise `~/.local/share` and `~/.config`.
    pub fn from_env() -> Result<Self> {
        let home =
            std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from).ok_or_else(|| Error::Output {
                path: PathBuf::from("~/.local/share"),
                msg: "HOME is not set, so there is no per-user data directory".into(),
            })?;
        let absolute = |var: &str| std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_absolute());
        let mut dirs = Self::under_home(&home);
        if let Some(d) = absolute("XDG_DATA_HOME") {
            dirs.data_home = d;
        }
        if let Some(c) = absolute("XDG_CONFIG_HOME") {
            dirs.config_home = c;
        }
        Ok(dirs)
    }

    /// The default layout under `home`: `home/.local/share` and `home/.config`, helpers on this process's PATH.
    pub fn under_home(home: &Path) -> Self {
        XdgDirs {
            home: home.to_path_buf(),
            data_home: home.join(".local/share"),
            config_home: home.join(".config"),
            search_path: None,
        }
    }

    /// `applications/vastview.desktop` under the data home.
    pub fn desktop_file(&self) -> PathBuf {
        self.data_home.join("applications").join(DESKTOP_ID)
    }
    /// `mime/packages/vastview.xml` under the data home.
    pub fn mime_package(&self) -> PathBuf {
        self.data_home.join("mime/packages/vastview.xml")
    }
    /// `icons/hicolor/scalable/apps/vastview.svg` under the data home.
    pub fn icon_svg(&self) -> PathBuf {
        self.data_home.join("icons/hicolor/scalable/apps/vastview.svg")
    }
    /// `icons/hicolor/256x256/apps/vastview.png` under the data home.
    pub fn icon_png(&self) -> PathBuf {
        self.data_home.join("icons/hicolor/256x256/apps/vastview.png")
    }
    /// `bash-completion/completions/vastview` under the data home (bash-completion loads it on demand).
    pub fn bash_completion(&self) -> PathBuf {
        self.data_home.join("bash-completion/completions/vastview")
    }
    /// `zsh/site-functions/_vastview` under the data home (zsh needs that directory in its `fpath`).
    pub fn zsh_completion(&self) -> PathBuf {
        self.data_home.join("zsh/site-functions/_vastview")
    }
    /// `fish/completions/vastview.fish` under the config home.
    pub fn fish_completion(&self) -> PathBuf {
        self.config_home.join("fish/completions/vastview.fish")
    }
    /// `man/man1/vastview.1` under the data home (man-db finds it beside `~/.local/bin` on the PATH).
    pub fn man_page(&self) -> PathBuf {
        self.data_home.join("man/man1/vastview.1")
    }
    /// `mimeapps.list` under the config home (where `xdg-mime default` records the default application).
    pub fn mimeapps_list(&self) -> PathBuf {
        self.config_home.join("mimeapps.list")
    }
}

/// Registers vastview for the current user: writes the .desktop file (Exec= the absolute path of the running
/// binary, `%f`; MimeType=application/x-npy;), the shared-mime-info package (glob *.npy and magic \x93NUMPY at
/// offset 0, type application/x-npy, comment "NumPy array"), and the icon (hicolor scalable svg + 256x256 png)
/// under the XDG data home ($XDG_DATA_HOME or ~/.local/share): applications/, mime/packages/, icons/hicolor/...;
/// then runs update-mime-database, update-desktop-database and `xdg-mime default vastview.desktop application/x-npy`
/// when those programs exist (a missing one is a note, not an error). Assets are embedded with include_str!/include_bytes!.
/// Also writes the bash, zsh and fish completions and the man page (see the [`XdgDirs`] paths).
pub fn install(exe: &Path) -> Result<InstallReport> {
    install_into(&XdgDirs::from_env()?, exe)
}

/// Removes exactly what install wrote (and the mimeapps.list default entry if it names vastview), re-running the databases.
pub fn uninstall() -> Result<InstallReport> {
    uninstall_from(&XdgDirs::from_env()?)
}

/// [`install`] into explicit directories. Checks every target first: if any exists without [`MARKER`]
/// (a file vastview did not write), nothing is written and the error names it.
pub fn install_into(dirs: &XdgDirs, exe: &Path) -> Result<InstallReport> {
    let exe = std::path::absolute(exe).map_err(|e| Error::io(exe, e))?;
    if !exe.is_file() {
        return Err(Error::bad_input(&exe, "not a file: install-desktop needs the path of the vastview binary"));
    }
    let desktop = desktop_entry(&exe)?;
    let mime_xml = mime_xml();
    let [bash, zsh, fish, man] = generated();
    let files: [(PathBuf, &[u8]); 8] = [
        (dirs.desktop_file(), desktop.as_bytes()),
        (dirs.mime_package(), mime_xml.as_bytes()),
        (dirs.icon_svg(), ICON_SVG.as_bytes()),
        (dirs.icon_png(), ICON_PNG),
        (dirs.bash_completion(), bash.as_bytes()),
        (dirs.zsh_completion(), zsh.as_bytes()),
        (dirs.fish_completion(), fish.as_bytes()),
        (dirs.man_page(), man.as_bytes()),
    ];
    for (path, _) in &files {
        if owned(path)? == Some(false) {
            return Err(Error::Output {
                path: path.clone(),
                msg: "exists and was not written by vastview; move it away and install again".into(),
            });
        }
    }
    let mut report = InstallReport::default();
    for (path, bytes) in &files {
        crate::diskcache::write_atomic(path, bytes, None)?;
        report.files.push(path.clone());
    }
    refresh_mime_database(dirs, &mut report.notes);
    refresh_desktop_database(dirs, &mut report.notes);
    let missing = "xdg-mime not found (package xdg-utils): vastview was not made the default application for \
                   .npy and FITS files; pick it under Open With in a file manager";
    let defaults = default_mime_types();
    let mut args = vec![OsStr::new("default"), OsStr::new(DESKTOP_ID)];
    args.extend(defaults.iter().map(OsStr::new));
    run_tool(dirs, "xdg-mime", &args, missing, &mut report.notes);
    Ok(report)
}

/// The bash, zsh and fish completions and the man page, each carrying [`MARKER`] in a comment.
fn generated() -> [String; 4] {
    use clap_complete::Shell;
    let zsh = crate::cli::docs::completion(Shell::Zsh);
    // `#compdef` must stay the first line of a zsh completion.
    let zsh = match zsh.split_once('\n') {
        Some((first, rest)) if first.starts_with("#compdef") => format!("{first}\n# {MARKER}\n{rest}"),
        _ => format!("# {MARKER}\n{zsh}"),
    };
    [
        format!("# {MARKER}\n{}", crate::cli::docs::completion(Shell::Bash)),
        zsh,
        format!("# {MARKER}\n{}", crate::cli::docs::completion(Shell::Fish)),
        format!(".\\\" {MARKER}\n{}", crate::cli::docs::manpage()),
    ]
}

/// [`uninstall`] from explicit directories. Removes only files carrying [`MARKER`] (others get a note),
/// drops `vastview.desktop` from the `application/x-npy` default in mimeapps.list (keeping every other
/// line; the file itself when nothing else is left in it), removes the completion and man directories it
/// emptied, and re-runs
/// the databases whose inputs changed. Nothing installed is not an error.
pub fn uninstall_from(dirs: &XdgDirs) -> Result<InstallReport> {
    let mut report = InstallReport::default();
    let desktop_removed = remove_owned(dirs.desktop_file(), &mut report)?;
    let mut mime_removed = remove_owned(dirs.mime_package(), &mut report)?;
    if owned(&dirs.data_home.join(LEGACY_MIME_PACKAGE))?.is_some() {
        mime_removed |= remove_owned(dirs.data_home.join(LEGACY_MIME_PACKAGE), &mut report)?;
    }
    for p in [dirs.icon_svg(), dirs.icon_png(), dirs.bash_completion(), dirs.zsh_completion()] {
        remove_owned(p, &mut report)?;
    }
    remove_owned(dirs.fish_completion(), &mut report)?;
    remove_owned(dirs.man_page(), &mut report)?;

    let list = dirs.mimeapps_list();
    if let Some(text) = read_text(&list)? {
        if let Some(edited) = without_default(&text) {
            let is_link = fs::symlink_metadata(&list).map_err(|e| Error::io(&list, e))?.file_type().is_symlink();
            if !has_entries(&edited) && !is_link {
                // Only vastview's default was in it (xdg-mime created it for install): leave no empty file.
                fs::remove_file(&list).map_err(|e| Error::io(&list, e))?;
                report.notes.push(format!("removed {} (it held only vastview's default)", list.display()));
            } else {
                // Edit the file a symlinked mimeapps.list points to, not the link.
                let target = fs::canonicalize(&list).map_err(|e| Error::io(&list, e))?;
                let perms = fs::metadata(&target).map_err(|e| Error::io(&target, e))?.permissions();
                crate::diskcache::write_atomic(&target, edited.as_bytes(), Some(perms))?;
                report.notes.push(format!("removed {DESKTOP_ID} as a default application from {}", list.display()));
            }
            report.files.push(list);
        }
    }
    // The completion and man directories exist only for these files (the MIME and icon trees are shared).
    for f in [dirs.bash_completion(), dirs.zsh_completion(), dirs.fish_completion(), dirs.man_page()] {
        if report.files.contains(&f) {
            remove_empty_parents(&f, &[&dirs.data_home, &dirs.config_home]);
        }
    }
    if mime_removed {
        refresh_mime_database(dirs, &mut report.notes);
    }
    if desktop_removed {
        refresh_desktop_database(dirs, &mut report.notes);
    }
    Ok(report)
}

/// True when mimeapps.list text holds any `key=value` line (comments and group headers alone are no entries).
fn has_entries(text: &str) -> bool {
    text.lines().map(str::trim).any(|l| !l.starts_with('#') && !l.starts_with('[') && l.contains('='))
}

/// Removes the directories above `file` that are now empty, stopping at (and never removing) the `roots`;
/// directories outside them are left alone. Best effort: a directory that cannot be removed stays.
fn remove_empty_parents(file: &Path, roots: &[&PathBuf]) {
    let Some(root) = roots.iter().find(|r| file.starts_with(r)) else { return };
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == root.as_path() || !d.starts_with(root) || fs::remove_dir(d).is_err() {
            return;
        }
        dir = d.parent();
    }
}

/// Removes `path` if vastview wrote it (recording it in the report); notes a foreign file and leaves it.
fn remove_owned(path: PathBuf, report: &mut InstallReport) -> Result<bool> {
    match owned(&path)? {
        None => Ok(false),
        Some(false) => {
            report.notes.push(format!("left {} alone: vastview did not write it", path.display()));
            Ok(false)
        }
        Some(true) => {
            fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            report.files.push(path);
            Ok(true)
        }
    }
}

/// Every MIME type of the registry's formats: the launcher's `MimeType=` list.
pub fn mime_types() -> Vec<&'static str> {
    crate::source::registry::mime_types()
}

/// The MIME types vastview becomes the default application for (the formats with `default_app`).
pub fn default_mime_types() -> Vec<&'static str> {
    crate::source::registry::FORMATS.iter().filter(|f| f.default_app).map(|f| f.mime[0]).collect()
}

/// The shared-mime-info package: one `<mime-type>` per format of the registry (its first MIME type),
/// with a glob per extension and its magic numbers, so even types the system database lacks (`.npy`)
/// are recognised by name and by content; the system's own entries for the others (TIFF, FITS) merge.
pub fn mime_xml() -> String {
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- {MARKER}; vastview uninstall-desktop removes it. -->\n\
         <mime-info xmlns=\"http://www.freedesktop.org/standards/shared-mime-info\">\n"
    );
    for f in crate::source::registry::FORMATS {
        s.push_str(&format!("  <mime-type type=\"{}\">\n    <comment>{}</comment>\n", f.mime[0], f.title));
        for m in &f.mime[1..] {
            s.push_str(&format!("    <alias type=\"{m}\"/>\n"));
        }
        for e in f.extensions {
            s.push_str(&format!("    <glob pattern=\"*.{e}\"/>\n"));
        }
        s.push_str("    <magic priority=\"50\">\n");
        for m in f.magic {
            let value: String = m
                .bytes
                .iter()
                .map(|&b| match b {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b' ' | b'=' | b'*' | b'+' => (b as char).to_string(),
                    _ => format!("\\x{b:02x}"),
                })
                .collect();
            s.push_str(&format!("      <match type=\"string\" offset=\"{}\" value=\"{value}\"/>\n", m.offset));
        }
        s.push_str("    </magic>\n  </mime-type>\n");
    }
    s.push_str("</mime-info>\n");
    s
}

/// The launcher text for `exe`: the asset with its Exec= and TryExec= lines pointing at the binary.
fn desktop_entry(exe: &Path) -> Result<String> {
    let s = exe
        .to_str()
        .ok_or_else(|| Error::bad_input(exe, "the binary's path is not UTF-8, which a .desktop file cannot hold"))?;
    if s.chars().any(char::is_control) {
        return Err(Error::bad_input(exe, "the binary's path holds control characters, which Exec= cannot hold"));
    }
    let mut out = String::with_capacity(DESKTOP_TEMPLATE.len() + 2 * s.len());
    for line in DESKTOP_TEMPLATE.lines() {
        if line.starts_with("Exec=") {
            out.push_str(&format!("Exec={} %f", exec_arg(s)));
        } else if line.starts_with("MimeType=") {
            out.push_str(&format!("MimeType={};", mime_types().join(";")));
        } else if line.starts_with("TryExec=") {
            out.push_str(&format!("TryExec={}", s.replace('\\', "\\\\")));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    Ok(out)
}

/// One Exec= argument, quoted and escaped as the Desktop Entry spec says: double quotes when the
/// argument holds a reserved character (with `"`, `` ` ``, `$` and `\` backslash-escaped inside them),
/// `%` doubled, then the string-level escape of `\` applied on top.
fn exec_arg(arg: &str) -> String {
    const RESERVED: &str = " \t\n\"'\\><~|&;$*?#()`";
    let quoted = if arg.is_empty() || arg.chars().any(|c| RESERVED.contains(c)) {
        let mut q = String::from("\"");
        for c in arg.chars() {
            if matches!(c, '"' | '`' | '$' | '\\') {
                q.push('\\');
            }
            q.push(c);
        }
        q.push('"');
        q
    } else {
        arg.to_string()
    };
    quoted.replace('%', "%%").replace('\\', "\\\\")
}

/// `None` when nothing is at `path`; `Some(true)` when a regular file there contains [`MARKER`];
/// `Some(false)` for anything else (another file, a symlink, a directory).
fn owned(path: &Path) -> Result<Option<bool>> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    if !meta.is_file() {
        return Ok(Some(false));
    }
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(MAX_OWNED_FILE).read_to_end(&mut bytes))
        .map_err(|e| Error::io(path, e))?;
    Ok(Some(bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes())))
}

/// The UTF-8 text of `path`, or `None` when it does not exist or is not text.
fn read_text(path: &Path) -> Result<Option<String>> {
    match fs::read(path) {
        Ok(bytes) => Ok(String::from_utf8(bytes).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// mimeapps.list text with `vastview.desktop` taken out of the entries of vastview's MIME types in
/// `[Default Applications]` (the whole line when it named only vastview); `None` when there was nothing to take.
fn without_default(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut in_defaults = false;
    let mut changed = false;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let trimmed = body.trim();
        if trimmed.starts_with('[') {
            in_defaults = trimmed == "[Default Applications]";
        } else if in_defaults {
            if let Some((key, value)) = body.split_once('=') {
                if mime_types().contains(&key.trim()) {
                    let apps: Vec<&str> = value.split(';').map(str::trim).filter(|a| !a.is_empty()).collect();
                    let kept: Vec<&str> = apps.iter().copied().filter(|a| *a != DESKTOP_ID).collect();
                    if kept.len() != apps.len() {
                        changed = true;
                        if !kept.is_empty() {
                            let end = if value.trim_end().ends_with(';') { ";" } else { "" };
                            out.push_str(&format!("{key}={}{end}{}", kept.join(";"), &line[body.len()..]));
                        }
                        continue;
                    }
                }
            }
        }
        out.push_str(line);
    }
    changed.then_some(out)
}

fn refresh_mime_database(dirs: &XdgDirs, notes: &mut Vec<String>) {
    let dir = dirs.data_home.join("mime");
    let missing = "update-mime-database not found (package shared-mime-info): .npy files will be recognised \
                   once it runs";
    run_tool(dirs, "update-mime-database", &[dir.as_os_str()], missing, notes);
}

fn refresh_desktop_database(dirs: &XdgDirs, notes: &mut Vec<String>) {
    let dir = dirs.data_home.join("applications");
    let missing = "update-desktop-database not found (package desktop-file-utils): some file managers list \
                   vastview under Open With only once it runs";
    run_tool(dirs, "update-desktop-database", &[OsStr::new("-q"), dir.as_os_str()], missing, notes);
}

/// Runs helper `name` with `args` and the user's directories in its environment; records what happened
/// (ran, failed, or `missing` when it is not on the search path) as a note.
fn run_tool(dirs: &XdgDirs, name: &str, args: &[&OsStr], missing: &str, notes: &mut Vec<String>) {
    let path = dirs.search_path.clone().or_else(|| std::env::var_os("PATH")).unwrap_or_default();
    let Some(program) = find_program(name, &path) else {
        notes.push(missing.to_string());
        return;
    };
    let shown = std::iter::once(name.to_string())
        .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ");
    let output = Command::new(&program)
        .args(args)
        .env("HOME", &dirs.home)
        .env("XDG_DATA_HOME", &dirs.data_home)
        .env("XDG_CONFIG_HOME", &dirs.config_home)
        .env("PATH", &path)
        .output();
    match output {
        Ok(o) if o.status.success() => notes.push(format!("ran {shown}")),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let first = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("no message");
            notes.push(format!("{shown} failed ({}): {}", o.status, first.trim()));
        }
        Err(e) => notes.push(format!("could not run {}: {e}", program.display())),
    }
}

/// The first executable file called `name` in the directories of `path` (a PATH value).
fn find_program(name: &str, path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path).filter(|d| d.is_absolute()).map(|d| d.join(name)).find(|p| is_executable(p))
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}
