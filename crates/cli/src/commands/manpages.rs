//! `holdfast manpages DIR` (hidden): writes the man pages, one per command and subcommand
//! (`holdfast.1`, `holdfast-backup.1`, `holdfast-binlog-stream.1`, …), generated with
//! clap_mangen from the clap definition of this very binary.
//!
//! A hidden subcommand rather than a build-time xtask: the pages come from the binary that is
//! packaged (no second build of the argument definitions, which live in this binary crate and
//! not in a library an xtask could link), and anyone who built holdfast from source can install
//! them the same way `scripts/build-deb.sh` does.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::CommandFactory;

use crate::output::outln;

#[derive(clap::Args)]
pub struct Args {
    /// Directory to write the pages into (created if missing; existing pages are replaced).
    dir: PathBuf,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let usage = |what: String, e: std::io::Error| {
        anyhow::Error::new(holdfast::Error::with_source(
            holdfast::ErrorKind::Usage,
            format!("{what}; choose a directory you can write to"),
            e,
        ))
    };
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| usage(format!("cannot create {}", args.dir.display()), e))?;
    let mut cmd = crate::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    write_pages(cmd, &args.dir, &mut written).map_err(|e| {
        usage(
            format!("cannot write man pages into {}", args.dir.display()),
            e,
        )
    })?;
    written.sort();
    for path in &written {
        outln!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the page of `cmd` and, recursively, of every visible subcommand.
fn write_pages(cmd: clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub.clone(), dir, written)?;
    }
    let page = clap_mangen::Man::new(cmd)
        .manual("holdfast manual")
        .source(format!("holdfast {}", env!("CARGO_PKG_VERSION")));
    written.push(page.generate_to(dir)?);
    Ok(())
}
