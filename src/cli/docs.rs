//! Shell completions and the man page, generated from the clap definitions of [`super::Cli`].

/// The completion script of `shell` (`vastview completions SHELL`).
pub fn completion(shell: clap_complete::Shell) -> String {
    let mut cmd = super::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "vastview", &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// vastview(1) in roff: the top-level page (synopsis, window options, the list of subcommands), then one
/// section per subcommand with its synopsis and options.
pub fn manpage() -> String {
    let mut cmd = super::command();
    cmd.build();
    let mut page = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = clap_mangen::Man::new(cmd.clone()).render(&mut page);
    let mut text = String::from_utf8_lossy(&page).into_owned();
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        // `build` gave every subcommand its bin name, `vastview NAME`, which the synopsis shows.
        let name = format!("vastview {}", sub.get_name());
        let mut buf = Vec::new();
        let man = clap_mangen::Man::new(sub.clone());
        let _ = man.render_synopsis_section(&mut buf);
        let _ = man.render_description_section(&mut buf);
        if sub.get_arguments().any(|a| !a.is_hide_set()) {
            let _ = man.render_options_section(&mut buf);
        }
        if sub.has_subcommands() {
            let _ = man.render_subcommands_section(&mut buf);
        }
        let body = String::from_utf8_lossy(&buf)
            .replace(".SH SYNOPSIS\n", &format!(".SH \"{}\"\n", name.to_uppercase()))
            .replace(".SH DESCRIPTION\n", ".PP\n")
            .replace(".SH OPTIONS\n", ".SS Options\n")
            .replace(".SH SUBCOMMANDS\n", ".SS Subcommands\n");
        text.push_str(&body);
    }
    text
}
