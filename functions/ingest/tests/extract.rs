//! Text extraction against the real tools (poppler, Tesseract) and the fixtures in
//! `tests/fixtures/` (see its README for how each was made). Every successful extraction is fed
//! to the chunker, which validates the blocks' offsets.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use quarry_ingest::extract::{
    extract, sniff, Block, BlockKind, ExtractError, Extracted, Limits, MediaType,
};
use quarry_shared::rag::chunk::{chunk_document, ChunkConfig};

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// Sniffs (with the file name) and extracts with default limits, then proves the blocks are
/// valid chunker input.
fn extract_file(name: &str) -> Result<Extracted, ExtractError> {
    let bytes = fixture(name);
    let media = sniff(&bytes, Some(name), None)?;
    let doc = extract(&bytes, media, &Limits::default())?;
    assert_valid(&doc);
    Ok(doc)
}

fn assert_valid(doc: &Extracted) {
    assert!(!doc.blocks.is_empty());
    let words = |t: &str| t.split_whitespace().count();
    let chunks = chunk_document(&doc.text, &doc.blocks, &words, &ChunkConfig::default())
        .expect("the chunker accepts the extracted blocks");
    assert!(!chunks.is_empty());
    for block in &doc.blocks {
        assert_eq!(block.text, block.text.trim(), "blocks are trimmed");
        assert!(!block.text.is_empty());
    }
}

fn kinds(blocks: &[Block]) -> Vec<(BlockKind, &str)> {
    blocks.iter().map(|b| (b.kind, b.text.as_str())).collect()
}

fn err_kind(result: Result<Extracted, ExtractError>) -> &'static str {
    match result {
        Ok(doc) => panic!("expected an error, got {:?}", doc.text),
        Err(err) => err.kind(),
    }
}

fn heading(level: u8) -> BlockKind {
    BlockKind::Heading { level }
}

// ---- PDF -----------------------------------------------------------------------------------

#[test]
fn pdf_text_layer_gives_pages_paragraphs_and_numbered_headings() {
    let doc = extract_file("text.pdf").expect("extracts");
    assert_eq!(doc.media_type, MediaType::Pdf);
    assert_eq!(doc.title.as_deref(), Some("Quarry Sample"));
    assert_eq!(doc.pages, Some(2));
    assert_eq!(doc.ocr_pages, 0);
    assert_eq!(
        kinds(&doc.blocks),
        vec![
            (heading(2), "1.1 Routine Maintenance"),
            (
                BlockKind::Paragraph,
                "Quarry keeps its indexes healthy by vacuuming tables on a schedule. \
                 Dead row versions are removed so that the space can be reused."
            ),
            (
                BlockKind::Paragraph,
                "The planner relies on fresh statistics gathered by the analyze step."
            ),
            (heading(2), "1.2 Second Page"),
            (
                BlockKind::Paragraph,
                "This paragraph is on the second page of the sample document."
            ),
        ]
    );
    let pages: Vec<Option<u32>> = doc.blocks.iter().map(|b| b.page).collect();
    assert_eq!(pages, [Some(1), Some(1), Some(1), Some(2), Some(2)]);
}

