//! `holdfast completions SHELL`: the shell completion script, generated from the same clap
//! definition the binary parses with, so it never drifts from the options it completes.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::CommandFactory;
use clap_complete::Shell;

#[derive(clap::Args)]
#[command(after_help = "Install, e.g.:
  bash: holdfast completions bash > /etc/bash_completion.d/holdfast
        (or ~/.local/share/bash-completion/completions/holdfast)
  zsh:  holdfast completions zsh > \"${fpath[1]}/_holdfast\"
  fish: holdfast completions fish > ~/.config/fish/completions/holdfast.fish
The Debian package installs the bash, zsh and fish scripts.")]
pub struct Args {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut visible_command(), "holdfast", &mut script);
    let mut out = std::io::stdout().lock();
    match out.write_all(&script).and_then(|()| out.flush()) {
        // `holdfast completions bash | head` is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("writing the completion script to stdout"))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// The command line without its hidden subcommands: clap_complete offers hidden subcommands
/// too, and clap cannot remove one, so the root is rebuilt from the visible parts.
fn visible_command() -> clap::Command {
    let full = crate::Cli::command();
    let mut cmd = clap::Command::new("holdfast")
        .version(env!("CARGO_PKG_VERSION"))
        .about(full.get_about().cloned().unwrap_or_default());
    for arg in full.get_arguments() {
        cmd = cmd.arg(arg.clone());
    }
    for sub in full.get_subcommands().filter(|s| !s.is_hide_set()) {
        cmd = cmd.subcommand(sub.clone());
    }
    cmd
}
