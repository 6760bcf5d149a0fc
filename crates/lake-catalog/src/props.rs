//! Properties of one file that views query: what the tree entry says (size,
//! mtime), the name (ext), the detected type, and for images what EXIF and the
//! image header say (when taken, camera, pixel size).

use super::types::{self, Coarse};

/// How many bytes of an image to look at for EXIF and its size: JPEG puts its
/// APP1 (at most 64 KiB) and the frame header near the start.
pub const IMAGE_HEAD: usize = 256 << 10;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Props {
    /// Base name.
    pub name: String,
    pub ext: String,
    pub size: u64,
    /// Modification time, UTC, ISO 8601 (`2025-06-14T10:22:01Z`).
    pub mtime: String,
    #[serde(rename = "type")]
    pub coarse: Coarse,
    pub mime: String,
    #[serde(skip)]
    pub is_text: bool,
    /// EXIF DateTimeOriginal (camera's local time, no zone): `2025-06-14T10:22:01`.
    pub taken: Option<String>,
    pub make: Option<String>,
    pub model: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

pub fn iso_utc(secs: i64) -> String {
    match jiff::Timestamp::from_second(secs) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        // Out of jiff's range (year ±9999): still sortable against ordinary dates.
        Err(_) if secs < 0 => "0000-01-01T00:00:00Z".into(),
        Err(_) => "9999-12-31T23:59:59Z".into(),
    }
}

/// EXIF date-time `YYYY:MM:DD HH:MM:SS` as ISO `YYYY-MM-DDTHH:MM:SS`; None when
/// it is malformed or blank (cameras write spaces or zeros when they do not know).
fn exif_datetime(raw: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(raw.get(..19)?).ok()?;
    let b = s.as_bytes();
    let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    if !digits.iter().all(|&i| b[i].is_ascii_digit()) || b[4] != b':' || b[7] != b':' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if &s[..4] == "0000" {
        return None;
    }
    Some(format!("{}-{}-{}T{}", &s[..4], &s[5..7], &s[8..10], &s[11..19]))
}

fn ascii(f: &exif::Field) -> Option<String> {
    match &f.value {
        exif::Value::Ascii(v) => {
            let s = String::from_utf8_lossy(v.first()?).trim().trim_end_matches('\0').to_owned();
            (!s.is_empty()).then_some(s)
        }
        _ => None,
    }
}

/// The properties EXIF gives, from the first bytes of an image.
#[derive(Default)]
struct ExifProps {
    taken: Option<String>,
    make: Option<String>,
    model: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
}

fn read_exif(head: &[u8]) -> ExifProps {
    use exif::{In, Tag};
    let Ok(x) = exif::Reader::new().read_from_container(&mut std::io::Cursor::new(head)) else {
        return ExifProps::default();
    };
    let field = |t| x.get_field(t, In::PRIMARY);
    let date = |t| match field(t).map(|f| &f.value) {
        Some(exif::Value::Ascii(v)) => v.first().and_then(|d| exif_datetime(d)),
        _ => None,
    };
    ExifProps {
        // DateTimeOriginal is when the picture was taken; the others are fallbacks
        // for cameras and editors that only write those.
        taken: date(Tag::DateTimeOriginal).or_else(|| date(Tag::DateTimeDigitized)).or_else(|| date(Tag::DateTime)),
        make: field(Tag::Make).and_then(ascii),
        model: field(Tag::Model).and_then(ascii),
        width: field(Tag::PixelXDimension).and_then(|f| f.value.get_uint(0)),
        height: field(Tag::PixelYDimension).and_then(|f| f.value.get_uint(0)),
    }
}

/// Properties of file `path` (mount-relative) from its size, mtime and the first
/// bytes of its content (`head`; `truncated` when the file is longer).
pub fn of(path: &str, size: u64, mtime: i64, head: &[u8], truncated: bool) -> Props {
    let name = path.rsplit('/').next().unwrap_or(path).to_owned();
    let d = types::detect(&name, head, truncated);
    let mut p = Props {
        ext: types::extension(&name),
        name,
        size,
        mtime: iso_utc(mtime),
        coarse: d.coarse,
        mime: d.mime,
        is_text: d.is_text,
        taken: None,
        make: None,
        model: None,
        width: None,
        height: None,
    };
    if p.coarse == Coarse::Image {
        let x = read_exif(head);
        p.taken = x.taken;
        p.make = x.make;
        p.model = x.model;
        match imagesize::blob_size(head) {
            Ok(s) if s.width > 0 && s.height > 0 => {
                p.width = u32::try_from(s.width).ok();
                p.height = u32::try_from(s.height).ok();
            }
            _ => {
                p.width = x.width;
                p.height = x.height;
            }
        }
    }
    p
}

