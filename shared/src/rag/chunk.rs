//! Structure-aware chunking: an extracted document's blocks into retrieval chunks. Pure, no I/O.
//!
//! The input is the document's text and its [`Block`]s (headings, paragraphs, list items, code,
//! tables) with their offsets in that text; the output is [`Chunk`]s of about
//! [`ChunkConfig::target_tokens`], each an exact slice of the document, with the headings that
//! enclose it and its page.
//!
//! Rules, in order of precedence:
//! - Blocks are kept whole. A block is split only when it alone exceeds the target: at sentence
//!   boundaries (lines for code and tables), then at word boundaries, then (a "word" longer than the
//!   target, e.g. base64) by halving.
//! - A heading starts a new chunk when the current chunk is at least a third full; a smaller chunk
//!   takes the heading and the next section in, so short sections do not become tiny chunks with
//!   little to embed. A chunk never ends on a heading: trailing headings move to the next chunk.
//! - When a chunk is full within a section, the next one starts with the tail sentences of the
//!   previous one, up to [`ChunkConfig::overlap_tokens`], so a statement cut by the boundary is
//!   whole in one of them. There is no overlap across a heading: the previous section's last
//!   sentences would be noise in the next section's chunk.
//!
//! # Headings: in `heading_path`, and in the embedded text, not in `text`
//! [`Chunk::text`] is exactly `document[byte_range]` (and the `char_range` in characters), so a
//! citation can highlight it and offsets need no correction. The enclosing headings are kept in
//! [`Chunk::heading_path`] and prefixed only by [`Chunk::embedding_text`]: a paragraph of a section
//! "Recovering Disk Space" often never names its subject, and the prefix is what lets a query about
//! disk space find it. [`Chunk::token_count`] and the target count the prefix, since that is what the
//! embedder sees.

use std::ops::Range;

/// Counts tokens the way the embedder will: production passes the embedder (it implements this
/// trait), unit tests a whitespace counter. Any `Fn(&str) -> usize` is a counter.
pub trait TokenCount {
    /// Tokens in `text`, without special tokens such as `[CLS]`.
    fn count_tokens(&self, text: &str) -> usize;
}

impl<F: Fn(&str) -> usize> TokenCount for F {
    fn count_tokens(&self, text: &str) -> usize {
        self(text)
    }
}

/// What a block is, as the extractor saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// A heading; level 1 is the outermost.
    Heading {
        /// 1 for a title or `#`, 2 for `##`, and so on.
        level: u8,
    },
    /// Running text.
    Paragraph,
    /// One item of a list.
    ListItem,
    /// Preformatted code; split at lines, not sentences.
    Code,
    /// A table as text; split at lines (rows), not sentences.
    Table,
}

/// One block of an extracted document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// What the block is.
    pub kind: BlockKind,
    /// The block's text, exactly as it appears in the document text at `byte_start`.
    pub text: String,
    /// 1-based page, for formats that have pages.
    pub page: Option<u32>,
    /// Offset of the block in the document text, in characters (Unicode scalar values).
    pub char_start: usize,
    /// Offset of the block in the document text, in bytes.
    pub byte_start: usize,
}

/// One retrieval chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Exactly `document[byte_range]`: the chunk's blocks (and any overlap) with the document's own
    /// separators between them; no heading prefix (see [`Chunk::embedding_text`]).
    pub text: String,
    /// Page where the chunk's text starts.
    pub page: Option<u32>,
    /// The headings enclosing the chunk, outermost first, e.g. `["Routine Vacuuming",
    /// "Recovering Disk Space"]`.
    pub heading_path: Vec<String>,
    /// Where `text` is in the document, in characters.
    pub char_range: Range<usize>,
    /// Where `text` is in the document, in bytes.
    pub byte_range: Range<usize>,
    /// Tokens of [`Chunk::embedding_text`], by the counter passed to [`chunk_document`].
    pub token_count: usize,
}

