//! The catalog and the history answer as the caller: in a real `lakefs mount`,
//! an unprivileged user (created by the test) runs `lakectl search`, `lakectl
//! view`, lists `views/NAME/` and `.lake/at/<commit>/`, `lakectl log`,
//! `lakectl restore` and `lakectl status`, and nothing of the files that user
//! may not read shows: no name, no snippet, no count. Root still sees all.
//! Needs /dev/fuse, root, useradd and setfacl (skipped otherwise, with a note).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::common::mount;

/// The test's unprivileged user, and ids of another user and a group that have no entry.
const USER: &str = "lakeos-test";
const OTHER_UID: u32 = 4242;
const GROUP: u32 = 4343;

/// Words of files the test user may not read: none may appear in what the user is told.
const HIDDEN: [&str; 14] = [
    "planword",
    "team/",
    "rootonly",
    "rootsecret",
    "other.txt",
    "othersecret",
    "inner",
    "private",
    "groupword",
    "g.txt",
    "dropname",
    "known.txt",
    "aclgroup",
    "hold.txt",
];

fn user_ids() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").arg(flag).arg(USER).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok().filter(|_| out.status.success())
    };
    if id("-u").is_none() {
        let st = Command::new("useradd").args(["--system", "--no-create-home", USER]).status().ok()?;
        if !st.success() {
            return None;
        }
    }
    Some((id("-u")?, id("-g")?))
}

struct User {
    uid: u32,
    gid: u32,
}

