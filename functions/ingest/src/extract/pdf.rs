//! PDF with poppler (Debian `poppler-utils`): `pdfinfo` for the page count, title and page sizes,
//! `pdftotext` for the text layer, and `pdftoppm` + Tesseract for pages without one.
//!
//! Why poppler and not a pure-Rust crate (`pdf-extract`, `lopdf`): `pdftotext` rebuilds reading
//! order (columns, blocks, word spacing) from glyph positions and decodes the font encodings
//! (CID fonts, ToUnicode maps, ligatures) that the Rust crates leave as garbage or drop. Its
//! default (not `-layout`) mode gives one column at a time, paragraphs separated by blank lines,
//! and a form feed after every page, which is what the blocks need.
//!
//! A page whose text layer has fewer than [`MIN_LAYER_CHARS`] non-space characters is a scan (or
//! a picture of text): it is rendered at [`Limits::ocr_dpi`] (lowered for huge pages so a render
//! stays under [`MAX_RENDER_SIDE`] pixels) and read by Tesseract, and the better of the two texts
//! is kept.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;

use super::builder::{paragraphs, DocBuilder};
use super::ocr::{self, OcrBudget};
use super::tool;
use super::{BlockKind, ExtractError, Extracted, Limits, MediaType, TOOL_TIMEOUT};

/// A page with fewer non-space characters in its text layer is OCR'd: a page number or a running
/// header alone is not a text layer.
pub(crate) const MIN_LAYER_CHARS: usize = 20;

/// The longest side, in pixels, of a page rendered for OCR (an A4 page at 300 dpi is 3508, A3
/// 4961).
pub(crate) const MAX_RENDER_SIDE: f64 = 7_000.0;

/// What `pdfinfo` tells us.
#[derive(Debug, Default, PartialEq)]
struct Info {
    pages: u32,
    title: Option<String>,
    /// Width and height in points of pages `1..=n` (as many as were asked for).
    sizes: Vec<(f64, f64)>,
}

/// The text and blocks of a PDF; see the [module documentation](self).
pub(crate) fn extract(bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let dir = tempfile::Builder::new()
        .prefix("quarry-extract-")
        .tempdir()?;
    let dir = dir.path();
    let input = dir.join("input.pdf");
    std::fs::write(&input, bytes)?;

    let info = info(dir, &input, limits.max_pages)?;
    if info.pages > limits.max_pages {
        return Err(ExtractError::TooManyPages {
            pages: info.pages,
            max: limits.max_pages,
        });
    }
    if info.pages == 0 {
        return Err(ExtractError::corrupt("the PDF has no pages"));
    }
    let layer = text_layer(dir, &input, info.pages, limits.expansion_limit())?;
    let mut layer_pages = layer.split('\u{c}');

    let mut budget = OcrBudget::new(limits.ocr_timeout);
    let mut texts = Vec::with_capacity(info.pages as usize);
    let mut total = layer.len();
    let mut ocr_pages = 0;
    for page in 1..=info.pages {
        let layer_text = layer_pages.next().unwrap_or("");
        let mut text = layer_text.to_owned();
        if non_space(layer_text) < MIN_LAYER_CHARS {
            let size = info.sizes.get(page as usize - 1).copied();
            let scanned = ocr_page(dir, &input, page, size, limits, &mut budget)?;
            ocr_pages += 1;
            if non_space(&scanned) > non_space(layer_text) {
                total += scanned.len();
                text = scanned;
            }
        }
        if total as u64 > limits.expansion_limit() {
            return Err(ExtractError::TooLarge {
                what: "the extracted text",
                limit: limits.expansion_limit(),
            });
        }
        texts.push(text);
    }
    strip_running_lines(&mut texts);
    let mut doc = DocBuilder::new();
    for (page, text) in (1..).zip(&texts) {
        push_page(&mut doc, text, page);
    }
    let (text, blocks) = doc.finish();
    Ok(Extracted {
        title: info.title,
        media_type: MediaType::Pdf,
        text,
        blocks,
        pages: Some(info.pages),
        ocr_pages,
    })
}

