//! HTML with `scraper` (html5ever, the parser of Servo): it builds the same tree a browser would
//! from real-world, broken markup, which regex- or XML-based stripping cannot.
//!
//! The body is walked once in document order, iteratively (ego-tree's `traverse`), so deeply
//! nested markup cannot overflow the stack:
//! - `h1`–`h6` → headings; `p`, `dd`, `dt`, `blockquote` and other block elements' text →
//!   paragraphs; `li` → list items; `pre` → code with its line breaks; a data `table` → one
//!   table block, one line per row with cells joined by ` | ` (a table holding tables or
//!   headings is page layout and is walked like a `div`);
//! - skipped: `head`, scripts, styles, forms' controls, `nav`, page-level `header`/`footer` (and
//!   ARIA `banner`/`contentinfo`/`navigation`), hidden elements, and the navigation and
//!   table-of-contents blocks of DocBook sites such as the PostgreSQL manual (`navheader`,
//!   `navfooter`, `toc`);
//! - a heading inside an admonition (`note`, `tip`, `warning`, `caution`, `important`, `aside`)
//!   such as DocBook's "Tip" is a paragraph, so it does not replace the section heading in the
//!   chunks' heading paths;
//! - whitespace outside `pre` is collapsed as a browser renders it.

use ego_tree::iter::Edge;
use ego_tree::{NodeId, NodeRef};
use scraper::node::Element;
use scraper::{ElementRef, Html, Node};

use super::builder::{collapse_whitespace, DocBuilder};
use super::{utf8_text, BlockKind, ExtractError, Extracted, MediaType};

/// The blocks of an HTML page; the title is `<title>`, else the first `h1`.
pub(crate) fn extract(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let source = utf8_text(bytes, "the HTML is not UTF-8 encoded")?;
    let html = Html::parse_document(source);
    let root = html.root_element();
    let mut walker = Walker::default();
    for edge in root.traverse() {
        match edge {
            Edge::Open(node) => walker.open(node),
            Edge::Close(node) => walker.close(node.id(), node.value()),
        }
    }
    walker.flush();
    let title = page_title(root).or(walker.first_h1);
    let (text, blocks) = walker.doc.finish();
    Ok(Extracted {
        title,
        media_type: MediaType::Html,
        text,
        blocks,
        pages: None,
        ocr_pages: 0,
    })
}

/// `<head><title>`, whitespace collapsed.
fn page_title(root: ElementRef<'_>) -> Option<String> {
    let head = root.child_elements().find(|e| e.value().name() == "head")?;
    let title = head
        .descendent_elements()
        .find(|e| e.value().name() == "title")?;
    let text = collapse_whitespace(&title.text().collect::<String>());
    (!text.is_empty()).then_some(text)
}

/// Elements whose whole subtree carries no document text.
const SKIPPED: &[&str] = &[
    "head", "script", "style", "noscript", "template", "nav", "svg", "iframe", "object", "embed",
    "canvas", "button", "select", "textarea", "input", "map",
];

/// Class names of navigation (DocBook's `navheader`/`navfooter`) and tables of contents.
const SKIPPED_CLASSES: &[&str] = &["navheader", "navfooter", "toc", "breadcrumb", "breadcrumbs"];

/// Containers whose headings are labels ("Tip", "Note"), not section titles.
const ADMONITION_CLASSES: &[&str] = &["note", "tip", "warning", "caution", "important"];

/// Elements that end the running paragraph (the CSS `display: block` ones that matter here).
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "center",
    "dd",
    "details",
    "dialog",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "header",
    "hgroup",
    "hr",
    "html",
    "legend",
    "li",
    "main",
    "menu",
    "ol",
    "p",
    "section",
    "summary",
    "ul",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "td",
    "th",
    "caption",
];

#[derive(Default)]
struct Table {
    id: Option<NodeId>,
    caption: String,
    in_caption: bool,
    rows: Vec<String>,
    row: Vec<String>,
    cell: String,
}

#[derive(Default)]
struct Walker {
    doc: DocBuilder,
    /// Inline text of the block being read, whitespace not yet collapsed.
    pending: String,
    /// Open `li` elements.
    items: usize,
    /// Open admonitions.
    admonitions: usize,
    /// Open `article`/`main` elements: their `header`/`footer` are content, not site chrome.
    content: usize,
    heading: Option<(NodeId, u8)>,
    pre: Option<(NodeId, String)>,
    table: Option<Table>,
    /// The skipped subtree being passed over.
    skip: Option<NodeId>,
    first_h1: Option<String>,
}

impl Walker {
    fn open(&mut self, node: NodeRef<'_, Node>) {
        if self.skip.is_some() {
            return;
        }
        match node.value() {
            Node::Text(text) => self.text(text),
            Node::Element(el) => self.open_element(node, el),
            _ => {}
        }
    }

    fn text(&mut self, text: &str) {
        if let Some((_, code)) = &mut self.pre {
            code.push_str(text);
        } else if let Some(table) = &mut self.table {
            if table.in_caption {
                table.caption.push_str(text);
            } else {
                table.cell.push_str(text);
            }
        } else {
            self.pending.push_str(text);
        }
    }

