//! DOCX (Office Open XML) with `zip` + `quick-xml`, streaming over `word/document.xml`.
//!
//! A full object model (`docx-rs`) would parse everything (drawings, settings, relationships)
//! and still leave the style-to-heading mapping to us; the text needs only three parts:
//! - `word/styles.xml`: which paragraph styles are headings (the built-in name "heading N" or
//!   "Title", or an outline level, following `basedOn` chains: style *ids* are localised, e.g.
//!   `berschrift1` in a German Word, but names are not) and which are numbered (lists);
//! - `word/document.xml`: `w:p` paragraphs (heading by style or outline level, list item when
//!   numbered, else paragraph), `w:tbl` tables (one line per row, cells ` | `-joined), text from
//!   `w:t` only (not deleted text or field codes), `w:tab` → tab, `w:br`/`w:cr` → newline; the
//!   `mc:Fallback` copy of alternate content is skipped so text boxes are not read twice;
//! - `docProps/core.xml`: `dc:title`.
//!
//! Zip bombs: every part is decompressed through a shared budget of
//! [`Limits::expansion_limit`] bytes, counted on the bytes actually inflated (the sizes an
//! archive declares can lie).

use std::collections::HashMap;
use std::io::{Cursor, Read};

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use zip::result::ZipError;
use zip::ZipArchive;

use super::builder::{collapse_whitespace, DocBuilder};
use super::{BlockKind, ExtractError, Extracted, Limits, MediaType};

/// The blocks of a Word document; the title is `dc:title`, else the first "Title" paragraph.
pub(crate) fn extract(bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let mut archive = ZipArchive::new(Cursor::new(bytes))
        .map_err(|_| ExtractError::corrupt("the DOCX file is not a valid zip archive"))?;
    let mut parts = Parts {
        archive: &mut archive,
        budget: limits.expansion_limit(),
        limit: limits.expansion_limit(),
    };
    let styles = match parts.read("word/styles.xml")? {
        Some(xml) => parse_styles(&xml)?,
        None => HashMap::new(),
    };
    let document = parts
        .read("word/document.xml")?
        .ok_or_else(|| ExtractError::corrupt("the DOCX has no document body"))?;
    let core_title = match parts.read("docProps/core.xml")? {
        // The title is a nicety: a malformed core.xml does not fail the document.
        Some(xml) => core_title(&xml).ok().flatten(),
        None => None,
    };
    let body = parse_document(&document, &styles)?;
    let (text, blocks) = body.doc.finish();
    Ok(Extracted {
        title: core_title.or(body.title),
        media_type: MediaType::Docx,
        text,
        blocks,
        pages: None,
        ocr_pages: 0,
    })
}

/// Reads archive members through one decompression budget.
struct Parts<'a> {
    archive: &'a mut ZipArchive<Cursor<&'a [u8]>>,
    budget: u64,
    limit: u64,
}

impl Parts<'_> {
    /// The member `name`, or `None` when the archive has none.
    fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, ExtractError> {
        let file = match self.archive.by_name(name) {
            Ok(file) => file,
            Err(ZipError::FileNotFound) => return Ok(None),
            Err(ZipError::UnsupportedArchive(ZipError::PASSWORD_REQUIRED))
            | Err(ZipError::InvalidPassword) => return Err(ExtractError::Encrypted),
            Err(_) => return Err(ExtractError::corrupt("the DOCX archive is damaged")),
        };
        let mut out = Vec::new();
        file.take(self.budget + 1)
            .read_to_end(&mut out)
            .map_err(|_| ExtractError::corrupt("the DOCX archive is damaged"))?;
        if out.len() as u64 > self.budget {
            return Err(ExtractError::TooLarge {
                what: "the uncompressed document",
                limit: self.limit,
            });
        }
        self.budget -= out.len() as u64;
        Ok(Some(out))
    }
}

fn xml_error(part: &'static str) -> impl Fn(quick_xml::Error) -> ExtractError {
    move |_| ExtractError::corrupt(format!("the DOCX {part} is not well-formed XML"))
}

