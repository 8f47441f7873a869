//! What `ask` keeps for the life of the process: the language-model chain (one per LLM
//! configuration; the local model is loaded once), the peer clients, and each role's schema
//! context for a short while (it is the same for every caller of the role, and keeping its text
//! byte-identical is what lets a local model reuse the evaluated prompt prefix).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use quarry_shared::config::ask::AskSettings;
use quarry_shared::http::ApiError;
use quarry_shared::llm::{build, gbnf, LlmProvider};
use quarry_shared::sql::schema::SchemaView;
use quarry_shared::state::AppState;

use crate::cache::SemanticCache;
use crate::data_version::DataVersion;
use crate::golden::GoldenEmbeddings;
use crate::memory::Memory;
use crate::peers::{Forward, PeerError, Peers, SqlResult};
use crate::schema_context::{self, sql_name};
use crate::text_to_sql::RunSql;

/// Longest wait for Redis (memory, cache) before answering without it.
const REDIS_DEADLINE: Duration = Duration::from_millis(300);

/// Most SQL grammars a schema context keeps (one per table set seen).
const GRAMMARS_KEPT: usize = 16;

/// How long a role's schema is reused before it is fetched again.
const SCHEMA_TTL: Duration = Duration::from_secs(60);

/// A role's schema, ready for prompts.
pub struct SchemaContext {
    /// The schema as sql-exec returned it.
    pub view: SchemaView,
    /// Table names as SQL writes them.
    pub tables: Vec<String>,
    /// Words of table and column names, for the routing heuristic.
    pub words: BTreeSet<String>,
    /// One embedding per table of its description ([`schema_context::describe`]), for linking;
    /// `None` when the embedder is unavailable (then nothing is linked away).
    embeddings: Option<Vec<Vec<f32>>>,
    /// SQL grammars built, by the table set they cover.
    grammars: Mutex<HashMap<Vec<usize>, String>>,
}

impl SchemaContext {
    async fn new(view: SchemaView, models_dir: &Path) -> Self {
        let tables = view.tables.iter().map(sql_name).collect();
        let words = crate::route::schema_words(view.tables.iter().flat_map(|t| {
            std::iter::once(t.name.as_str()).chain(t.columns.iter().map(|c| c.name.as_str()))
        }));
        let descriptions: Vec<String> = view.tables.iter().map(schema_context::describe).collect();
        let embeddings = embed(models_dir, descriptions).await;
        Self {
            view,
            tables,
            words,
            embeddings,
            grammars: Mutex::new(HashMap::new()),
        }
    }

    /// The tables the model sees for a question with embedding `question` (indices into
    /// `view.tables`): the database schemas the question is about ([`schema_context::scope`]),
    /// whole — the same prompt for every question on them, which a local model's prefix cache
    /// reuses — or, when those hold more than `link_above_tables` tables, the ones linked to
    /// the question. Without embeddings, every table.
    pub fn link(&self, settings: &AskSettings, question: Option<&[f32]>) -> Vec<usize> {
        let n = self.view.tables.len();
        let (Some(tables), Some(q)) = (&self.embeddings, question) else {
            return (0..n).collect();
        };
        let mut scores: Vec<f32> = tables
            .iter()
            .map(|t| t.iter().zip(q).map(|(a, b)| a * b).sum())
            .collect();
        let scoped = schema_context::scope(&self.view, &scores, settings.scope_margin);
        if scoped.len() <= settings.link_above_tables {
            return scoped;
        }
        for (i, score) in scores.iter_mut().enumerate() {
            if scoped.binary_search(&i).is_err() {
                *score = f32::NEG_INFINITY;
            }
        }
        schema_context::link(&self.view, &scores, settings.link_tables)
    }

    /// The DDL of `linked` tables.
    pub fn ddl(&self, linked: &[usize]) -> String {
        schema_context::render(&self.view, linked)
    }

