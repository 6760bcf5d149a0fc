//! File types: magic bytes first (the `infer` crate), then the content itself
//! (UTF-8 without NULs is text), then the extension (`mime_guess`), which only
//! refines text files or names what neither magic nor content can tell.

/// The coarse type views query with `type = image`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Coarse {
    Image,
    Video,
    Audio,
    Text,
    Document,
    Archive,
    Executable,
    Other,
}

impl Coarse {
    pub const ALL: [Coarse; 8] =
        [Coarse::Image, Coarse::Video, Coarse::Audio, Coarse::Text, Coarse::Document, Coarse::Archive, Coarse::Executable, Coarse::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            Coarse::Image => "image",
            Coarse::Video => "video",
            Coarse::Audio => "audio",
            Coarse::Text => "text",
            Coarse::Document => "document",
            Coarse::Archive => "archive",
            Coarse::Executable => "executable",
            Coarse::Other => "other",
        }
    }
}

/// What a file is, and how we know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detected {
    pub coarse: Coarse,
    pub mime: String,
    /// True when the content is UTF-8 text (it may then go into the full-text index).
    pub is_text: bool,
}

/// Lower-case extension of a file name without the dot ("" when there is none;
/// a leading dot alone, as in `.bashrc`, is not an extension).
pub fn extension(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    match base.rfind('.') {
        Some(i) if i > 0 && i + 1 < base.len() => base[i + 1..].to_ascii_lowercase(),
        _ => String::new(),
    }
}

/// UTF-8 without NUL bytes. `head` may be a prefix of the file cut inside a
/// character; a cut of up to 3 bytes at its end is allowed when `truncated`.
pub fn looks_like_text(head: &[u8], truncated: bool) -> bool {
    if head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => truncated && e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
    }
}

/// Mime types whose content is text even though they are not `text/*`.
fn textual_mime(m: &str) -> bool {
    m.starts_with("text/")
        || m.ends_with("+xml")
        || m.ends_with("+json")
        || matches!(
            m,
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/x-javascript"
                | "application/ecmascript"
                | "application/x-sh"
                | "application/x-csh"
                | "application/x-perl"
                | "application/x-python"
                | "application/toml"
                | "application/x-yaml"
                | "application/yaml"
                | "application/sql"
                | "application/x-tex"
                | "application/x-latex"
                | "application/rtf"
                | "application/x-httpd-php"
                | "application/postscript"
        )
}

/// The coarse type of a mime type, for mimes that did not come with one.
pub fn coarse_of_mime(m: &str) -> Coarse {
    let (top, sub) = m.split_once('/').unwrap_or((m, ""));
    match top {
        "image" => return Coarse::Image,
        "video" => return Coarse::Video,
        "audio" => return Coarse::Audio,
        "text" => return Coarse::Text,
        "font" => return Coarse::Other,
        _ => {}
    }
    let document = sub == "pdf"
        || sub == "rtf"
        || sub == "postscript"
        || sub == "epub+zip"
        || sub == "msword"
        || sub.starts_with("vnd.openxmlformats-officedocument")
        || sub.starts_with("vnd.oasis.opendocument")
        || sub.starts_with("vnd.ms-")
        || sub == "x-mobipocket-ebook";
    let archive = matches!(
        sub,
        "zip"
            | "gzip"
            | "x-gzip"
            | "x-tar"
            | "x-bzip"
            | "x-bzip2"
            | "x-xz"
            | "x-7z-compressed"
            | "x-rar-compressed"
            | "vnd.rar"
            | "zstd"
            | "x-compress"
            | "x-lzip"
            | "x-lz4"
            | "java-archive"
            | "x-rpm"
            | "vnd.debian.binary-package"
            | "x-cpio"
            | "x-iso9660-image"
            | "x-apple-diskimage"
    );
    let executable = matches!(
        sub,
        "x-executable"
            | "x-elf"
            | "x-sharedlib"
            | "x-mach-binary"
            | "vnd.microsoft.portable-executable"
            | "x-msdownload"
            | "wasm"
            | "vnd.android.dex"
            | "x-dosexec"
    );
    if document {
        Coarse::Document
    } else if archive {
        Coarse::Archive
    } else if executable {
        Coarse::Executable
    } else if textual_mime(m) {
        Coarse::Text
    } else {
        Coarse::Other
    }
}

