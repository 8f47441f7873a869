//! Parsing the Cloud Storage "object finalized" CloudEvent that Eventarc POSTs to this function.
//!
//! Eventarc delivers in the CloudEvents HTTP *binary* content mode (attributes in `ce-*` headers,
//! the `StorageObjectData` JSON as the body), but the *structured* mode (`Content-Type:
//! application/cloudevents+json`, attributes and `data` in one JSON envelope) is what the SDKs,
//! Pub/Sub relays and `curl` tests tend to send, so both are accepted and yield the same
//! [`StorageEvent`].
//!
//! Pure parsing, no I/O: the handler owns the body-size limit and decides what each
//! [`EventError::kind`] means on the wire. Only the attributes the pipeline needs are kept; the
//! rest of `StorageObjectData` (hashes, timestamps, storage class) is ignored rather than
//! validated, so a field Google adds later cannot break ingestion.

use std::collections::BTreeMap;

use base64::Engine as _;
use http::header::CONTENT_TYPE;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

/// The only event type this function ingests.
pub const FINALIZED: &str = "google.cloud.storage.object.v1.finalized";
/// The Cloud Storage event type that removes a document (an object deleted, or replaced without
/// versioning).
pub const DELETED: &str = "google.cloud.storage.object.v1.deleted";

/// `ce-source` of a Cloud Storage event, before the bucket name.
const SOURCE_PREFIX: &str = "//storage.googleapis.com/projects/_/buckets/";

/// `ce-subject` of a Cloud Storage event, before the object name.
const SUBJECT_PREFIX: &str = "objects/";

/// Longest attribute value echoed back in an error message: enough to recognise it, too short to
/// turn a log line into a copy of a hostile request.
const ECHO_MAX: usize = 120;

/// A newly written Cloud Storage object, as announced by a `finalized` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageEvent {
    /// The CloudEvent `id`: unique per event, repeated on redelivery (an idempotency key).
    pub id: String,
    /// The CloudEvent `type` ([`FINALIZED`] or [`DELETED`] once parsed).
    pub event_type: String,
    /// The bucket holding the object.
    pub bucket: String,
    /// The object's full name (may contain `/`, spaces and any Unicode).
    pub name: String,
    /// The object generation the event is about (a decimal integer, as GCS writes it), so a
    /// redelivered event reads exactly the version it announced.
    pub generation: Option<String>,
    /// The object's `Content-Type`, as uploaded.
    pub content_type: Option<String>,
    /// The object's size in bytes.
    pub size: Option<u64>,
    /// The object's custom metadata (`x-goog-meta-*`).
    pub metadata: BTreeMap<String, String>,
}

impl StorageEvent {
    /// The object's address as `gs://bucket/name` (the name unescaped, as `gsutil` prints it).
    pub fn source_uri(&self) -> String {
        format!("gs://{}/{}", self.bucket, self.name)
    }
}

/// Why a request is not an ingestible storage event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Not a CloudEvent at all: a required attribute (`specversion`, `type`, `source`, `id`) is
    /// missing, or the spec version is one this parser does not know.
    #[error("not a CloudEvent: {0}")]
    NotACloudEvent(String),
    /// A well-formed CloudEvent of another type (deletes, metadata updates, …). Kept apart so the
    /// handler can acknowledge it with 2xx and ignore it instead of having Eventarc retry it.
    #[error("unsupported event type `{0}`")]
    UnsupportedEventType(String),
    /// A `finalized` event whose payload cannot be used: bad JSON or base64, a missing bucket or
    /// name, attributes that contradict the data, or a non-numeric size or generation.
    #[error("invalid storage event: {0}")]
    InvalidEvent(String),
}

impl EventError {
    /// A stable slug for logs, metrics and problem types.
    pub fn kind(&self) -> &'static str {
        match self {
            EventError::NotACloudEvent(_) => "not-a-cloudevent",
            EventError::UnsupportedEventType(_) => "unsupported-event-type",
            EventError::InvalidEvent(_) => "invalid-event",
        }
    }
}

