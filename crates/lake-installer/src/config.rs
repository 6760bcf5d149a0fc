//! The install configuration (docs/install-config.md): the first-boot settings
//! of the installed system (hostname, timezone, keyboard, locale, and a root
//! password or a first user), read from TOML and checked against the root file
//! system being installed before the disk is touched.
//!
//! Passwords are accepted only as crypt hashes (`$6$` SHA-512, `$y$` yescrypt):
//! the file may sit on a USB stick or in a repository, so it never holds a
//! password in plain text.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file name looked for at the root of an install medium (or a LAKECONFIG medium).
pub const FILE_NAME: &str = "lake-install.toml";

pub const DEFAULT_HOSTNAME: &str = "lake";
pub const DEFAULT_TIMEZONE: &str = "Etc/UTC";
pub const DEFAULT_LOCALE: &str = "C.UTF-8";
pub const DEFAULT_KEYBOARD: &str = "us";

/// A problem with the install configuration: which file, which key, what is
/// wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {error}")]
    Read { file: PathBuf, error: std::io::Error },
    #[error("{file}: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("{file}: `{key}`: {problem}; {fix}")]
    Invalid { file: PathBuf, key: String, problem: String, fix: String },
}

/// The install configuration as written in the file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct InstallConfig {
    /// The host name (RFC 1123: letters, digits and '-', labels of 1-63, at most 253).
    pub hostname: Option<String>,
    /// A zone name under /usr/share/zoneinfo (e.g. "Europe/Berlin").
    pub timezone: Option<String>,
    /// A locale of /usr/share/i18n/SUPPORTED (e.g. "en_US.UTF-8"), or C.UTF-8.
    pub locale: Option<String>,
    pub keyboard: Option<Keyboard>,
    pub root: Option<Root>,
    pub user: Option<User>,
}

/// The console and X keyboard layout.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Keyboard {
    /// An XKB layout (e.g. "us", "de", "fr").
    pub layout: String,
    #[serde(default)]
    pub variant: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Root {
    /// crypt(3) hash of root's password.
    pub password_hash: String,
}

/// The first user: in group sudo, with a password and/or SSH keys.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    #[serde(default)]
    pub full_name: String,
    pub password_hash: Option<String>,
    #[serde(default)]
    pub ssh_authorized_keys: Vec<String>,
    /// The login shell.
    #[serde(default = "default_shell")]
    pub shell: String,
}

fn default_shell() -> String {
    "/bin/bash".into()
}

/// The settings after validation, with the defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Settings {
    pub hostname: String,
    pub timezone: String,
    pub locale: String,
    pub keyboard: Keyboard,
    pub root_password_hash: Option<String>,
    pub user: Option<User>,
}

impl Settings {
    /// The settings for a person to confirm; hashes and keys are shown as present or not.
    pub fn render(&self) -> String {
        let kb = if self.keyboard.variant.is_empty() {
            self.keyboard.layout.clone()
        } else {
            format!("{} ({})", self.keyboard.layout, self.keyboard.variant)
        };
        let mut s = format!(
            "  hostname  {}\n  timezone  {}\n  locale    {}\n  keyboard  {kb}\n  root      {}\n",
            self.hostname,
            self.timezone,
            self.locale,
            if self.root_password_hash.is_some() { "password set" } else { "locked (no password)" }
        );
        if let Some(u) = &self.user {
            s += &format!(
                "  user      {} (group sudo; {}, {} SSH key(s))\n",
                u.name,
                if u.password_hash.is_some() { "password set" } else { "no password" },
                u.ssh_authorized_keys.len()
            );
        }
        s
    }
}