    /// The local model's SQL grammar for `linked` tables, whose names are `identifiers`
    /// ([`Self::identifiers`]). Kept per table set: a scoped schema's set recurs question after
    /// question; similarity-linked sets vary, so at most `GRAMMARS_KEPT` are kept.
    pub fn grammar(&self, linked: &[usize], identifiers: &[String]) -> String {
        let mut kept = self.grammars.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(grammar) = kept.get(linked) {
            return grammar.clone();
        }
        let tables: Vec<String> = linked
            .iter()
            .filter_map(|&i| self.view.tables.get(i))
            .map(sql_name)
            .collect();
        let grammar = gbnf::sql::grammar(identifiers, &tables);
        if kept.len() >= GRAMMARS_KEPT {
            kept.clear();
        }
        kept.insert(linked.to_vec(), grammar.clone());
        grammar
    }

    /// `linked` tables as `(schema, table)`, as the SQL guard names the tables a query reads.
    pub fn qualified(&self, linked: &[usize]) -> BTreeSet<(String, String)> {
        linked
            .iter()
            .filter_map(|&i| self.view.tables.get(i))
            .map(|t| (t.schema.clone(), t.name.clone()))
            .collect()
    }

    /// The names a query over `linked` tables may use: the tables (as SQL writes them) and
    /// their columns. What the local model's SQL grammar allows.
    pub fn identifiers(&self, linked: &[usize]) -> Vec<String> {
        let mut names = Vec::new();
        for table in linked.iter().filter_map(|&i| self.view.tables.get(i)) {
            names.push(sql_name(table));
            names.extend(table.columns.iter().map(|c| c.name.clone()));
        }
        names
    }
}

/// Embeds `texts` with the process's embedder; `None` when it cannot be loaded or fails.
pub async fn embed(models_dir: &Path, texts: Vec<String>) -> Option<Vec<Vec<f32>>> {
    let dir = models_dir.to_path_buf();
    let outcome = tokio::task::spawn_blocking(move || {
        let embedder = quarry_shared::rag::embed::shared(&dir)?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        embedder.embed(&refs)
    })
    .await;
    match outcome {
        Ok(Ok(vectors)) => Some(vectors),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "embedding failed");
            None
        }
        Err(err) => {
            tracing::warn!(error = %err, "embedding task failed");
            None
        }
    }
}

/// The process-wide parts of `ask`.
pub struct Engine {
    /// The provider chain (with retries, breakers, fallback).
    pub llm: Arc<dyn LlmProvider>,
    /// sql-exec and retrieve.
    pub peers: Peers,
    /// The settings.
    pub settings: AskSettings,
    /// Conversation memory.
    pub memory: Memory,
    /// The semantic answer cache.
    pub cache: SemanticCache,
    /// Where the embedding model is.
    pub models_dir: PathBuf,
    /// Embeddings of the golden queries' questions (the few-shot examples).
    pub golden: GoldenEmbeddings,
    /// The data version of the cache scope, read at most once a second.
    pub data_version: DataVersion,
    schemas: Mutex<HashMap<String, (Instant, Arc<SchemaContext>)>>,
}

impl Engine {
    /// The schema context of `role`, fetched as the caller (`forward`) when not fresh, and
    /// rebuilt only when what sql-exec returns has changed.
    ///
    /// # Errors
    /// As sql-exec fails.
    pub async fn schema(
        &self,
        role: &str,
        forward: &Forward,
    ) -> Result<Arc<SchemaContext>, PeerError> {
        let known = {
            let schemas = self
                .schemas
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match schemas.get(role) {
                Some((at, context)) if at.elapsed() < SCHEMA_TTL => {
                    return Ok(Arc::clone(context));
                }
                Some((_, context)) => Some(Arc::clone(context)),
                None => None,
            }
        };
        let view = self.peers.schema(forward).await?;
        // An unchanged schema keeps its context: its table embeddings (a second of the embedder
        // on Chinook + flights, paid by whichever question found the context stale) and its
        // grammars stay valid.
        let context = match known {
            Some(context) if context.view == view => context,
            _ => Arc::new(SchemaContext::new(view, &self.models_dir).await),
        };
        self.schemas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(role.to_owned(), (Instant::now(), Arc::clone(&context)));
        Ok(context)
    }
}

