//! Plain text: UTF-8 only (a leading byte-order mark is dropped), one paragraph per run of
//! non-blank lines, line breaks inside a paragraph kept (they may be a list or a poem).
//!
//! Text that is not UTF-8 is refused rather than guessed at: decoding Windows-1252 or UTF-16 by
//! heuristics silently produces mojibake that would then be embedded and cited.

use super::builder::{paragraphs, DocBuilder};
use super::{utf8_text, BlockKind, ExtractError, Extracted, MediaType};

/// The paragraphs of a UTF-8 text file.
pub(crate) fn extract(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let text = utf8_text(
        bytes,
        "the text is not UTF-8 encoded; save it as UTF-8 and upload it again",
    )?;
    let mut doc = DocBuilder::new();
    for paragraph in paragraphs(text) {
        doc.push(BlockKind::Paragraph, &paragraph, None);
    }
    let (text, blocks) = doc.finish();
    Ok(Extracted {
        title: None,
        media_type: MediaType::Text,
        text,
        blocks,
        pages: None,
        ocr_pages: 0,
    })
}