/// Test data for this crate's and lakectl's tests.
#[doc(hidden)]
pub mod testdata {
    /// A minimal real JPEG: SOI, APP1 with an Exif TIFF (big-endian) whose IFD0 has
    /// Make, Model and a pointer to an Exif IFD holding DateTimeOriginal, then a
    /// baseline SOF0 (w x h, one component) and EOI. Enough for EXIF readers and
    /// header probes; not decodable pixels.
    /// `taken` is EXIF's `YYYY:MM:DD HH:MM:SS`.
    pub fn jpeg_with_exif(taken: &str, w: u16, h: u16) -> Vec<u8> {
        let make = b"Lakecam\0";
        let model = b"LK-1\0\0\0\0";
        // TIFF layout (offsets from the TIFF header):
        // 0 header(8) | 8 IFD0: count(2) + 3 entries(36) + next(4) = 42 -> 50
        // 50 make(8) | 58 model(8) | 66 Exif IFD: 2 + 12 + 4 = 18 -> 84 | 84 date(20)
        let mut t = Vec::new();
        t.extend_from_slice(b"MM\0\x2a\0\0\0\x08");
        let entry = |t: &mut Vec<u8>, tag: u16, typ: u16, count: u32, value: u32| {
            t.extend_from_slice(&tag.to_be_bytes());
            t.extend_from_slice(&typ.to_be_bytes());
            t.extend_from_slice(&count.to_be_bytes());
            t.extend_from_slice(&value.to_be_bytes());
        };
        t.extend_from_slice(&3u16.to_be_bytes());
        entry(&mut t, 0x010f, 2, make.len() as u32, 50); // Make, ASCII
        entry(&mut t, 0x0110, 2, model.len() as u32, 58); // Model, ASCII
        entry(&mut t, 0x8769, 4, 1, 66); // ExifIFDPointer, LONG
        t.extend_from_slice(&0u32.to_be_bytes());
        t.extend_from_slice(make);
        t.extend_from_slice(model);
        t.extend_from_slice(&1u16.to_be_bytes());
        entry(&mut t, 0x9003, 2, 20, 84); // DateTimeOriginal, ASCII incl. NUL
        t.extend_from_slice(&0u32.to_be_bytes());
        // Exactly 19 characters plus NUL, as the entry's count says.
        let mut date = taken.as_bytes().to_vec();
        date.resize(19, b' ');
        t.extend_from_slice(&date);
        t.push(0);

        let mut j = vec![0xff, 0xd8];
        let app1_len = 2 + 6 + t.len();
        j.extend_from_slice(&[0xff, 0xe1]);
        j.extend_from_slice(&(app1_len as u16).to_be_bytes());
        j.extend_from_slice(b"Exif\0\0");
        j.extend_from_slice(&t);
        // SOF0: length 11, precision 8, height, width, 1 component (id 1, 1x1, table 0).
        j.extend_from_slice(&[0xff, 0xc0, 0x00, 0x0b, 0x08]);
        j.extend_from_slice(&h.to_be_bytes());
        j.extend_from_slice(&w.to_be_bytes());
        j.extend_from_slice(&[0x01, 0x01, 0x11, 0x00]);
        j.extend_from_slice(&[0xff, 0xd9]);
        j
    }
}

#[cfg(test)]
mod tests {
    use super::testdata::jpeg_with_exif;
    use super::*;

    #[test]
    fn exif_from_a_handmade_jpeg() {
        let j = jpeg_with_exif("2025:06:14 10:22:01", 640, 480);
        let p = of("pics/a.jpeg", j.len() as u64, 1_750_000_000, &j, false);
        assert_eq!((p.coarse, p.mime.as_str()), (Coarse::Image, "image/jpeg"));
        assert_eq!(p.taken.as_deref(), Some("2025-06-14T10:22:01"));
        assert_eq!(p.make.as_deref(), Some("Lakecam"));
        assert_eq!(p.model.as_deref(), Some("LK-1"));
        assert_eq!((p.width, p.height), (Some(640), Some(480)));
        assert_eq!(p.ext, "jpeg");
        assert_eq!(p.mtime, "2025-06-15T15:06:40Z");
    }

    #[test]
    fn blank_or_broken_exif_dates_are_absent() {
        assert_eq!(exif_datetime(b"0000:00:00 00:00:00"), None);
        assert_eq!(exif_datetime(b"    :  :     :  :  "), None);
        assert_eq!(exif_datetime(b"2025:06:14"), None);
        assert_eq!(exif_datetime(b"2025:06:14 10:22:01").as_deref(), Some("2025-06-14T10:22:01"));
    }

    #[test]
    fn non_images_get_no_image_properties() {
        let p = of("notes.txt", 6, 0, b"hello\n", false);
        assert_eq!((p.coarse, p.is_text, p.taken.clone(), p.width), (Coarse::Text, true, None, None));
        assert_eq!(p.mtime, "1970-01-01T00:00:00Z");
    }
}
