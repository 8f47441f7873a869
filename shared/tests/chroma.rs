//! The Chroma adapter against a real Chroma server (`CHROMA_URL`, set by `make test` or
//! `eval "$(scripts/stack.sh env)"`). Each test works in its own collection and drops it at the end,
//! also when it fails.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use quarry_shared::docs::acl::Acl;
use quarry_shared::docs::chroma::{
    ChromaError, ChromaHit, ChromaIndex, ChunkRecord, VectorIndex, EMBEDDING_DIMENSIONS,
};
use url::Url;
use uuid::Uuid;

const TIMEOUT: Duration = Duration::from_secs(20);

fn chroma_url() -> Url {
    let url = std::env::var("CHROMA_URL").unwrap_or_else(|_| {
        panic!("CHROMA_URL must be set (run `eval \"$(scripts/stack.sh env)\"` or `make test`)")
    });
    Url::parse(&url).unwrap_or_else(|e| panic!("CHROMA_URL is not a URL: {e}"))
}

async fn connect(collection: &str) -> ChromaIndex {
    ChromaIndex::connect(reqwest::Client::new(), &chroma_url(), collection, TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("connect to Chroma: {e:?}"))
}

/// Runs `test` on a fresh collection, then drops the collection whether or not `test` panicked.
async fn with_index<F, Fut>(test: F)
where
    F: FnOnce(Arc<ChromaIndex>) -> Fut,
    Fut: Future<Output = ()>,
{
    let name = format!("test_{}", Uuid::new_v4().simple());
    let index = Arc::new(connect(&name).await);
    let outcome = AssertUnwindSafe(test(Arc::clone(&index)))
        .catch_unwind()
        .await;
    index.delete_collection().await.unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// A unit vector along `axis`.
fn axis(axis: usize) -> Vec<f32> {
    let mut v = vec![0.0; EMBEDDING_DIMENSIONS];
    v[axis] = 1.0;
    v
}

/// The unit vector of `weights` (axis, weight).
fn blend(weights: &[(usize, f32)]) -> Vec<f32> {
    let mut v = vec![0.0; EMBEDDING_DIMENSIONS];
    for &(axis, weight) in weights {
        v[axis] = weight;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

/// Owned inputs for [`ChunkRecord`]s of one document version.
struct Doc {
    id: Uuid,
    version: i32,
    acl: Acl,
    chunks: Vec<(Uuid, Vec<f32>)>,
}

impl Doc {
    fn new(version: i32, acl: Acl, embeddings: Vec<Vec<f32>>) -> Self {
        Self {
            id: Uuid::new_v4(),
            version,
            acl,
            chunks: embeddings
                .into_iter()
                .map(|e| (Uuid::new_v4(), e))
                .collect(),
        }
    }

    /// The same document, another version with new chunks.
    fn next_version(&self, embeddings: Vec<Vec<f32>>) -> Self {
        Self {
            id: self.id,
            ..Self::new(self.version + 1, self.acl.clone(), embeddings)
        }
    }

    fn records(&self) -> Vec<ChunkRecord<'_>> {
        self.chunks
            .iter()
            .enumerate()
            .map(|(i, (chunk_id, embedding))| ChunkRecord {
                chunk_id: *chunk_id,
                document_id: self.id,
                version: self.version,
                embedding,
                text: "chunk text",
                source: "file:///docs/handbook.md",
                page: i32::try_from(i).ok().filter(|p| p % 2 == 0),
                acl: &self.acl,
            })
            .collect()
    }

    fn chunk(&self, i: usize) -> Uuid {
        self.chunks[i].0
    }

    async fn store(&self, index: &ChromaIndex) {
        index
            .replace_document(self.id, &self.records())
            .await
            .unwrap();
    }
}

fn acl(roles: &str, regions: &str) -> Acl {
    Acl::parse(roles, regions).unwrap()
}

fn chunk_ids(hits: &[ChromaHit]) -> Vec<Uuid> {
    hits.iter().map(|h| h.chunk_id).collect()
}

#[tokio::test]
async fn replace_then_query_returns_the_nearest_first() {
    with_index(|index| async move {
        let doc = Doc::new(1, acl("catalog", "*"), vec![axis(2), axis(0), axis(1)]);
        doc.store(&index).await;

        // Closest to axis 0, then axis 1, and orthogonal to axis 2.
        let query = blend(&[(0, 1.0), (1, 0.5)]);
        let hits = index.query(&query, "catalog", "emea", 3).await.unwrap();
        assert_eq!(chunk_ids(&hits), [doc.chunk(1), doc.chunk(2), doc.chunk(0)]);
        assert!(hits.iter().all(|h| h.document_id == doc.id));
        assert!(hits.windows(2).all(|w| w[0].distance <= w[1].distance));
        // Cosine distance: 1 - cos, so 1 - 1/sqrt(1.25) for the nearest, 1 for the orthogonal.
        assert!((hits[0].distance - (1.0 - 1.0 / 1.25_f32.sqrt())).abs() < 1e-3);
        assert!((hits[2].distance - 1.0).abs() < 1e-3);

        let two = index.query(&query, "catalog", "emea", 2).await.unwrap();
        assert_eq!(chunk_ids(&two), [doc.chunk(1), doc.chunk(2)]);
        assert!(index
            .query(&query, "catalog", "emea", 0)
            .await
            .unwrap()
            .is_empty());
    })
    .await;
}

#[tokio::test]
async fn replacing_a_document_removes_its_old_version() {
    with_index(|index| async move {
        let v1 = Doc::new(1, acl("catalog", "*"), vec![axis(0), axis(1), axis(2)]);
        v1.store(&index).await;
        let v2 = v1.next_version(vec![axis(0), axis(3)]);
        v2.store(&index).await;

        assert_eq!(index.count().await.unwrap(), 2);
        let hits = index.query(&axis(0), "catalog", "emea", 10).await.unwrap();
        assert_eq!(chunk_ids(&hits), [v2.chunk(0), v2.chunk(1)]);
        let versions = index.document_versions().await.unwrap();
        assert_eq!(versions, HashMap::from([(v1.id, BTreeSet::from([2]))]));
    })
    .await;
}

#[tokio::test]
async fn a_record_for_admin_only_is_never_returned_to_catalog() {
    with_index(|index| async move {
        let secret = Doc::new(1, acl("admin", "*"), vec![axis(0)]);
        let public = Doc::new(1, acl("admin,catalog", "*"), vec![axis(5), axis(6)]);
        secret.store(&index).await;
        public.store(&index).await;

        // The secret chunk's own embedding: it is the nearest record, at distance 0.
        let hits = index.query(&axis(0), "catalog", "emea", 10).await.unwrap();
        assert!(!hits.iter().any(|h| h.document_id == secret.id));
        assert_eq!(hits.len(), 2, "{hits:?}");

        let admin = index.query(&axis(0), "admin", "emea", 1).await.unwrap();
        assert_eq!(chunk_ids(&admin), [secret.chunk(0)]);
        assert!(admin[0].distance.abs() < 1e-3);

        // A role no document names sees nothing.
        assert!(index
            .query(&axis(0), "finance", "emea", 10)
            .await
            .unwrap()
            .is_empty());
    })
    .await;
}

#[tokio::test]
async fn regions_filter_by_listed_region_or_star() {
    with_index(|index| async move {
        let emea = Doc::new(1, acl("analyst", "emea"), vec![axis(0)]);
        let apac_emea = Doc::new(1, acl("analyst", "apac,emea"), vec![axis(1)]);
        let anywhere = Doc::new(1, acl("analyst", "*"), vec![axis(2)]);
        // Names that only differ by '-' and '_' must not share a metadata key.
        let dashed = Doc::new(1, acl("analyst", "eu-west"), vec![axis(3)]);
        for doc in [&emea, &apac_emea, &anywhere, &dashed] {
            doc.store(&index).await;
        }
        let query = blend(&[(0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0)]);
        let seen = |region: &'static str| {
            let index = Arc::clone(&index);
            let query = query.clone();
            async move {
                let hits = index.query(&query, "analyst", region, 10).await.unwrap();
                hits.iter().map(|h| h.document_id).collect::<BTreeSet<_>>()
            }
        };

        assert_eq!(
            seen("emea").await,
            BTreeSet::from([emea.id, apac_emea.id, anywhere.id])
        );
        assert_eq!(
            seen("apac").await,
            BTreeSet::from([apac_emea.id, anywhere.id])
        );
        assert_eq!(seen("americas").await, BTreeSet::from([anywhere.id]));
        assert_eq!(
            seen("eu-west").await,
            BTreeSet::from([dashed.id, anywhere.id])
        );
        assert_eq!(seen("eu_west").await, BTreeSet::from([anywhere.id]));
    })
    .await;
}

#[tokio::test]
async fn delete_document_removes_only_that_document() {
    with_index(|index| async move {
        let gone = Doc::new(1, acl("catalog", "*"), vec![axis(0), axis(1)]);
        let kept = Doc::new(4, acl("catalog", "*"), vec![axis(2)]);
        gone.store(&index).await;
        kept.store(&index).await;

        index.delete_document(gone.id).await.unwrap();
        assert_eq!(index.count().await.unwrap(), 1);
        let hits = index.query(&axis(0), "catalog", "emea", 10).await.unwrap();
        assert_eq!(chunk_ids(&hits), [kept.chunk(0)]);
        // Deleting what is not there is fine.
        index.delete_document(gone.id).await.unwrap();
        index.delete_document(Uuid::new_v4()).await.unwrap();
        assert_eq!(index.count().await.unwrap(), 1);
    })
    .await;
}

#[tokio::test]
async fn document_versions_pages_through_every_record() {
    with_index(|index| async move {
        // 1500 + 700 + 2 records: several upsert batches and several pages of `get`.
        let many = |n: usize| (0..n).map(|i| axis(i % EMBEDDING_DIMENSIONS)).collect();
        let big = Doc::new(3, acl("catalog", "*"), many(1500));
        let medium = Doc::new(1, acl("admin", "emea"), many(700));
        big.store(&index).await;
        medium.store(&index).await;
        // A document caught between two versions shows both.
        let mixed = Doc::new(7, acl("catalog", "*"), vec![axis(0), axis(1)]);
        let mut records = mixed.records();
        records[1].version = 8;
        index.replace_document(mixed.id, &records).await.unwrap();

        assert!(index.batch_size() <= 1000);
        assert_eq!(index.count().await.unwrap(), 2202);
        let versions = index.document_versions().await.unwrap();
        assert_eq!(
            versions,
            HashMap::from([
                (big.id, BTreeSet::from([3])),
                (medium.id, BTreeSet::from([1])),
                (mixed.id, BTreeSet::from([7, 8])),
            ])
        );
    })
    .await;
}

#[tokio::test]
async fn count_is_zero_for_a_new_collection_and_counts_records() {
    with_index(|index| async move {
        assert_eq!(index.count().await.unwrap(), 0);
        assert!(index.document_versions().await.unwrap().is_empty());
        Doc::new(1, acl("catalog", "*"), vec![axis(0), axis(1), axis(2)])
            .store(&index)
            .await;
        assert_eq!(index.count().await.unwrap(), 3);
    })
    .await;
}

#[tokio::test]
async fn connect_is_get_or_create() {
    with_index(|index| async move {
        Doc::new(1, acl("catalog", "*"), vec![axis(0)])
            .store(&index)
            .await;
        let again = connect(index.collection_name()).await;
        assert_eq!(again.collection_id(), index.collection_id());
        assert_eq!(again.count().await.unwrap(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_collection_of_another_dimension_is_refused() {
    with_index(|index| async move {
        // A collection that once held 3-dimensional vectors cannot serve 384-dimensional queries.
        let odd = [1.0_f32, 0.0, 0.0];
        let doc_acl = acl("catalog", "*");
        let id = Uuid::new_v4();
        let record = ChunkRecord {
            chunk_id: Uuid::new_v4(),
            document_id: id,
            version: 1,
            embedding: &odd,
            text: "t",
            source: "file:///t",
            page: None,
            acl: &doc_acl,
        };
        index.replace_document(id, &[record]).await.unwrap();
        let err = ChromaIndex::connect(
            reqwest::Client::new(),
            &chroma_url(),
            index.collection_name(),
            TIMEOUT,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, ChromaError::Protocol(m) if m.contains("3-dimensional")),
            "{err:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_batch_of_the_wrong_dimension_is_a_server_error() {
    with_index(|index| async move {
        let good = Doc::new(1, acl("catalog", "*"), vec![axis(0)]);
        good.store(&index).await;

        let bad = Doc::new(1, acl("catalog", "*"), vec![vec![0.5; 3]]);
        let err = index
            .replace_document(bad.id, &bad.records())
            .await
            .unwrap_err();
        match err {
            ChromaError::Server { status, message } => {
                assert!((400..500).contains(&status), "{status} {message}");
                assert!(message.contains("dimension"), "{message}");
            }
            other => panic!("expected a server error, got {other:?}"),
        }
        assert_eq!(index.count().await.unwrap(), 1);
    })
    .await;
}

#[tokio::test]
async fn invalid_input_is_refused_before_anything_is_deleted() {
    with_index(|index| async move {
        let doc = Doc::new(1, acl("catalog", "*"), vec![axis(0), axis(1)]);
        doc.store(&index).await;

        // 'any' would collide with the wildcard key.
        let reserved = doc.next_version(vec![axis(2)]);
        let reserved = Doc {
            acl: acl("catalog", "any"),
            ..reserved
        };
        let err = index.replace_document(doc.id, &reserved.records()).await;
        assert!(matches!(err, Err(ChromaError::InvalidInput(_))), "{err:?}");

        // A record of another document.
        let other = Doc::new(1, acl("catalog", "*"), vec![axis(3)]);
        let err = index.replace_document(doc.id, &other.records()).await;
        assert!(matches!(err, Err(ChromaError::InvalidInput(_))), "{err:?}");

        // The same chunk twice, and a NaN.
        let mut twice = doc.records();
        twice[1].chunk_id = twice[0].chunk_id;
        let err = index.replace_document(doc.id, &twice).await;
        assert!(matches!(err, Err(ChromaError::InvalidInput(_))), "{err:?}");
        let nan = [f32::NAN; EMBEDDING_DIMENSIONS];
        let mut with_nan = doc.records();
        with_nan[0].embedding = &nan;
        let err = index.replace_document(doc.id, &with_nan).await;
        assert!(matches!(err, Err(ChromaError::InvalidInput(_))), "{err:?}");

        assert_eq!(index.count().await.unwrap(), 2);

        for (role, region) in [
            ("Admin", "emea"),
            ("catalog", "any"),
            ("catalog", "*"),
            ("", "emea"),
        ] {
            let err = index.query(&axis(0), role, region, 5).await;
            assert!(
                matches!(err, Err(ChromaError::InvalidInput(_))),
                "{role} {region}: {err:?}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_server_fails_fast_without_leaking_credentials() {
    let base = Url::parse("http://quarry:s3cret@127.0.0.1:9").unwrap();
    let started = Instant::now();
    let err = ChromaIndex::connect(reqwest::Client::new(), &base, "never", TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, ChromaError::Unreachable(_)), "{err:?}");
    let mut chain = format!("{err:?}");
    let mut source: Option<&dyn std::error::Error> = Some(&err);
    while let Some(e) = source {
        chain.push_str(&e.to_string());
        source = e.source();
    }
    assert!(!chain.contains("s3cret"), "{chain}");
}

#[tokio::test]
async fn a_server_that_does_not_answer_times_out() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });

    let base = Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let started = Instant::now();
    let err = ChromaIndex::connect(
        reqwest::Client::new(),
        &base,
        "never",
        Duration::from_millis(300),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ChromaError::Timeout), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    holder.abort();
}