impl InstallConfig {
    pub fn parse(file: &Path, text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_owned(),
            message: format!("{} (the keys are listed in docs/install-config.md)", e.to_string().trim_end()),
        })
    }

    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|error| ConfigError::Read { file: file.to_owned(), error })?;
        Self::parse(file, &text)
    }

    /// Checks every setting against the root file system that will be
    /// installed (`root`: its zoneinfo, SUPPORTED locales, XKB layouts and
    /// system accounts) and fills in the defaults.
    pub fn validate(&self, file: &Path, root: &Path) -> Result<Settings, ConfigError> {
        let bad = |key: &str, problem: String, fix: &str| ConfigError::Invalid {
            file: file.to_owned(),
            key: key.to_owned(),
            problem,
            fix: fix.to_owned(),
        };
        let hostname = self.hostname.clone().unwrap_or_else(|| DEFAULT_HOSTNAME.into());
        check_hostname(&hostname).map_err(|p| bad("hostname", p, "use letters, digits and '-' (e.g. \"lake-1\")"))?;

        let timezone = self.timezone.clone().unwrap_or_else(|| DEFAULT_TIMEZONE.into());
        check_timezone(&timezone, root)
            .map_err(|p| bad("timezone", p, "give a zone name such as \"Europe/Berlin\" or \"Etc/UTC\" (timedatectl list-timezones)"))?;

        let locale = self.locale.clone().unwrap_or_else(|| DEFAULT_LOCALE.into());
        check_locale(&locale, root)
            .map_err(|p| bad("locale", p, "give a locale listed in /usr/share/i18n/SUPPORTED, e.g. \"en_US.UTF-8\", or \"C.UTF-8\""))?;

        let keyboard = self.keyboard.clone().unwrap_or(Keyboard { layout: DEFAULT_KEYBOARD.into(), variant: String::new() });
        check_keyboard(&keyboard, root).map_err(|p| bad("keyboard.layout", p, "give an XKB layout such as \"us\", \"de\" or \"fr\""))?;

        if self.root.is_none() && self.user.is_none() {
            return Err(bad(
                "user",
                "neither [user] nor [root] is given, so nobody could log in".into(),
                "add a [user] table (name, password_hash and/or ssh_authorized_keys) or [root] password_hash",
            ));
        }
        let root_password_hash = match &self.root {
            None => None,
            Some(r) => {
                check_hash(&r.password_hash).map_err(|p| bad("root.password_hash", p, HASH_FIX))?;
                Some(r.password_hash.clone())
            }
        };
        if let Some(u) = &self.user {
            check_user_name(&u.name, root).map_err(|p| {
                bad(
                    "user.name",
                    p,
                    "use lower-case letters, digits, '_' and '-', starting with a letter, not an account of the system (e.g. \"ada\")",
                )
            })?;
            if u.full_name.contains([':', '\n', ',']) {
                return Err(bad("user.full_name", "contains ':', ',' or a newline".into(), "leave those characters out"));
            }
            if let Some(h) = &u.password_hash {
                check_hash(h).map_err(|p| bad("user.password_hash", p, HASH_FIX))?;
            }
            if u.password_hash.is_none() && u.ssh_authorized_keys.is_empty() {
                return Err(bad(
                    "user",
                    format!("user {} has neither password_hash nor ssh_authorized_keys, so they could not log in", u.name),
                    "add password_hash (lake-installer hash-password) or ssh_authorized_keys",
                ));
            }
            for (i, k) in u.ssh_authorized_keys.iter().enumerate() {
                check_ssh_key(k).map_err(|p| {
                    bad(
                        &format!("user.ssh_authorized_keys[{i}]"),
                        p,
                        "give one public key per entry as `type base64 [comment]`, e.g. the content of ~/.ssh/id_ed25519.pub",
                    )
                })?;
            }
            if !u.shell.starts_with('/') || u.shell.contains([':', '\n']) {
                return Err(bad("user.shell", format!("{:?} is not an absolute path", u.shell), "give e.g. \"/bin/bash\""));
            }
        }
        Ok(Settings { hostname, timezone, locale, keyboard, root_password_hash, user: self.user.clone() })
    }
}

const HASH_FIX: &str = "give a crypt hash ($6$... or $y$...): run `lake-installer hash-password` and paste its output";

/// RFC 1123 host name.
pub fn check_hostname(h: &str) -> Result<(), String> {
    if h.is_empty() || h.len() > 253 {
        return Err(format!("{h:?} is empty or longer than 253 characters"));
    }
    for label in h.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "{h:?} is not a valid host name (RFC 1123: labels of 1-63 letters, digits or '-', not starting or ending with '-')"
            ));
        }
    }
    Ok(())
}

pub fn check_timezone(tz: &str, root: &Path) -> Result<(), String> {
    let safe = !tz.is_empty() && !tz.starts_with('/') && tz.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    if !safe {
        return Err(format!("{tz:?} is not a zone name"));
    }
    let dir = root.join("usr/share/zoneinfo");
    if !dir.is_dir() {
        return Err(format!("the root file system has no {} (is tzdata installed?)", dir.display()));
    }
    // A zone is a TZif file; directories like "Europe" are not zones.
    match std::fs::read(dir.join(tz)) {
        Ok(b) if b.starts_with(b"TZif") => Ok(()),
        _ => Err(format!("{tz:?} is not a zone under /usr/share/zoneinfo of the system being installed")),
    }
}

