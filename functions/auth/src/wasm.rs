//! The wasi:http glue of the `auth` component: exports `wasi:http/incoming-handler`, turns each
//! incoming request into an [`http::Request`] for [`Edge::handle`] and writes its answer back.
//!
//! Only the `wasi:http/proxy` world plus `wasi:cli/environment` are imported (the settings are
//! environment variables), so Spin and `wasmtime serve -Scli` both run it; nothing Spin-specific.
//! Hosts instantiate a component per request, so the settings are read and the policy parsed on
//! every request: a few tens of microseconds for the demo policy.

use std::io::{Read, Write};

use http::{HeaderName, HeaderValue, Method, Request, Response};
use quarry_shared::http::ApiError;
use wasip2::http::types::{
    Fields, IncomingRequest, Method as WasiMethod, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

use crate::edge::{Body, Edge};

wasip2::http::proxy::export!(Component);

/// The exported handler.
struct Component;

impl wasip2::exports::http::incoming_handler::Guest for Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let response = match Edge::from_env() {
            Ok(edge) => match to_http(&request, edge.max_body_bytes()) {
                Ok(request) => edge.handle(request),
                Err(err) => err.to_http(None),
            },
            Err(err) => {
                // Goes to the host's log (wasi:cli/stderr); names the variable, never a value.
                eprintln!("quarry-auth: not configured: {err}");
                ApiError::Unavailable {
                    kind: "misconfigured",
                    detail: "The auth component is not configured; its log says what is missing."
                        .to_owned(),
                    retry_after: None,
                }
                .to_http(None)
            }
        };
        send(response, response_out);
    }
}

/// The request as `http` types, its body read up to `limit` bytes.
fn to_http(request: &IncomingRequest, limit: usize) -> Result<Request<Body>, ApiError> {
    let method = match request.method() {
        WasiMethod::Get => Method::GET,
        WasiMethod::Head => Method::HEAD,
        WasiMethod::Post => Method::POST,
        WasiMethod::Put => Method::PUT,
        WasiMethod::Delete => Method::DELETE,
        WasiMethod::Connect => Method::CONNECT,
        WasiMethod::Options => Method::OPTIONS,
        WasiMethod::Trace => Method::TRACE,
        WasiMethod::Patch => Method::PATCH,
        WasiMethod::Other(other) => Method::from_bytes(other.as_bytes())
            .map_err(|_| ApiError::bad_request("bad-request", "invalid HTTP method"))?,
    };
    let uri = request.path_with_query().unwrap_or_else(|| "/".to_owned());
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in request.headers().entries() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) else {
            return Err(ApiError::bad_request("bad-request", "invalid header"));
        };
        builder = builder.header(name, value);
    }
    let body = read_body(request, limit)?;
    builder
        .body(body)
        .map_err(|_| ApiError::bad_request("bad-request", "invalid request line"))
}

/// Reads at most `limit` bytes; one byte more means the body is too large.
fn read_body(request: &IncomingRequest, limit: usize) -> Result<Body, ApiError> {
    let unreadable = || ApiError::bad_request("bad-request", "the request body cannot be read");
    let incoming = request.consume().map_err(|()| unreadable())?;
    let mut stream = incoming.stream().map_err(|()| unreadable())?;
    let mut bytes = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    stream
        .by_ref()
        .take(cap)
        .read_to_end(&mut bytes)
        .map_err(|_| unreadable())?;
    drop(stream);
    drop(incoming);
    Ok(if bytes.len() > limit {
        Body::TooLarge
    } else {
        Body::Read(bytes)
    })
}

/// Writes `response` to the host.
fn send(response: Response<Vec<u8>>, out: ResponseOutparam) {
    let entries: Vec<(String, Vec<u8>)> = response
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    // Our own header names and values are valid; if the host refused one anyway, answer without
    // headers rather than not at all.
    let headers = Fields::from_list(&entries).unwrap_or_else(|_| Fields::new());
    let outgoing = OutgoingResponse::new(headers);
    // A status from `http::StatusCode` is always valid.
    let _ = outgoing.set_status_code(response.status().as_u16());
    let Ok(body) = outgoing.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(outgoing));
    let Ok(mut stream) = body.write() else {
        return;
    };
    // A client that went away is not an error worth more than dropping the rest.
    let written = stream
        .write_all(response.body())
        .and_then(|()| Write::flush(&mut stream));
    drop(stream);
    if written.is_ok() {
        let _ = OutgoingBody::finish(body, None);
    }
}