/// Runs `pdfinfo`, asking for the sizes of the pages we may process.
fn info(dir: &Path, input: &Path, max_pages: u32) -> Result<Info, ExtractError> {
    let last = max_pages.max(1).to_string();
    let args = [
        OsStr::new("-enc"),
        OsStr::new("UTF-8"),
        OsStr::new("-f"),
        OsStr::new("1"),
        OsStr::new("-l"),
        OsStr::new(&last),
        input.as_os_str(),
    ];
    let done = tool::run("pdfinfo", &args, dir, TOOL_TIMEOUT).map_err(|err| {
        err.into_extract_error(ExtractError::corrupt("the PDF took too long to open"))
    })?;
    if !done.status.success() {
        return Err(open_failure(&done.stderr));
    }
    // pdfinfo's output is a few lines per page; 16 MiB is far beyond any real one.
    let out = tool::read_text(&done.stdout, 16 * 1024 * 1024)?;
    parse_info(&out).ok_or_else(|| ExtractError::corrupt("the PDF's page count could not be read"))
}

/// Maps a poppler tool's failure to open the file.
fn open_failure(stderr: &str) -> ExtractError {
    if stderr.contains("Incorrect password") {
        ExtractError::Encrypted
    } else {
        ExtractError::corrupt("the file is not a readable PDF")
    }
}

fn parse_info(out: &str) -> Option<Info> {
    let mut info = Info::default();
    let mut pages = None;
    for line in out.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "Pages" => pages = value.parse().ok(),
            "Title" if !value.is_empty() => info.title = Some(value.to_owned()),
            _ => {
                // "Page    1 size:  612 x 792 pts (letter)"
                let Some(size) = line
                    .strip_prefix("Page ")
                    .and_then(|l| l.split_once("size:"))
                else {
                    continue;
                };
                let mut dims = size.1.split_whitespace();
                let (Some(w), Some("x"), Some(h)) = (dims.next(), dims.next(), dims.next()) else {
                    continue;
                };
                if let (Ok(w), Ok(h)) = (w.parse(), h.parse()) {
                    info.sizes.push((w, h));
                }
            }
        }
    }
    info.pages = pages?;
    Some(info)
}

/// The whole text layer in one `pdftotext` run: pages end with a form feed.
fn text_layer(dir: &Path, input: &Path, pages: u32, limit: u64) -> Result<String, ExtractError> {
    let last = pages.to_string();
    let args = [
        OsStr::new("-enc"),
        OsStr::new("UTF-8"),
        OsStr::new("-eol"),
        OsStr::new("unix"),
        OsStr::new("-f"),
        OsStr::new("1"),
        OsStr::new("-l"),
        OsStr::new(&last),
        input.as_os_str(),
        OsStr::new("-"),
    ];
    let done = tool::run("pdftotext", &args, dir, TOOL_TIMEOUT).map_err(|err| {
        err.into_extract_error(ExtractError::corrupt("the PDF took too long to read"))
    })?;
    if !done.status.success() {
        return Err(open_failure(&done.stderr));
    }
    tool::read_text(&done.stdout, limit)
}

/// Renders page `page` to a grey PNG and OCRs it, both on the document's OCR budget.
fn ocr_page(
    dir: &Path,
    input: &Path,
    page: u32,
    size: Option<(f64, f64)>,
    limits: &Limits,
    budget: &mut OcrBudget,
) -> Result<String, ExtractError> {
    let dpi = render_dpi(limits.ocr_dpi, size);
    let (dpi_arg, page_arg) = (dpi.to_string(), page.to_string());
    let stem = dir.join("page");
    let args = [
        OsStr::new("-r"),
        OsStr::new(&dpi_arg),
        OsStr::new("-f"),
        OsStr::new(&page_arg),
        OsStr::new("-l"),
        OsStr::new(&page_arg),
        OsStr::new("-gray"),
        OsStr::new("-png"),
        OsStr::new("-singlefile"),
        input.as_os_str(),
        stem.as_os_str(),
    ];
    let done = budget.run("pdftoppm", &args, dir)?;
    let image = dir.join("page.png");
    if !done.status.success() || !image.exists() {
        return Err(ExtractError::corrupt(format!(
            "page {page} could not be rendered"
        )));
    }
    let text = ocr::recognize(
        budget,
        dir,
        &image,
        Some(dpi),
        &limits.ocr_lang,
        limits.expansion_limit(),
    );
    std::fs::remove_file(&image)?;
    text
}

