//! Sentence embeddings with all-MiniLM-L6-v2, run in-process on the CPU with candle.
//!
//! [`Embedder`] reproduces what sentence-transformers does for this model (its `modules.json`:
//! Transformer, then mean Pooling, then Normalize): BERT word pieces truncated to 256, a forward pass
//! of the 6-layer BERT, the mean of the last hidden states over the non-padding tokens, and L2
//! normalisation. Vectors of different texts can therefore be compared with a dot product, and they
//! match the Python model's to about 1e-4 (see the fixture test).
//!
//! # Threads and async
//! [`Embedder::embed`] is CPU-bound and blocks for milliseconds to seconds: candle's matrix
//! multiplications run on every core (its gemm kernels use the global rayon pool). Callers on an
//! async runtime must run it inside `tokio::task::spawn_blocking` (bounded by a semaphore, so a burst
//! of uploads cannot queue unbounded work), never on a runtime worker. The embedder is `Send + Sync`:
//! load it once and share it in an `Arc`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Encoding, Tokenizer, TruncationParams};

/// sentence-transformers' `max_seq_length` for all-MiniLM-L6-v2 (its `sentence_bert_config.json`,
/// which the model folder does not ship, so it is written here). Word pieces past it, counting
/// `[CLS]` and `[SEP]`, are dropped, as in Python. `tokenizer.json` says 128, but that is the
/// tokenizer's own default, which sentence-transformers overrides.
pub const MAX_SEQ_LEN: usize = 256;

/// Texts per forward pass. A batch is padded to its longest text. 8 keeps the largest tensor (the
/// attention scores, 8 × 12 heads × 256 × 256 floats = 24 MiB) under glibc's largest mmap
/// threshold, so with [`keep_freed_memory`] it is reused from the heap instead of being mapped
/// and page-faulted afresh for every layer; measured on the 2-core machine: 32 per batch 12.5
/// chunks/s, 8 per batch 13.7, 8 with the heap kept 18.2 (docs/benchmarks.md).
const BATCH_SIZE: usize = 8;

