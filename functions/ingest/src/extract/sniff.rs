//! Format detection: the bytes decide when they can, the name and declared type only for text.
//!
//! Binary formats carry magic numbers, so a PDF named `notes.txt` (or declared `text/plain` by a
//! browser that guessed) is still read as a PDF. Text formats have no magic: HTML, Markdown and
//! plain text are told apart by the file extension, then the declared content type, then an
//! `<html`/`<!doctype html` prefix; anything else that is UTF-8 is plain text.

use std::io::Cursor;

use super::{ExtractError, MediaType};

/// Detects the format of an upload.
///
/// Order: magic bytes (PDF `%PDF-` within the first KiB, PNG, JPEG, TIFF `II*\0`/`MM\0*`, a zip
/// holding `word/document.xml` for DOCX); then, for UTF-8 text, the extension of `file_name`
/// (`html`/`htm`/`xhtml`, `md`/`markdown`, `txt`), then `declared` (a `Content-Type` value,
/// parameters ignored), then the content; otherwise plain text.
///
/// # Errors
/// [`ExtractError::Unsupported`] for other binary data: other zip files, legacy Office files
/// (and password-protected new ones, which are stored the same way), and bytes that are not
/// UTF-8 text or that contain NUL.
pub fn sniff(
    bytes: &[u8],
    file_name: Option<&str>,
    declared: Option<&str>,
) -> Result<MediaType, ExtractError> {
    if let Some(media) = magic(bytes)? {
        return Ok(media);
    }
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if std::str::from_utf8(body).is_err() || body.contains(&0) {
        return Err(ExtractError::Unsupported {
            reason: "not a PDF, PNG, JPEG, TIFF, DOCX, HTML, Markdown or UTF-8 text file",
        });
    }
    if let Some(media) = file_name.and_then(by_extension) {
        return Ok(media);
    }
    if let Some(media) = declared.and_then(by_declared_type) {
        return Ok(media);
    }
    Ok(if looks_like_html(body) {
        MediaType::Html
    } else {
        MediaType::Text
    })
}

/// The format named by the bytes, if they carry a magic number we know.
fn magic(bytes: &[u8]) -> Result<Option<MediaType>, ExtractError> {
    const OLE: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";
    let head = &bytes[..bytes.len().min(1024)];
    let media = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        MediaType::Png
    } else if bytes.starts_with(b"\xFF\xD8\xFF") {
        MediaType::Jpeg
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        MediaType::Tiff
    } else if head.windows(5).any(|w| w == b"%PDF-") {
        // The PDF specification lets readers accept junk before the header within 1 KiB.
        MediaType::Pdf
    } else if bytes.starts_with(b"PK\x03\x04") {
        return is_docx(bytes).map(|()| Some(MediaType::Docx));
    } else if bytes.starts_with(OLE) {
        return Err(ExtractError::Unsupported {
            reason: "legacy Office files (.doc) and password-protected Office documents are not \
                     supported; save the document as .docx without a password",
        });
    } else {
        return Ok(None);
    };
    Ok(Some(media))
}

/// Whether a zip file is a Word document (by its central directory; nothing is decompressed).
fn is_docx(bytes: &[u8]) -> Result<(), ExtractError> {
    let archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|_| ExtractError::corrupt("the zip archive cannot be read"))?;
    if archive.index_for_name("word/document.xml").is_some() {
        Ok(())
    } else {
        Err(ExtractError::Unsupported {
            reason: "a zip archive that is not a Word (.docx) document",
        })
    }
}

fn by_extension(file_name: &str) -> Option<MediaType> {
    let (_, ext) = file_name.rsplit_once('.')?;
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" | "xhtml" => Some(MediaType::Html),
        "md" | "markdown" | "mdown" | "mkd" => Some(MediaType::Markdown),
        "txt" | "text" => Some(MediaType::Text),
        _ => None,
    }
}

fn by_declared_type(declared: &str) -> Option<MediaType> {
    let essence = declared.split(';').next().unwrap_or("").trim();
    match essence.to_ascii_lowercase().as_str() {
        "text/html" | "application/xhtml+xml" => Some(MediaType::Html),
        "text/markdown" | "text/x-markdown" => Some(MediaType::Markdown),
        "text/plain" => Some(MediaType::Text),
        _ => None,
    }
}

/// An HTML document announces itself in its first bytes (after an optional XML declaration).
fn looks_like_html(body: &[u8]) -> bool {
    let head = &body[..body.len().min(1024)];
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    let mut rest = head.trim_start();
    if rest.starts_with("<?xml") {
        rest = rest.split_once("?>").map_or("", |(_, r)| r.trim_start());
    }
    rest.starts_with("<!doctype html") || rest.starts_with("<html")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_wins_over_names_and_declared_types() {
        let pdf = b"%PDF-1.4\n...";
        assert_eq!(
            sniff(pdf, Some("notes.txt"), Some("text/plain")).ok(),
            Some(MediaType::Pdf)
        );
        let junk_then_pdf = [b"garbage\n".as_slice(), pdf].concat();
        assert_eq!(sniff(&junk_then_pdf, None, None).ok(), Some(MediaType::Pdf));
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\n\0\0", None, None).ok(),
            Some(MediaType::Png)
        );
        assert_eq!(
            sniff(b"\xFF\xD8\xFF\xE0", None, None).ok(),
            Some(MediaType::Jpeg)
        );
        assert_eq!(sniff(b"II*\0\x08", None, None).ok(), Some(MediaType::Tiff));
        assert_eq!(sniff(b"MM\0*\0", None, None).ok(), Some(MediaType::Tiff));
        let ole = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1rest";
        assert_eq!(
            sniff(ole, Some("a.doc"), None).map_err(|e| e.kind()),
            Err("unsupported-format")
        );
        assert_eq!(
            sniff(b"PK\x03\x04junk", None, None).map_err(|e| e.kind()),
            Err("corrupt")
        );
    }

    #[test]
    fn text_formats_by_extension_then_declared_type_then_content() {
        let md = "# Title\n\nBody".as_bytes();
        assert_eq!(
            sniff(md, Some("README.MD"), Some("text/plain")).ok(),
            Some(MediaType::Markdown)
        );
        assert_eq!(
            sniff(md, Some("page.htm"), None).ok(),
            Some(MediaType::Html)
        );
        assert_eq!(
            sniff(md, Some("a.txt"), Some("text/markdown")).ok(),
            Some(MediaType::Text)
        );
        assert_eq!(
            sniff(md, Some("upload"), Some("text/markdown; charset=utf-8")).ok(),
            Some(MediaType::Markdown)
        );
        assert_eq!(
            sniff(md, None, Some("application/xhtml+xml")).ok(),
            Some(MediaType::Html)
        );
        assert_eq!(sniff(md, None, None).ok(), Some(MediaType::Text));
        let html = b"\xEF\xBB\xBF<?xml version=\"1.0\"?>\n<!DOCTYPE html><html></html>";
        assert_eq!(
            sniff(html, None, Some("application/octet-stream")).ok(),
            Some(MediaType::Html)
        );
        assert_eq!(
            sniff(b"", Some("empty.txt"), None).ok(),
            Some(MediaType::Text)
        );
    }

    #[test]
    fn binary_that_is_not_utf8_is_unsupported() {
        let err = sniff(b"\x80\x81\xfe\xff garbage", Some("x.txt"), None).expect_err("binary");
        assert_eq!(err.kind(), "unsupported-format");
        let err = sniff(b"text\0with nul", None, None).expect_err("nul");
        assert_eq!(err.kind(), "unsupported-format");
    }
}
