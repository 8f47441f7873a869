//! The process's connection to the Chroma collection of chunk vectors, shared by every request.
//!
//! Connecting gets (or creates) the collection, so it is done once per (server, collection) and
//! remembered; a failed connection is not remembered, so the next request tries again and a Chroma
//! that comes back is used without a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::chroma::{ChromaError, ChromaIndex, VectorIndex};
use crate::state::AppState;

type Key = (String, String);

/// The Chroma index for this state's `CHROMA_URL` and `CHROMA_COLLECTION`; `Ok(None)` when no
/// Chroma is configured.
///
/// # Errors
/// [`ChromaError`] when Chroma cannot be reached or refuses the collection.
pub async fn vector_index(state: &AppState) -> Result<Option<Arc<dyn VectorIndex>>, ChromaError> {
    static CONNECTED: Mutex<Option<HashMap<Key, Arc<dyn VectorIndex>>>> = Mutex::new(None);
    let Some(url) = &state.settings.chroma_url else {
        return Ok(None);
    };
    let docs = &state.settings.docs;
    let key = (url.to_string(), docs.chroma_collection.clone());
    {
        let connected = CONNECTED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(index) = connected.as_ref().and_then(|m| m.get(&key)) {
            return Ok(Some(Arc::clone(index)));
        }
    }
    let index: Arc<dyn VectorIndex> = Arc::new(
        ChromaIndex::connect(
            state.http.clone(),
            url,
            &docs.chroma_collection,
            docs.chroma_timeout,
        )
        .await?,
    );
    CONNECTED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get_or_insert_with(HashMap::new)
        .insert(key, Arc::clone(&index));
    Ok(Some(index))
}