/// Parses a CloudEvent delivered over HTTP in either content mode.
///
/// # Errors
///
/// [`EventError::NotACloudEvent`] when required CloudEvent attributes are missing,
/// [`EventError::UnsupportedEventType`] for any type but [`FINALIZED`] and [`DELETED`] (checked before the data,
/// so other types are recognised whatever their payload), and [`EventError::InvalidEvent`] when
/// the payload is unusable.
pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<StorageEvent, EventError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(media_type);
    match content_type.as_deref() {
        Some("application/cloudevents+json") => parse_structured(body),
        Some("application/cloudevents-batch+json") => Err(invalid(
            "batched CloudEvents are not supported; send one event per request",
        )),
        _ => parse_binary(headers, content_type.as_deref(), body),
    }
}

/// The CloudEvent context attributes this parser uses.
struct Attributes {
    specversion: Option<String>,
    event_type: Option<String>,
    /// `source` as received, and percent-decoded (binary mode only; see [`header_attr`]).
    source: Option<Alternatives>,
    subject: Option<Alternatives>,
    id: Option<String>,
}

/// An attribute value in the forms a sender may have meant: CloudEvents' HTTP binding
/// percent-encodes non-ASCII and a few other characters in `ce-*` headers, but not every sender
/// does, so a raw `%` in an object name must not make a valid event fail the cross-check.
struct Alternatives {
    raw: String,
    decoded: Option<String>,
}

impl Alternatives {
    fn plain(value: String) -> Self {
        Self {
            raw: value,
            decoded: None,
        }
    }

    fn matches(&self, expected: &str) -> bool {
        self.raw == expected || self.decoded.as_deref() == Some(expected)
    }

    /// The value to quote in an error message.
    fn shown(&self) -> &str {
        self.decoded.as_deref().unwrap_or(&self.raw)
    }
}

fn parse_binary(
    headers: &HeaderMap,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<StorageEvent, EventError> {
    let value = |name: &str| header_attr(headers, name);
    let attributes = Attributes {
        specversion: value("ce-specversion")?.map(|a| a.decoded.unwrap_or(a.raw)),
        event_type: value("ce-type")?.map(|a| a.decoded.unwrap_or(a.raw)),
        source: value("ce-source")?,
        subject: value("ce-subject")?,
        id: value("ce-id")?.map(|a| a.decoded.unwrap_or(a.raw)),
    };
    check_attributes(&attributes, "header ce-")?;
    // Eventarc sends `application/json`; anything that is declared and not JSON (protobuf
    // payloads, form posts) would only produce a confusing JSON error below.
    if let Some(ct) = content_type {
        if !is_json(ct) {
            return Err(invalid(format!(
                "unsupported data content type `{}`; expected application/json",
                echo(ct)
            )));
        }
    }
    let data: Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("body is not JSON: {e}")))?;
    build(attributes, data)
}

fn parse_structured(body: &[u8]) -> Result<StorageEvent, EventError> {
    /// The JSON envelope; unknown members (extensions such as Eventarc's `bucket`) are ignored.
    #[derive(Deserialize)]
    struct Envelope {
        specversion: Option<String>,
        #[serde(rename = "type")]
        event_type: Option<String>,
        source: Option<String>,
        subject: Option<String>,
        id: Option<String>,
        datacontenttype: Option<String>,
        data: Option<Value>,
        data_base64: Option<String>,
    }

    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("structured CloudEvent is not valid JSON: {e}")))?;
    let attributes = Attributes {
        specversion: envelope.specversion,
        event_type: envelope.event_type,
        source: envelope.source.map(Alternatives::plain),
        subject: envelope.subject.map(Alternatives::plain),
        id: envelope.id,
    };
    check_attributes(&attributes, "attribute ")?;
    if let Some(ct) = envelope.datacontenttype.as_deref() {
        if !is_json(ct) {
            return Err(invalid(format!(
                "unsupported datacontenttype `{}`; expected application/json",
                echo(ct)
            )));
        }
    }
    let data = match (envelope.data, envelope.data_base64) {
        (Some(_), Some(_)) => return Err(invalid("both `data` and `data_base64` are present")),
        (None, None) => return Err(invalid("the event has no data")),
        (None, Some(encoded)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|e| invalid(format!("`data_base64` is not valid base64: {e}")))?;
            serde_json::from_slice(&bytes)
                .map_err(|e| invalid(format!("`data_base64` does not hold JSON: {e}")))?
        }
        // Some SDKs serialise JSON data as a JSON string; unwrap it once.
        (Some(Value::String(text)), None) => serde_json::from_str(&text)
            .map_err(|e| invalid(format!("`data` is a string that does not hold JSON: {e}")))?,
        (Some(value), None) => value,
    };
    build(attributes, data)
}

