//! An HTTP proxy between the functions and the emulator: it counts every AWS
//! call by operation and can fault a share of them the way AWS fails during
//! the events Ballast reacts to — throttling and 5xx answers in each
//! protocol's own error format, slow answers, and connections dropped after
//! the call was applied (the answer is lost, the change is not).
//! Used by the fault-injection tests and the benchmarks' event storm.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// How a faulted call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// 400 `Throttling` (EC2: 503 `RequestLimitExceeded`).
    Throttle,
    /// 500 `InternalFailure`.
    ServerError,
    /// 503 `ServiceUnavailable`.
    Unavailable,
    /// The call is forwarded after a delay.
    Slow,
    /// The call is applied, then the connection is closed without an answer.
    Dropped,
}

const FAULTS: [Fault; 5] = [
    Fault::Throttle,
    Fault::ServerError,
    Fault::Unavailable,
    Fault::Slow,
    Fault::Dropped,
];

/// How long a `Slow` call waits before it is forwarded.
pub const SLOW: Duration = Duration::from_millis(800);

/// A targeted fault: what happens to every call of one operation
/// (optionally only those whose request mentions a text, such as a tag key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Targeted {
    /// Answered 403 `AccessDenied` (EC2: `UnauthorizedOperation`) and not
    /// applied: not retryable, a step that fails for good.
    Refuse,
    /// Applied, then the connection is closed without an answer (every
    /// retry of the SDK too): the change is made, its answer is lost.
    DropAnswer,
    /// Answered only after this long: a hung call.
    Delay(Duration),
    /// Never forwarded, never answered: a call that hangs until its caller
    /// gives up or dies (it never reaches AWS).
    Hang,
}

#[derive(Debug, Clone)]
struct Rule {
    operation: String,
    mentioning: Option<String>,
    fault: Targeted,
}

struct State {
    upstream: String,
    rules: Mutex<Vec<Rule>>,
    /// Calls a targeted rule applied to, by operation.
    targeted: Mutex<BTreeMap<String, u64>>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    /// Faulted share of calls, in millionths.
    rate_ppm: AtomicU64,
    rng: Mutex<fastrand::Rng>,
    calls: Mutex<BTreeMap<String, u64>>,
    /// Time spent upstream (in the emulator), by operation.
    upstream_time: Mutex<BTreeMap<String, Duration>>,
    faults: Mutex<BTreeMap<(String, Fault), u64>>,
}