/// The configured resolution, lowered so the page's longer side stays within
/// [`MAX_RENDER_SIDE`] pixels (a 200-inch poster page would otherwise be 60 000 pixels wide, and
/// Tesseract's time grows with the pixel count).
fn render_dpi(dpi: u32, size: Option<(f64, f64)>) -> u32 {
    let dpi = dpi.clamp(1, 1200);
    let Some((w, h)) = size else {
        return dpi;
    };
    let longest_inches = w.max(h) / 72.0;
    if longest_inches <= 0.0 || !longest_inches.is_finite() {
        return dpi;
    }
    let cap = (MAX_RENDER_SIDE / longest_inches).floor();
    if cap < f64::from(dpi) {
        // In 0..dpi here, so the conversion cannot truncate.
        (cap as u32).max(1)
    } else {
        dpi
    }
}

fn non_space(text: &str) -> usize {
    text.chars().filter(|c| !c.is_whitespace()).count()
}

/// Adds one page's plain text (a text layer or OCR output) as blocks: blank-line paragraphs,
/// split further where a short line ends a sentence (pdftotext often leaves no blank line
/// between paragraphs of one column); bulleted lines as list items; numbered section titles
/// ("2.3 Locking"), alone or as the first lines of a paragraph, as headings.
pub(crate) fn push_page(doc: &mut DocBuilder, text: &str, page: u32) {
    for paragraph in paragraphs(text) {
        for (kind, lines) in split_bullets(&paragraph) {
            if kind != BlockKind::Paragraph {
                doc.push(kind, &reflow(&lines), Some(page));
                continue;
            }
            let (headings, body) = leading_headings(&lines);
            for (level, line) in headings {
                doc.push(BlockKind::Heading { level }, line, Some(page));
            }
            for group in split_at_short_lines(body) {
                doc.push(BlockKind::Paragraph, &reflow(group), Some(page));
            }
        }
    }
}

/// The numbered section titles that open a paragraph, and the rest. A title line must be
/// clearly shorter than the paragraph's widest line (a wrapped sentence that happens to start
/// with "2.5 Million" fills its line); a one-number title ("1. Introduction") counts only when a
/// sub-section title of the same number ("1.1. Version") follows, since alone it is as often a
/// numbered list item.
fn leading_headings<'a>(lines: &'a [&'a str]) -> (Vec<(u8, &'a str)>, &'a [&'a str]) {
    let widest = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let mut headings = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let next = lines.get(i + 1).copied();
        let short = lines.len() == 1 || line.chars().count() * 10 < widest * 7;
        let level = numbered_heading(line).or_else(|| {
            let (number, _) = line.split_once(' ')?;
            let number = number.strip_suffix('.').unwrap_or(number);
            let sub = next?.split_once(' ')?.0;
            let opens_section = is_number(number)
                && sub.starts_with(&format!("{number}."))
                && numbered_heading(next?).is_some()
                && titled(line.split_once(' ')?.1);
            opens_section.then_some(1)
        });
        match level {
            Some(level) if short => headings.push((level, line)),
            _ => break,
        }
        i += 1;
    }
    (headings, &lines[i..])
}

