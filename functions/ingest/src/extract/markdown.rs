//! Markdown with `pulldown-cmark`: CommonMark plus GitHub tables, strikethrough, task lists and
//! YAML front matter. Its event stream maps directly onto blocks (a full AST, as `comrak` builds,
//! would only be walked once). Raw HTML in the Markdown and image alt texts are dropped: the
//! former is markup, the latter rarely more than "screenshot".

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use super::builder::{collapse_whitespace, DocBuilder};
use super::{utf8_text, BlockKind, ExtractError, Extracted, MediaType};

/// The blocks of a Markdown document; the title is the front matter's `title:` or the first
/// level-1 heading.
pub(crate) fn extract(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let source = utf8_text(bytes, "the Markdown is not UTF-8 encoded")?;
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS;
    let mut walker = Walker::default();
    for event in Parser::new_ext(source, options) {
        walker.event(event);
    }
    walker.flush();
    let title = walker.front_matter_title.or(walker.first_h1);
    let (text, blocks) = walker.doc.finish();
    Ok(Extracted {
        title,
        media_type: MediaType::Markdown,
        text,
        blocks,
        pages: None,
        ocr_pages: 0,
    })
}

#[derive(Default)]
struct Table {
    rows: Vec<String>,
    row: Vec<String>,
    cell: String,
}

#[derive(Default)]
struct Walker {
    doc: DocBuilder,
    /// Inline text of the block being read.
    pending: String,
    /// Open list items: text outside an inner block is a list item while this is non-zero.
    items: usize,
    code: Option<String>,
    table: Option<Table>,
    metadata: Option<String>,
    images: usize,
    first_h1: Option<String>,
    front_matter_title: Option<String>,
}

impl Walker {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) | Event::Code(text) => self.text(&text),
            Event::InlineMath(text) | Event::DisplayMath(text) => self.text(&text),
            Event::SoftBreak | Event::HardBreak => self.text(" "),
            Event::TaskListMarker(done) => self.text(if done { "[x] " } else { "[ ] " }),
            Event::Rule => self.flush(),
            Event::Html(_) | Event::InlineHtml(_) | Event::FootnoteReference(_) => {}
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph
            | Tag::Heading { .. }
            | Tag::BlockQuote(_)
            | Tag::List(_)
            | Tag::FootnoteDefinition(_)
            | Tag::HtmlBlock => self.flush(),
            Tag::Item => {
                self.flush();
                self.items += 1;
            }
            Tag::CodeBlock(_) => {
                self.flush();
                self.code = Some(String::new());
            }
            Tag::Table(_) => {
                self.flush();
                self.table = Some(Table::default());
            }
            Tag::TableHead | Tag::TableRow => {
                if let Some(table) = &mut self.table {
                    table.row.clear();
                }
            }
            Tag::TableCell => {
                if let Some(table) = &mut self.table {
                    table.cell.clear();
                }
            }
            Tag::Image { .. } => self.images += 1,
            Tag::MetadataBlock(_) => self.metadata = Some(String::new()),
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Heading(level) => {
                let text = collapse_whitespace(&self.pending);
                self.pending.clear();
                if level == HeadingLevel::H1 && self.first_h1.is_none() && !text.is_empty() {
                    self.first_h1 = Some(text.clone());
                }
                let level = heading_level(level);
                self.doc.push(BlockKind::Heading { level }, &text, None);
            }
            TagEnd::Item => {
                self.flush();
                self.items = self.items.saturating_sub(1);
            }
            TagEnd::CodeBlock => {
                if let Some(code) = self.code.take() {
                    self.doc.push(BlockKind::Code, &code, None);
                }
            }
            TagEnd::TableCell => {
                if let Some(table) = &mut self.table {
                    let cell = collapse_whitespace(&table.cell);
                    table.row.push(cell);
                }
            }
            TagEnd::TableHead | TagEnd::TableRow => {
                if let Some(table) = &mut self.table {
                    let row = table.row.join(" | ");
                    table.rows.push(row);
                }
            }
            TagEnd::Table => {
                if let Some(table) = self.table.take() {
                    self.doc
                        .push(BlockKind::Table, &table.rows.join("\n"), None);
                }
            }
            TagEnd::Image => self.images = self.images.saturating_sub(1),
            TagEnd::MetadataBlock(_) => {
                if let Some(meta) = self.metadata.take() {
                    self.front_matter_title = front_matter_title(&meta);
                }
            }
            TagEnd::Paragraph
            | TagEnd::BlockQuote(_)
            | TagEnd::List(_)
            | TagEnd::FootnoteDefinition
            | TagEnd::HtmlBlock => self.flush(),
            _ => {}
        }
    }

    fn text(&mut self, text: &str) {
        if let Some(meta) = &mut self.metadata {
            meta.push_str(text);
        } else if let Some(code) = &mut self.code {
            code.push_str(text);
        } else if self.images > 0 {
            // Alt text of an image.
        } else if let Some(table) = &mut self.table {
            table.cell.push_str(text);
        } else {
            self.pending.push_str(text);
        }
    }

    /// Ends the implicit block of pending inline text: a list item inside an item, else a
    /// paragraph.
    fn flush(&mut self) {
        let kind = if self.items > 0 {
            BlockKind::ListItem
        } else {
            BlockKind::Paragraph
        };
        let text = collapse_whitespace(&self.pending);
        self.pending.clear();
        self.doc.push(kind, &text, None);
    }
}

fn heading_level(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// `title: "Some title"` in YAML front matter (top-level key, quotes removed).
fn front_matter_title(meta: &str) -> Option<String> {
    meta.lines().find_map(|line| {
        let value = line.strip_prefix("title:")?.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value)
            .trim();
        (!value.is_empty()).then(|| value.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_lists_and_front_matter() {
        let source = "---\ntitle: 'Front Title'\n---\n\n# Heading\n\n- outer\n  - inner *em*\n- [x] done\n\n> quoted\n> text\n\n![alt text](x.png) after\n";
        let doc = extract(source.as_bytes()).expect("extracts");
        assert_eq!(doc.title.as_deref(), Some("Front Title"));
        let kinds: Vec<_> = doc
            .blocks
            .iter()
            .map(|b| (b.kind, b.text.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (BlockKind::Heading { level: 1 }, "Heading"),
                (BlockKind::ListItem, "outer"),
                (BlockKind::ListItem, "inner em"),
                (BlockKind::ListItem, "[x] done"),
                (BlockKind::Paragraph, "quoted text"),
                (BlockKind::Paragraph, "after"),
            ]
        );
    }
}