pub struct Proxy {
    pub port: u16,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Proxies to `upstream` (e.g. moto's endpoint), faulting `rate` (0..=1)
    /// of the calls, chosen by a generator seeded with `seed` so that a run
    /// can be repeated.
    pub async fn start(upstream: &str, rate: f64, seed: u64) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            rules: Mutex::new(vec![]),
            targeted: Mutex::new(BTreeMap::new()),
            client: Client::builder(TokioExecutor::new()).build_http(),
            rate_ppm: AtomicU64::new(0),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            calls: Mutex::new(BTreeMap::new()),
            upstream_time: Mutex::new(BTreeMap::new()),
            faults: Mutex::new(BTreeMap::new()),
        });
        let proxy_state = state.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = proxy_state.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { handle(&state, req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let proxy = Proxy {
            port,
            state,
            server,
        };
        proxy.set_fault_rate(rate);
        proxy
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_fault_rate(&self, rate: f64) {
        let ppm = (rate.clamp(0.0, 1.0) * 1_000_000.0).round() as u64;
        self.state.rate_ppm.store(ppm, Ordering::Relaxed);
    }

    /// From now on, every call of `operation` (whose request mentions
    /// `mentioning`, when given: a tag key, a resource name) meets `fault`.
    pub fn target(&self, operation: &str, mentioning: Option<&str>, fault: Targeted) {
        self.state.rules.lock().unwrap().push(Rule {
            operation: operation.into(),
            mentioning: mentioning.map(str::to_string),
            fault,
        });
    }

    /// Removes every targeted fault.
    pub fn clear_targets(&self) {
        self.state.rules.lock().unwrap().clear();
    }

    /// Calls a targeted fault applied to, for `operation`.
    pub fn targeted_calls(&self, operation: &str) -> u64 {
        self.state
            .targeted
            .lock()
            .unwrap()
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// Calls seen, by operation (`SetInstanceHealth`, `Publish`, ...),
    /// faulted or not.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.state.calls.lock().unwrap().clone()
    }

    pub fn calls_of(&self, operation: &str) -> u64 {
        self.calls().get(operation).copied().unwrap_or(0)
    }

    /// Time the emulator took to answer, by operation.
    pub fn upstream_time(&self) -> BTreeMap<String, Duration> {
        self.state.upstream_time.lock().unwrap().clone()
    }

    pub fn total_calls(&self) -> u64 {
        self.calls().values().sum()
    }

    /// Faults injected, by operation and kind.
    pub fn faults(&self) -> BTreeMap<(String, Fault), u64> {
        self.state.faults.lock().unwrap().clone()
    }

    pub fn total_faults(&self) -> u64 {
        self.faults().values().sum()
    }

    /// `moto`'s SDK configuration, pointed at this proxy instead.
    pub fn sdk_config(&self, moto: &crate::moto::Moto) -> SdkConfig {
        moto.sdk_config()
            .into_builder()
            .endpoint_url(self.endpoint())
            .build()
    }

    /// `moto`'s environment for a function process, pointed at this proxy.
    pub fn env(&self, moto: &crate::moto::Moto) -> Vec<(String, String)> {
        moto.env()
            .into_iter()
            .map(|(k, v)| {
                if k == "AWS_ENDPOINT_URL" {
                    (k, self.endpoint())
                } else {
                    (k, v)
                }
            })
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The signing name in the SigV4 credential scope: `.../us-east-1/autoscaling/aws4_request`.
fn service_of(req: &Request<Incoming>) -> String {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| auth.split("Credential=").nth(1))
        .and_then(|cred| cred.split('/').nth(3))
        .unwrap_or("unknown")
        .to_string()
}

/// The operation of a call in any of the protocols Ballast's clients use:
/// the query protocols' `Action=`, the JSON protocols' `X-Amz-Target`, and
/// Route 53's REST paths.
fn operation_of(method: &str, path: &str, target: Option<&str>, body: &[u8]) -> String {
    if let Some(t) = target {
        return t.rsplit('.').next().unwrap_or(t).to_string();
    }
    let form = String::from_utf8_lossy(body);
    if let Some(action) = form.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
        return action.to_string();
    }
    let path = path.split('?').next().unwrap_or(path);
    match (method, path) {
        ("POST", p) if p.ends_with("/rrset") || p.ends_with("/rrset/") => {
            "ChangeResourceRecordSets".into()
        }
        ("GET", p) if p.ends_with("/rrset") || p.ends_with("/rrset/") => {
            "ListResourceRecordSets".into()
        }
        ("GET", p) if p.contains("/change/") => "GetChange".into(),
        _ => format!("{method} {path}"),
    }
}

/// An error answer in the service's own protocol.
fn error_response(
    service: &str,
    status: StatusCode,
    code: &str,
    message: &str,
) -> Response<Full<Bytes>> {
    if JSON_SERVICES.contains(&service) {
        // awsJson1_0 (DynamoDB): `__type` names the error.
        let code = if code == "AccessDenied" {
            "AccessDeniedException"
        } else {
            code
        };
        let body = serde_json::json!({"__type": code, "message": message}).to_string();
        return Response::builder()
            .status(status)
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amzn-requestid", "ballast-fault")
            .body(Full::new(Bytes::from(body)))
            .expect("a valid response");
    }
    let body = if service == "ec2" {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>ballast-fault</RequestID></Response>"
        )
    } else {
        let kind = if status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        };
        format!(
            "<?xml version=\"1.0\"?>\n<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>ballast-fault</RequestId></ErrorResponse>"
        )
    };
    Response::builder()
        .status(status)
        .header("content-type", "text/xml")
        .header("x-amzn-requestid", "ballast-fault")
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

/// Services whose errors are JSON (the signing name).
const JSON_SERVICES: [&str; 1] = ["dynamodb"];