#[test]
fn pdf_page_without_text_layer_is_ocrd() {
    let doc = extract_file("scanned.pdf").expect("extracts");
    assert_eq!(doc.pages, Some(2));
    assert_eq!(doc.ocr_pages, 1, "only the image page is OCR'd");
    let page1: Vec<&str> = doc
        .blocks
        .iter()
        .filter(|b| b.page == Some(1))
        .map(|b| b.text.as_str())
        .collect();
    assert_eq!(
        page1,
        ["Cover page with a real text layer for the scanned report."]
    );
    let page2: String = doc
        .blocks
        .iter()
        .filter(|b| b.page == Some(2))
        .map(|b| b.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(page2.contains("Scanned invoice number 4711"), "{page2:?}");
    assert!(page2.contains("250 euros"), "{page2:?}");
}

#[test]
fn encrypted_pdf_is_reported_as_encrypted() {
    let result = extract_file("encrypted.pdf");
    let err = result.expect_err("needs a password");
    assert_eq!(err.kind(), "encrypted");
    assert!(err.to_string().contains("password"));
}

#[test]
fn truncated_pdf_is_corrupt() {
    let err = extract_file("truncated.pdf").expect_err("damaged");
    assert_eq!(err.kind(), "corrupt");
    let message = err.to_string();
    assert!(!message.contains("/tmp"), "no temp paths: {message}");
    assert!(
        !message.contains("Syntax Error"),
        "no tool output: {message}"
    );
}

#[test]
fn page_limit_is_checked_before_extraction() {
    let bytes = fixture("text.pdf");
    for max_pages in [0, 1] {
        let limits = Limits {
            max_pages,
            ..Limits::default()
        };
        match extract(&bytes, MediaType::Pdf, &limits) {
            Err(ExtractError::TooManyPages { pages: 2, max }) => assert_eq!(max, max_pages),
            other => panic!("expected TooManyPages, got {other:?}"),
        }
    }
    let limits = Limits {
        max_pages: 2,
        ..Limits::default()
    };
    assert!(extract(&bytes, MediaType::Pdf, &limits).is_ok());
}

#[test]
fn size_limit_is_checked_first() {
    let limits = Limits {
        max_bytes: 100,
        ..Limits::default()
    };
    for (name, media) in [
        ("text.pdf", MediaType::Pdf),
        ("scan.png", MediaType::Png),
        ("sample.html", MediaType::Html),
    ] {
        let err = extract(&fixture(name), media, &limits).expect_err("too large");
        assert_eq!(err.kind(), "too-large", "{name}");
        assert_eq!(
            err.to_string(),
            "the file is larger than the limit of 100 bytes"
        );
    }
}

#[test]
fn ocr_time_limit_covers_the_whole_document() {
    let limits = Limits {
        ocr_timeout: Duration::from_millis(1),
        ..Limits::default()
    };
    for (name, media) in [
        ("scanned.pdf", MediaType::Pdf),
        ("scan.png", MediaType::Png),
    ] {
        let err = extract(&fixture(name), media, &limits).expect_err("times out");
        assert_eq!(err.kind(), "ocr-timeout", "{name}: {err}");
    }
    // A text-layer PDF needs no OCR, so the OCR limit does not apply.
    assert!(extract(&fixture("text.pdf"), MediaType::Pdf, &limits).is_ok());
}

#[test]
fn missing_ocr_language_is_a_server_fault() {
    let limits = Limits {
        ocr_lang: "qqq".to_owned(),
        ..Limits::default()
    };
    let err = extract(&fixture("scan.png"), MediaType::Png, &limits).expect_err("no language");
    assert_eq!(err.kind(), "tool-missing");
    assert!(err.is_server_fault());
}

// ---- Images --------------------------------------------------------------------------------

#[test]
fn images_are_ocrd_as_one_page() {
    for (name, media) in [
        ("scan.png", MediaType::Png),
        ("scan.jpg", MediaType::Jpeg),
        ("scan.tif", MediaType::Tiff),
    ] {
        let bytes = fixture(name);
        // Magic bytes decide, whatever the name says.
        assert_eq!(sniff(&bytes, Some("upload.txt"), None).ok(), Some(media));
        let doc = extract(&bytes, media, &Limits::default()).expect("extracts");
        assert_valid(&doc);
        assert_eq!(doc.media_type, media);
        assert_eq!(doc.pages, Some(1));
        assert_eq!(doc.ocr_pages, 1);
        assert!(doc.blocks.iter().all(|b| b.page == Some(1)));
        assert!(
            doc.text.contains("Scanned invoice number 4711"),
            "{name}: {:?}",
            doc.text
        );
    }
}

// ---- HTML ----------------------------------------------------------------------------------

#[test]
fn html_blocks_follow_the_markup_and_skip_chrome() {
    let doc = extract_file("sample.html").expect("extracts");
    assert_eq!(doc.media_type, MediaType::Html);
    assert_eq!(doc.title.as_deref(), Some("Quarry Handbook"));
    assert_eq!(
        kinds(&doc.blocks),
        vec![
            (heading(1), "Operating Quarry"),
            (
                BlockKind::Paragraph,
                "Quarry answers questions about your PostgreSQL database."
            ),
            (heading(2), "Installing"),
            (BlockKind::ListItem, "Download the release."),
            (BlockKind::ListItem, "Run the installer:"),
            (BlockKind::ListItem, "on Linux, use the tarball"),
            (BlockKind::Code, "quarry dev\n  --port 8080"),
            (BlockKind::Paragraph, "Note"),
            (BlockKind::Paragraph, "Keep a backup."),
            (BlockKind::Paragraph, "Supported formats"),
            (
                BlockKind::Table,
                "Format | Tool\nPDF | poppler\nHTML | html5ever"
            ),
            (BlockKind::Paragraph, "Chunk"),
            (
                BlockKind::Paragraph,
                "A piece of a document that is embedded."
            ),
            (BlockKind::Paragraph, "Measure twice, cut once."),
        ]
    );
    for absent in [
        "tracking",
        "Site logo",
        "Navigation link",
        "Copyright",
        "Hidden",
    ] {
        assert!(!doc.text.contains(absent), "{absent} leaked into the text");
    }
}

/// The real PostgreSQL manual page (Debian `postgresql-doc-15`, installed by
/// scripts/install.sh). Chapter numbers vary between minor releases (24 or 25), so headings are
/// matched by their titles.
#[test]
fn postgresql_manual_page_keeps_sections_and_drops_navigation() {
    let path = "/usr/share/doc/postgresql-doc-15/html/routine-vacuuming.html";
    let bytes = std::fs::read(path)
        .unwrap_or_else(|e| panic!("{path}: {e} (install Debian postgresql-doc-15)"));
    let media = sniff(&bytes, Some("routine-vacuuming.html"), None).expect("sniffs");
    assert_eq!(media, MediaType::Html);
    let doc = extract(&bytes, media, &Limits::default()).expect("extracts");
    assert_valid(&doc);

    let title = doc.title.as_deref().expect("has a title");
    assert!(title.ends_with(". Routine Vacuuming"), "{title}");

    let headings: Vec<(u8, &str)> = doc
        .blocks
        .iter()
        .filter_map(|b| match b.kind {
            BlockKind::Heading { level } => Some((level, b.text.as_str())),
            _ => None,
        })
        .collect();
    let find = |suffix: &str| {
        headings
            .iter()
            .find(|(_, t)| t.ends_with(suffix) && t.starts_with(|c: char| c.is_ascii_digit()))
            .copied()
            .unwrap_or_else(|| panic!("no heading {suffix:?} in {headings:?}"))
    };
    let (top, top_text) = find(". Routine Vacuuming");
    let (basics, _) = find(". Vacuuming Basics");
    let (space, _) = find(". Recovering Disk Space");
    find(". Updating Planner Statistics");
    find(". The Autovacuum Daemon");
    assert!(
        basics > top && space == basics,
        "sections nest under the page heading"
    );
    // The page heading is the first block: the navigation header and the table of contents
    // (which repeats every section title) are gone.
    assert_eq!(doc.blocks[0].text, top_text);
    assert_eq!(
        doc.text.matches("Vacuuming Basics").count(),
        1,
        "the table of contents is skipped"
    );
    assert!(
        !headings
            .iter()
            .any(|(_, t)| *t == "Tip" || *t == "Note" || *t == "Warning"),
        "admonition labels are not section headings: {headings:?}"
    );
    for block in &doc.blocks {
        for nav in ["Prev", "Next", "Home", "Up"] {
            assert_ne!(block.text, nav, "navigation leaked");
        }
        assert!(
            !block.text.starts_with("Prev "),
            "navigation leaked: {:?}",
            block.text
        );
    }
    assert!(!doc.text.contains("Navigation header"));
    assert!(doc.blocks.iter().any(|b| b.kind == BlockKind::Code));
    assert!(doc.blocks.iter().any(|b| b.kind == BlockKind::ListItem));
    assert!(doc
        .text
        .contains("PostgreSQL databases require periodic maintenance known as vacuuming."));
}

// ---- Markdown ------------------------------------------------------------------------------

#[test]
fn markdown_events_become_blocks() {
    let doc = extract_file("sample.md").expect("extracts");
    assert_eq!(doc.media_type, MediaType::Markdown);
    assert_eq!(doc.title.as_deref(), Some("Quarry Notes"));
    assert_eq!(
        kinds(&doc.blocks),
        vec![
            (heading(1), "Retrieval"),
            (
                BlockKind::Paragraph,
                "Quarry splits documents into chunks and embeds them with a small model."
            ),
            (heading(2), "Steps"),
            (BlockKind::ListItem, "Extract the text."),
            (BlockKind::ListItem, "Chunk it:"),
            (BlockKind::ListItem, "by headings"),
            (BlockKind::ListItem, "by sentences"),
            (BlockKind::Code, "SELECT id, text\nFROM chunks;"),
            (
                BlockKind::Table,
                "Stage | Output\nextract | blocks\nchunk | chunks"
            ),
            (BlockKind::Paragraph, "Quoted advice."),
        ]
    );
}

// ---- Plain text ----------------------------------------------------------------------------

#[test]
fn plain_text_paragraphs_without_bom_or_carriage_returns() {
    let doc = extract_file("sample.txt").expect("extracts");
    assert_eq!(doc.media_type, MediaType::Text);
    assert_eq!(doc.title, None);
    assert_eq!(
        doc.text,
        "First paragraph of plain text,\nwrapped over two lines.\n\nSecond paragraph: café."
    );
    assert_eq!(doc.blocks.len(), 2);
    assert_eq!(
        doc.blocks[1].byte_start,
        doc.text.find("Second").expect("present")
    );
    assert_eq!(doc.blocks[1].char_start, 56);
}

#[test]
fn empty_and_blank_files_are_empty() {
    assert_eq!(err_kind(extract_file("empty.txt")), "empty");
    assert_eq!(err_kind(extract_file("blank.txt")), "empty");
    assert_eq!(
        err_kind(extract(
            b"<html><body> <script>x()</script> </body></html>",
            MediaType::Html,
            &Limits::default()
        )),
        "empty"
    );
}

#[test]
fn random_bytes_are_unsupported() {
    let bytes = fixture("random.bin");
    let err = sniff(&bytes, Some("random.bin"), Some("application/octet-stream"))
        .expect_err("not a format we read");
    assert_eq!(err.kind(), "unsupported-format");
    // Declared as text, it is still not UTF-8.
    let err = sniff(&bytes, Some("notes.txt"), Some("text/plain")).expect_err("not UTF-8");
    assert_eq!(err.kind(), "unsupported-format");
    assert_eq!(
        err_kind(extract(&bytes, MediaType::Text, &Limits::default())),
        "unsupported-format"
    );
}

// ---- DOCX ----------------------------------------------------------------------------------

const W: &str = "http://schemas.openxmlformats.org/wordprocessingml/2006/main";

fn paragraph(style: Option<&str>, numbered: bool, runs: &str) -> String {
    let mut ppr = String::new();
    if let Some(style) = style {
        ppr.push_str(&format!(r#"<w:pStyle w:val="{style}"/>"#));
    }
    if numbered {
        ppr.push_str(r#"<w:numPr><w:ilvl w:val="0"/><w:numId w:val="1"/></w:numPr>"#);
    }
    format!("<w:p><w:pPr>{ppr}<w:tabs><w:tab w:val=\"left\" w:pos=\"720\"/></w:tabs></w:pPr>{runs}</w:p>")
}

fn run(text: &str) -> String {
    format!(r#"<w:r><w:rPr><w:b/></w:rPr><w:t xml:space="preserve">{text}</w:t></w:r>"#)
}

fn cell(text: &str) -> String {
    format!(
        "<w:tc><w:tcPr/>{}</w:tc>",
        paragraph(None, false, &run(text))
    )
}

/// A minimal but real DOCX: content types, package relationships, styles (German-style ids,
/// English names, as a localised Word writes them), core properties and the body.
fn build_docx(body: &str, compression: zip::CompressionMethod) -> Vec<u8> {
    let document = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="{W}" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006"><w:body>{body}<w:sectPr/></w:body></w:document>"#
    );
    let styles = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<w:styles xmlns:w="{W}">
<w:style w:type="paragraph" w:styleId="Titel"><w:name w:val="Title"/></w:style>
<w:style w:type="paragraph" w:styleId="berschrift1"><w:name w:val="heading 1"/><w:pPr><w:outlineLvl w:val="0"/></w:pPr></w:style>
<w:style w:type="paragraph" w:styleId="berschrift2"><w:name w:val="heading 2"/><w:basedOn w:val="berschrift1"/><w:pPr><w:outlineLvl w:val="1"/></w:pPr></w:style>
<w:style w:type="paragraph" w:styleId="Listenabsatz"><w:name w:val="List Paragraph"/></w:style>
</w:styles>"#
    );
    let core = r#"<?xml version="1.0" encoding="UTF-8"?>
<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Quarry &amp; DOCX</dc:title></cp:coreProperties>"#;
    let content_types = r#"<?xml version="1.0" encoding="UTF-8"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#;
    let rels = r#"<?xml version="1.0" encoding="UTF-8"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#;
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(compression);
    for (name, content) in [
        ("[Content_Types].xml", content_types),
        ("_rels/.rels", rels),
        ("docProps/core.xml", core),
        ("word/styles.xml", styles.as_str()),
        ("word/document.xml", document.as_str()),
    ] {
        zip.start_file(name, options).expect("start file");
        zip.write_all(content.as_bytes()).expect("write");
    }
    zip.finish().expect("finish").into_inner()
}

#[test]
fn docx_headings_lists_tables_and_title() {
    let body = [
        paragraph(Some("Titel"), false, &run("Handbook")),
        paragraph(Some("berschrift1"), false, &run("Getting Started")),
        paragraph(
            None,
            false,
            &format!(
                "{}{}<w:r><w:tab/><w:t>tabbed</w:t><w:br/><w:t>next line &amp; more</w:t></w:r>\
                 <w:del><w:r><w:delText>deleted</w:delText></w:r></w:del>\
                 <w:r><w:fldChar w:fldCharType=\"begin\"/><w:instrText>PAGE</w:instrText></w:r>",
                run("Quarry "),
                run("reads Word files."),
            ),
        ),
        paragraph(Some("berschrift2"), false, &run("Steps")),
        paragraph(Some("Listenabsatz"), true, &run("Install it")),
        paragraph(Some("Listenabsatz"), true, &run("Run it")),
        format!(
            "<w:tbl><w:tblPr/><w:tr>{}{}</w:tr><w:tr>{}{}</w:tr></w:tbl>",
            cell("Name"),
            cell("Value"),
            cell("port"),
            cell("8080")
        ),
        "<w:p><w:r><mc:AlternateContent><mc:Choice Requires=\"wps\"><w:t>box text</w:t></mc:Choice>\
         <mc:Fallback><w:t>box text</w:t></mc:Fallback></mc:AlternateContent></w:r></w:p>"
            .to_owned(),
    ]
    .concat();
    for compression in [
        zip::CompressionMethod::Deflated,
        zip::CompressionMethod::Stored,
    ] {
        let bytes = build_docx(&body, compression);
        assert_eq!(
            sniff(&bytes, Some("handbook.docx"), None).ok(),
            Some(MediaType::Docx)
        );
        let doc = extract(&bytes, MediaType::Docx, &Limits::default()).expect("extracts");
        assert_valid(&doc);
        assert_eq!(doc.title.as_deref(), Some("Quarry & DOCX"));
        assert_eq!(
            kinds(&doc.blocks),
            vec![
                (heading(1), "Handbook"),
                (heading(1), "Getting Started"),
                (
                    BlockKind::Paragraph,
                    "Quarry reads Word files.\ttabbed\nnext line & more"
                ),
                (heading(2), "Steps"),
                (BlockKind::ListItem, "Install it"),
                (BlockKind::ListItem, "Run it"),
                (BlockKind::Table, "Name | Value\nport | 8080"),
                (BlockKind::Paragraph, "box text"),
            ]
        );
    }
}

#[test]
fn docx_zip_bomb_is_stopped_by_the_expansion_limit() {
    // ~4 MB of XML whitespace deflates to a few KiB.
    let padding = " ".repeat(4 * 1024 * 1024);
    let body = format!("{}{padding}", paragraph(None, false, &run("tiny")));
    let bytes = build_docx(&body, zip::CompressionMethod::Deflated);
    assert!(bytes.len() < 64 * 1024, "{} bytes", bytes.len());
    let limits = Limits {
        max_bytes: 100 * 1024, // expansion limit: 1000 KiB
        ..Limits::default()
    };
    let err = extract(&bytes, MediaType::Docx, &limits).expect_err("bomb");
    assert_eq!(err.kind(), "too-large");
    assert_eq!(
        err.to_string(),
        "the uncompressed document is larger than the limit of 1000 KiB"
    );
    // With room to expand, the same file is fine.
    let doc = extract(&bytes, MediaType::Docx, &Limits::default()).expect("extracts");
    assert_eq!(doc.text, "tiny");
}

#[test]
fn docx_that_is_not_a_zip_is_corrupt_and_a_plain_zip_is_unsupported() {
    assert_eq!(
        err_kind(extract(
            b"PK\x03\x04 not really",
            MediaType::Docx,
            &Limits::default()
        )),
        "corrupt"
    );
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file("notes.txt", zip::write::SimpleFileOptions::default())
        .expect("start");
    zip.write_all(b"hello").expect("write");
    let bytes = zip.finish().expect("finish").into_inner();
    let err = sniff(&bytes, Some("notes.zip"), None).expect_err("not a docx");
    assert_eq!(err.kind(), "unsupported-format");
    assert_eq!(
        err_kind(extract(&bytes, MediaType::Docx, &Limits::default())),
        "corrupt"
    );
}