impl User {
    /// Runs `cmd args` as the user, with `groups` as its supplementary groups.
    fn run(&self, groups: &[u32], cmd: &str, args: &[&str]) -> Output {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid)).arg(format!("--regid={}", self.gid));
        if groups.is_empty() {
            c.arg("--clear-groups");
        } else {
            let g: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
            c.arg(format!("--groups={}", g.join(",")));
        }
        c.arg(cmd).args(args).current_dir("/").env_remove("LAKE").output().expect("run setpriv")
    }

    fn lakectl(&self, groups: &[u32], args: &[&str]) -> Output {
        self.run(groups, crate::common::path_str(&crate::common::lakectl()), args)
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn success(what: &str, o: Output) -> String {
    assert!(o.status.success(), "{what}: {}\n{}", o.status, text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts that nothing about the hidden files is in `o` (but `allowed` words may be).
fn reveals_nothing(what: &str, o: &Output, allowed: &[&str]) {
    let t = text(o);
    for w in HIDDEN.iter().filter(|w| !allowed.contains(w)) {
        assert!(!t.contains(w), "{what} reveals '{w}':\n{t}");
    }
}

fn root(args: &[&str]) -> String {
    let o = Command::new(crate::common::lakectl()).env_remove("LAKE").args(args).output().expect("run lakectl");
    success(&format!("lakectl {args:?}"), o)
}

fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().expect("sh");
    assert!(st.success(), "failed: {cmd}");
}

fn search_paths(json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let mut p: Vec<String> = v.as_array().expect("array").iter().map(|h| h["path"].as_str().unwrap_or("").to_owned()).collect();
    p.sort();
    p
}

fn names(o: Output) -> Vec<String> {
    let mut v: Vec<String> = success("ls", o).lines().map(str::to_owned).collect();
    v.sort();
    v
}

#[test]
fn catalog_and_history_answer_as_the_caller() {
    let Some(m) = mount() else { return };
    let (Some((uid, gid)), true) = (user_ids(), Command::new("setfacl").arg("--version").output().is_ok()) else {
        eprintln!("skipping: needs useradd and setfacl (package acl)");
        return;
    };
    let user = User { uid, gid };
    // Every user reaches the mount (and, as on installed systems before lakes were made private, the lake).
    let top = m.mnt.parent().expect("the mount is in the test's directory");
    std::fs::set_permissions(top, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mnt = crate::common::path_str(&m.mnt).to_owned();
    let p = |rel: &str| format!("{mnt}/{rel}");

    // What the user may read: pub/open.txt, pub/acl.txt (a POSIX ACL grants it), and
    // with group GROUP grp/g.txt. The rest is hidden: mode 600 of root and of another
    // user, inside another user's 0700 directory, behind a directory it may enter
    // but not list (0711), and a file whose ACL denies its group what the mode bits show.
    sh(&format!(
        "set -e; cd {mnt}; mkdir pub private grp drop
         echo 'kiwi open words' > pub/open.txt
         echo 'kiwi rootsecret' > pub/rootonly.txt; chmod 600 pub/rootonly.txt
         echo 'kiwi othersecret' > pub/other.txt; chmod 600 pub/other.txt; chown {OTHER_UID}:{OTHER_UID} pub/other.txt
         echo 'kiwi aclgranted' > pub/acl.txt; chmod 600 pub/acl.txt; setfacl -m u:{uid}:r pub/acl.txt
         echo 'kiwi aclgroup' > pub/aclgroup.txt; chown 0:{GROUP} pub/aclgroup.txt; chmod 640 pub/aclgroup.txt
         setfacl -m g::- -m u:{OTHER_UID}:r pub/aclgroup.txt
         echo 'kiwi innersecret' > private/inner.txt; chown -R {OTHER_UID} private; chmod 700 private
         echo 'kiwi groupword' > grp/g.txt; chown -R 0:{GROUP} grp; chmod 750 grp; chmod 640 grp/g.txt
         echo 'kiwi dropname' > drop/known.txt; chmod 711 drop
         mkdir team; chmod 777 team; echo 'kiwi planword' > team/plan.txt; chmod 600 team/plan.txt"
    ));
    let all = [
        "drop/known.txt",
        "grp/g.txt",
        "private/inner.txt",
        "pub/acl.txt",
        "pub/aclgroup.txt",
        "pub/open.txt",
        "pub/other.txt",
        "pub/rootonly.txt",
        "team/plan.txt",
    ];
    let mut args = vec!["commit".to_owned()];
    args.extend(all.iter().map(|r| p(r)));
    args.extend(["-m".into(), "kiwis".into()]);
    let first = root(&args.iter().map(String::as_str).collect::<Vec<_>>()).trim().to_owned();

    // Search: only what the user may read, snippets included; a limit counts visible hits.
    let o = user.lakectl(&[], &["--json", "search", "kiwi", "--in", &mnt]);
    reveals_nothing("search", &o, &[]);
    assert_eq!(search_paths(&success("search", o)), ["pub/acl.txt", "pub/open.txt"]);
    let o = user.lakectl(&[], &["search", "kiwi", "--in", &mnt]);
    reveals_nothing("search (text)", &o, &[]);
    assert!(text(&o).contains("[kiwi] open words"), "{}", text(&o));
    let o = user.lakectl(&[GROUP], &["--json", "search", "kiwi", "--in", &mnt]);
    reveals_nothing("search with the group", &o, &["groupword", "g.txt"]);
    assert_eq!(search_paths(&success("search", o)), ["grp/g.txt", "pub/acl.txt", "pub/open.txt"]);
    for word in ["rootsecret", "innersecret", "dropname"] {
        let o = user.lakectl(&[], &["--json", "search", word, "--in", &mnt]);
        reveals_nothing("search for a hidden word", &o, &[word]);
        assert!(search_paths(&success("search", o)).is_empty());
    }
    let o = user.lakectl(&[], &["--json", "search", "kiwi", "--limit", "1", "--in", &mnt]);
    assert_eq!(search_paths(&success("search --limit 1", o)).len(), 1);
    assert_eq!(search_paths(&root(&["--json", "search", "kiwi", "--in", &mnt])), all);

    // Views: the directory and `view show` list what the caller may read; a view the
    // user makes counts only that. Root lists first, so a listing the kernel cached for
    // root cannot be what the user gets.
    root(&["view", "create", "kiwis", "--query", "text:kiwi", &mnt]);
    let ls_root = names(Command::new("ls").arg(p("views/kiwis")).output().expect("ls"));
    assert_eq!(ls_root.len(), all.len(), "{ls_root:?}");
    let o = user.run(&[], "ls", &[&p("views/kiwis")]);
    assert_eq!(names(o), ["acl.txt", "open.txt"]);
    let o = user.run(&[], "readlink", &[&p("views/kiwis/rootonly.txt")]);
    assert!(!o.status.success(), "a hidden entry cannot be looked up by name: {}", text(&o));
    let o = user.lakectl(&[], &["--json", "view", "show", "kiwis", &mnt]);
    reveals_nothing("view show", &o, &[]);
    let show: serde_json::Value = serde_json::from_str(&success("view show", o)).expect("json");
    assert_eq!(show["entries"].as_array().map(|a| a.len()), Some(2), "{show}");
    let o = user.lakectl(&[], &["view", "create", "mine", "--query", "name ~ '*.txt'", &mnt]);
    assert!(success("view create", o).contains("2 files match"));
    let o = user.lakectl(&[], &["view", "delete", "kiwis", &mnt]);
    assert!(!o.status.success(), "a user may not delete root's view");
    assert!(text(&o).contains("kiwis"), "{}", text(&o));
    assert_eq!(names(Command::new("ls").arg(p("views/mine")).output().expect("ls")).len(), all.len());

    // The past: `.lake/at/<commit>/` reads as the files did then.
    let at = |rel: &str| p(&format!(".lake/at/{first}/{rel}"));
    assert_eq!(success("cat", user.run(&[], "cat", &[&at("pub/open.txt")])), "kiwi open words\n");
    for f in ["pub/rootonly.txt", "pub/other.txt", "private/inner.txt", "grp/g.txt"] {
        let o = user.run(&[], "cat", &[&at(f)]);
        assert!(!o.status.success(), "{f} was read through .lake/at: {}", text(&o));
    }
    assert_eq!(success("cat", user.run(&[GROUP], "cat", &[&at("grp/g.txt")])), "kiwi groupword\n");
    // The mode bits show the group r (the ACL's mask); the ACL denies the group.
    let o = user.run(&[GROUP], "cat", &[&at("pub/aclgroup.txt")]);
    assert!(!o.status.success(), "an ACL-denied file was read through .lake/at: {}", text(&o));
    for d in ["private", "drop"] {
        let o = user.run(&[], "ls", &[&at(d)]);
        assert!(!o.status.success(), "{d} listed through .lake/at: {}", text(&o));
    }

    // Log: the versions of a file the user may read; of others, what a path that never
    // existed gets.
    let o = user.lakectl(&[], &["--json", "log", &p("pub/open.txt")]);
    let log: serde_json::Value = serde_json::from_str(&success("log", o)).expect("json");
    assert_eq!(log["versions"].as_array().map(|v| v.len()), Some(1), "{log}");
    let versions = |f: &str| {
        let o = user.lakectl(&[], &["--json", "log", &p(f)]);
        let v: serde_json::Value = serde_json::from_str(&success("log", o)).expect("json");
        v["versions"].clone()
    };
    assert_eq!(versions("pub/never-was.txt"), serde_json::json!([]));
    for f in ["pub/rootonly.txt", "pub/other.txt", "private/inner.txt", "grp/g.txt", "pub/aclgroup.txt"] {
        assert_eq!(versions(f), serde_json::json!([]), "log of {f}");
    }
    // Named, a file behind a directory the user may search but not list has its history shown.
    assert_eq!(versions("drop/known.txt").as_array().map(|v| v.len()), Some(1));

    // Status: files open for writing are shown only to who may read them.
    let hold = std::fs::File::create(p("grp/hold.txt")).expect("open for writing");
    let st = root(&["--json", "status", &mnt]);
    assert!(st.contains("grp/hold.txt"), "{st}");
    let o = user.lakectl(&[], &["--json", "status", &mnt]);
    reveals_nothing("status", &o, &[]);
    success("status", o);
    drop(hold);

    // Restore: a deleted private directory cannot be restored (nor its content listed)
    // by the user; the answer is the one for a path that never existed.
    sh(&format!("rm -r {mnt}/private {mnt}/pub/rootonly.txt"));
    let gone = root(&["commit", &p("private"), &p("pub/rootonly.txt"), "-m", "gone"]).trim().to_owned();
    assert_ne!(gone, first);
    let o = user.lakectl(&[], &["restore", &p("private"), "--to", &first, "--dry-run"]);
    reveals_nothing("restore --dry-run", &o, &["private"]);
    assert!(!o.status.success());
    let never = user.lakectl(&[], &["restore", &p("never-was"), "--to", &first, "--dry-run"]);
    assert_eq!(text(&o).replace("private", "X"), text(&never).replace("never-was", "X"));
    let o = user.lakectl(&[], &["restore", &p("pub"), "--to", &first, "--dry-run"]);
    reveals_nothing("restore --dry-run of a shared directory", &o, &[]);
    success("restore --dry-run", o);

    // With the lake private to root (as `lakectl init` makes it now), the user still
    // gets answers through the mount, and restores its own files; the lake by name is refused.
    std::fs::set_permissions(&m.lake, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    sh(&format!("set -e; mkdir {0}; echo 'first version' > {0}/note.txt; chown -R {uid}:{gid} {0}; chmod 600 {0}/note.txt", p("mine")));
    let v1 = success("commit", user.lakectl(&[], &["commit", &p("mine/note.txt"), "-m", "mine"])).trim().to_owned();
    success("write", user.run(&[], "sh", &["-c", &format!("echo changed > {}", p("mine/note.txt"))]));
    success("commit", user.lakectl(&[], &["commit", &p("mine/note.txt"), "-m", "changed"]));
    let o = user.lakectl(&[], &["--json", "log", &p("mine/note.txt")]);
    let log: serde_json::Value = serde_json::from_str(&success("log", o)).expect("json");
    assert_eq!(log["versions"].as_array().map(|v| v.len()), Some(2), "{log}");
    success("restore", user.lakectl(&[], &["restore", &p("mine/note.txt"), "--to", &v1]));
    assert_eq!(std::fs::read_to_string(p("mine/note.txt")).expect("read"), "first version\n");
    assert_eq!(
        search_paths(&success("search", user.lakectl(&[], &["--json", "search", "kiwi", "--in", &mnt]))),
        ["pub/acl.txt", "pub/open.txt"]
    );
    let lake = crate::common::path_str(&m.lake);
    let o = user.lakectl(&[], &["--lake", lake, "search", "kiwi", "--volume", "home"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("inside the mount"), "{}", text(&o));
    assert!(Path::new(&p("mine/note.txt")).exists());

    // A file the user puts in place of one the catalog describes (the directory is
    // writable to it) is not taken for it: until the daemon has indexed the change,
    // a search for the old file's words finds nothing.
    let swap = format!("mv {0}/plan.txt {0}/moved && echo hello > {0}/plan.txt", p("team"));
    success("swap", user.run(&[], "sh", &["-c", &swap]));
    let o = user.lakectl(&[], &["--json", "search", "planword", "--in", &mnt]);
    reveals_nothing("search after a swap", &o, &["planword"]);
    assert!(search_paths(&success("search", o)).is_empty());
}