/// Required attributes present, spec version known, type the one we ingest.
fn check_attributes(attributes: &Attributes, prefix: &str) -> Result<(), EventError> {
    let missing = |name: &str| EventError::NotACloudEvent(format!("missing {prefix}{name}"));
    let specversion = attributes
        .specversion
        .as_deref()
        .ok_or_else(|| missing("specversion"))?;
    if specversion != "1.0" {
        return Err(EventError::NotACloudEvent(format!(
            "unsupported specversion `{}` (expected 1.0)",
            echo(specversion)
        )));
    }
    if attributes.id.as_deref().is_none_or(str::is_empty) {
        return Err(missing("id"));
    }
    if attributes.source.as_ref().is_none_or(|s| s.raw.is_empty()) {
        return Err(missing("source"));
    }
    let event_type = attributes
        .event_type
        .as_deref()
        .ok_or_else(|| missing("type"))?;
    if event_type != FINALIZED && event_type != DELETED {
        return Err(EventError::UnsupportedEventType(echo(event_type)));
    }
    Ok(())
}

/// The parts of `StorageObjectData` the pipeline uses.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectData {
    bucket: Option<String>,
    name: Option<String>,
    /// The JSON API writes int64/uint64 fields as strings; numbers are accepted too.
    generation: Option<Value>,
    size: Option<Value>,
    content_type: Option<String>,
    /// A `null` value is skipped rather than rejected: it carries no metadata.
    metadata: Option<BTreeMap<String, Option<String>>>,
}

fn build(attributes: Attributes, data: Value) -> Result<StorageEvent, EventError> {
    if !data.is_object() {
        return Err(invalid("the event data is not a JSON object"));
    }
    let data: ObjectData = serde_json::from_value(data)
        .map_err(|e| invalid(format!("the event data is not StorageObjectData: {e}")))?;
    let bucket = data
        .bucket
        .filter(|b| !b.is_empty())
        .ok_or_else(|| invalid("the event data has no bucket"))?;
    let name = data
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid("the event data has no object name"))?;

    // The attributes are what Eventarc routed on (trigger filters match `bucket`/`source`); data
    // that disagrees with them is forged or corrupt, and ingesting it would read another object.
    if let Some(source) = &attributes.source {
        if !source.matches(&format!("{SOURCE_PREFIX}{bucket}")) {
            return Err(invalid(format!(
                "source `{}` does not name bucket `{}`",
                echo(source.shown()),
                echo(&bucket)
            )));
        }
    }
    if let Some(subject) = &attributes.subject {
        if !subject.matches(&format!("{SUBJECT_PREFIX}{name}")) {
            return Err(invalid(format!(
                "subject `{}` does not name object `{}`",
                echo(subject.shown()),
                echo(&name)
            )));
        }
    }

    let generation = data
        .generation
        .map(|g| integer_field(&g, "generation").map(|n| n.to_string()))
        .transpose()?;
    let size = data.size.map(|s| integer_field(&s, "size")).transpose()?;
    let metadata = data
        .metadata
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();

    Ok(StorageEvent {
        // Present: `check_attributes` ran before `build`.
        id: attributes.id.unwrap_or_default(),
        event_type: attributes.event_type.unwrap_or_default(),
        bucket,
        name,
        generation,
        content_type: data.content_type.filter(|c| !c.is_empty()),
        size,
        metadata,
    })
}

