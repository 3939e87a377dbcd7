//! The `vastview` binary: parses the command line and hands it to the library; errors become one line and an exit code.

use clap::Parser;

fn main() {
    let cli = vastview::cli::Cli::parse();
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
