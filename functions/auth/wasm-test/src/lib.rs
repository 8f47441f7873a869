//! # quarry-auth-wasm-test
//!
//! Runs the `auth` WASM component (`quarry_auth.wasm`) the way `wasmtime serve` does, in-process:
//! the component is compiled once, linked against the WASI and wasi:http host implementations of
//! wasmtime, pre-instantiated ([`ProxyPre`]), and then every request gets a fresh [`Store`] and
//! instance, with the environment variables the component reads its settings from.
//!
//! - [`build_component`]: builds the component with cargo (release, `wasm32-wasip2`) unless
//!   `QUARRY_AUTH_WASM` names a file already built; `scripts/test.sh` builds it first, so the
//!   build is its own step there and this is a no-op.
//! - [`Host`]: the engine and the pre-instantiated component; [`Host::call`] answers one request.
//!
//! Used by `tests/decisions.rs` (the component against the native function on the Governance
//! token matrix) and `examples/instantiate.rs` (per-request instantiation time).
#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::bindings::ProxyPre;
use wasmtime_wasi_http::body::HyperOutgoingBody;
use wasmtime_wasi_http::types::{HostFutureIncomingResponse, OutgoingRequestConfig};
use wasmtime_wasi_http::{HttpResult, WasiHttpCtx, WasiHttpView};

/// The workspace root (this crate lives in `functions/auth/wasm-test`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(3)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Builds the component (release, `wasm32-wasip2`, `--no-default-features --features wasm`) and
/// returns its path. `QUARRY_AUTH_WASM`, when set, names a component to use as it is.
///
/// # Errors
/// When cargo cannot be run, the build fails (is `rustup target add wasm32-wasip2` done?), or the
/// file is not where cargo puts it.
pub fn build_component() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("QUARRY_AUTH_WASM") {
        return Ok(PathBuf::from(path));
    }
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "-p",
            "quarry-auth",
            "--target",
            "wasm32-wasip2",
            "--release",
            "--no-default-features",
            "--features",
            "wasm",
        ])
        .status()
        .context("cannot run cargo to build the auth component")?;
    if !status.success() {
        bail!(
            "building the auth component failed ({status}); is the wasm32-wasip2 target installed?"
        );
    }
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let path = target_dir.join("wasm32-wasip2/release/quarry_auth.wasm");
    if !path.is_file() {
        bail!("the auth component is not at {}", path.display());
    }
    Ok(path)
}

/// How instances get their memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    /// Memory mapped for each instance and unmapped after (wasmtime's default).
    OnDemand,
    /// Slots reserved up front and reused (what `wasmtime serve` uses).
    Pooling,
}

/// Per-request state of the store: WASI (environment only; no files, no sockets, no inherited
/// environment) and wasi:http.
struct State {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn ctx(&mut self) -> &mut WasiHttpCtx {
        &mut self.http
    }

    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// Outbound requests are refused, as Spin does with `allowed_outbound_hosts = []`: the
    /// component must decide without the network.
    fn send_request(
        &mut self,
        _request: hyper::Request<HyperOutgoingBody>,
        _config: OutgoingRequestConfig,
    ) -> HttpResult<HostFutureIncomingResponse> {
        Err(ErrorCode::HttpRequestDenied.into())
    }
}

/// A response from the component, body collected.
#[derive(Debug)]
pub struct Answer {
    /// Status and headers.
    pub parts: http::response::Parts,
    /// The whole body.
    pub body: Bytes,
}

/// The engine and the pre-instantiated component.
pub struct Host {
    pre: ProxyPre<State>,
}

impl Host {
    /// Compiles `component` and pre-instantiates it against the WASI (`wasi:cli` included, as
    /// `wasmtime serve -Scli` does) and wasi:http host interfaces.
    ///
    /// # Errors
    /// When the file is not a component, or it imports something the host does not provide.
    pub fn new(component: &Path, allocation: Allocation) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.async_support(true);
        if allocation == Allocation::Pooling {
            let mut pooling = PoolingAllocationConfig::default();
            pooling.total_component_instances(64);
            pooling.total_core_instances(64);
            pooling.total_memories(64);
            pooling.total_tables(64);
            pooling.max_memory_size(64 << 20);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
        }
        let engine = Engine::new(&config)?;
        let component = Component::from_file(&engine, component)
            .with_context(|| format!("cannot load {}", component.display()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::add_only_http_to_linker_async(&mut linker)?;
        let pre = ProxyPre::new(linker.instantiate_pre(&component)?)?;
        Ok(Self { pre })
    }

    /// Instantiates the component with `env` and lets it answer `request`.
    ///
    /// # Errors
    /// When instantiation fails, the component traps, or it answers nothing.
    pub async fn call(
        &self,
        env: &[(String, String)],
        request: http::Request<Bytes>,
    ) -> anyhow::Result<Answer> {
        let mut store = self.store(env);
        let (parts, body) = request.into_parts();
        let body = Full::new(body)
            .map_err(|never: std::convert::Infallible| -> hyper::Error { match never {} });
        let request = hyper::Request::from_parts(parts, body);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let incoming = store
            .data_mut()
            .new_incoming_request(Scheme::Http, request)?;
        let outparam = store.data_mut().new_response_outparam(sender)?;
        let proxy = self.pre.instantiate_async(&mut store).await?;
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, incoming, outparam)
            .await?;
        let response = match receiver.await {
            Ok(Ok(response)) => response,
            Ok(Err(code)) => bail!("the component answered with error {code:?}"),
            Err(_) => bail!("the component set no response"),
        };
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("response body: {e:?}"))?
            .to_bytes();
        Ok(Answer { parts, body })
    }

    /// The interfaces the component imports (what a host must provide).
    pub fn imports(&self) -> Vec<String> {
        let component = self.pre.instance_pre().component();
        component
            .component_type()
            .imports(self.pre.engine())
            .map(|(name, _)| name.to_owned())
            .collect()
    }

    /// Only instantiates (for timing instantiation alone).
    ///
    /// # Errors
    /// When instantiation fails.
    pub async fn instantiate(&self, env: &[(String, String)]) -> anyhow::Result<()> {
        let mut store = self.store(env);
        self.pre.instantiate_async(&mut store).await?;
        Ok(())
    }

    fn store(&self, env: &[(String, String)]) -> Store<State> {
        let mut wasi = WasiCtx::builder();
        wasi.envs(env).inherit_stderr();
        Store::new(
            self.pre.engine(),
            State {
                table: ResourceTable::new(),
                wasi: wasi.build(),
                http: WasiHttpCtx::new(),
            },
        )
    }
}