/// A non-negative integer written as a JSON string (the JSON API's way) or number.
fn integer_field(value: &Value, field: &str) -> Result<u64, EventError> {
    let parsed = match value {
        Value::String(s) => s.parse::<u64>().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    };
    parsed.ok_or_else(|| {
        let shown = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        invalid(format!(
            "{field} `{}` is not a non-negative integer",
            echo(&shown)
        ))
    })
}

/// A `ce-*` header as raw text and percent-decoded (see [`Alternatives`]). Header bytes outside
/// ASCII are taken as UTF-8, since some senders put the name there unencoded.
fn header_attr(headers: &HeaderMap, name: &str) -> Result<Option<Alternatives>, EventError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(invalid(format!("header {name} appears more than once")));
    }
    let raw = std::str::from_utf8(value.as_bytes())
        .map_err(|_| invalid(format!("header {name} is not UTF-8")))?
        .trim()
        .to_owned();
    let decoded = percent_encoding::percent_decode_str(&raw)
        .decode_utf8()
        .ok()
        .filter(|d| *d != raw)
        .map(|d| d.into_owned());
    Ok(Some(Alternatives { raw, decoded }))
}

/// `type/subtype` of a Content-Type value, lower-cased, parameters dropped.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// `application/json`, `text/json` or any `+json` type.
fn is_json(content_type: &str) -> bool {
    let media = media_type(content_type);
    media == "application/json" || media == "text/json" || media.ends_with("+json")
}

fn invalid(message: impl Into<String>) -> EventError {
    EventError::InvalidEvent(message.into())
}