impl Chunk {
    /// The text to embed: the heading path (`A > B`), a blank line, then [`Chunk::text`]; just the
    /// text when there is no enclosing heading.
    pub fn embedding_text(&self) -> String {
        embedding_text(&self.heading_path, &self.text)
    }
}

fn heading_prefix(path: &[String]) -> String {
    path.join(" > ")
}

fn embedding_text(path: &[String], text: &str) -> String {
    if path.is_empty() {
        text.to_owned()
    } else {
        format!("{}\n\n{text}", heading_prefix(path))
    }
}

/// Chunk sizes, in the counter's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkConfig {
    /// Aim for chunks of about this many tokens (default 750). Note that all-MiniLM-L6-v2 reads
    /// only the first 256 word pieces of a text (`embed::MAX_SEQ_LEN`), so past that a larger
    /// target adds context for the reader (the LLM) but not for the vector search.
    pub target_tokens: usize,
    /// Carry up to this many tokens of the previous chunk's tail sentences (default 50).
    pub overlap_tokens: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        Self {
            target_tokens: 750,
            overlap_tokens: 50,
        }
    }
}

/// Why the blocks do not describe the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// A block's offsets or text disagree with the document text (an extractor bug).
    #[error("block {index} does not match the document text: {reason}")]
    Block {
        /// Index of the block in the input.
        index: usize,
        /// What disagrees.
        reason: &'static str,
    },
    /// The configuration cannot produce chunks.
    #[error("target_tokens must be at least 1")]
    ZeroTarget,
}

/// Splits `document` (whose `blocks` are listed in document order) into chunks; see the
/// [module documentation](self) for the rules. Blocks of only whitespace are skipped; an empty
/// document gives no chunks.
///
/// # Errors
/// [`ChunkError::Block`] when a block is out of order, overlaps the previous one, or its text or
/// either offset does not match `document`; [`ChunkError::ZeroTarget`] for a zero target.
pub fn chunk_document(
    document: &str,
    blocks: &[Block],
    counter: &dyn TokenCount,
    config: &ChunkConfig,
) -> Result<Vec<Chunk>, ChunkError> {
    if config.target_tokens == 0 {
        return Err(ChunkError::ZeroTarget);
    }
    validate(document, blocks)?;
    let paths = heading_paths(blocks);
    let units = units(document, blocks, counter, config.target_tokens);
    let mut packer = Packer {
        document,
        blocks,
        paths: &paths,
        counter,
        config,
        chunks: Vec::new(),
        current: Vec::new(),
        overlap: None,
        prefix_tokens: 0,
    };
    for unit in units {
        packer.push(unit);
    }
    packer.flush(FlushReason::End);
    Ok(packer.chunks)
}

/// Checks every block against the document in one pass: order, text at `byte_start`, and
/// `char_start` (counted incrementally, so the whole check is linear in the document).
fn validate(document: &str, blocks: &[Block]) -> Result<(), ChunkError> {
    let mut byte_cursor = 0;
    let mut char_cursor = 0;
    for (index, block) in blocks.iter().enumerate() {
        let err = |reason| Err(ChunkError::Block { index, reason });
        if block.byte_start < byte_cursor {
            return err("starts before the end of the previous block");
        }
        let Some(gap) = document.get(byte_cursor..block.byte_start) else {
            return err("byte_start is past the end or not on a character boundary");
        };
        char_cursor += gap.chars().count();
        if char_cursor != block.char_start {
            return err("char_start does not match byte_start");
        }
        let end = block.byte_start + block.text.len();
        if document.get(block.byte_start..end) != Some(block.text.as_str()) {
            return err("the text at byte_start differs from the block's text");
        }
        char_cursor += block.text.chars().count();
        byte_cursor = end;
    }
    Ok(())
}

