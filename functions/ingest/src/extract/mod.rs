//! Document text extraction: uploaded bytes into a document text and its [`Block`]s, the input of
//! [`quarry_shared::rag::chunk::chunk_document`].
//!
//! [`sniff()`] decides the format (magic bytes first, then the file name and declared content type
//! for the text formats); [`extract()`] turns the bytes into an [`Extracted`] document within
//! [`Limits`]. The document text is the blocks' texts joined by a blank line, and every block's
//! offsets point into it, so chunks and citations can quote it exactly.
//!
//! # One library or tool per format, and why
//! - **PDF** (`pdf`): poppler's `pdfinfo` + `pdftotext`, as subprocesses. Rejected: the
//!   pure-Rust `pdf-extract`/`lopdf`, which do not rebuild reading order (columns interleave,
//!   words run together) and turn many fonts' encodings into garbage; poppler is what most PDF
//!   viewers' text selection is built on.
//! - **Scanned PDF pages** (`pdf` + `ocr`): `pdftoppm` renders the page, `tesseract` reads it.
//!   Rejected: `ocrs` and other ONNX models, whose weights are downloaded at run time; Tesseract 5
//!   (LSTM) ships as a Debian package with its `eng` data.
//! - **PNG, JPEG, TIFF** (`ocr`): `tesseract` on the file; Leptonica (inside Tesseract) decodes
//!   all three, so no image crate is needed.
//! - **HTML** (`html`): `scraper` (html5ever + CSS selectors), which parses broken real-world
//!   markup as browsers do. Rejected: regex or XML-based tag stripping.
//! - **Markdown** (`markdown`): `pulldown-cmark` events, which map 1:1 onto blocks. Rejected:
//!   `comrak`, a full AST we would walk once.
//! - **DOCX** (`docx`): `zip` + `quick-xml` streaming over `word/document.xml`. Rejected:
//!   `docx-rs` and similar, which build a full object model and still leave the style-to-heading
//!   mapping to us.
//! - **Plain text** (`text`): blank-line paragraphs, UTF-8 only. Rejected: guessing legacy
//!   encodings (Latin-1, UTF-16), whose silent mojibake is worse than a clear error.
//!
//! # Limits and failure modes
//! - The input size is checked first ([`ExtractError::TooLarge`]); text that expands from a
//!   compressed container (DOCX, a PDF's streams) is capped at [`Limits::expansion_limit`].
//! - PDFs over [`Limits::max_pages`] are refused before any text is extracted.
//! - All OCR of one document (rendering and recognition) shares [`Limits::ocr_timeout`]; the
//!   subprocess that runs out of it is killed. Other tool runs are bounded by a fixed
//!   [`TOOL_TIMEOUT`].
//! - Inputs are written to a private [`tempfile::TempDir`] removed on return; error messages name
//!   the problem, never a path or a tool's raw output.
//!
//! [`extract()`] blocks (it runs subprocesses and parses megabytes): call it from
//! `tokio::task::spawn_blocking`.

mod builder;
mod docx;
mod html;
mod markdown;
mod ocr;
mod pdf;
mod sniff;
mod text;
mod tool;

use std::time::Duration;

pub use quarry_shared::rag::chunk::{Block, BlockKind};
pub use sniff::sniff;

/// The longest any non-OCR tool run (`pdfinfo`, `pdftotext`) may take before it is killed and
/// the PDF is reported as [`ExtractError::Corrupt`]: poppler reads hundreds of pages a second, so
/// only a pathological file gets near it.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// A format [`extract()`] understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaType {
    /// PDF, with or without a text layer.
    Pdf,
    /// PNG image (OCR).
    Png,
    /// JPEG image (OCR).
    Jpeg,
    /// TIFF image (OCR; a multi-page TIFF is read as one page).
    Tiff,
    /// HTML or XHTML, UTF-8.
    Html,
    /// Markdown (CommonMark with GitHub tables), UTF-8.
    Markdown,
    /// Plain text, UTF-8.
    Text,
    /// Word 2007+ document (`.docx`).
    Docx,
}

impl MediaType {
    /// The IANA media type, e.g. `application/pdf`.
    pub fn as_mime(&self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Tiff => "image/tiff",
            Self::Html => "text/html",
            Self::Markdown => "text/markdown",
            Self::Text => "text/plain",
            Self::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        }
    }

    /// A short, stable, lower-case name for logs, metrics and API responses: `pdf`, `png`,
    /// `jpeg`, `tiff`, `html`, `markdown`, `text`, `docx`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pdf => "pdf",
            Self::Png => "png",
            Self::Jpeg => "jpeg",
            Self::Tiff => "tiff",
            Self::Html => "html",
            Self::Markdown => "markdown",
            Self::Text => "text",
            Self::Docx => "docx",
        }
    }

    /// Whether the format is an image read only by OCR.
    pub fn is_image(&self) -> bool {
        matches!(self, Self::Png | Self::Jpeg | Self::Tiff)
    }
}