pub fn check_locale(locale: &str, root: &Path) -> Result<(), String> {
    if matches!(locale, "C.UTF-8" | "C.utf8") {
        return Ok(());
    }
    let f = root.join("usr/share/i18n/SUPPORTED");
    let text = std::fs::read_to_string(&f).map_err(|e| format!("cannot read {} ({e}; is the locales package installed?)", f.display()))?;
    if text.lines().any(|l| l.split_whitespace().next() == Some(locale)) {
        Ok(())
    } else {
        Err(format!("{locale:?} is not in /usr/share/i18n/SUPPORTED of the system being installed"))
    }
}

/// Layouts known without xkb-data (so a rootfs without it still gets the common ones).
const KNOWN_LAYOUTS: &[&str] = &[
    "us", "gb", "de", "fr", "es", "it", "pt", "br", "ch", "at", "be", "nl", "dk", "no", "se", "fi", "is", "pl", "cz", "sk", "hu", "ro",
    "ru", "ua", "tr", "gr", "jp", "kr", "cn", "ca", "latam", "ie", "ee", "lv", "lt", "si", "hr", "rs", "bg", "il",
];

pub fn check_keyboard(k: &Keyboard, root: &Path) -> Result<(), String> {
    let l = &k.layout;
    if l.is_empty() || !l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-') {
        return Err(format!("{l:?} is not a keyboard layout name"));
    }
    if !k.variant.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(format!("variant {:?} is not a variant name", k.variant));
    }
    let symbols = root.join("usr/share/X11/xkb/symbols");
    if symbols.join(l).is_file() || (!symbols.is_dir() && KNOWN_LAYOUTS.contains(&l.as_str())) {
        Ok(())
    } else {
        Err(format!("{l:?} is not a known keyboard layout (none in /usr/share/X11/xkb/symbols of the system being installed)"))
    }
}

/// A crypt(3) hash: SHA-512 (`$6$[rounds=N$]salt$86 chars`) or yescrypt (`$y$params$salt$43 chars`).
pub fn check_hash(h: &str) -> Result<(), String> {
    let crypt64 = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
    if !h.starts_with('$') {
        return Err("this looks like a plain-text password, which is not accepted (only crypt hashes are)".into());
    }
    let parts: Vec<&str> = h.split('$').collect();
    let ok = match parts.as_slice() {
        ["", "6", salt, hash] => crypt64(salt) && salt.len() <= 16 && hash.len() == 86 && crypt64(hash),
        ["", "6", rounds, salt, hash] => {
            rounds.strip_prefix("rounds=").is_some_and(|n| n.parse::<u32>().is_ok())
                && crypt64(salt)
                && salt.len() <= 16
                && hash.len() == 86
                && crypt64(hash)
        }
        ["", "y", params, salt, hash] => crypt64(params) && crypt64(salt) && hash.len() == 43 && crypt64(hash),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err("not a SHA-512 ($6$) or yescrypt ($y$) crypt hash".into())
    }
}

/// Names the system's own accounts may have besides those in its /etc/passwd.
const RESERVED_NAMES: &[&str] = &["root", "daemon", "bin", "sys", "sync", "nobody", "sudo", "admin", "users", "adm", "wheel", "staff"];

pub fn check_user_name(name: &str, root: &Path) -> Result<(), String> {
    let ok = name.len() <= 32
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !ok {
        return Err(format!("{name:?} is not a valid user name"));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(format!("{name:?} is a system account name"));
    }
    for db in ["etc/passwd", "etc/group"] {
        let text = std::fs::read_to_string(root.join(db)).unwrap_or_default();
        if text.lines().any(|l| l.split(':').next() == Some(name)) {
            return Err(format!("{name:?} is already an account or group of the system (/{db})"));
        }
    }
    Ok(())
}