/// Splits a paragraph's lines after a line that ends a sentence well short of the widest line
/// (under three quarters of it) when the next line starts like a sentence.
fn split_at_short_lines<'a>(lines: &'a [&'a str]) -> Vec<&'a [&'a str]> {
    let widest = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let mut groups = Vec::new();
    let mut start = 0;
    for i in 0..lines.len().saturating_sub(1) {
        let line = lines[i];
        let ends_sentence = matches!(line.chars().last(), Some('.' | '!' | '?' | ':'));
        let short = line.chars().count() * 4 < widest * 3;
        let next_starts = lines[i + 1]
            .chars()
            .next()
            .is_some_and(|c| c.is_uppercase() || c.is_ascii_digit() || "\"“‘(".contains(c));
        if ends_sentence && short && next_starts {
            groups.push(&lines[start..=i]);
            start = i + 1;
        }
    }
    if start < lines.len() {
        groups.push(&lines[start..]);
    }
    groups
}

/// Drops running headers, footers and page numbers: the first and last line of each page when
/// it is a bare page number ("12", "Page 3 of 9", "- 4 -"), or when the same line (digits
/// ignored) opens or closes at least half the pages, and three or more.
fn strip_running_lines(pages: &mut [String]) {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for page in pages.iter() {
        let mut edges: Vec<String> = edge_lines(page).into_iter().map(mask_digits).collect();
        edges.dedup();
        for edge in edges {
            *counts.entry(edge).or_default() += 1;
        }
    }
    let threshold = pages.len().div_ceil(2).max(3);
    for page in pages.iter_mut() {
        let edges = edge_lines(page);
        let drop: Vec<&str> = edges
            .into_iter()
            .filter(|line| {
                is_page_number(line)
                    || counts
                        .get(&mask_digits(line))
                        .is_some_and(|&n| n >= threshold)
            })
            .collect();
        if drop.is_empty() {
            continue;
        }
        let mut kept = String::with_capacity(page.len());
        let lines: Vec<&str> = page.lines().collect();
        let first = lines.iter().position(|l| !l.trim().is_empty());
        let last = lines.iter().rposition(|l| !l.trim().is_empty());
        for (i, line) in lines.iter().enumerate() {
            let edge = Some(i) == first || Some(i) == last;
            if !(edge && drop.contains(&line.trim())) {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        *page = kept;
    }
}

/// The first and last non-blank lines of a page, trimmed (one line when they are the same).
fn edge_lines(page: &str) -> Vec<&str> {
    let mut lines = page.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next();
    let last = lines.next_back();
    first.into_iter().chain(last).collect()
}

fn mask_digits(line: &str) -> String {
    line.chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect()
}

fn is_page_number(line: &str) -> bool {
    let lower = line.to_lowercase();
    let rest: String = lower
        .replace("page", " ")
        .replace("of", " ")
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '–' | '/' | '|' | '.'))
        .collect();
    !rest.is_empty() && rest.len() <= 8 && rest.bytes().all(|b| b.is_ascii_digit())
}

const BULLETS: &[char] = &['•', '◦', '▪', '‣', '●', '○', '■', '□', '➢', '►'];

/// Splits a paragraph's lines where a line starts with a bullet: the lines before the first
/// bullet stay a paragraph, each bullet and its continuation lines become a list item.
fn split_bullets(paragraph: &str) -> Vec<(BlockKind, Vec<&str>)> {
    let mut out: Vec<(BlockKind, Vec<&str>)> = Vec::new();
    for line in paragraph.lines() {
        let trimmed = line.trim();
        if let Some(item) = trimmed.strip_prefix(BULLETS) {
            out.push((BlockKind::ListItem, vec![item.trim_start()]));
        } else if let Some((_, lines)) = out.last_mut() {
            lines.push(trimmed);
        } else {
            out.push((BlockKind::Paragraph, vec![trimmed]));
        }
    }
    out
}

/// Joins a paragraph's visual lines into running text. A line that ends in a hyphen after a
/// letter, followed by one starting in lower case, joins without a space and keeps the hyphen:
/// "well-\nknown" is right and "exam-\nple" is readable, whereas dropping hyphens would break
/// every real compound split at a line end.
fn reflow(lines: &[&str]) -> String {
    let mut out = String::new();
    for line in lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
        let glue = out.ends_with('-')
            && out.chars().rev().nth(1).is_some_and(char::is_alphabetic)
            && line.chars().next().is_some_and(char::is_lowercase);
        if !out.is_empty() && !glue {
            out.push(' ');
        }
        out.push_str(line);
    }
    out
}