/// The enclosing headings of every block (a heading's own path ends with itself).
fn heading_paths(blocks: &[Block]) -> Vec<Vec<String>> {
    let mut stack: Vec<(u8, String)> = Vec::new();
    blocks
        .iter()
        .map(|block| {
            if let BlockKind::Heading { level } = block.kind {
                let title = block.text.trim();
                if !title.is_empty() {
                    while stack.last().is_some_and(|(l, _)| *l >= level) {
                        stack.pop();
                    }
                    stack.push((level, title.to_owned()));
                }
            }
            stack.iter().map(|(_, t)| t.clone()).collect()
        })
        .collect()
}

/// The smallest piece the packer places: a whole block, or a piece of a block too big to fit.
#[derive(Debug, Clone)]
struct Unit {
    /// Byte range in the document, trimmed of surrounding whitespace.
    range: Range<usize>,
    block: usize,
    tokens: usize,
    heading: bool,
}

fn units(document: &str, blocks: &[Block], counter: &dyn TokenCount, target: usize) -> Vec<Unit> {
    let mut out = Vec::new();
    for (index, block) in blocks.iter().enumerate() {
        let Some(range) = trim(
            document,
            block.byte_start..block.byte_start + block.text.len(),
        ) else {
            continue;
        };
        let heading = matches!(block.kind, BlockKind::Heading { .. });
        let tokens = counter.count_tokens(&document[range.clone()]);
        if tokens <= target {
            out.push(Unit {
                range,
                block: index,
                tokens,
                heading,
            });
            continue;
        }
        let by_lines = matches!(block.kind, BlockKind::Code | BlockKind::Table);
        for (range, tokens) in split_to_fit(document, range, by_lines, counter, target) {
            out.push(Unit {
                range,
                block: index,
                tokens,
                heading,
            });
        }
    }
    out
}

/// `range` without leading and trailing whitespace, or `None` if nothing is left.
fn trim(document: &str, range: Range<usize>) -> Option<Range<usize>> {
    let text = &document[range.clone()];
    let start = range.start + (text.len() - text.trim_start().len());
    let end = range.end - (text.len() - text.trim_end().len());
    (start < end).then_some(start..end)
}

/// Pieces of an oversized block, each within `target` tokens, with their token counts: sentences
/// packed greedily, then words, then halves of a word.
fn split_to_fit(
    document: &str,
    range: Range<usize>,
    by_lines: bool,
    counter: &dyn TokenCount,
    target: usize,
) -> Vec<(Range<usize>, usize)> {
    let mut pieces = Vec::new();
    for sentence in sentences(document, range, by_lines) {
        let tokens = counter.count_tokens(&document[sentence.clone()]);
        if tokens <= target {
            pieces.push((sentence, tokens));
        } else {
            for word in words(document, sentence) {
                let tokens = counter.count_tokens(&document[word.clone()]);
                if tokens <= target {
                    pieces.push((word, tokens));
                } else {
                    halve(document, word, counter, target, &mut pieces);
                }
            }
        }
    }
    pack_pieces(document, pieces, counter, target)
}

/// Joins consecutive pieces while the join stays within `target` (pieces are contiguous in the
/// document, so a join is the range from the first start to the last end).
fn pack_pieces(
    document: &str,
    pieces: Vec<(Range<usize>, usize)>,
    counter: &dyn TokenCount,
    target: usize,
) -> Vec<(Range<usize>, usize)> {
    let mut packed: Vec<(Range<usize>, usize)> = Vec::new();
    for (range, tokens) in pieces {
        if let Some((last, last_tokens)) = packed.last_mut() {
            if *last_tokens + tokens <= target {
                let joined = last.start..range.end;
                // The sum is an estimate (a join can tokenize differently); recount to stay exact.
                let joined_tokens = counter.count_tokens(&document[joined.clone()]);
                if joined_tokens <= target {
                    *last = joined;
                    *last_tokens = joined_tokens;
                    continue;
                }
            }
        }
        packed.push((range, tokens));
    }
    packed
}