const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// `type base64 [comment]`, where the base64 blob begins with the key type (as OpenSSH writes it).
pub fn check_ssh_key(line: &str) -> Result<(), String> {
    use base64ct::{Base64, Encoding};
    if line.contains('\n') {
        return Err("holds a newline (one key per entry)".into());
    }
    let mut fields = line.split_whitespace();
    let (Some(kind), Some(blob)) = (fields.next(), fields.next()) else {
        return Err(format!("{line:?} is not `type base64 [comment]`"));
    };
    if !KEY_TYPES.contains(&kind) {
        return Err(format!("key type {kind:?} is not one of {} (options before the type are not supported)", KEY_TYPES.join(", ")));
    }
    let bytes = Base64::decode_vec(blob).map_err(|_| format!("the key data of the {kind} key is not base64"))?;
    let inner = bytes.get(..4).map(|n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize).and_then(|n| bytes.get(4..4 + n));
    if inner != Some(kind.as_bytes()) {
        return Err(format!("the key data does not hold a {kind} key (truncated or pasted from another key?)"));
    }
    Ok(())
}

/// A SHA-512 crypt hash of `password` with a random salt (what `hash-password` prints).
pub fn hash_password(password: &str) -> Result<String, String> {
    use sha_crypt::{PasswordHasher, ShaCrypt};
    // 12 random bytes are 16 salt characters: glibc and libxcrypt use at most
    // 16, and a longer salt (the crate's default) gives a hash they never match.
    let salt: [u8; 12] = rand::random();
    ShaCrypt::default().hash_password_with_salt(password.as_bytes(), &salt).map(|h| h.as_str().to_owned()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHls+RGCoXxVHR+5V9QhQ0ycEirkpvaBbghoRYocatNX ada@laptop";

    fn rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("usr/share/zoneinfo/Europe")).unwrap();
        std::fs::create_dir_all(r.join("usr/share/zoneinfo/Etc")).unwrap();
        std::fs::write(r.join("usr/share/zoneinfo/Europe/Berlin"), b"TZif2...").unwrap();
        std::fs::write(r.join("usr/share/zoneinfo/Etc/UTC"), b"TZif2...").unwrap();
        std::fs::create_dir_all(r.join("usr/share/i18n")).unwrap();
        std::fs::write(r.join("usr/share/i18n/SUPPORTED"), "de_DE.UTF-8 UTF-8\nen_US.UTF-8 UTF-8\n").unwrap();
        std::fs::create_dir_all(r.join("usr/share/X11/xkb/symbols")).unwrap();
        std::fs::write(r.join("usr/share/X11/xkb/symbols/de"), "").unwrap();
        std::fs::write(r.join("usr/share/X11/xkb/symbols/us"), "").unwrap();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\nmessagebus:x:100:101::/nonexistent:/usr/sbin/nologin\n")
            .unwrap();
        std::fs::write(r.join("etc/group"), "root:x:0:\nsudo:x:27:\n").unwrap();
        d
    }

    fn good_hash() -> String {
        hash_password("correct horse").unwrap()
    }

    fn full(hash: &str) -> String {
        format!(
            "hostname = \"lake-1\"\ntimezone = \"Europe/Berlin\"\nlocale = \"de_DE.UTF-8\"\n\
             [keyboard]\nlayout = \"de\"\n[user]\nname = \"ada\"\npassword_hash = \"{hash}\"\nssh_authorized_keys = [\"{KEY}\"]\n"
        )
    }

    fn err(text: &str) -> String {
        let r = rootfs();
        let f = Path::new("/media/lake-install.toml");
        match InstallConfig::parse(f, text).and_then(|c| c.validate(f, r.path())) {
            Ok(s) => panic!("accepted: {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn full_config_parses_and_validates() {
        let r = rootfs();
        let f = Path::new("c.toml");
        let s = InstallConfig::parse(f, &full(&good_hash())).unwrap().validate(f, r.path()).unwrap();
        assert_eq!(s.hostname, "lake-1");
        assert_eq!(s.timezone, "Europe/Berlin");
        assert_eq!(s.locale, "de_DE.UTF-8");
        assert_eq!(s.keyboard.layout, "de");
        let u = s.user.unwrap();
        assert_eq!((u.name.as_str(), u.shell.as_str(), u.ssh_authorized_keys.len()), ("ada", "/bin/bash", 1));
        assert_eq!(s.root_password_hash, None);
    }

    #[test]
    fn defaults_fill_in() {
        let r = rootfs();
        let f = Path::new("c.toml");
        let s = InstallConfig::parse(f, &format!("[root]\npassword_hash = \"{}\"\n", good_hash())).unwrap().validate(f, r.path()).unwrap();
        assert_eq!((s.hostname.as_str(), s.timezone.as_str(), s.locale.as_str()), ("lake", "Etc/UTC", "C.UTF-8"));
        assert_eq!(s.keyboard.layout, "us");
        assert!(s.user.is_none());
    }

    #[test]
    fn unknown_key_is_refused_naming_file_and_key() {
        let e = err("hostnme = \"x\"\n");
        assert!(e.contains("/media/lake-install.toml") && e.contains("hostnme"), "{e}");
    }

    #[test]
    fn plain_text_password_is_refused() {
        let e = err(&full("hunter2"));
        assert!(e.contains("user.password_hash") && e.contains("plain-text") && e.contains("hash-password"), "{e}");
        let e = err(&full("$1$abc$def"));
        assert!(e.contains("not a SHA-512"), "{e}");
    }

    #[test]
    fn yescrypt_hash_is_accepted() {
        check_hash("$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7").unwrap();
        check_hash("$6$rounds=5000$saltsalt$").unwrap_err();
    }

    #[test]
    fn bad_hostname() {
        let e = err(&full(&good_hash()).replace("lake-1", "-lake_1"));
        assert!(e.contains("`hostname`") && e.contains("RFC 1123"), "{e}");
        check_hostname(&"a".repeat(64)).unwrap_err();
        check_hostname("a.b-c.d").unwrap();
    }

    #[test]
    fn timezone_must_exist_in_the_rootfs() {
        let e = err(&full(&good_hash()).replace("Europe/Berlin", "Mars/Olympus"));
        assert!(e.contains("`timezone`") && e.contains("Mars/Olympus"), "{e}");
        let e = err(&full(&good_hash()).replace("Europe/Berlin", "Europe"));
        assert!(e.contains("`timezone`"), "{e}");
        let e = err(&full(&good_hash()).replace("Europe/Berlin", "../../etc/passwd"));
        assert!(e.contains("not a zone name"), "{e}");
    }

    #[test]
    fn locale_must_be_supported() {
        let e = err(&full(&good_hash()).replace("de_DE.UTF-8", "xx_XX.UTF-8"));
        assert!(e.contains("`locale`") && e.contains("SUPPORTED"), "{e}");
    }

    #[test]
    fn keyboard_layout_must_be_known() {
        let e = err(&full(&good_hash()).replace("layout = \"de\"", "layout = \"qwertz\""));
        assert!(e.contains("`keyboard.layout`"), "{e}");
    }

    #[test]
    fn system_or_bad_user_names_are_refused() {
        for name in ["root", "messagebus", "sudo", "Ada", "1ada", "a:b"] {
            let e = err(&full(&good_hash()).replace("name = \"ada\"", &format!("name = \"{name}\"")));
            assert!(e.contains("`user.name`"), "{name}: {e}");
        }
    }

    #[test]
    fn ssh_keys_must_parse() {
        for bad in [
            "ssh-ed25519",
            "ssh-foo AAAA",
            "ssh-ed25519 not_base64!",
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIC3p9V4QSx3o1m0bS4m6l8cYcFbGnXmH0Tq6gYb0QH5y",
        ] {
            let e = err(&full(&good_hash()).replace(KEY, bad));
            assert!(e.contains("`user.ssh_authorized_keys[0]`"), "{bad}: {e}");
        }
        check_ssh_key(KEY).unwrap();
    }

    #[test]
    fn nobody_could_log_in() {
        let e = err("hostname = \"x\"\n");
        assert!(e.contains("neither [user] nor [root]"), "{e}");
        let e = err("[user]\nname = \"ada\"\n");
        assert!(e.contains("neither password_hash nor ssh_authorized_keys"), "{e}");
    }

    #[test]
    fn hash_password_verifies() {
        use sha_crypt::{PasswordVerifier, ShaCrypt};
        let h = hash_password("correct horse").unwrap();
        check_hash(&h).unwrap();
        assert!(h.starts_with("$6$"));
        let salt = h.split('$').nth(3).unwrap();
        assert_eq!(salt.len(), 16, "{h}");
        ShaCrypt::default().verify_password(b"correct horse", h.as_str()).unwrap();
        assert!(ShaCrypt::default().verify_password(b"wrong", h.as_str()).is_err());
    }
}
