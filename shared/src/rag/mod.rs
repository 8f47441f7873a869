//! Retrieval building blocks, pure computation (no HTTP, no database).
//!
//! - [`chunk`]: an extracted document's blocks into overlapping, heading-aware chunks with exact
//!   offsets, sized by any [`chunk::TokenCount`].
//! - `embed` (cargo feature `embed`): all-MiniLM-L6-v2 sentence embeddings in-process with candle;
//!   its `Embedder` is also the production [`chunk::TokenCount`]. Behind a feature because candle
//!   and the tokenizer take minutes to build, and only the functions that embed need them.

pub mod chunk;
#[cfg(feature = "embed")]
pub mod embed;
