//! The generated pages and completions cover every visible subcommand and option.

use std::fs;
use std::process::Command as Process;

use clap::{Arg, ArgAction, Command};
use lake_cli_docs::{generate, Section};

fn tool() -> Command {
    Command::new("demo")
        .version("1.2.3")
        .about("A demo tool")
        .arg(Arg::new("lake").long("lake").global(true).help("The lake directory"))
        .subcommand(
            Command::new("commit").about("Record a tree").arg(Arg::new("message").short('m').long("message").help("The commit message")),
        )
        .subcommand(
            Command::new("branch").about("Work with branches").subcommand(
                Command::new("list")
                    .about("List the branches")
                    .arg(Arg::new("all").long("all").action(ArgAction::SetTrue).help("Every volume's too")),
            ),
        )
        .subcommand(Command::new("secret").hide(true))
}

#[test]
fn writes_one_page_per_visible_subcommand_and_three_completions() {
    let dir = tempfile::tempdir().unwrap();
    let files = generate(tool(), Section::Admin, dir.path()).unwrap();
    let mut names: Vec<String> = files.iter().map(|f| f.strip_prefix(dir.path()).unwrap().display().to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "completions/bash/demo",
            "completions/fish/demo.fish",
            "completions/zsh/_demo",
            "man/man8/demo-branch-list.8",
            "man/man8/demo-branch.8",
            "man/man8/demo-commit.8",
            "man/man8/demo.8",
        ]
    );

    let main = fs::read_to_string(dir.path().join("man/man8/demo.8")).unwrap();
    assert!(main.contains(".TH demo 8"), "title and section: {main}");
    for want in ["commit", "branch", "Record a tree", "\\-\\-lake", "1.2.3"] {
        assert!(main.contains(want), "demo.8 lacks {want}: {main}");
    }
    assert!(!main.contains("secret"), "a hidden subcommand is listed: {main}");
    let list = fs::read_to_string(dir.path().join("man/man8/demo-branch-list.8")).unwrap();
    for want in ["demo\\-branch\\-list", "\\-\\-all", "\\-\\-lake", "List the branches"] {
        assert!(list.contains(want), "demo-branch-list.8 lacks {want}: {list}");
    }

    let bash = fs::read_to_string(dir.path().join("completions/bash/demo")).unwrap();
    assert!(bash.contains("complete -F _demo") && bash.contains("--message"), "{bash}");
    let zsh = fs::read_to_string(dir.path().join("completions/zsh/_demo")).unwrap();
    assert!(zsh.starts_with("#compdef demo") && zsh.contains("--all"), "{zsh}");
    let fish = fs::read_to_string(dir.path().join("completions/fish/demo.fish")).unwrap();
    assert!(fish.contains("complete -c demo") && fish.contains("-l message"), "{fish}");
}

/// man(1) renders the page (groff parses it) with every option in the text.
#[test]
fn pages_render_with_man() {
    if Process::new("man").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "man(1) is missing (install man-db)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    generate(tool(), Section::Commands, dir.path()).unwrap();
    let out = Process::new("man")
        .args(["-l", "-P", "cat"])
        .arg(dir.path().join("man/man1/demo-commit.1"))
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "man -l failed: {}", String::from_utf8_lossy(&out.stderr));
    for want in ["demo-commit", "Record a tree", "-m, --message", "--lake"] {
        assert!(text.contains(want), "rendered page lacks {want}: {text}");
    }
}
