//! The in-process model: loaded once per process and per model file, on the first question
//! that needs it (loading a 1 GB GGUF file takes seconds), and shared by every request after.

use std::sync::Arc;

use quarry_shared::config::llm::{LlmSettings, ProviderKind};
use quarry_shared::llm::LlmProvider;

/// The local provider when `settings` lists it; `Err` says why there is none.
pub async fn provider(settings: &LlmSettings) -> Result<Arc<dyn LlmProvider>, String> {
    if !settings.providers.contains(&ProviderKind::Local) {
        return Err("the local model is not among LLM_PROVIDERS".to_owned());
    }
    load(settings).await
}

#[cfg(feature = "local-llm")]
async fn load(settings: &LlmSettings) -> Result<Arc<dyn LlmProvider>, String> {
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::Mutex;

    use quarry_shared::llm::local::LocalProvider;

    // One async lock around loading, so concurrent first questions wait for one load instead
    // of each mapping the model.
    static LOADING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    static LOADED: Mutex<Option<HashMap<PathBuf, Arc<LocalProvider>>>> = Mutex::new(None);
    let path = settings.local.model_path.clone();
    let cached = || {
        LOADED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .and_then(|m| m.get(&path).cloned())
    };
    if let Some(provider) = cached() {
        return Ok(provider);
    }
    let _loading = LOADING.lock().await;
    if let Some(provider) = cached() {
        return Ok(provider);
    }
    let local = settings.local.clone();
    let provider = tokio::task::spawn_blocking(move || LocalProvider::load(&local))
        .await
        .map_err(|e| format!("loading the local model stopped: {e}"))?
        .map_err(|e| e.to_string())?;
    LOADED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get_or_insert_with(HashMap::new)
        .insert(path, Arc::clone(&provider));
    Ok(provider)
}

#[cfg(not(feature = "local-llm"))]
async fn load(_: &LlmSettings) -> Result<Arc<dyn LlmProvider>, String> {
    Err("this build of ask has no local model (cargo feature local-llm)".to_owned())
}