    fn open_element(&mut self, node: NodeRef<'_, Node>, el: &Element) {
        let id = node.id();
        if self.skipped(el) {
            self.skip = Some(id);
            return;
        }
        let name = el.name();
        if self.pre.is_some() {
            if name == "br" {
                self.text("\n");
            }
            return;
        }
        if let Some(table) = &mut self.table {
            match name {
                "tr" => table.row.clear(),
                "td" | "th" => table.cell.clear(),
                "caption" => table.in_caption = true,
                "br" => table.cell.push(' '),
                _ => {}
            }
            return;
        }
        if let Some(level) = heading_level(name) {
            self.flush();
            if self.admonitions == 0 {
                self.heading = Some((id, level));
            }
            return;
        }
        match name {
            "pre" => {
                self.flush();
                self.pre = Some((id, String::new()));
            }
            "table" if !is_layout(node, el) => {
                self.flush();
                self.table = Some(Table {
                    id: Some(id),
                    ..Table::default()
                });
            }
            "br" => self.pending.push(' '),
            "li" => {
                self.flush();
                self.items += 1;
            }
            _ if BLOCKS.contains(&name) => self.flush(),
            _ => {}
        }
        if is_admonition(el) {
            self.admonitions += 1;
        }
        if matches!(name, "article" | "main") {
            self.content += 1;
        }
    }

    fn close(&mut self, id: NodeId, node: &Node) {
        if let Some(skip) = self.skip {
            if skip == id {
                self.skip = None;
            }
            return;
        }
        let Node::Element(el) = node else {
            return;
        };
        let name = el.name();
        if let Some((pre_id, code)) = &self.pre {
            if *pre_id == id {
                let code = code.clone();
                self.pre = None;
                self.doc.push(BlockKind::Code, &code, None);
            }
            return;
        }
        if let Some(table) = &mut self.table {
            match name {
                "td" | "th" => {
                    let cell = collapse_whitespace(&table.cell);
                    table.row.push(cell);
                    table.cell.clear();
                }
                "tr" => {
                    if table.row.iter().any(|c| !c.is_empty()) {
                        let row = table.row.join(" | ");
                        table.rows.push(row);
                    }
                    table.row.clear();
                }
                "caption" => table.in_caption = false,
                _ => {}
            }
            if table.id == Some(id) {
                let caption = collapse_whitespace(&table.caption);
                let rows = table.rows.join("\n");
                self.table = None;
                self.doc.push(BlockKind::Paragraph, &caption, None);
                self.doc.push(BlockKind::Table, &rows, None);
            }
            return;
        }
        if let Some((heading_id, level)) = self.heading {
            if heading_id == id {
                let text = collapse_whitespace(&self.pending);
                self.pending.clear();
                self.heading = None;
                if level == 1 && self.first_h1.is_none() && !text.is_empty() {
                    self.first_h1 = Some(text.clone());
                }
                self.doc.push(BlockKind::Heading { level }, &text, None);
                return;
            }
        }
        if name == "li" {
            self.flush();
            self.items = self.items.saturating_sub(1);
        } else if BLOCKS.contains(&name) || heading_level(name).is_some() {
            self.flush();
        }
        if is_admonition(el) {
            self.admonitions = self.admonitions.saturating_sub(1);
        }
        if matches!(name, "article" | "main") {
            self.content = self.content.saturating_sub(1);
        }
    }

    /// Ends the running block: a list item inside an `li`, else a paragraph.
    fn flush(&mut self) {
        if self.heading.is_some() {
            return;
        }
        let kind = if self.items > 0 {
            BlockKind::ListItem
        } else {
            BlockKind::Paragraph
        };
        let text = collapse_whitespace(&self.pending);
        self.pending.clear();
        self.doc.push(kind, &text, None);
    }

    fn skipped(&self, el: &Element) -> bool {
        let name = el.name();
        if SKIPPED.contains(&name) {
            return true;
        }
        if matches!(name, "header" | "footer") && self.content == 0 {
            return true;
        }
        if el.attr("hidden").is_some() || el.attr("aria-hidden") == Some("true") {
            return true;
        }
        if matches!(
            el.attr("role"),
            Some("navigation" | "banner" | "contentinfo")
        ) {
            return true;
        }
        el.classes()
            .any(|c| SKIPPED_CLASSES.iter().any(|s| c.eq_ignore_ascii_case(s)))
    }
}

/// A table used for page layout (it holds tables or headings, or says it is presentational) is
/// walked as a container; only data tables become table blocks.
fn is_layout(node: NodeRef<'_, Node>, el: &Element) -> bool {
    if el.attr("role") == Some("presentation") {
        return true;
    }
    node.descendants().skip(1).any(|d| match d.value() {
        Node::Element(inner) => inner.name() == "table" || heading_level(inner.name()).is_some(),
        _ => false,
    })
}

fn is_admonition(el: &Element) -> bool {
    el.name() == "aside"
        || el
            .classes()
            .any(|c| ADMONITION_CLASSES.iter().any(|a| c.eq_ignore_ascii_case(a)))
}

fn heading_level(name: &str) -> Option<u8> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}
