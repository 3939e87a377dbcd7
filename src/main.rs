//! The `vastview` binary: parses the command line and hands it to the library; errors become one line and an exit code.

fn main() {
    let cli = vastview::cli::parse();
    if cli.command.is_some() && std::env::var_os("NODEVICE_SELECT").is_none() {
        // Headless commands touch no windowing system. Mesa's implicit Vulkan device-selection layer would look for
        // a Wayland and an X display to pick a GPU (libwayland then prints `error: XDG_RUNTIME_DIR is invalid or not
        // set` when that is unset); wgpu picks the adapter itself. Set here, before any thread exists.
        std::env::set_var("NODEVICE_SELECT", "1");
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match vastview::cli::run(cli, &mut out) {
        Ok(0) => {}
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("vastview: {e}");
            std::process::exit(if e.is_user_error() { 2 } else { 1 });
        }
    }
}
