//! OCR with Tesseract 5 (`tesseract`, Debian `tesseract-ocr` + `tesseract-ocr-eng`): images
//! directly, and the PDF pages [`super::pdf`] renders because they have no text layer.
//!
//! Tesseract is run as a subprocess rather than linked (`leptess`/`tesseract-rs`): a crash or
//! runaway page then costs one killed process, not the service, and the time limit is a kill.
//! Leptonica, inside Tesseract, decodes PNG, JPEG and TIFF, so no image crate is needed here.

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

use super::builder::DocBuilder;
use super::tool::{self, Finished};
use super::{pdf, ExtractError, Extracted, Limits, MediaType};

/// The OCR time of one document: every render and recognition draws on it, and the run that
/// would overdraw it is killed.
#[derive(Debug)]
pub(crate) struct OcrBudget {
    limit: Duration,
    spent: Duration,
}

impl OcrBudget {
    pub(crate) fn new(limit: Duration) -> Self {
        Self {
            limit,
            spent: Duration::ZERO,
        }
    }

    /// Runs one OCR-stage tool within what is left of the budget.
    ///
    /// # Errors
    /// [`ExtractError::OcrTimeout`] when the budget is (or becomes) spent.
    pub(crate) fn run(
        &mut self,
        program: &'static str,
        args: &[&OsStr],
        dir: &Path,
    ) -> Result<Finished, ExtractError> {
        let timeout = ExtractError::OcrTimeout { limit: self.limit };
        let remaining = self.limit.saturating_sub(self.spent);
        if remaining.is_zero() {
            return Err(timeout);
        }
        let start = Instant::now();
        let result = tool::run(program, args, dir, remaining);
        self.spent += start.elapsed();
        result.map_err(|err| err.into_extract_error(timeout))
    }
}

/// Text of the image at `image` (`dpi` when known, e.g. a rendered PDF page; Tesseract estimates
/// it otherwise), at most `limit` bytes.
///
/// # Errors
/// [`ExtractError::OcrTimeout`]; [`ExtractError::ToolMissing`] without `tesseract` or the
/// language data; [`ExtractError::Corrupt`] when the image cannot be decoded.
pub(crate) fn recognize(
    budget: &mut OcrBudget,
    dir: &Path,
    image: &Path,
    dpi: Option<u32>,
    lang: &str,
    limit: u64,
) -> Result<String, ExtractError> {
    if !valid_lang(lang) {
        return Err(ExtractError::ToolMissing {
            tool: "tesseract language data",
        });
    }
    let dpi = dpi.map(|d| d.to_string());
    let mut args: Vec<&OsStr> = vec![
        image.as_os_str(),
        OsStr::new("stdout"),
        OsStr::new("-l"),
        OsStr::new(lang),
    ];
    if let Some(dpi) = &dpi {
        args.extend([OsStr::new("--dpi"), OsStr::new(dpi)]);
    }
    let done = budget.run("tesseract", &args, dir)?;
    if !done.status.success() {
        let stderr = &done.stderr;
        if stderr.contains("Failed loading language") || stderr.contains("Error opening data file")
        {
            return Err(ExtractError::ToolMissing {
                tool: "tesseract language data",
            });
        }
        return Err(ExtractError::corrupt("the image could not be decoded"));
    }
    tool::read_text(&done.stdout, limit)
}

/// Tesseract language codes: `eng`, `chi_sim`, `eng+deu`. Anything else is refused before it
/// reaches a command line.
fn valid_lang(lang: &str) -> bool {
    !lang.is_empty()
        && lang.len() <= 100
        && !lang.starts_with('-')
        && lang
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '+')
}

/// An image's text by OCR: one page, paragraphs as Tesseract separates them.
pub(crate) fn extract_image(
    bytes: &[u8],
    media: MediaType,
    limits: &Limits,
) -> Result<Extracted, ExtractError> {
    let dir = tempfile::Builder::new()
        .prefix("quarry-extract-")
        .tempdir()?;
    let ext = match media {
        MediaType::Jpeg => "jpg",
        MediaType::Tiff => "tif",
        _ => "png",
    };
    let input = dir.path().join(format!("input.{ext}"));
    std::fs::write(&input, bytes)?;
    let mut budget = OcrBudget::new(limits.ocr_timeout);
    let text = recognize(
        &mut budget,
        dir.path(),
        &input,
        None,
        &limits.ocr_lang,
        limits.expansion_limit(),
    )?;
    let mut doc = DocBuilder::new();
    pdf::push_page(&mut doc, &text, 1);
    let (text, blocks) = doc.finish();
    Ok(Extracted {
        title: None,
        media_type: media,
        text,
        blocks,
        pages: Some(1),
        ocr_pages: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_codes_are_checked_before_the_command_line() {
        assert!(valid_lang("eng"));
        assert!(valid_lang("chi_sim+eng"));
        assert!(!valid_lang(""));
        assert!(!valid_lang("--psm"));
        assert!(!valid_lang("eng;rm"));
        assert!(!valid_lang("../eng"));
    }

    #[test]
    fn a_spent_budget_times_out_without_running_anything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut budget = OcrBudget::new(Duration::ZERO);
        let err = budget
            .run("quarry-no-such-tool", &[], dir.path())
            .expect_err("no budget");
        assert_eq!(err.kind(), "ocr-timeout");
    }
}