/// The level of a numbered section title such as "24.1.3 Updating Planner Statistics" (the
/// number of components) or "Chapter 24. Routine Database Maintenance Tasks" (1). Conservative:
/// one short line, at least two number components (a lone "1." is as often a list item), a
/// capitalised title, no sentence punctuation at the end.
fn numbered_heading(text: &str) -> Option<u8> {
    if text.chars().count() > 100 || text.split_whitespace().count() > 14 {
        return None;
    }
    // Sentence punctuation at the end, or a table-of-contents leader ("Version . . . 3").
    if matches!(text.chars().last(), Some('.' | ',' | ';' | ':'))
        || text.contains("..")
        || text.contains(". .")
    {
        return None;
    }
    if let Some(rest) = text.strip_prefix("Chapter ") {
        let (number, title) = rest.split_once(' ')?;
        let number = number.strip_suffix('.').unwrap_or(number);
        return (is_number(number) && titled(title)).then_some(1);
    }
    let (number, title) = text.split_once(' ')?;
    let number = number.strip_suffix('.').unwrap_or(number);
    let parts: Vec<&str> = number.split('.').collect();
    let numbered = (2..=6).contains(&parts.len()) && parts.iter().all(|p| is_number(p));
    // parts.len() is 2..=6 here, so it fits a u8.
    (numbered && titled(title)).then_some(parts.len() as u8)
}