/// Why the embedder could not be loaded or could not embed.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A model file is missing or unreadable, or does not fit all-MiniLM-L6-v2.
    #[error("cannot load the embedding model from {}", path.display())]
    Load {
        /// The file or folder at fault.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The tokenizer rejected an input.
    #[error("cannot tokenize the input")]
    Tokenize(#[source] tokenizers::Error),
    /// The forward pass or the pooling failed (a bug, or out of memory).
    #[error("the embedding model failed")]
    Model(#[from] candle_core::Error),
}

/// all-MiniLM-L6-v2, loaded once; see the [module documentation](self).
pub struct Embedder {
    model: BertModel,
    /// Truncates to [`MAX_SEQ_LEN`]; no padding (batches are padded here, see [`Embedder::embed`]).
    tokenizer: Tokenizer,
    /// The same vocabulary without truncation, so [`Embedder::count_tokens`] counts whole texts.
    counter: Tokenizer,
    pad_id: u32,
    dimensions: usize,
    device: Device,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("dimensions", &self.dimensions)
            .field("max_seq_len", &MAX_SEQ_LEN)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir` (the
    /// `all-minilm-l6-v2` folder that `scripts/assets.sh` writes).
    ///
    /// # Errors
    /// [`EmbedError::Load`] naming the file when one is missing, unreadable or not of this model.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        keep_freed_memory();
        let device = Device::Cpu;

        let config_path = dir.join("config.json");
        let config: Config = std::fs::read(&config_path)
            .map_err(|e| load_error(&config_path, e))
            .and_then(|bytes| {
                serde_json::from_slice(&bytes).map_err(|e| load_error(&config_path, e))
            })?;

        let tokenizer_path = dir.join("tokenizer.json");
        let mut counter =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| load_error(&tokenizer_path, e))?;
        // tokenizer.json pads every input to 128 and truncates at 128; both are replaced: padding
        // is done per batch (to the batch's longest text), truncation at MAX_SEQ_LEN.
        counter.with_padding(None);
        let mut tokenizer = counter.clone();
        counter
            .with_truncation(None)
            .map_err(|e| load_error(&tokenizer_path, e))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_SEQ_LEN,
                ..TruncationParams::default()
            }))
            .map_err(|e| load_error(&tokenizer_path, e))?;
        let pad_id = tokenizer
            .token_to_id("[PAD]")
            .ok_or_else(|| load_error(&tokenizer_path, "the vocabulary has no [PAD] token"))?;

        // Read into memory rather than mmap: mmap is `unsafe` (the file could change under us) and
        // the 90 MB are copied into tensors anyway; the buffer is dropped after loading.
        let weights_path = dir.join("model.safetensors");
        let weights = std::fs::read(&weights_path).map_err(|e| load_error(&weights_path, e))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|e| load_error(&weights_path, e))?;
        let model = BertModel::load(vb, &config).map_err(|e| load_error(&weights_path, e))?;

        Ok(Self {
            model,
            tokenizer,
            counter,
            pad_id,
            dimensions: config.hidden_size,
            device,
        })
    }

    /// Length of every vector [`Embedder::embed`] returns (384).
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// Word pieces in `text`, without `[CLS]`/`[SEP]` and without truncation: what the chunker
    /// budgets with (see `rag::chunk::TokenCount`). Text the tokenizer cannot handle counts as one
    /// token per whitespace-separated word, so chunking never fails on it.
    pub fn count_tokens(&self, text: &str) -> usize {
        match self.counter.encode(text, false) {
            Ok(encoding) => encoding.len(),
            Err(_) => text.split_whitespace().count(),
        }
    }

    /// The underlying tokenizer (truncating at [`MAX_SEQ_LEN`], no padding).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Embeds `texts`: one L2-normalised vector of [`Embedder::dimensions`] floats per text, in
    /// order. Texts longer than [`MAX_SEQ_LEN`] word pieces are truncated. Blocks; see the
    /// [module documentation](self) for async callers.
    ///
    /// Texts are sorted by length and run in batches of 8, so a batch pads to similar lengths;
    /// padding does not change the vectors (it is masked out of attention and pooling).
    ///
    /// # Errors
    /// [`EmbedError::Tokenize`] if the tokenizer rejects a text, [`EmbedError::Model`] if the
    /// forward pass fails.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(EmbedError::Tokenize)?;

        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].len());

        let mut out = vec![Vec::new(); texts.len()];
        for batch in order.chunks(BATCH_SIZE) {
            let batch_encodings: Vec<&Encoding> = batch.iter().map(|&i| &encodings[i]).collect();
            let vectors = self.embed_batch(&batch_encodings)?;
            for (&i, vector) in batch.iter().zip(vectors) {
                out[i] = vector;
            }
        }
        Ok(out)
    }

    /// One forward pass over encodings padded to the longest of them.
    fn embed_batch(&self, encodings: &[&Encoding]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let rows = encodings.len();
        // Every encoding holds at least [CLS] and [SEP], so `len` ≥ 2 and no row's mask is all zero.
        let len = encodings.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(rows * len);
        let mut type_ids = Vec::with_capacity(rows * len);
        let mut mask = Vec::with_capacity(rows * len);
        for encoding in encodings {
            let pad = len - encoding.len();
            ids.extend_from_slice(encoding.get_ids());
            ids.extend(std::iter::repeat_n(self.pad_id, pad));
            type_ids.extend_from_slice(encoding.get_type_ids());
            type_ids.extend(std::iter::repeat_n(0u32, pad));
            mask.extend_from_slice(encoding.get_attention_mask());
            mask.extend(std::iter::repeat_n(0u32, pad));
        }
        let ids = Tensor::from_vec(ids, (rows, len), &self.device)?;
        let type_ids = Tensor::from_vec(type_ids, (rows, len), &self.device)?;
        let mask = Tensor::from_vec(mask, (rows, len), &self.device)?;

        // (rows, len, hidden); padded positions get no attention, but still have hidden states,
        // which the mask removes from the mean below.
        let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?;
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?;
        let mean = summed.broadcast_div(&counts)?;
        // sentence-transformers' Normalize divides by max(norm, 1e-12).
        let norms = mean
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        Ok(mean.broadcast_div(&norms)?.to_vec2::<f32>()?)
    }
}

/// The process's one embedder for the model folder `dir` (its `all-minilm-l6-v2` folder is
/// loaded on first use): `ingest` and `retrieve` share it under `quarry dev`, and a second request
/// waits for the first load instead of loading the model again. Blocks while loading (about half a
/// second); call it from `spawn_blocking`.
///
/// # Errors
/// As [`Embedder::load`]; a failed load is retried by the next call.
pub fn shared(models_dir: &Path) -> Result<Arc<Embedder>, EmbedError> {
    static SHARED: Mutex<Option<(PathBuf, Arc<Embedder>)>> = Mutex::new(None);
    // A panic while loading poisons the lock but leaves `None` in it, which is safe to reuse.
    let mut slot = SHARED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((dir, embedder)) = slot.as_ref() {
        if dir == models_dir {
            return Ok(Arc::clone(embedder));
        }
    }
    let embedder = Arc::new(Embedder::load(&models_dir.join(MODEL_FOLDER))?);
    *slot = Some((models_dir.to_path_buf(), Arc::clone(&embedder)));
    Ok(embedder)
}

/// The model's folder under `QUARRY_MODELS_DIR`, as `scripts/assets.sh` writes it.
pub const MODEL_FOLDER: &str = "all-minilm-l6-v2";

/// The production token counter for chunking: word pieces, as the model sees them.
impl crate::rag::chunk::TokenCount for Embedder {
    fn count_tokens(&self, text: &str) -> usize {
        Embedder::count_tokens(self, text)
    }
}

fn load_error(
    path: &Path,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> EmbedError {
    EmbedError::Load {
        path: path.to_path_buf(),
        source: source.into(),
    }
}

/// Tells glibc's allocator to keep freed memory for reuse. By default it serves every allocation
/// above a sliding threshold with a fresh `mmap` and gives the heap's free top back to the kernel,
/// so each forward pass page-faulted its tensors in anew: a quarter of the ingest's CPU time was
/// system time (240 M minor faults for the manual). A fixed threshold of 32 MiB (glibc's maximum)
/// and a 512 MiB trim threshold keep the pages; the process's resident size stays near its peak,
/// which an embedding process reaches on its first batch anyway.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only sets allocator parameters; glibc takes its own lock, so it is
            // sound at any time, from any thread.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// The model folder from `QUARRY_MODELS_DIR` (set by `make test`). A missing variable fails
    /// the test rather than skipping it, so a run without the model cannot pass silently.
    fn model_dir() -> PathBuf {
        let dir = std::env::var_os("QUARRY_MODELS_DIR").unwrap_or_else(|| {
            panic!(
                "QUARRY_MODELS_DIR is not set: run `make test`, or `scripts/assets.sh` and \
                 QUARRY_MODELS_DIR=<repo>/.quarry/models cargo test -p quarry-shared --features embed"
            )
        });
        PathBuf::from(dir).join("all-minilm-l6-v2")
    }

    /// One embedder for all tests: loading takes a second, and sharing it exercises `Sync`.
    fn embedder() -> &'static Embedder {
        static EMBEDDER: OnceLock<Embedder> = OnceLock::new();
        EMBEDDER.get_or_init(|| {
            let dir = model_dir();
            Embedder::load(&dir).unwrap_or_else(|e| panic!("{e}: {:?}", e.source_chain()))
        })
    }

    trait SourceChain {
        fn source_chain(&self) -> Vec<String>;
    }
    impl SourceChain for EmbedError {
        fn source_chain(&self) -> Vec<String> {
            let mut chain = Vec::new();
            let mut source = std::error::Error::source(self);
            while let Some(s) = source {
                chain.push(s.to_string());
                source = s.source();
            }
            chain
        }
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    fn norm(a: &[f32]) -> f32 {
        dot(a, a).sqrt()
    }

    #[test]
    fn embedder_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Embedder>();
    }

    #[test]
    fn similar_sentences_are_close_and_unrelated_ones_far() {
        let e = embedder();
        let v = e
            .embed(&[
                "A man is eating food.",
                "A man is eating a piece of bread.",
                "The girl is carrying a baby.",
            ])
            .expect("embed");
        assert_eq!(v.len(), 3);
        for x in &v {
            assert_eq!(x.len(), 384);
            assert_eq!(e.dimensions(), 384);
            assert!((norm(x) - 1.0).abs() < 1e-4, "norm {}", norm(x));
        }
        let close = dot(&v[0], &v[1]);
        let far = dot(&v[0], &v[2]);
        assert!(close > 0.6, "food/bread cosine {close}");
        assert!(far < 0.3, "food/baby cosine {far}");
    }

    #[test]
    fn batching_and_padding_do_not_change_vectors() {
        let e = embedder();
        let texts = [
            "A man is eating food.",
            "PostgreSQL's VACUUM reclaims storage occupied by dead tuples; in normal operation, \
             tuples that are deleted or obsoleted by an update are not physically removed.",
            "Hi",
        ];
        let batch = e.embed(&texts).expect("batch");
        for (text, from_batch) in texts.iter().zip(&batch) {
            let alone = e.embed(&[text]).expect("alone");
            let max_diff = alone[0]
                .iter()
                .zip(from_batch)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(max_diff < 1e-4, "{text:?} differs by {max_diff}");
        }
    }

    #[test]
    fn more_than_one_batch_keeps_input_order() {
        let e = embedder();
        let texts: Vec<String> = (0..40)
            .map(|i| format!("sentence number {i} {}", "word ".repeat(i % 7)))
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let all = e.embed(&refs).expect("all");
        assert_eq!(all.len(), 40);
        for i in [0, 13, 39] {
            let alone = e.embed(&[refs[i]]).expect("alone");
            assert!(dot(&alone[0], &all[i]) > 0.9999, "vector {i} out of place");
        }
    }

    #[test]
    fn empty_input_and_empty_string_and_huge_text() {
        let e = embedder();
        assert!(e.embed(&[]).expect("no texts").is_empty());

        let empty = e.embed(&[""]).expect("empty string");
        assert!((norm(&empty[0]) - 1.0).abs() < 1e-4);

        let huge = "lorem ipsum dolor sit amet ".repeat(2_000); // 10,000 words
        let v = e.embed(&[&huge]).expect("huge text");
        assert!((norm(&v[0]) - 1.0).abs() < 1e-4);
        assert!(e.count_tokens(&huge) > MAX_SEQ_LEN);
        // Truncation: only the first 254 word pieces count, so a text that agrees on them embeds
        // identically.
        let longer = format!("{huge} something else entirely");
        let w = e.embed(&[&longer]).expect("longer");
        assert!(dot(&v[0], &w[0]) > 0.9999);
    }

    #[test]
    fn count_tokens_counts_word_pieces_without_special_tokens() {
        let e = embedder();
        assert_eq!(e.count_tokens(""), 0);
        assert_eq!(e.count_tokens("hello world"), 2);
        // An out-of-vocabulary word splits into several pieces.
        assert!(e.count_tokens("autovacuuming") > 1);
    }

    /// First 8 dimensions of three vectors computed independently (numpy BERT forward pass over
    /// the same safetensors; `testdata/reference.py`), against which candle must agree to 1e-3.
    #[test]
    fn matches_python_reference() {
        #[derive(serde::Deserialize)]
        struct Reference {
            text: String,
            first_dims: Vec<f32>,
        }
        let fixture = include_str!("testdata/minilm_reference.json");
        let references: Vec<Reference> = serde_json::from_str(fixture).expect("fixture parses");
        assert_eq!(references.len(), 3);
        let texts: Vec<&str> = references.iter().map(|r| r.text.as_str()).collect();
        let vectors = embedder().embed(&texts).expect("embed");
        for (reference, vector) in references.iter().zip(&vectors) {
            for (dim, (want, got)) in reference.first_dims.iter().zip(vector).enumerate() {
                assert!(
                    (want - got).abs() < 1e-3,
                    "{:?} dim {dim}: python {want}, candle {got}",
                    reference.text
                );
            }
        }
    }

    #[test]
    fn embedder_is_the_chunkers_token_counter() {
        use crate::rag::chunk::{chunk_document, Block, BlockKind, ChunkConfig};
        let text = "Vacuuming\n\nAutovacuum reclaims space. It runs in the background.";
        let blocks = [
            Block {
                kind: BlockKind::Heading { level: 1 },
                text: "Vacuuming".into(),
                page: None,
                char_start: 0,
                byte_start: 0,
            },
            Block {
                kind: BlockKind::Paragraph,
                text: text[11..].into(),
                page: None,
                char_start: 11,
                byte_start: 11,
            },
        ];
        let e = embedder();
        let chunks =
            chunk_document(text, &blocks, e, &ChunkConfig::default()).expect("valid blocks");
        assert_eq!(chunks.len(), 1);
        assert_eq!(
            chunks[0].token_count,
            e.count_tokens(&chunks[0].embedding_text())
        );
        assert!(chunks[0].token_count > text.split_whitespace().count());
    }

    #[test]
    fn missing_folder_is_a_load_error_naming_the_file() {
        let err = Embedder::load(Path::new("/nonexistent/model")).expect_err("must fail");
        match err {
            EmbedError::Load { path, .. } => {
                assert_eq!(path, Path::new("/nonexistent/model/config.json"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