/// Splits a run of text with no whitespace in half (at a character boundary) until each half fits.
fn halve(
    document: &str,
    range: Range<usize>,
    counter: &dyn TokenCount,
    target: usize,
    out: &mut Vec<(Range<usize>, usize)>,
) {
    let tokens = counter.count_tokens(&document[range.clone()]);
    let text = &document[range.clone()];
    let chars = text.chars().count();
    if tokens <= target || chars <= 1 {
        out.push((range, tokens));
        return;
    }
    let mid = text
        .char_indices()
        .nth(chars / 2)
        .map_or(text.len(), |(i, _)| i);
    halve(
        document,
        range.start..range.start + mid,
        counter,
        target,
        out,
    );
    halve(document, range.start + mid..range.end, counter, target, out);
}

/// Sentence (or line) ranges within `range`, trimmed, in order.
fn sentences(document: &str, range: Range<usize>, by_lines: bool) -> Vec<Range<usize>> {
    let text = &document[range.clone()];
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        let boundary = if by_lines {
            c == '\n'
        } else {
            c == '\n'
                // CJK full stops need no space after them.
                || matches!(c, '。' | '！' | '？')
                || (matches!(c, '.' | '!' | '?') && next.is_none_or(char::is_whitespace))
        };
        if boundary {
            let end = i + c.len_utf8();
            out.extend(trim(document, range.start + start..range.start + end));
            start = end;
        }
    }
    out.extend(trim(document, range.start + start..range.end));
    out
}

/// Whitespace-separated word ranges within `range`.
fn words(document: &str, range: Range<usize>) -> Vec<Range<usize>> {
    let text = &document[range.clone()];
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push(range.start + s..range.start + i);
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(range.start + s..range.end);
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FlushReason {
    /// A heading opens a new section: no overlap.
    Heading,
    /// The next unit does not fit: overlap, and trailing headings move on.
    Full,
    /// The end of the document.
    End,
}

/// Tail of the previous chunk that the next one starts with.
struct Overlap {
    start: usize,
    block: usize,
    tokens: usize,
}

struct Packer<'a> {
    document: &'a str,
    blocks: &'a [Block],
    paths: &'a [Vec<String>],
    counter: &'a dyn TokenCount,
    config: &'a ChunkConfig,
    chunks: Vec<Chunk>,
    current: Vec<Unit>,
    overlap: Option<Overlap>,
    /// Tokens of the heading prefix of the current chunk (its first unit's path).
    prefix_tokens: usize,
}

