//! Builds the document text and its blocks together, so every block's offsets are right by
//! construction: each format's extractor only says "here is a block of this kind".

use super::{Block, BlockKind};

/// The separator between blocks in the document text: a blank line, which is also what the
/// chunker's sentence splitter treats as a boundary.
const SEPARATOR: &str = "\n\n";

/// Accumulates blocks into one document text.
#[derive(Debug, Default)]
pub(crate) struct DocBuilder {
    text: String,
    blocks: Vec<Block>,
    /// `text.chars().count()`, kept incrementally.
    chars: usize,
}

impl DocBuilder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Appends a block. The text is cleaned (line endings normalised to `\n`, control characters
    /// other than tab and newline dropped: PostgreSQL rejects NUL in text, and the others are
    /// noise from PDFs) and trimmed (code keeps the indentation of its first line); a block
    /// with nothing left is skipped.
    pub(crate) fn push(&mut self, kind: BlockKind, text: &str, page: Option<u32>) {
        let clean = clean(text);
        let trimmed = match kind {
            BlockKind::Code => trim_code(&clean),
            _ => clean.trim(),
        };
        if trimmed.is_empty() {
            return;
        }
        if !self.blocks.is_empty() {
            self.text.push_str(SEPARATOR);
            self.chars += SEPARATOR.len();
        }
        self.blocks.push(Block {
            kind,
            text: trimmed.to_owned(),
            page,
            char_start: self.chars,
            byte_start: self.text.len(),
        });
        self.text.push_str(trimmed);
        self.chars += trimmed.chars().count();
    }

    /// The document text and its blocks.
    pub(crate) fn finish(self) -> (String, Vec<Block>) {
        (self.text, self.blocks)
    }
}

/// `\r\n` and `\r` to `\n`; C0/C1 control characters other than `\t` and `\n` removed; the
/// Unicode line and paragraph separators to `\n`.
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            '\u{2028}' | '\u{2029}' => out.push('\n'),
            '\t' | '\n' => out.push(c),
            // Zero-width no-break space (a stray BOM) and soft hyphens are invisible noise.
            '\u{feff}' | '\u{ad}' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Code without leading blank lines or trailing whitespace, keeping the first line's indent.
fn trim_code(text: &str) -> &str {
    let text = text.trim_end();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        if line.trim().is_empty() {
            start += line.len();
        } else {
            break;
        }
    }
    &text[start.min(text.len())..]
}

/// The paragraphs of plain text: runs of lines separated by lines of only whitespace.
pub(crate) fn paragraphs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(current.join("\n"));
                current.clear();
            }
        } else {
            current.push(line.trim_end());
        }
    }
    if !current.is_empty() {
        out.push(current.join("\n"));
    }
    out
}

/// Collapses every run of whitespace (including newlines and no-break spaces) to one space and
/// trims the ends: how HTML renders text outside `<pre>`.
pub(crate) fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_shared::rag::chunk::{chunk_document, ChunkConfig};

    #[test]
    fn offsets_are_exact_and_the_chunker_accepts_them() {
        let mut b = DocBuilder::new();
        b.push(BlockKind::Heading { level: 1 }, "  Café — 東京 \r\n", None);
        b.push(BlockKind::Paragraph, "   ", None);
        b.push(BlockKind::Paragraph, "a\u{0}b\r\nc\rd", Some(2));
        b.push(BlockKind::Code, "\n\n    indented\n  x  \n\n", None);
        let (text, blocks) = b.finish();
        assert_eq!(text, "Café — 東京\n\nab\nc\nd\n\n    indented\n  x");
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[1].page, Some(2));
        for block in &blocks {
            assert_eq!(&text[block.byte_start..][..block.text.len()], block.text);
            assert_eq!(text[..block.byte_start].chars().count(), block.char_start);
        }
        let words = |t: &str| t.split_whitespace().count();
        chunk_document(&text, &blocks, &words, &ChunkConfig::default()).expect("valid blocks");
    }

    #[test]
    fn paragraphs_split_on_blank_lines() {
        assert_eq!(
            paragraphs("one\ntwo  \n \t\nthree\n\n\n"),
            vec!["one\ntwo".to_owned(), "three".to_owned()]
        );
        assert!(paragraphs(" \n\n").is_empty());
        assert_eq!(collapse_whitespace(" a \n\u{a0} b\t"), "a b");
    }
}
