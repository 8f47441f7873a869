//! `quarry ingest PATH…`: ingest files, or every file under folders, into PostgreSQL and Chroma.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use futures::StreamExt;
use quarry_ingest::pipeline::{IngestRequest, Ingestor, Trigger};
use quarry_shared::docs::acl::Acl;
use quarry_shared::docs::chroma::{ChromaIndex, VectorIndex};

/// Arguments of `quarry ingest`.
#[derive(Args)]
pub struct IngestArgs {
    /// Files or folders (folders are walked recursively; hidden entries are skipped).
    #[arg(required_unless_present = "reconcile")]
    paths: Vec<PathBuf>,
    /// Roles that may see the documents, comma-separated (default: the path-prefix rules, else admin).
    #[arg(long)]
    roles: Option<String>,
    /// Regions that may see them, comma-separated; `*` for any (default `*` when --roles is given).
    #[arg(long, requires = "roles")]
    regions: Option<String>,
    /// Only files with these extensions, comma-separated (e.g. `html,pdf`).
    #[arg(long)]
    ext: Option<String>,
    /// Documents in flight at once (extraction and embedding still run one at a time; this
    /// overlaps them with the database writes).
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Only bring Chroma in line with PostgreSQL (no paths needed).
    #[arg(long)]
    reconcile: bool,
}

/// Ingests every file; prints one line per file and a summary. Fails if any file failed.
pub async fn run(args: &IngestArgs) -> anyhow::Result<()> {
    let (settings, url) = super::settings_with_db()?;
    let pool = quarry_shared::db::pool(&url, 4)?;
    let index: Option<Arc<dyn VectorIndex>> = match &settings.chroma_url {
        Some(chroma) => {
            let http = reqwest::Client::new();
            match ChromaIndex::connect(
                http,
                chroma,
                &settings.docs.chroma_collection,
                settings.docs.chroma_timeout,
            )
            .await
            {
                Ok(index) => Some(Arc::new(index)),
                Err(err) => {
                    eprintln!("warning: Chroma is unavailable ({err}); documents go to PostgreSQL only, reconcile later");
                    None
                }
            }
        }
        None => None,
    };
    let ingestor = Ingestor::new(pool, index, &settings.docs);
    if args.reconcile {
        let (written, removed) = ingestor.reconcile().await?;
        println!(
            "reconciled: {written} documents written to Chroma, {removed} removed or rewritten"
        );
        return Ok(());
    }
    let acl = args
        .roles
        .as_deref()
        .map(|roles| Acl::parse(roles, args.regions.as_deref().unwrap_or("*")))
        .transpose()?;
    let exts: Option<Vec<String>> = args.ext.as_ref().map(|e| {
        e.split(',')
            .map(|x| x.trim().trim_start_matches('.').to_ascii_lowercase())
            .collect()
    });
    let mut files = Vec::new();
    for path in &args.paths {
        collect(path, exts.as_deref(), &mut files)
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    anyhow::ensure!(!files.is_empty(), "no files to ingest");

    let started = Instant::now();
    let total = files.len();
    let ingestor = &ingestor;
    let acl = &acl;
    let mut results = futures::stream::iter(files.into_iter().enumerate())
        .map(|(i, file)| async move {
            let outcome = ingest_file(ingestor, &file, acl.clone()).await;
            (i, file, outcome)
        })
        .buffer_unordered(args.jobs.max(1));
    let (mut failed, mut chunks, mut changed) = (0usize, 0usize, 0usize);
    let mut embed_ms = 0u64;
    let mut done = 0usize;
    while let Some((_, file, outcome)) = results.next().await {
        done += 1;
        match outcome {
            Ok(report) => {
                if report.status != "unchanged" {
                    changed += 1;
                    chunks += report.chunks;
                    embed_ms += report.timings_ms.embed;
                }
                let degraded = if report.degraded.is_empty() {
                    String::new()
                } else {
                    format!(" degraded={}", report.degraded.join(","))
                };
                println!(
                    "[{done}/{total}] {:<11} {:>4} chunks {:>6} ms  {}{degraded}",
                    report.status,
                    report.chunks,
                    report.timings_ms.extract
                        + report.timings_ms.embed
                        + report.timings_ms.store
                        + report.timings_ms.chroma,
                    file.display()
                );
            }
            Err(err) => {
                failed += 1;
                println!("[{done}/{total}] failed      {}: {err}", file.display());
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{total} files in {secs:.1} s: {changed} stored, {} unchanged, {failed} failed; {chunks} chunks ({:.1} chunks/s overall, {:.1} chunks/s embedding)",
        total - changed - failed,
        chunks as f64 / secs.max(1e-9),
        chunks as f64 / (embed_ms as f64 / 1000.0).max(1e-9),
    );
    anyhow::ensure!(
        failed == 0,
        "{failed} of {total} files failed (see quarry_meta.ingest_failures)"
    );
    Ok(())
}

async fn ingest_file(
    ingestor: &Ingestor,
    file: &Path,
    acl: Option<Acl>,
) -> anyhow::Result<quarry_ingest::pipeline::IngestReport> {
    let bytes = tokio::fs::read(file).await?;
    let source = url::Url::from_file_path(file)
        .map_err(|()| anyhow::anyhow!("not an absolute path"))?
        .to_string();
    let report = ingestor
        .ingest(IngestRequest {
            source,
            bytes: Bytes::from(bytes),
            file_name: file.file_name().map(|n| n.to_string_lossy().into_owned()),
            declared_type: None,
            acl,
            trigger: Trigger::Cli,
        })
        .await?;
    Ok(report)
}

/// Files under `path` (itself, if a file), sorted, absolute, hidden entries skipped.
fn collect(path: &Path, exts: Option<&[String]>, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let path = std::fs::canonicalize(path)?;
    if path.is_file() {
        out.push(path);
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&path)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            collect(&entry, exts, out)?;
        } else if entry.is_file() {
            let ext = entry
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            if exts.is_none_or(|list| list.contains(&ext)) {
                out.push(entry);
            }
        }
    }
    Ok(())
}