/// Resource limits for one [`extract()`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted input, in bytes (default 50 MiB).
    pub max_bytes: usize,
    /// Most pages a PDF may have (default 500).
    pub max_pages: u32,
    /// Total OCR wall time for one document, rendering included (default 120 s).
    pub ocr_timeout: Duration,
    /// Resolution PDF pages are rendered at for OCR (default 300, what Tesseract is tuned for).
    pub ocr_dpi: u32,
    /// Tesseract language(s), e.g. `eng` or `eng+deu` (default `eng`); the traineddata must be
    /// installed (Debian `tesseract-ocr-<lang>`).
    pub ocr_lang: String,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 50 * MIB as usize,
            max_pages: 500,
            ocr_timeout: Duration::from_secs(120),
            ocr_dpi: 300,
            ocr_lang: "eng".to_owned(),
        }
    }
}

const MIB: u64 = 1024 * 1024;

impl Limits {
    /// The most bytes of text (or uncompressed XML) one document may expand to: ten times
    /// [`Limits::max_bytes`], at most 200 MiB. Guards against zip bombs and PDFs whose compressed
    /// streams expand without bound.
    pub fn expansion_limit(&self) -> u64 {
        (self.max_bytes as u64).saturating_mul(10).min(200 * MIB)
    }
}

/// One extracted document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The document's own title (PDF Info, HTML `<title>`, DOCX core properties, a Markdown
    /// front-matter `title` or first `#` heading), when it has one.
    pub title: Option<String>,
    /// The format the text was extracted from.
    pub media_type: MediaType,
    /// The document text: the blocks' texts separated by blank lines.
    pub text: String,
    /// The blocks of `text`, in order, each an exact slice of it (valid input for
    /// [`quarry_shared::rag::chunk::chunk_document`]); never empty.
    pub blocks: Vec<Block>,
    /// Number of pages, for paged formats (PDF; an image counts as one page).
    pub pages: Option<u32>,
    /// Pages that had no usable text layer and went through OCR (every image counts as one).
    pub ocr_pages: u32,
}

/// Why a document's text could not be extracted. The `Display` text is safe to show to the
/// uploader: a short reason, never a path or a tool's output. [`ExtractError::kind`] is a stable
/// slug for API errors and metrics.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// Not a format we read (or text that is not UTF-8).
    #[error("unsupported file format: {reason}")]
    Unsupported {
        /// What was found instead, e.g. "not valid UTF-8 text".
        reason: &'static str,
    },
    /// The input, or what it expands to, is over a limit.
    #[error("{what} is larger than the limit of {}", human_bytes(*.limit))]
    TooLarge {
        /// What is too large: "the file", "the uncompressed document", "the extracted text".
        what: &'static str,
        /// The limit, in bytes.
        limit: u64,
    },
    /// A PDF with more pages than [`Limits::max_pages`].
    #[error("the document has {pages} pages; at most {max} are accepted")]
    TooManyPages {
        /// Pages in the document.
        pages: u32,
        /// The limit.
        max: u32,
    },
    /// The document needs a password to open.
    #[error("the document is password-protected; remove the password and upload it again")]
    Encrypted,
    /// The file is damaged, truncated or not what its format says.
    #[error("the document is damaged or malformed: {detail}")]
    Corrupt {
        /// A short, user-safe reason.
        detail: String,
    },
    /// The document has no text (after OCR, for scans and images).
    #[error("no text could be found in the document")]
    Empty,
    /// OCR did not finish within [`Limits::ocr_timeout`].
    #[error("text recognition (OCR) did not finish within the limit of {}", human_duration(*.limit))]
    OcrTimeout {
        /// The OCR time limit for the document.
        limit: Duration,
    },
    /// A tool the format needs is not installed on the server (a deployment fault, not the
    /// uploader's).
    #[error("the server cannot read this format right now: {tool} is not installed")]
    ToolMissing {
        /// The missing program or data, e.g. `pdftotext`.
        tool: &'static str,
    },
    /// A local I/O failure (temporary files, pipes); a server fault. The message hides the
    /// cause, which may name a path; the cause stays available as the error's `source()` for logs.
    #[error("an internal I/O error interrupted text extraction")]
    Io(#[from] std::io::Error),
}