/// A title starts with a capital letter.
fn titled(title: &str) -> bool {
    title
        .trim_start()
        .chars()
        .next()
        .is_some_and(char::is_uppercase)
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdfinfo_output_is_parsed() {
        let out = "Title:           Quarry: Sample\nPages:           2\nEncrypted:       no\n\
                   Page    1 size:  612 x 792 pts (letter)\nPage    1 rot:   0\n\
                   Page    2 size:  288.5 x 108 pts\n";
        let info = parse_info(out).expect("parses");
        assert_eq!(info.pages, 2);
        assert_eq!(info.title.as_deref(), Some("Quarry: Sample"));
        assert_eq!(info.sizes, vec![(612.0, 792.0), (288.5, 108.0)]);
        assert!(parse_info("Title: x\n").is_none());
    }

    #[test]
    fn huge_pages_render_at_a_lower_resolution() {
        assert_eq!(render_dpi(300, Some((612.0, 792.0))), 300);
        assert_eq!(render_dpi(300, None), 300);
        // A 200-inch page: 7 000 px / 200 in = 35 dpi.
        assert_eq!(render_dpi(300, Some((14_400.0, 100.0))), 35);
        assert_eq!(render_dpi(300, Some((f64::INFINITY, 1.0))), 300);
    }

    #[test]
    fn lines_reflow_and_numbered_titles_become_headings() {
        assert_eq!(
            reflow(&["A well-", "known fact and a line", "break."]),
            "A well-known fact and a line break."
        );
        assert_eq!(reflow(&["Pre-", "Release"]), "Pre- Release");
        assert_eq!(
            numbered_heading("24.1.3 Updating Planner Statistics"),
            Some(3)
        );
        assert_eq!(numbered_heading("24.1. Routine Vacuuming"), Some(2));
        assert_eq!(
            numbered_heading("Chapter 24. Routine Database Maintenance Tasks"),
            Some(1)
        );
        assert_eq!(numbered_heading("1. Install the package"), None);
        assert_eq!(numbered_heading("2.5 Million rows were updated."), None);
        assert_eq!(numbered_heading("3.14 is pi"), None);
    }

    fn blocks(text: &str) -> Vec<(BlockKind, String)> {
        let mut doc = DocBuilder::new();
        push_page(&mut doc, text, 1);
        let (_, blocks) = doc.finish();
        blocks.into_iter().map(|b| (b.kind, b.text)).collect()
    }

    #[test]
    fn section_titles_opening_a_paragraph_are_split_off() {
        let page = "1. Introduction\n1.1. Version\nThis is version 0.21 of the specification, last updated in 2018 by the group.\n\n\
                    2.5 Million rows were updated by the nightly batch job in the\nwarehouse before noon.";
        let p = BlockKind::Paragraph;
        assert_eq!(
            blocks(page),
            vec![
                (BlockKind::Heading { level: 1 }, "1. Introduction".to_owned()),
                (BlockKind::Heading { level: 2 }, "1.1. Version".to_owned()),
                (p, "This is version 0.21 of the specification, last updated in 2018 by the group.".to_owned()),
                (
                    p,
                    "2.5 Million rows were updated by the nightly batch job in the warehouse before noon."
                        .to_owned()
                ),
            ]
        );
        // A lone "1. Step" is a list item's text, not a chapter.
        assert_eq!(
            blocks("1. Install the package"),
            vec![(p, "1. Install the package".to_owned())]
        );
        assert_eq!(numbered_heading("1.1. Version . . . . . 3"), None);
    }

    #[test]
    fn short_lines_that_end_a_sentence_end_a_paragraph() {
        let page = "It is also useful to store information about each type, such as a textual\n\
                    description of it.\n\
                    For interoperability, it is useful for different programs to use the same\n\
                    database: one place.";
        assert_eq!(
            blocks(page),
            vec![
                (
                    BlockKind::Paragraph,
                    "It is also useful to store information about each type, such as a textual description of it."
                        .to_owned()
                ),
                (
                    BlockKind::Paragraph,
                    "For interoperability, it is useful for different programs to use the same database: one place."
                        .to_owned()
                ),
            ]
        );
    }

    #[test]
    fn running_headers_and_page_numbers_are_dropped() {
        let mut pages: Vec<String> = (1..=4)
            .map(|n| {
                format!("Shared MIME-info Database\nBody text of page {n} goes here.\n\n{n}\n")
            })
            .collect();
        pages.push("Page 5 of 5\nThe last page has no running header.\n".to_owned());
        strip_running_lines(&mut pages);
        assert_eq!(pages[0], "Body text of page 1 goes here.\n\n");
        assert_eq!(pages[3], "Body text of page 4 goes here.\n\n");
        assert_eq!(pages[4], "The last page has no running header.\n");
        // Two pages are too few to call a line a running header; page numbers still go.
        let mut short = vec!["Title\nOne.\n1".to_owned(), "Title\nTwo.\n- 2 -".to_owned()];
        strip_running_lines(&mut short);
        assert_eq!(short, ["Title\nOne.\n", "Title\nTwo.\n"]);
        assert!(is_page_number("Page 3 of 12"));
        assert!(!is_page_number("2024 annual report"));
    }

    #[test]
    fn bullets_become_list_items() {
        let mut doc = DocBuilder::new();
        push_page(
            &mut doc,
            "Intro line\n• first item\ncontinued\n• second\n\n1.2 Next Part",
            3,
        );
        let (_, blocks) = doc.finish();
        let kinds: Vec<_> = blocks.iter().map(|b| (b.kind, b.text.as_str())).collect();
        assert_eq!(
            kinds,
            vec![
                (BlockKind::Paragraph, "Intro line"),
                (BlockKind::ListItem, "first item continued"),
                (BlockKind::ListItem, "second"),
                (BlockKind::Heading { level: 2 }, "1.2 Next Part"),
            ]
        );
        assert!(blocks.iter().all(|b| b.page == Some(3)));
    }
}