/// `value`, cut to [`ECHO_MAX`] characters for an error message.
fn echo(value: &str) -> String {
    match value.char_indices().nth(ECHO_MAX) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// The body Eventarc sends for a finalized object (captured shape, names changed).
    fn object_data(bucket: &str, name: &str) -> Value {
        let escaped =
            percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
        serde_json::json!({
            "kind": "storage#object",
            "id": format!("{bucket}/{name}/1712345678901234"),
            "selfLink": format!("https://www.googleapis.com/storage/v1/b/{bucket}/o/{escaped}"),
            "name": name,
            "bucket": bucket,
            "generation": "1712345678901234",
            "metageneration": "1",
            "contentType": "application/pdf",
            "timeCreated": "2024-04-05T17:34:38.901Z",
            "updated": "2024-04-05T17:34:38.901Z",
            "storageClass": "STANDARD",
            "timeStorageClassUpdated": "2024-04-05T17:34:38.901Z",
            "size": "482113",
            "md5Hash": "XrY7u+Ae7tCTyyK7j1rNww==",
            "mediaLink": format!("https://storage.googleapis.com/download/storage/v1/b/{bucket}/o/{escaped}?generation=1712345678901234&alt=media"),
            "contentLanguage": "en",
            "crc32c": "yZRlqg==",
            "etag": "CPLx2K+T4YUDEAE=",
            "metadata": { "region": "emea", "uploaded-by": "alice@example.com" }
        })
    }

    /// Binary-mode headers as Eventarc sets them (including its `ce-bucket` extension).
    fn binary_headers(event_type: &str, bucket: &str, subject: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let mut set = |k: &'static str, v: &str| {
            h.insert(k, HeaderValue::from_bytes(v.as_bytes()).unwrap());
        };
        set("content-type", "application/json; charset=utf-8");
        set("ce-specversion", "1.0");
        set("ce-type", event_type);
        set(
            "ce-source",
            &format!("//storage.googleapis.com/projects/_/buckets/{bucket}"),
        );
        set("ce-subject", subject);
        set("ce-id", "10927368374052581");
        set("ce-time", "2024-04-05T17:34:38.901Z");
        set("ce-bucket", bucket);
        set(
            "user-agent",
            "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)",
        );
        h
    }

    fn body(v: &Value) -> Vec<u8> {
        serde_json::to_vec(v).unwrap()
    }

    fn structured_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/cloudevents+json; charset=UTF-8"),
        );
        h
    }

    fn envelope(bucket: &str, name: &str) -> Value {
        serde_json::json!({
            "specversion": "1.0",
            "type": FINALIZED,
            "source": format!("//storage.googleapis.com/projects/_/buckets/{bucket}"),
            "subject": format!("objects/{name}"),
            "id": "10927368374052581",
            "time": "2024-04-05T17:34:38.901Z",
            "datacontenttype": "application/json",
            "bucket": bucket,
            "data": object_data(bucket, name),
        })
    }

    #[test]
    fn binary_mode_as_eventarc_sends_it() {
        let h = binary_headers(FINALIZED, "quarry-docs", "objects/reports/q1.pdf");
        let ev = parse(&h, &body(&object_data("quarry-docs", "reports/q1.pdf"))).unwrap();
        assert_eq!(
            ev,
            StorageEvent {
                id: "10927368374052581".into(),
                event_type: FINALIZED.into(),
                bucket: "quarry-docs".into(),
                name: "reports/q1.pdf".into(),
                generation: Some("1712345678901234".into()),
                content_type: Some("application/pdf".into()),
                size: Some(482_113),
                metadata: BTreeMap::from([
                    ("region".into(), "emea".into()),
                    ("uploaded-by".into(), "alice@example.com".into()),
                ]),
            }
        );
        assert_eq!(ev.source_uri(), "gs://quarry-docs/reports/q1.pdf");
    }

    #[test]
    fn structured_mode() {
        let ev = parse(
            &structured_headers(),
            &body(&envelope("quarry-docs", "reports/q1.pdf")),
        )
        .unwrap();
        assert_eq!(ev.bucket, "quarry-docs");
        assert_eq!(ev.name, "reports/q1.pdf");
        assert_eq!(ev.id, "10927368374052581");
        assert_eq!(ev.generation.as_deref(), Some("1712345678901234"));
        assert_eq!(ev.size, Some(482_113));
        assert_eq!(ev.metadata.get("region").map(String::as_str), Some("emea"));
    }

    #[test]
    fn structured_mode_with_data_base64() {
        let mut env = envelope("quarry-docs", "notes.md");
        let data = env.as_object_mut().unwrap().remove("data").unwrap();
        env["data_base64"] = base64::engine::general_purpose::STANDARD
            .encode(body(&data))
            .into();
        let ev = parse(&structured_headers(), &body(&env)).unwrap();
        assert_eq!(ev.source_uri(), "gs://quarry-docs/notes.md");
        assert_eq!(ev.size, Some(482_113));
    }

    #[test]
    fn structured_mode_with_data_as_a_json_string() {
        let mut env = envelope("b", "x.txt");
        env["data"] = Value::String(env["data"].to_string());
        assert_eq!(
            parse(&structured_headers(), &body(&env)).unwrap().name,
            "x.txt"
        );
    }

    #[test]
    fn bad_base64_and_both_data_forms_are_invalid() {
        let mut env = envelope("b", "x.txt");
        env.as_object_mut().unwrap().remove("data");
        env["data_base64"] = "%%% not base64".into();
        let err = parse(&structured_headers(), &body(&env)).unwrap_err();
        assert_eq!(err.kind(), "invalid-event", "{err}");

        let mut env = envelope("b", "x.txt");
        env["data_base64"] = "e30=".into();
        let err = parse(&structured_headers(), &body(&env)).unwrap_err();
        assert!(err.to_string().contains("both"), "{err}");
    }

    #[test]
    fn other_event_types_are_unsupported_whatever_their_data() {
        for t in [
            "google.cloud.storage.object.v1.metadataUpdated",
            "google.cloud.storage.object.v1.archived",
            "google.cloud.pubsub.topic.v1.messagePublished",
        ] {
            let h = binary_headers(t, "b", "objects/x");
            let err = parse(&h, b"{\"not\": \"storage data\"}").unwrap_err();
            assert_eq!(err.kind(), "unsupported-event-type", "{t}: {err}");
            assert!(err.to_string().contains(t));

            let mut env = envelope("b", "x");
            env["type"] = t.into();
            env["data"] = Value::Null;
            let err = parse(&structured_headers(), &body(&env)).unwrap_err();
            assert_eq!(err.kind(), "unsupported-event-type", "{t}: {err}");
        }
    }

    #[test]
    fn requests_that_are_not_cloudevents() {
        // A plain JSON POST (a Pub/Sub push, a hand-written curl): no ce-* headers.
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let err = parse(&h, &body(&object_data("b", "x"))).unwrap_err();
        assert_eq!(err.kind(), "not-a-cloudevent");
        assert_eq!(
            err.to_string(),
            "not a CloudEvent: missing header ce-specversion"
        );

        for missing in ["ce-specversion", "ce-type", "ce-source", "ce-id"] {
            let mut h = binary_headers(FINALIZED, "b", "objects/x");
            h.remove(missing);
            let err = parse(&h, &body(&object_data("b", "x"))).unwrap_err();
            assert_eq!(err.kind(), "not-a-cloudevent", "{missing}: {err}");
            assert!(err.to_string().contains(missing), "{err}");
        }

        let mut h = binary_headers(FINALIZED, "b", "objects/x");
        h.insert("ce-specversion", HeaderValue::from_static("0.3"));
        assert_eq!(
            parse(&h, &body(&object_data("b", "x"))).unwrap_err().kind(),
            "not-a-cloudevent"
        );

        let mut env = envelope("b", "x");
        env.as_object_mut().unwrap().remove("specversion");
        let err = parse(&structured_headers(), &body(&env)).unwrap_err();
        assert_eq!(err.kind(), "not-a-cloudevent");
        assert!(err.to_string().contains("specversion"), "{err}");
    }

    #[test]
    fn garbage_bodies_are_invalid() {
        let h = binary_headers(FINALIZED, "b", "objects/x");
        for junk in [
            &b""[..],
            b"not json",
            b"{\"bucket\": ",
            b"[1,2,3]",
            b"\xff\xfe",
            b"null",
        ] {
            let err = parse(&h, junk).unwrap_err();
            assert_eq!(err.kind(), "invalid-event", "{junk:?}: {err}");
        }
        for junk in [&b"not json"[..], b"", b"[]", b"{\"specversion\": 1}"] {
            let err = parse(&structured_headers(), junk).unwrap_err();
            assert_eq!(err.kind(), "invalid-event", "{junk:?}: {err}");
        }
    }

    #[test]
    fn non_json_binary_content_type_is_invalid() {
        let mut h = binary_headers(FINALIZED, "b", "objects/x");
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/protobuf"),
        );
        let err = parse(&h, b"\x0a\x01b").unwrap_err();
        assert_eq!(err.kind(), "invalid-event");
        assert!(err.to_string().contains("application/protobuf"), "{err}");
    }

    #[test]
    fn batch_mode_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/cloudevents-batch+json"),
        );
        let err = parse(&h, b"[]").unwrap_err();
        assert_eq!(err.kind(), "invalid-event");
    }

    #[test]
    fn missing_bucket_or_name_is_invalid() {
        for field in ["bucket", "name"] {
            let mut data = object_data("b", "x");
            data.as_object_mut().unwrap().remove(field);
            let h = binary_headers(FINALIZED, "b", "objects/x");
            let err = parse(&h, &body(&data)).unwrap_err();
            assert_eq!(err.kind(), "invalid-event", "{field}: {err}");
            assert!(err.to_string().contains(if field == "name" {
                "object name"
            } else {
                field
            }));

            let mut data = object_data("b", "x");
            data[field] = "".into();
            assert_eq!(parse(&h, &body(&data)).unwrap_err().kind(), "invalid-event");
        }
    }

    #[test]
    fn attributes_that_contradict_the_data_are_invalid() {
        // Source names another bucket.
        let h = binary_headers(FINALIZED, "other-bucket", "objects/x");
        let err = parse(&h, &body(&object_data("b", "x"))).unwrap_err();
        assert_eq!(err.kind(), "invalid-event");
        assert!(err.to_string().contains("other-bucket"), "{err}");

        // Subject names another object.
        let h = binary_headers(FINALIZED, "b", "objects/y");
        let err = parse(&h, &body(&object_data("b", "x"))).unwrap_err();
        assert_eq!(err.kind(), "invalid-event");
        assert!(err.to_string().contains("objects/y"), "{err}");

        // Source that is not a storage source at all.
        let mut env = envelope("b", "x");
        env["source"] = "//pubsub.googleapis.com/projects/p/topics/t".into();
        assert_eq!(
            parse(&structured_headers(), &body(&env))
                .unwrap_err()
                .kind(),
            "invalid-event"
        );
    }

    #[test]
    fn subject_is_optional() {
        let mut h = binary_headers(FINALIZED, "b", "objects/x");
        h.remove("ce-subject");
        assert_eq!(parse(&h, &body(&object_data("b", "x"))).unwrap().name, "x");
    }

    #[test]
    fn size_and_generation_must_be_integers() {
        let h = binary_headers(FINALIZED, "b", "objects/x");
        for (field, bad) in [
            ("size", Value::from("12kB")),
            ("size", Value::from(-1)),
            ("size", Value::from(1.5)),
            ("generation", Value::from("latest")),
            ("generation", Value::Bool(true)),
        ] {
            let mut data = object_data("b", "x");
            data[field] = bad.clone();
            let err = parse(&h, &body(&data)).unwrap_err();
            assert_eq!(err.kind(), "invalid-event", "{field}={bad}: {err}");
            assert!(err.to_string().contains(field), "{err}");
        }
        // Plain JSON numbers are accepted too.
        let mut data = object_data("b", "x");
        data["size"] = 42.into();
        data["generation"] = 7.into();
        let ev = parse(&h, &body(&data)).unwrap();
        assert_eq!((ev.size, ev.generation.as_deref()), (Some(42), Some("7")));
    }

    #[test]
    fn optional_fields_may_be_absent() {
        let h = binary_headers(FINALIZED, "b", "objects/x");
        let data = serde_json::json!({ "bucket": "b", "name": "x" });
        let ev = parse(&h, &body(&data)).unwrap();
        assert_eq!(ev.generation, None);
        assert_eq!(ev.size, None);
        assert_eq!(ev.content_type, None);
        assert!(ev.metadata.is_empty());
    }

    /// What the CloudEvents HTTP binding percent-encodes in header values (non-ASCII is always
    /// encoded by `utf8_percent_encode`).
    const HEADER_ESCAPES: &percent_encoding::AsciiSet =
        &percent_encoding::CONTROLS.add(b' ').add(b'"').add(b'%');

    #[test]
    fn names_with_spaces_and_unicode() {
        let name = "folder/a b+ü 漢字 %41.pdf";
        let data = body(&object_data("quarry-docs", name));

        // Percent-encoded ce-subject, as the CloudEvents HTTP binding requires.
        let encoded: String =
            percent_encoding::utf8_percent_encode(&format!("objects/{name}"), HEADER_ESCAPES)
                .to_string();
        let h = binary_headers(FINALIZED, "quarry-docs", &encoded);
        let ev = parse(&h, &data).unwrap();
        assert_eq!(ev.name, name);
        assert_eq!(ev.source_uri(), format!("gs://quarry-docs/{name}"));

        // Raw UTF-8 in the header, as some senders do: the literal `%41` must not break it.
        let h = binary_headers(FINALIZED, "quarry-docs", &format!("objects/{name}"));
        assert_eq!(parse(&h, &data).unwrap().name, name);

        // Structured mode carries the name as a plain JSON string.
        let ev = parse(&structured_headers(), &body(&envelope("quarry-docs", name))).unwrap();
        assert_eq!(ev.name, name);
    }

    #[test]
    fn null_metadata_values_are_skipped() {
        let h = binary_headers(FINALIZED, "b", "objects/x");
        let mut data = object_data("b", "x");
        data["metadata"] = serde_json::json!({ "kept": "yes", "gone": null });
        let ev = parse(&h, &body(&data)).unwrap();
        assert_eq!(ev.metadata, BTreeMap::from([("kept".into(), "yes".into())]));
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = format!("google.cloud.{}", "x".repeat(5000));
        let h = binary_headers(&long, "b", "objects/x");
        let msg = parse(&h, b"{}").unwrap_err().to_string();
        assert!(msg.len() < 300, "{}", msg.len());
    }
}