impl Packer<'_> {
    fn tokens(&self) -> usize {
        self.prefix_tokens
            + self.overlap.as_ref().map_or(0, |o| o.tokens)
            + self.current.iter().map(|u| u.tokens).sum::<usize>()
    }

    fn push(&mut self, unit: Unit) {
        // A chunk of only headings is never emitted: its headings wait for their text, even if
        // that overshoots the target by the headings' few tokens.
        if self.current.iter().any(|u| !u.heading) {
            let target = self.config.target_tokens;
            let tokens = self.tokens();
            let full = tokens + unit.tokens > target;
            if unit.heading && (full || tokens * 3 >= target) {
                // No overlap before a heading, whichever rule ended the chunk.
                self.flush(FlushReason::Heading);
            } else if full {
                self.flush(FlushReason::Full);
            }
        }
        if self.current.is_empty() {
            let path = &self.paths[unit.block];
            self.prefix_tokens = if path.is_empty() {
                0
            } else {
                self.counter.count_tokens(&heading_prefix(path))
            };
        }
        self.current.push(unit);
    }

    fn flush(&mut self, reason: FlushReason) {
        let mut carried = Vec::new();
        if reason == FlushReason::Full {
            // Never end a chunk on a heading: it belongs with the text after it.
            let last_text = self.current.iter().rposition(|u| !u.heading);
            if let Some(last_text) = last_text {
                carried = self.current.split_off(last_text + 1);
            }
        }
        let units = std::mem::take(&mut self.current);
        let overlap = self.overlap.take();
        let (Some(first), Some(last)) = (units.first(), units.last()) else {
            return;
        };
        let (start, start_block) = overlap
            .as_ref()
            .map_or((first.range.start, first.block), |o| (o.start, o.block));
        let byte_range = start..last.range.end;
        let text = self.document[byte_range.clone()].to_owned();
        let heading_path = self.paths[first.block].clone();
        let token_count = self
            .counter
            .count_tokens(&embedding_text(&heading_path, &text));
        let chunk = Chunk {
            char_range: self.char_offset(start_block, start)
                ..self.char_offset(last.block, last.range.end),
            byte_range,
            page: self.blocks[start_block].page,
            heading_path,
            text,
            token_count,
        };
        self.chunks.push(chunk);

        if reason == FlushReason::Full && carried.is_empty() {
            self.overlap = self.tail(&units);
        }
        for unit in carried {
            self.push(unit);
        }
    }

    /// Character offset of byte `pos`, which lies in block `block` (so only that block's text is
    /// counted, not the document from the start).
    fn char_offset(&self, block: usize, pos: usize) -> usize {
        let b = &self.blocks[block];
        b.char_start + self.document[b.byte_start..pos].chars().count()
    }

    /// The last sentences of `units` that fit in the overlap budget (or, if the last sentence alone
    /// is too long, its last words), never the whole chunk.
    fn tail(&self, units: &[Unit]) -> Option<Overlap> {
        let budget = self.config.overlap_tokens;
        if budget == 0 {
            return None;
        }
        let first_start = units.first()?.range.start;
        let mut chosen: Option<Overlap> = None;
        let mut tokens = 0;
        for unit in units.iter().rev() {
            let by_lines = matches!(
                self.blocks[unit.block].kind,
                BlockKind::Code | BlockKind::Table
            );
            for sentence in sentences(self.document, unit.range.clone(), by_lines)
                .into_iter()
                .rev()
            {
                let t = self.counter.count_tokens(&self.document[sentence.clone()]);
                if sentence.start <= first_start || tokens + t > budget {
                    if chosen.is_none() {
                        return self.tail_words(unit.block, sentence, first_start);
                    }
                    return chosen;
                }
                tokens += t;
                chosen = Some(Overlap {
                    start: sentence.start,
                    block: unit.block,
                    tokens,
                });
            }
        }
        chosen
    }

    fn tail_words(
        &self,
        block: usize,
        sentence: Range<usize>,
        first_start: usize,
    ) -> Option<Overlap> {
        let mut chosen = None;
        let mut tokens = 0;
        for word in words(self.document, sentence).into_iter().rev() {
            let t = self.counter.count_tokens(&self.document[word.clone()]);
            if word.start <= first_start || tokens + t > self.config.overlap_tokens {
                break;
            }
            tokens += t;
            chosen = Some(Overlap {
                start: word.start,
                block,
                tokens,
            });
        }
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(text: &str) -> usize {
        text.split_whitespace().count()
    }

    /// Builds a document and its blocks, separating blocks with a blank line, so offsets are real.
    struct Doc {
        text: String,
        blocks: Vec<Block>,
    }

    impl Doc {
        fn new() -> Self {
            Self {
                text: String::new(),
                blocks: Vec::new(),
            }
        }

        fn add(mut self, kind: BlockKind, text: &str, page: Option<u32>) -> Self {
            if !self.text.is_empty() {
                self.text.push_str("\n\n");
            }
            self.blocks.push(Block {
                kind,
                text: text.to_owned(),
                page,
                char_start: self.text.chars().count(),
                byte_start: self.text.len(),
            });
            self.text.push_str(text);
            self
        }

        fn h(self, level: u8, text: &str) -> Self {
            self.add(BlockKind::Heading { level }, text, None)
        }

        fn p(self, text: &str) -> Self {
            self.add(BlockKind::Paragraph, text, None)
        }

        fn chunk(&self, target: usize, overlap: usize) -> Vec<Chunk> {
            let config = ChunkConfig {
                target_tokens: target,
                overlap_tokens: overlap,
            };
            let chunks = chunk_document(&self.text, &self.blocks, &ws, &config).expect("valid");
            for c in &chunks {
                assert_exact(&self.text, c);
            }
            chunks
        }
    }

    /// The offsets invariant: both ranges select exactly the chunk's text.
    fn assert_exact(document: &str, c: &Chunk) {
        assert_eq!(&document[c.byte_range.clone()], c.text);
        let by_chars: String = document
            .chars()
            .skip(c.char_range.start)
            .take(c.char_range.len())
            .collect();
        assert_eq!(by_chars, c.text);
        assert_eq!(c.token_count, ws(&c.embedding_text()));
    }

    fn sentence(i: usize, words: usize) -> String {
        let mut s = format!("S{i}");
        for w in 1..words {
            s.push_str(&format!(" w{w}"));
        }
        s.push('.');
        s
    }

    #[test]
    fn empty_document_gives_no_chunks() {
        assert!(Doc::new().chunk(10, 2).is_empty());
        let blank = Doc::new().p("   ").p("\n");
        assert!(blank.chunk(10, 2).is_empty());
    }

    #[test]
    fn small_blocks_share_a_chunk_and_are_not_split() {
        let doc = Doc::new()
            .p("one two three.")
            .p("four five.")
            .p("six seven eight nine.");
        let chunks = doc.chunk(100, 10);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, doc.text);
        assert!(chunks[0].heading_path.is_empty());
        assert_eq!(chunks[0].token_count, 9);
    }

    #[test]
    fn full_chunk_moves_on_at_a_block_boundary_with_sentence_overlap() {
        let a = format!("{} {}", sentence(1, 6), sentence(2, 4));
        let b = sentence(3, 8);
        let doc = Doc::new().p(&a).p(&b);
        let chunks = doc.chunk(12, 5);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].text, a);
        // The second chunk starts with the last sentence of the first (4 words ≤ 5), then block b.
        assert!(
            chunks[1].text.starts_with(&sentence(2, 4)),
            "{:?}",
            chunks[1].text
        );
        assert!(chunks[1].text.ends_with(&b));
    }

    #[test]
    fn overlap_falls_back_to_words_and_never_takes_a_whole_chunk() {
        let doc = Doc::new().p(&sentence(1, 10)).p(&sentence(2, 10));
        let chunks = doc.chunk(10, 3);
        assert_eq!(chunks.len(), 2);
        // The last sentence is 10 words, over the 3-token budget: its last 3 words carry over.
        assert!(
            chunks[1].text.starts_with("w7 w8 w9."),
            "{:?}",
            chunks[1].text
        );

        let no_overlap = doc.chunk(10, 0);
        assert_eq!(no_overlap[1].text, sentence(2, 10));
    }

    #[test]
    fn one_huge_paragraph_splits_at_sentences_then_words() {
        let para: Vec<String> = (0..30).map(|i| sentence(i, 5)).collect();
        let para = para.join(" ");
        let doc = Doc::new().h(1, "Big").p(&para);
        let chunks = doc.chunk(23, 0);
        assert!(chunks.len() > 5);
        for c in &chunks {
            assert!(c.token_count <= 23 + 1, "{} tokens", c.token_count);
            assert!(c.text.ends_with('.'), "not at a sentence end: {:?}", c.text);
            assert_eq!(c.heading_path, ["Big"]);
        }
        // All text is covered, in order, without gaps (no overlap here).
        let covered: Vec<&str> = chunks
            .iter()
            .flat_map(|c| c.text.split_whitespace())
            .collect();
        let all: Vec<&str> = doc.text.split_whitespace().collect();
        assert_eq!(covered, all);

        // A single 100-word sentence has no sentence boundary: it splits at words.
        let long = sentence(0, 100);
        let chunks = Doc::new().p(&long).chunk(30, 0);
        assert_eq!(chunks.len(), 4);
        assert!(chunks.iter().all(|c| c.token_count <= 30));

        // A 'word' over the target (counted per character here) splits by halving.
        let per_char = |t: &str| t.chars().filter(|c| !c.is_whitespace()).count();
        let blob = "x".repeat(100);
        let doc = Doc::new().p(&blob);
        let chunks = chunk_document(
            &doc.text,
            &doc.blocks,
            &per_char,
            &ChunkConfig {
                target_tokens: 30,
                overlap_tokens: 0,
            },
        )
        .expect("valid");
        assert!(chunks.iter().all(|c| c.token_count <= 30));
        assert_eq!(chunks.iter().map(|c| c.text.len()).sum::<usize>(), 100);
    }

    #[test]
    fn code_and_tables_split_at_lines() {
        let code: Vec<String> = (0..20)
            .map(|i| format!("let x{i} = {i}; // step {i}."))
            .collect();
        let code = code.join("\n");
        let doc = Doc::new().add(BlockKind::Code, &code, None);
        let chunks = doc.chunk(20, 0);
        assert!(chunks.len() > 1);
        for c in &chunks {
            assert!(c.text.starts_with("let "), "{:?}", c.text);
            assert!(c.text.ends_with('.'));
        }
    }

    #[test]
    fn heading_starts_a_chunk_only_when_the_chunk_is_a_third_full() {
        // 'tiny' section (3 tokens < 30/3) joins the next section's chunk.
        let doc = Doc::new()
            .h(1, "Intro")
            .p("short text here")
            .h(1, "Second")
            .p(&sentence(1, 8))
            .h(1, "Third")
            .p(&sentence(2, 8));
        let chunks = doc.chunk(30, 5);
        assert_eq!(chunks.len(), 2, "{chunks:#?}");
        assert_eq!(chunks[0].heading_path, ["Intro"]);
        assert!(chunks[0].text.contains("Second"));
        // Chunk 0 has 1 (prefix) + 1+3+1+8 = 14 tokens ≥ 10: "Third" opens a new chunk, with no overlap.
        assert_eq!(chunks[1].heading_path, ["Third"]);
        assert!(chunks[1].text.starts_with("Third"));
    }

    #[test]
    fn a_chunk_never_ends_on_a_heading() {
        let doc = Doc::new()
            .p(&sentence(1, 3))
            .h(2, "Next")
            .p(&sentence(2, 9));
        let chunks = doc.chunk(10, 2);
        assert_eq!(chunks.len(), 2, "{chunks:#?}");
        assert_eq!(chunks[0].text, sentence(1, 3));
        assert!(chunks[1].text.starts_with("Next"));
        assert_eq!(chunks[1].heading_path, ["Next"]);
    }

    #[test]
    fn deep_heading_nesting_builds_and_pops_the_path() {
        let doc = Doc::new()
            .h(1, "Routine Vacuuming")
            .p(&sentence(0, 6))
            .h(2, "Recovering Disk Space")
            .p(&sentence(1, 6))
            .h(3, "VACUUM FULL")
            .p(&sentence(2, 6))
            .h(4, "Locks")
            .p(&sentence(3, 6))
            .h(6, "Skipped level")
            .p(&sentence(4, 6))
            .h(2, "Updating Statistics")
            .p(&sentence(5, 6))
            .h(1, "Reindexing")
            .p(&sentence(6, 6));
        let chunks = doc.chunk(8, 0);
        let paths: Vec<Vec<String>> = chunks.iter().map(|c| c.heading_path.clone()).collect();
        assert_eq!(
            paths,
            vec![
                vec!["Routine Vacuuming"],
                vec!["Routine Vacuuming", "Recovering Disk Space"],
                vec!["Routine Vacuuming", "Recovering Disk Space", "VACUUM FULL"],
                vec![
                    "Routine Vacuuming",
                    "Recovering Disk Space",
                    "VACUUM FULL",
                    "Locks"
                ],
                vec![
                    "Routine Vacuuming",
                    "Recovering Disk Space",
                    "VACUUM FULL",
                    "Locks",
                    "Skipped level"
                ],
                vec!["Routine Vacuuming", "Updating Statistics"],
                vec!["Reindexing"],
            ]
        );
        assert_eq!(
            chunks[1].embedding_text(),
            format!(
                "Routine Vacuuming > Recovering Disk Space\n\nRecovering Disk Space\n\n{}",
                sentence(1, 6)
            )
        );
    }

    #[test]
    fn unicode_offsets_are_exact_in_bytes_and_chars() {
        let doc = Doc::new()
            .h(1, "Café — 東京")
            .p("Ünïcödé naïve text. Ещё одно предложение! 日本語の文。次の文。")
            .p("🚀 emoji 🚀 everywhere 🚀. Last sentence here.")
            .add(BlockKind::ListItem, "• ítem ñ", Some(3));
        for target in [3, 4, 5, 8] {
            let chunks = doc.chunk(target, 2);
            assert!(chunks.len() > 1);
            // Byte and char offsets differ once a multi-byte character precedes the chunk.
            let last = chunks.last().expect("non-empty");
            assert_ne!(last.byte_range.start, last.char_range.start);
        }
        let chunks = doc.chunk(100, 0);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].char_range, 0..doc.text.chars().count());
        assert_eq!(chunks[0].byte_range, 0..doc.text.len());
        assert!(chunks[0].char_range.end < chunks[0].byte_range.end);
    }

    #[test]
    fn page_is_where_the_chunk_text_starts() {
        let doc = Doc::new()
            .add(BlockKind::Paragraph, &sentence(1, 6), Some(1))
            .add(BlockKind::Paragraph, &sentence(2, 6), Some(2))
            .add(BlockKind::Paragraph, &sentence(3, 6), Some(3));
        let chunks = doc.chunk(7, 0);
        let pages: Vec<Option<u32>> = chunks.iter().map(|c| c.page).collect();
        assert_eq!(pages, [Some(1), Some(2), Some(3)]);
    }

    #[test]
    fn blocks_that_disagree_with_the_document_are_rejected() {
        let doc = Doc::new().p("héllo world").p("second");
        let config = ChunkConfig::default();
        let check = |blocks: &[Block]| chunk_document(&doc.text, blocks, &ws, &config);
        assert!(check(&doc.blocks).is_ok());

        let mut wrong_char = doc.blocks.clone();
        wrong_char[1].char_start += 1;
        assert_eq!(
            check(&wrong_char),
            Err(ChunkError::Block {
                index: 1,
                reason: "char_start does not match byte_start"
            })
        );
        let mut wrong_text = doc.blocks.clone();
        wrong_text[0].text = "hello world".into();
        assert!(matches!(
            check(&wrong_text),
            Err(ChunkError::Block { index: 0, .. })
        ));
        let mut mid_char = doc.blocks.clone();
        mid_char[0].byte_start = 2; // inside 'é'
        assert!(matches!(
            check(&mid_char),
            Err(ChunkError::Block { index: 0, .. })
        ));
        let reversed: Vec<Block> = doc.blocks.iter().rev().cloned().collect();
        assert!(matches!(
            check(&reversed),
            Err(ChunkError::Block { index: 1, .. })
        ));
        assert_eq!(
            chunk_document(
                "",
                &[],
                &ws,
                &ChunkConfig {
                    target_tokens: 0,
                    overlap_tokens: 0
                }
            ),
            Err(ChunkError::ZeroTarget)
        );
    }

    #[test]
    fn default_config_keeps_a_realistic_document_near_the_target() {
        let mut doc = Doc::new();
        for s in 0..12 {
            doc = doc.h(1, &format!("Section {s}"));
            for p in 0..8 {
                let para: Vec<String> = (0..6).map(|i| sentence(p * 10 + i, 12)).collect();
                doc = doc.p(&para.join(" "));
            }
        }
        let chunks =
            chunk_document(&doc.text, &doc.blocks, &ws, &ChunkConfig::default()).expect("valid");
        for c in &chunks {
            assert_exact(&doc.text, c);
            assert!(c.token_count <= 750 + 50, "{} tokens", c.token_count);
        }
        // Each section is ~580 tokens (< 750), and a full third: one chunk per section.
        assert_eq!(chunks.len(), 12);
    }
}