impl ExtractError {
    /// A stable slug for the error: `unsupported-format`, `too-large`, `too-many-pages`,
    /// `encrypted`, `corrupt`, `empty`, `ocr-timeout`, `tool-missing` or `io`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unsupported { .. } => "unsupported-format",
            Self::TooLarge { .. } => "too-large",
            Self::TooManyPages { .. } => "too-many-pages",
            Self::Encrypted => "encrypted",
            Self::Corrupt { .. } => "corrupt",
            Self::Empty => "empty",
            Self::OcrTimeout { .. } => "ocr-timeout",
            Self::ToolMissing { .. } => "tool-missing",
            Self::Io(_) => "io",
        }
    }

    /// Whether the fault is the server's (`tool-missing`, `io`) rather than the document's: the
    /// former are 5xx, the rest 4xx.
    pub fn is_server_fault(&self) -> bool {
        matches!(self, Self::ToolMissing { .. } | Self::Io(_))
    }

    pub(crate) fn corrupt(detail: impl Into<String>) -> Self {
        Self::Corrupt {
            detail: detail.into(),
        }
    }
}

/// `52428800` → "50 MiB"; exact multiples only, else KiB or bytes.
fn human_bytes(n: u64) -> String {
    if n >= MIB && n % MIB == 0 {
        format!("{} MiB", n / MIB)
    } else if n >= 1024 && n % 1024 == 0 {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

fn human_duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) && d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// Extracts the text and blocks of `bytes`, which are in format `media` (see [`sniff()`]).
///
/// Blocking: it runs poppler and Tesseract as subprocesses for PDFs and images and parses the
/// whole document in memory; call it from `spawn_blocking`.
///
/// # Errors
/// [`ExtractError::TooLarge`] first if `bytes` exceeds [`Limits::max_bytes`]; then the format's
/// own failures (see [`ExtractError`]); [`ExtractError::Empty`] when no text is found.
pub fn extract(bytes: &[u8], media: MediaType, limits: &Limits) -> Result<Extracted, ExtractError> {
    if bytes.len() > limits.max_bytes {
        return Err(ExtractError::TooLarge {
            what: "the file",
            limit: limits.max_bytes as u64,
        });
    }
    let extracted = match media {
        MediaType::Pdf => pdf::extract(bytes, limits)?,
        MediaType::Png | MediaType::Jpeg | MediaType::Tiff => {
            ocr::extract_image(bytes, media, limits)?
        }
        MediaType::Html => html::extract(bytes)?,
        MediaType::Markdown => markdown::extract(bytes)?,
        MediaType::Docx => docx::extract(bytes, limits)?,
        MediaType::Text => text::extract(bytes)?,
    };
    if extracted.blocks.is_empty() {
        return Err(ExtractError::Empty);
    }
    Ok(extracted)
}

/// Strips a UTF-8 byte-order mark and checks the rest is UTF-8.
fn utf8_text<'a>(bytes: &'a [u8], what: &'static str) -> Result<&'a str, ExtractError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|_| ExtractError::Unsupported { reason: what })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_stable_and_messages_are_short() {
        let cases: Vec<(ExtractError, &str)> = vec![
            (
                ExtractError::Unsupported { reason: "x" },
                "unsupported-format",
            ),
            (
                ExtractError::TooLarge {
                    what: "the file",
                    limit: 50 * MIB,
                },
                "too-large",
            ),
            (
                ExtractError::TooManyPages { pages: 2, max: 1 },
                "too-many-pages",
            ),
            (ExtractError::Encrypted, "encrypted"),
            (ExtractError::corrupt("bad"), "corrupt"),
            (ExtractError::Empty, "empty"),
            (
                ExtractError::OcrTimeout {
                    limit: Duration::from_millis(5),
                },
                "ocr-timeout",
            ),
            (
                ExtractError::ToolMissing { tool: "pdftotext" },
                "tool-missing",
            ),
            (
                ExtractError::Io(std::io::Error::other("/tmp/secret/path")),
                "io",
            ),
        ];
        for (err, kind) in cases {
            assert_eq!(err.kind(), kind);
            let message = err.to_string();
            assert!(!message.contains("/tmp"), "{message}");
        }
        assert_eq!(
            ExtractError::TooLarge {
                what: "the file",
                limit: 50 * MIB
            }
            .to_string(),
            "the file is larger than the limit of 50 MiB"
        );
        assert_eq!(
            ExtractError::OcrTimeout {
                limit: Duration::from_secs(120)
            }
            .to_string(),
            "text recognition (OCR) did not finish within the limit of 120 s"
        );
    }

    #[test]
    fn default_limits_match_the_documented_values() {
        let limits = Limits::default();
        assert_eq!(limits.max_bytes, 50 * 1024 * 1024);
        assert_eq!(limits.max_pages, 500);
        assert_eq!(limits.ocr_timeout, Duration::from_secs(120));
        assert_eq!(limits.ocr_dpi, 300);
        assert_eq!(limits.ocr_lang, "eng");
        assert_eq!(limits.expansion_limit(), 200 * MIB);
    }
}
