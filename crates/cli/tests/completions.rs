//! `holdfast completions SHELL` and `holdfast manpages DIR`: the scripts a real bash completes
//! with, and one man page per command that groff renders without a warning. Needs bash and
//! groff (Debian: groff-base, installed with man-db).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

fn holdfast(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(args)
        .output()
        .expect("run holdfast")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "holdfast failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 output")
}

/// What bash's programmable completion offers for `words` (the last one being completed).
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let line = words.join(" ");
    let program = format!(
        "source '{}' || exit 3\n\
         COMP_WORDS=({line}); COMP_CWORD={cword}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}\n\
         _holdfast holdfast '{cur}' '{prev}' || exit 4\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        cword = words.len() - 1,
        cur = words[words.len() - 1],
        prev = words[words.len() - 2],
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .output()
        .expect("bash is needed for this test");
    assert!(
        out.status.success(),
        "bash completion failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bash_completes_subcommands_options_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("holdfast.bash");
    std::fs::write(&script, stdout(&holdfast(&["completions", "bash"]))).unwrap();

    let subcommands = bash_complete(&script, &["holdfast", "re"]);
    assert_eq!(subcommands, ["restore"], "holdfast re<TAB>");
    let all = bash_complete(&script, &["holdfast", ""]);
    for c in [
        "backup",
        "binlog",
        "completions",
        "drill",
        "restore",
        "status",
    ] {
        assert!(
            all.contains(&c.to_string()),
            "holdfast <TAB> lacks {c}: {all:?}"
        );
    }
    assert!(
        !all.contains(&"manpages".to_string()),
        "the hidden manpages command is offered: {all:?}"
    );
    let options = bash_complete(&script, &["holdfast", "backup", "--eng"]);
    assert_eq!(options, ["--engine"], "holdfast backup --eng<TAB>");
    let nested = bash_complete(&script, &["holdfast", "binlog", "st"]);
    assert_eq!(nested, ["stream"], "holdfast binlog st<TAB>");
    let shells = bash_complete(&script, &["holdfast", "completions", "z"]);
    assert_eq!(shells, ["zsh"], "holdfast completions z<TAB>");
}

#[test]
fn every_shell_gets_a_script_naming_the_commands() {
    for (shell, marker) in [
        ("bash", "complete -F _holdfast"),
        ("zsh", "#compdef holdfast"),
        ("fish", "complete -c holdfast"),
        ("elvish", "edit:completion:arg-completer[holdfast]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let script = stdout(&holdfast(&["completions", shell]));
        assert!(script.contains(marker), "{shell}: no `{marker}`");
        for command in [
            "backup",
            "restore",
            "binlog",
            "stream",
            "--repo",
            "--to-time",
        ] {
            assert!(script.contains(command), "{shell}: no {command}");
        }
    }
    let bad = holdfast(&["completions", "tcsh"]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("possible values: bash, elvish, fish, powershell, zsh"),
        "{err}"
    );
}

/// The visible commands below `path`, as `holdfast <path> --help` lists them.
fn visible_commands(path: &[String], found: &mut BTreeSet<String>) {
    let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
    args.push("--help");
    let help = stdout(&holdfast(&args));
    let Some(section) = help.split("\nCommands:\n").nth(1) else {
        return;
    };
    for line in section.lines().take_while(|l| l.starts_with("  ")) {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        if name == "help" || !line.starts_with("  ") || line.starts_with("   ") {
            continue;
        }
        let mut sub = path.to_vec();
        sub.push(name.to_string());
        found.insert(format!("holdfast-{}.1", sub.join("-")));
        visible_commands(&sub, found);
    }
}

#[test]
fn one_man_page_per_command_rendering_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man/man1");
    let listed = stdout(&holdfast(&["manpages", man.to_str().unwrap()]));

    let mut expected = BTreeSet::from(["holdfast.1".to_string()]);
    visible_commands(&[], &mut expected);
    let written: BTreeSet<String> = std::fs::read_dir(&man)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(written, expected, "one page per visible command");
    for page in [
        "holdfast-backup.1",
        "holdfast-binlog-stream.1",
        "holdfast-completions.1",
    ] {
        assert!(written.contains(page), "no {page}");
    }
    assert!(!written
        .iter()
        .any(|p| p.contains("manpages") || p.contains("help")));
    let listed: BTreeSet<String> = listed.lines().map(str::to_string).collect();
    let paths: BTreeSet<String> = expected
        .iter()
        .map(|p| man.join(p).display().to_string())
        .collect();
    assert_eq!(listed, paths, "stdout lists every page written");

    let backup = std::fs::read_to_string(man.join("holdfast-backup.1")).unwrap();
    assert!(backup.contains(".TH holdfast-backup 1"), "{backup}");
    assert!(
        backup.contains("\\-\\-engine"),
        "the backup page documents --engine"
    );
    let top = std::fs::read_to_string(man.join("holdfast.1")).unwrap();
    assert!(
        top.contains("holdfast\\-restore(1)"),
        "holdfast.1 names its subcommands"
    );

    for page in &written {
        let out = Command::new("groff")
            .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
            .arg(man.join(page))
            .output()
            .expect("groff is needed for this test (apt-get install groff-base)");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "groff on {page}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // `man` finds the pages under a MANPATH, as with the Debian package's /usr/share/man.
    let out = Command::new("man")
        .args(["-P", "cat", "holdfast-restore"])
        .env("MANPATH", dir.path().join("man"))
        .env("MANWIDTH", "100")
        .output()
        .expect("man is needed for this test (apt-get install man-db)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("--to-time"),
        "man holdfast-restore: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn manpages_into_an_unwritable_place_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let out = holdfast(&["manpages", file.join("man").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot create") && err.contains("choose a directory you can write to"),
        "{err}"
    );
}
