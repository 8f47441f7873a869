//! Documents: what ingest and retrieve share about stored chunks.
//!
//! - [`acl`]: who may see a document (roles and regions), and how an ACL is chosen; pure.
//! - `index`: the process's shared connection to the Chroma collection.
//! - [`chroma`]: the Chroma copy of the chunk vectors, behind the [`chroma::VectorIndex`] trait.

pub mod acl;
pub mod chroma;
pub mod index;