/// A request's path and body, percent-decoded: what a rule's `mentioning`
/// is looked for in (query-protocol bodies encode `:` as `%3A`).
fn request_text(path: &str, body: &[u8]) -> String {
    let raw = format!("{path} {}", String::from_utf8_lossy(body));
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}

impl std::error::Error for DropConnection {}

async fn handle(
    state: &State,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    let service = service_of(&req);
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok());
    let operation = operation_of(
        parts.method.as_str(),
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/"),
        target,
        &body,
    );
    *state
        .calls
        .lock()
        .unwrap()
        .entry(operation.clone())
        .or_default() += 1;

    let text = request_text(
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/"),
        &body,
    );
    let rule = state
        .rules
        .lock()
        .unwrap()
        .iter()
        .find(|r| {
            r.operation == operation && r.mentioning.as_deref().is_none_or(|m| text.contains(m))
        })
        .map(|r| r.fault);
    if rule.is_some() {
        *state
            .targeted
            .lock()
            .unwrap()
            .entry(operation.clone())
            .or_default() += 1;
    }
    match rule {
        Some(Targeted::Refuse) => {
            let code = if service == "ec2" {
                "UnauthorizedOperation"
            } else {
                "AccessDenied"
            };
            return Ok(error_response(
                &service,
                StatusCode::FORBIDDEN,
                code,
                "User is not authorized to perform this operation (fault proxy)",
            ));
        }
        Some(Targeted::Delay(d)) => tokio::time::sleep(d).await,
        Some(Targeted::Hang) => std::future::pending::<()>().await,
        _ => {}
    }

    let fault = {
        let mut rng = state.rng.lock().unwrap();
        let rate = state.rate_ppm.load(Ordering::Relaxed);
        (rng.u64(0..1_000_000) < rate).then(|| FAULTS[rng.usize(0..FAULTS.len())])
    };
    if let Some(kind) = fault {
        *state
            .faults
            .lock()
            .unwrap()
            .entry((operation.clone(), kind))
            .or_default() += 1;
        match kind {
            Fault::Throttle if service == "ec2" => {
                return Ok(error_response(
                    &service,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "RequestLimitExceeded",
                    "Request limit exceeded.",
                ))
            }
            Fault::Throttle => {
                return Ok(error_response(
                    &service,
                    StatusCode::BAD_REQUEST,
                    "Throttling",
                    "Rate exceeded",
                ))
            }
            Fault::ServerError => {
                return Ok(error_response(
                    &service,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    if service == "ec2" {
                        "InternalError"
                    } else {
                        "InternalFailure"
                    },
                    "We encountered an internal error. Please try again.",
                ))
            }
            Fault::Unavailable => {
                return Ok(error_response(
                    &service,
                    StatusCode::SERVICE_UNAVAILABLE,
                    if service == "ec2" {
                        "Unavailable"
                    } else {
                        "ServiceUnavailable"
                    },
                    "Service is unavailable. Please try again.",
                ))
            }
            Fault::Slow => tokio::time::sleep(SLOW).await,
            Fault::Dropped => {}
        }
    }

    let uri = format!(
        "{}{}",
        state.upstream,
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut upstream = Request::builder().method(parts.method.clone()).uri(uri);
    for (name, value) in parts.headers.iter() {
        if name != "host" {
            upstream = upstream.header(name, value);
        }
    }
    let upstream = upstream
        .body(Full::new(body))
        .expect("a valid upstream request");
    let sent = std::time::Instant::now();
    let answer = match state.client.request(upstream).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Response::from_parts(parts, Full::new(body))
        }
        Err(e) => error_response(
            &service,
            StatusCode::BAD_GATEWAY,
            "ProxyUpstreamError",
            &e.to_string(),
        ),
    };
    *state
        .upstream_time
        .lock()
        .unwrap()
        .entry(operation.clone())
        .or_default() += sent.elapsed();
    if fault == Some(Fault::Dropped) || rule == Some(Targeted::DropAnswer) {
        return Err(DropConnection);
    }
    Ok(answer)
}