/// The unescaped value of attribute `local` (any prefix, e.g. `w:val`).
fn attr(e: &BytesStart<'_>, local: &[u8]) -> Option<String> {
    e.attributes().flatten().find_map(|a| {
        if a.key.local_name().as_ref() != local {
            return None;
        }
        let raw = std::str::from_utf8(&a.value).ok()?;
        Some(
            quick_xml::escape::unescape(raw)
                .map(|v| v.into_owned())
                .unwrap_or_else(|_| raw.to_owned()),
        )
    })
}

/// What a paragraph style means for extraction.
#[derive(Debug, Default, Clone, PartialEq)]
struct Style {
    name: Option<String>,
    based_on: Option<String>,
    outline: Option<u8>,
    numbered: bool,
}

/// Paragraph styles by id, from `word/styles.xml`.
fn parse_styles(xml: &[u8]) -> Result<HashMap<String, Style>, ExtractError> {
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut styles = HashMap::new();
    let mut current: Option<(String, Style)> = None;
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(xml_error("styles"))?;
        match &event {
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                b"style" => {
                    let paragraph = attr(e, b"type").is_none_or(|t| t == "paragraph");
                    current = match (paragraph, attr(e, b"styleId")) {
                        (true, Some(id)) => Some((id, Style::default())),
                        _ => None,
                    };
                }
                b"name" => {
                    if let Some((_, style)) = &mut current {
                        style.name = attr(e, b"val");
                    }
                }
                b"basedOn" => {
                    if let Some((_, style)) = &mut current {
                        style.based_on = attr(e, b"val");
                    }
                }
                b"outlineLvl" => {
                    if let Some((_, style)) = &mut current {
                        style.outline = outline_level(e);
                    }
                }
                b"numPr" => {
                    if let Some((_, style)) = &mut current {
                        style.numbered = true;
                    }
                }
                _ => {}
            },
            Event::End(e) if e.local_name().as_ref() == b"style" => {
                if let Some((id, style)) = current.take() {
                    styles.insert(id, style);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(styles)
}

/// `w:outlineLvl w:val="0"` is heading level 1; 9 means body text.
fn outline_level(e: &BytesStart<'_>) -> Option<u8> {
    let level: u8 = attr(e, b"val")?.parse().ok()?;
    (level < 9).then_some(level + 1)
}

/// The heading level of style `id`: its name ("heading 2", "Title"), outline level, or id
/// ("Heading2") when styles.xml is missing, following `basedOn` up to 10 styles deep.
fn style_heading(styles: &HashMap<String, Style>, id: &str) -> Option<u8> {
    let mut current = id;
    for _ in 0..10 {
        let Some(style) = styles.get(current) else {
            return heading_from_name(current);
        };
        if let Some(level) = style.name.as_deref().and_then(heading_from_name) {
            return Some(level);
        }
        if style.outline.is_some() {
            return style.outline;
        }
        current = style.based_on.as_deref()?;
    }
    None
}

fn style_numbered(styles: &HashMap<String, Style>, id: &str) -> bool {
    let mut current = id;
    for _ in 0..10 {
        let Some(style) = styles.get(current) else {
            return false;
        };
        if style.numbered {
            return true;
        }
        let Some(parent) = style.based_on.as_deref() else {
            return false;
        };
        current = parent;
    }
    false
}

/// "heading 3" / "Heading3" → 3, "Title" → 1.
fn heading_from_name(name: &str) -> Option<u8> {
    let lower = name.to_ascii_lowercase();
    if lower == "title" {
        return Some(1);
    }
    let digits = lower.strip_prefix("heading")?.trim_start();
    let level: u8 = digits.parse().ok()?;
    (1..=9).contains(&level).then_some(level)
}

/// One open `w:p`.
#[derive(Debug, Default)]
struct Paragraph {
    text: String,
    style: Option<String>,
    outline: Option<u8>,
    numbered: bool,
}

#[derive(Debug, Default)]
struct Table {
    rows: Vec<String>,
    row: Vec<String>,
    cell: String,
}

/// The result of walking `document.xml`.
struct Body {
    doc: DocBuilder,
    /// The first paragraph in the "Title" style.
    title: Option<String>,
}

fn parse_document(xml: &[u8], styles: &HashMap<String, Style>) -> Result<Body, ExtractError> {
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut doc = DocBuilder::new();
    let mut title = None;
    // Paragraphs nest through text boxes (a w:p inside a w:r of another w:p).
    let mut paragraphs: Vec<Paragraph> = Vec::new();
    let mut tables: Vec<Table> = Vec::new();
    let mut in_text = false;
    let mut runs = 0usize;
    let mut skip = 0usize;
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(xml_error("document"))?;
        if skip > 0 {
            match event {
                Event::Start(_) => skip += 1,
                Event::End(_) => skip -= 1,
                Event::Eof => break,
                _ => {}
            }
            buf.clear();
            continue;
        }
        match &event {
            Event::Start(e) => match e.local_name().as_ref() {
                b"Fallback" => skip = 1,
                b"p" => paragraphs.push(Paragraph::default()),
                b"r" => runs += 1,
                b"t" => in_text = true,
                b"tbl" => tables.push(Table::default()),
                b"tr" => {
                    if let Some(table) = tables.last_mut() {
                        table.row.clear();
                    }
                }
                b"tc" => {
                    if let Some(table) = tables.last_mut() {
                        table.cell.clear();
                    }
                }
                name => paragraph_property(name, e, paragraphs.last_mut()),
            },
            Event::Empty(e) => match e.local_name().as_ref() {
                b"tab" if runs > 0 => push_text(&mut paragraphs, "\t"),
                b"br" | b"cr" if runs > 0 => push_text(&mut paragraphs, "\n"),
                b"noBreakHyphen" if runs > 0 => push_text(&mut paragraphs, "-"),
                name => paragraph_property(name, e, paragraphs.last_mut()),
            },
            Event::Text(t) if in_text => {
                let text = t
                    .decode()
                    .map_err(|_| ExtractError::corrupt("the DOCX document is not UTF-8"))?;
                push_text(&mut paragraphs, &text);
            }
            Event::GeneralRef(r) if in_text => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c.to_string()),
                    _ => r.decode().ok().and_then(|name| {
                        quick_xml::escape::resolve_predefined_entity(&name).map(str::to_owned)
                    }),
                };
                if let Some(text) = resolved {
                    push_text(&mut paragraphs, &text);
                }
            }
            Event::End(e) => match e.local_name().as_ref() {
                b"t" => in_text = false,
                b"r" => runs = runs.saturating_sub(1),
                b"p" => {
                    let Some(p) = paragraphs.pop() else {
                        continue;
                    };
                    if let Some(table) = tables.last_mut() {
                        if !table.cell.is_empty() {
                            table.cell.push(' ');
                        }
                        table.cell.push_str(&p.text);
                    } else if let Some(outer) = paragraphs.last_mut() {
                        // A text box: its text joins the enclosing paragraph.
                        if !outer.text.is_empty() {
                            outer.text.push(' ');
                        }
                        outer.text.push_str(&p.text);
                    } else {
                        let kind = paragraph_kind(&p, styles);
                        if title.is_none() && is_title_style(&p, styles) {
                            let text = collapse_whitespace(&p.text);
                            title = (!text.is_empty()).then_some(text);
                        }
                        let text = match kind {
                            BlockKind::Heading { .. } => collapse_whitespace(&p.text),
                            _ => p.text,
                        };
                        doc.push(kind, &text, None);
                    }
                }
                b"tc" => {
                    if let Some(table) = tables.last_mut() {
                        let cell = collapse_whitespace(&table.cell);
                        table.row.push(cell);
                        table.cell.clear();
                    }
                }
                b"tr" => {
                    if let Some(table) = tables.last_mut() {
                        if table.row.iter().any(|c| !c.is_empty()) {
                            let row = table.row.join(" | ");
                            table.rows.push(row);
                        }
                        table.row.clear();
                    }
                }
                b"tbl" => {
                    if let Some(table) = tables.pop() {
                        let rows = table.rows.join("\n");
                        if let Some(outer) = tables.last_mut() {
                            // A nested table's rows become text of the enclosing cell.
                            if !outer.cell.is_empty() {
                                outer.cell.push(' ');
                            }
                            outer.cell.push_str(&rows.replace('\n', " ; "));
                        } else {
                            doc.push(BlockKind::Table, &rows, None);
                        }
                    }
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(Body { doc, title })
}

/// Records a paragraph property (`w:pStyle`, `w:outlineLvl`, `w:numPr`/`w:numId`).
fn paragraph_property(name: &[u8], e: &BytesStart<'_>, paragraph: Option<&mut Paragraph>) {
    let Some(p) = paragraph else {
        return;
    };
    match name {
        b"pStyle" => p.style = attr(e, b"val"),
        b"outlineLvl" => p.outline = outline_level(e),
        b"numPr" => p.numbered = true,
        // numId 0 explicitly removes the numbering a style would give.
        b"numId" if attr(e, b"val").as_deref() == Some("0") => p.numbered = false,
        _ => {}
    }
}

fn push_text(paragraphs: &mut [Paragraph], text: &str) {
    if let Some(p) = paragraphs.last_mut() {
        p.text.push_str(text);
    }
}

fn paragraph_kind(p: &Paragraph, styles: &HashMap<String, Style>) -> BlockKind {
    let style = p.style.as_deref();
    if let Some(level) = p
        .outline
        .or_else(|| style.and_then(|s| style_heading(styles, s)))
    {
        return BlockKind::Heading { level };
    }
    if p.numbered || style.is_some_and(|s| style_numbered(styles, s)) {
        return BlockKind::ListItem;
    }
    BlockKind::Paragraph
}

/// Whether the paragraph is in Word's "Title" style (by name, or by id without styles.xml).
fn is_title_style(p: &Paragraph, styles: &HashMap<String, Style>) -> bool {
    p.style.as_deref().is_some_and(|id| {
        let name = styles.get(id).and_then(|s| s.name.as_deref()).unwrap_or(id);
        name.eq_ignore_ascii_case("title")
    })
}

/// `dc:title` from `docProps/core.xml`.
fn core_title(xml: &[u8]) -> Result<Option<String>, quick_xml::Error> {
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut in_title = false;
    let mut title = String::new();
    loop {
        match reader.read_event_into(&mut buf)? {
            Event::Start(e) if e.local_name().as_ref() == b"title" => in_title = true,
            Event::End(e) if e.local_name().as_ref() == b"title" => break,
            Event::Text(t) if in_title => title.push_str(&t.decode()?),
            Event::GeneralRef(r) if in_title => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    title.push(c);
                } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(&r.decode()?) {
                    title.push_str(s);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let title = collapse_whitespace(&title);
    Ok((!title.is_empty()).then_some(title))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heading_styles_follow_names_outline_levels_and_based_on() {
        let styles = br#"<w:styles xmlns:w="x">
            <w:style w:type="paragraph" w:styleId="berschrift1"><w:name w:val="heading 1"/></w:style>
            <w:style w:type="paragraph" w:styleId="Custom"><w:name w:val="Custom"/><w:basedOn w:val="berschrift1"/></w:style>
            <w:style w:type="paragraph" w:styleId="Outline"><w:name w:val="Outline"/><w:pPr><w:outlineLvl w:val="2"/></w:pPr></w:style>
            <w:style w:type="paragraph" w:styleId="Bullets"><w:name w:val="Bullets"/><w:pPr><w:numPr><w:numId w:val="3"/></w:numPr></w:pPr></w:style>
            <w:style w:type="character" w:styleId="Strong"><w:name w:val="heading 5"/></w:style>
            </w:styles>"#;
        let styles = parse_styles(styles).expect("parses");
        assert_eq!(style_heading(&styles, "berschrift1"), Some(1));
        assert_eq!(style_heading(&styles, "Custom"), Some(1));
        assert_eq!(style_heading(&styles, "Outline"), Some(3));
        assert_eq!(style_heading(&styles, "Heading4"), Some(4));
        // Character styles are not paragraph styles: "Strong" is an unknown paragraph style id.
        assert_eq!(style_heading(&styles, "Strong"), None);
        assert!(style_numbered(&styles, "Bullets"));
        assert!(!style_numbered(&styles, "Custom"));
    }
}