/// The engine for `state`'s settings, built on first use and kept (one per LLM configuration,
/// so test servers with different scripted providers in one process do not share breakers).
///
/// # Errors
/// [`ApiError`] 503 when the configured providers cannot be set up.
pub async fn engine(state: &AppState) -> Result<Arc<Engine>, ApiError> {
    static ENGINES: Mutex<Option<HashMap<String, Arc<Engine>>>> = Mutex::new(None);
    let settings = &state.settings;
    let key = format!(
        "{:?}|{:?}|{}",
        settings.llm, settings.ask, settings.redis_key_prefix
    );
    if let Some(engine) = ENGINES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()
        .and_then(|m| m.get(&key))
    {
        return Ok(Arc::clone(engine));
    }
    let local = crate::local::provider(&settings.llm).await;
    let chain = build::chain(&settings.llm, &state.http, local).map_err(|err| {
        tracing::error!(error = %err, "cannot set up the language models");
        ApiError::Unavailable {
            kind: "llm-unavailable",
            detail: "No language model is configured on this server.".to_owned(),
            retry_after: None,
        }
    })?;
    // Without peer URLs the peers are this server (`quarry dev`), which needs a known port.
    let own = url::Url::parse(&format!(
        "http://{}:{}/",
        loopback(settings.host),
        settings.port
    ))
    .ok()
    .filter(|_| settings.port != 0);
    let peer = |configured: &Option<url::Url>, var: &str| {
        configured.clone().or_else(|| own.clone()).ok_or_else(|| {
            tracing::error!("{var} is not set and this server's port is not fixed");
            ApiError::Unavailable {
                kind: "peer-unavailable",
                detail: "This server does not know where its peer functions are.".to_owned(),
                retry_after: None,
            }
        })
    };
    let peers = Peers::new(
        state.http.clone(),
        peer(&settings.ask.sql_exec_url, "SQL_EXEC_URL")?,
        peer(&settings.ask.retrieve_url, "RETRIEVE_URL")?,
    );
    let engine = Arc::new(Engine {
        llm: Arc::new(chain),
        peers,
        settings: settings.ask.clone(),
        memory: Memory::new(
            state.redis.clone(),
            &settings.redis_key_prefix,
            REDIS_DEADLINE,
        ),
        cache: SemanticCache::new(
            state.redis.clone(),
            &settings.redis_key_prefix,
            settings.ask.cache_threshold,
            settings.ask.cache_ttl,
            REDIS_DEADLINE,
        ),
        models_dir: settings.docs.models_dir.clone(),
        golden: GoldenEmbeddings::default(),
        data_version: DataVersion::default(),
        schemas: Mutex::new(HashMap::new()),
    });
    ENGINES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get_or_insert_with(HashMap::new)
        .entry(key)
        .or_insert_with(|| Arc::clone(&engine));
    Ok(engine)
}

/// The address this server answers itself on: a wildcard bind is reached over loopback.
fn loopback(host: std::net::IpAddr) -> String {
    match host {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        other => other.to_string(),
    }
}

/// sql-exec as the caller, for the text-to-SQL loop.
pub struct CallerSql<'a> {
    /// The peers.
    pub peers: &'a Peers,
    /// The caller's credentials.
    pub forward: &'a Forward,
}

impl RunSql for CallerSql<'_> {
    fn run<'a>(
        &'a self,
        sql: &'a str,
        max_rows: u32,
    ) -> BoxFuture<'a, Result<SqlResult, PeerError>> {
        Box::pin(self.peers.sql(self.forward, sql, max_rows))
    }
}
