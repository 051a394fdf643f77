//! The server handle: a thread running its own tokio runtime serves HTTP/1.1 on 127.0.0.1, so
//! synchronous tests and `#[tokio::test]`s alike can start one.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, Uri};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::oneshot;

pub use crate::state::{RecordedRequest, SeedError};

use crate::catalog::{ResourceType, split_api_version};
use crate::faults::Failure;
use crate::router::{self, ApiRequest, Query};
use crate::state::State;
use crate::store::ObjectKey;

/// An in-memory Kubernetes API server listening on `127.0.0.1` (see the crate docs).
///
/// Dropping the handle stops the server.
pub struct LoopbackApi {
    state: Arc<Mutex<State>>,
    address: SocketAddr,
    uri: Uri,
    running: Mutex<Option<Running>>,
}

struct Running {
    shutdown: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl LoopbackApi {
    /// Binds a free port on 127.0.0.1 and serves from a background thread. Needs no runtime;
    /// the namespaces `default`, `kube-system`, `kube-public` and `kube-node-lease` exist.
    pub fn start() -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let uri = Uri::builder()
            .scheme("http")
            .authority(address.to_string())
            .path_and_query("/")
            .build()
            .map_err(std::io::Error::other)?;
        let state = Arc::new(Mutex::new(State::new(address.to_string())));
        let (shutdown, shutdown_signal) = oneshot::channel();
        let (ready, ready_signal) = std::sync::mpsc::channel();
        let served = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name(format!("kube-loopback-{}", address.port()))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = ready.send(Err(error));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => {
                            let _ = ready.send(Ok(()));
                            serve(listener, served, shutdown_signal).await;
                        }
                        Err(error) => {
                            let _ = ready.send(Err(error));
                        }
                    }
                });
            })?;
        ready_signal
            .recv()
            .map_err(|_| std::io::Error::other("the server thread ended before it was ready"))??;
        Ok(LoopbackApi {
            state,
            address,
            uri,
            running: Mutex::new(Some(Running { shutdown, thread })),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// A kube `Config` for this server: its URL, no auth, namespace `default`, and kube's
    /// default retries (429/503/504 retried up to 15 times with growing back-off).
    pub fn config(&self) -> kube::Config {
        let mut config = kube::Config::new(self.uri.clone());
        config.default_namespace = "default".into();
        config
    }

    /// A kube `Client` for this server, like [`config`](Self::config) but with kube's automatic
    /// retries off, so tests see each 429/503 the server gives (a budget-blocked eviction would
    /// otherwise be retried for minutes). Must be called inside a tokio runtime.
    pub fn client(&self) -> Result<kube::Client, kube::Error> {
        let mut config = self.config();
        config.default_retry = false;
        kube::Client::try_from(config)
    }

    /// Stops serving: the port closes and open connections drop, so clients get connection
    /// errors. The stored state stays readable. Stopping twice does nothing.
    pub fn stop(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(running) = running {
            let _ = running.shutdown.send(());
            let _ = running.thread.join();
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores an object as given (`apiVersion`, `kind`, `metadata.name` required; a namespaced
    /// one without namespace goes to `default`), replacing any with the same name. Unlike a
    /// create through the API there is no validation and no namespace check, and `status` is
    /// kept — the way to set up pods that are Running and Ready, nodes, old timestamps.
    pub fn insert(&self, object: Value) -> Result<Value, SeedError> {
        self.state().seed(object)
    }

    /// The stored object, as a client reading it through `api_version` would see it.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let state = self.state();
        let resource = state.catalog.find_kind(api_version, kind)?;
        let key = ObjectKey::new(&resource, namespace.unwrap_or_default(), name);
        let object = state.store.get(&key)?;
        Some(crate::verbs::present(&state.store, &resource, object))
    }

    /// Stored objects of a kind, in one namespace or (`None`) in all, in list order.
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let state = self.state();
        let Some(resource) = state.catalog.find_kind(api_version, kind) else {
            return Vec::new();
        };
        state
            .store
            .list(&resource, namespace.filter(|_| resource.namespaced()))
            .map(|(_, object)| crate::verbs::present(&state.store, &resource, object))
            .collect()
    }

    /// Removes an object outright (no finalizers, no cascade); returns what was stored.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let mut state = self.state();
        let resource = state.catalog.find_kind(api_version, kind)?;
        let key = ObjectKey::new(&resource, namespace.unwrap_or_default(), name);
        state.store.remove(&key)
    }

    /// Serves another resource (e.g. a CRD's kind without creating the CRD). Takes effect at
    /// once; creating a `CustomResourceDefinition` through the API does the same.
    pub fn register_resource(&self, resource: ResourceType) {
        self.state().catalog.register(resource);
    }

    /// Whether a resource is served at `api_version` with this kind.
    pub fn serves(&self, api_version: &str, kind: &str) -> bool {
        let (group, version) = split_api_version(api_version);
        self.state()
            .catalog
            .types()
            .any(|t| t.group == group && t.version == version && t.kind == kind)
    }

    /// Makes the next request with `method` whose path starts with `path_prefix` fail with
    /// `status` (e.g. 500, 503, 429, 403) and a matching `Status` body.
    pub fn fail_next(&self, method: &str, path_prefix: &str, status: u16) {
        self.add_failure(
            Failure::new(status)
                .method(method)
                .path_prefix(path_prefix)
                .times(1),
        );
    }

    /// Adds a failure rule; rules are tried in the order added.
    pub fn add_failure(&self, failure: Failure) {
        self.state().faults.add(failure);
    }

    pub fn clear_failures(&self) {
        self.state().faults.clear();
    }

    /// Sets the clock objects are stamped with (RFC 3339, e.g. `"2026-03-01T12:00:00Z"`).
    pub fn set_time(&self, rfc3339: &str) {
        self.state().store.set_now(rfc3339);
    }

    /// The current global `resourceVersion`.
    pub fn resource_version(&self) -> String {
        self.state().store.revision()
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }
}

impl Drop for LoopbackApi {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<Mutex<State>>,
    mut shutdown: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    let service = service_fn(move |request| answer(Arc::clone(&state), request));
                    // A client hanging up mid-request is not the server's concern.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
    // Returning drops the listener and, with the runtime, every connection task.
}

async fn answer(
    state: Arc<Mutex<State>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let header = |name: hyper::header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let raw_query = parts.uri.query().unwrap_or_default().to_string();
    let request = ApiRequest {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: Query::parse(&raw_query),
        content_type: header(hyper::header::CONTENT_TYPE),
        accept: header(hyper::header::ACCEPT),
        user_agent: header(hyper::header::USER_AGENT),
        body,
    };
    let reply = {
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        let reply = router::handle(&mut state, &request);
        state.requests.push(RecordedRequest {
            method: request.method.clone(),
            path: request.path.clone(),
            query: raw_query,
            status: reply.code,
        });
        reply
    };
    let body = match &reply.body {
        Value::String(text) if reply.content_type == "text/plain" => Bytes::from(text.clone()),
        json => Bytes::from(json.to_string()),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() =
        hyper::StatusCode::from_u16(reply.code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(content_type) = hyper::header::HeaderValue::from_str(&reply.content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, content_type);
    }
    Ok(response)
}