fn coarse_of_matcher(t: &infer::Type) -> Coarse {
    use infer::MatcherType as M;
    // The mime decides where it is specific: infer files PDF under its archive matchers.
    let by_mime = coarse_of_mime(t.mime_type());
    if by_mime != Coarse::Other {
        return by_mime;
    }
    match t.matcher_type() {
        M::Image => Coarse::Image,
        M::Video => Coarse::Video,
        M::Audio => Coarse::Audio,
        M::Archive => Coarse::Archive,
        M::Book | M::Doc => Coarse::Document,
        M::App => Coarse::Executable,
        M::Text => Coarse::Text,
        M::Font | M::Custom => coarse_of_mime(t.mime_type()),
    }
}

/// Detects a file's type from the first bytes of its content (`head`; `truncated`
/// when the file is longer) and its name.
pub fn detect(name: &str, head: &[u8], truncated: bool) -> Detected {
    let text = looks_like_text(head, truncated);
    if let Some(t) = infer::get(head) {
        let coarse = coarse_of_matcher(&t);
        // infer's few text matchers (html, xml, shell) mean the file is text.
        let is_text = coarse == Coarse::Text && text;
        return Detected { coarse, mime: t.mime_type().to_owned(), is_text };
    }
    let ext = extension(name);
    let by_ext = if ext.is_empty() { None } else { mime_guess::from_ext(&ext).first_raw() };
    match (text, by_ext) {
        // Text whose extension names a text format: keep the finer mime (text/x-rust, image/svg+xml).
        (true, Some(m)) if textual_mime(m) => Detected { coarse: coarse_of_mime(m), mime: m.to_owned(), is_text: true },
        // Text named like a binary format (notes.jpg) is still text: the content disagrees with the name.
        (true, _) => Detected { coarse: Coarse::Text, mime: "text/plain".into(), is_text: true },
        // Binary that magic does not know: the extension is the best we have,
        // unless it claims a text format, which the content contradicts.
        (false, Some(m)) if !textual_mime(m) => Detected { coarse: coarse_of_mime(m), mime: m.to_owned(), is_text: false },
        (false, _) => Detected { coarse: Coarse::Other, mime: "application/octet-stream".into(), is_text: false },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

    #[test]
    fn magic_wins_over_extension() {
        let d = detect("notes.txt", PNG, false);
        assert_eq!((d.coarse, d.mime.as_str(), d.is_text), (Coarse::Image, "image/png", false));
        let d = detect("archive.jpg", b"PK\x03\x04\x14\0\0\0\0\0", true);
        assert_eq!(d.coarse, Coarse::Archive);
        let d = detect("a.txt", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", true);
        assert_eq!((d.coarse, d.mime.as_str()), (Coarse::Document, "application/pdf"));
        let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
        elf.resize(64, 0);
        let d = detect("prog", &elf, true);
        assert_eq!(d.coarse, Coarse::Executable);
    }

    #[test]
    fn text_content_beats_a_binary_extension() {
        let d = detect("photo.jpg", b"just some words\n", false);
        assert_eq!((d.coarse, d.mime.as_str(), d.is_text), (Coarse::Text, "text/plain", true));
    }

    #[test]
    fn extension_refines_text_and_names_unknown_binaries() {
        let d = detect("src/main.rs", b"fn main() {}\n", false);
        assert!(d.is_text && d.coarse == Coarse::Text && d.mime.starts_with("text/"), "{d:?}");
        let d = detect("logo.svg", b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>", false);
        assert_eq!(d.coarse, Coarse::Image, "{d:?}");
        // Binary bytes magic does not know, named .mp3: trust the name.
        let d = detect("song.mp3", b"\x00\x01\x02\x03garbage\xff", false);
        assert_eq!((d.coarse, d.is_text), (Coarse::Audio, false));
        // Binary bytes named .txt: the content says it is not text.
        let d = detect("blob.txt", b"\x00\x01\x02\x03", false);
        assert_eq!((d.coarse, d.mime.as_str(), d.is_text), (Coarse::Other, "application/octet-stream", false));
    }

    #[test]
    fn utf8_cut_inside_a_character_is_still_text() {
        let s = "grüße".as_bytes();
        assert!(looks_like_text(&s[..3], true));
        assert!(!looks_like_text(&s[..3], false));
        assert!(!looks_like_text(b"a\0b", false));
    }

    #[test]
    fn extensions() {
        assert_eq!(extension("a/b/Photo.JPG"), "jpg");
        assert_eq!(extension(".bashrc"), "");
        assert_eq!(extension("dir.d/file"), "");
        assert_eq!(extension("x.tar.gz"), "gz");
        assert_eq!(extension("trailing."), "");
    }
}
