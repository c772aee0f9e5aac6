//! A minimal Lambda Runtime API host (the HTTP interface `lambda_runtime`
//! polls inside Lambda), enough to run the real release binaries locally:
//! `GET /next` hands out queued events, `POST .../response|error` and
//! `POST /init/error` are collected. See
//! <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, oneshot};

/// What a function answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `POST /invocation/{id}/response`: the function's result.
    Response(Value),
    /// `POST /invocation/{id}/error`: Lambda would count an error and retry.
    Error(Value),
}

struct Pending {
    id: String,
    payload: Value,
}

struct Shared {
    function_name: String,
    function_arn: String,
    /// The environment the function was started with (what
    /// `GetFunctionConfiguration` shows).
    environment: Mutex<std::collections::BTreeMap<String, String>>,
    sender: mpsc::UnboundedSender<Pending>,
    counter: AtomicU64,
    timeout: Duration,
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    init_error: Mutex<Option<Value>>,
    /// When the function first asked for work: the end of its init.
    first_next: Mutex<Option<Instant>>,
}

pub struct RuntimeHost {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeHost {
    /// Serves the Runtime API on a free loopback port. `timeout` is the
    /// function's configured timeout (it sets each invocation's deadline).
    pub async fn start(function_name: &str, timeout: Duration) -> RuntimeHost {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            function_name: function_name.to_string(),
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function_name}"),
            environment: Mutex::new(Default::default()),
            sender: tx,
            counter: AtomicU64::new(0),
            timeout,
            queue: tokio::sync::Mutex::new(rx),
            waiting: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
            first_next: Mutex::new(None),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            // The Lambda API's Invoke and GetFunctionConfiguration, as the
            // service model shapes them, for clients of the function (the
            // `ballast` command): moto's Lambda runs code only in Docker.
            .route(
                "/2015-03-31/functions/{name}/invocations",
                post(lambda_invoke),
            )
            .route(
                "/2015-03-31/functions/{name}/configuration",
                get(lambda_configuration),
            )
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        RuntimeHost {
            addr,
            shared,
            server,
        }
    }

    /// `AWS_LAMBDA_RUNTIME_API` for the function process.
    pub fn runtime_api(&self) -> String {
        self.addr.to_string()
    }

    /// Queues one event and waits for the function's answer.
    pub async fn invoke(&self, payload: Value) -> Result<Answer, String> {
        enqueue(&self.shared, payload).await
    }

    /// The endpoint of the Lambda API this host serves for its function
    /// (`AWS_ENDPOINT_URL_LAMBDA` of a client).
    pub fn lambda_endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn init_error(&self) -> Option<Value> {
        self.shared.init_error.lock().unwrap().clone()
    }

    pub fn first_next(&self) -> Option<Instant> {
        *self.shared.first_next.lock().unwrap()
    }

    /// Starts `binary` with `env`, which its init must refuse: waits for
    /// the process to exit with a failure and returns its log lines.
    pub async fn init_fails(
        &self,
        binary: &Path,
        function_name: &str,
        env: &[(String, String)],
    ) -> String {
        let mut process = self.spawn(binary, function_name, env);
        let status = process
            .wait_exit(Duration::from_secs(10))
            .await
            .expect("init fails and the process exits");
        assert!(!status.success(), "init succeeded with {env:?}");
        process.logs().join("\n")
    }

    /// Starts a function binary against this host, with the variables Lambda
    /// sets plus `env`; nothing else of the caller's environment leaks in.
    pub fn spawn(
        &self,
        binary: &Path,
        function_name: &str,
        env: &[(String, String)],
    ) -> FunctionProcess {
        self.spawn_program(binary, &[], None, function_name, env)
    }

    /// Like [`RuntimeHost::spawn`], for a program that needs arguments and a
    /// working directory (the Python baseline under `awslambdaric`).
    pub fn spawn_program(
        &self,
        binary: &Path,
        args: &[&str],
        cwd: Option<&Path>,
        function_name: &str,
        env: &[(String, String)],
    ) -> FunctionProcess {
        self.shared
            .environment
            .lock()
            .unwrap()
            .extend(env.iter().cloned());
        let mut cmd = tokio::process::Command::new(binary);
        cmd.args(args);
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        cmd.env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", self.runtime_api())
            .env("AWS_LAMBDA_FUNCTION_NAME", function_name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{function_name}"),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .env(
                "AWS_LAMBDA_FUNCTION_TIMEOUT",
                self.shared.timeout.as_secs().to_string(),
            )
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let logs = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let logs = logs.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    logs.lock().unwrap().push(line);
                }
            });
        }
        FunctionProcess {
            child,
            logs,
            started,
        }
    }
}

impl Drop for RuntimeHost {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A running function process; killed when dropped.
pub struct FunctionProcess {
    pub child: tokio::process::Child,
    logs: Arc<Mutex<Vec<String>>>,
    pub started: Instant,
}

impl FunctionProcess {
    /// The process's peak resident set size so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Every line the function wrote to stdout or stderr so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Waits for the process to exit on its own.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()?
            .ok();
        // Let the log readers drain what the process wrote last.
        tokio::time::sleep(Duration::from_millis(100)).await;
        status
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    shared
        .first_next
        .lock()
        .unwrap()
        .get_or_insert_with(Instant::now);
    let pending = shared.queue.lock().await.recv().await;
    let Some(Pending { id, payload }) = pending else {
        return (StatusCode::GONE, HeaderMap::new(), Bytes::new());
    };
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        + shared.timeout;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).expect("ascii header"));
    };
    set("lambda-runtime-aws-request-id", id.clone());
    set(
        "lambda-runtime-deadline-ms",
        deadline.as_millis().to_string(),
    );
    set(
        "lambda-runtime-invoked-function-arn",
        shared.function_arn.clone(),
    );
    set("lambda-runtime-trace-id", format!("Root=1-00000000-{id}"));
    set("content-type", "application/json".into());
    (StatusCode::OK, headers, Bytes::from(payload.to_string()))
}

fn answer(shared: &Shared, id: &str, answer: Answer) -> StatusCode {
    match shared.waiting.lock().unwrap().remove(id) {
        Some(tx) => {
            let _ = tx.send(answer);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

fn json_or_text(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn response(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    answer(&shared, &id, Answer::Response(json_or_text(&body)))
}

async fn error(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    answer(&shared, &id, Answer::Error(json_or_text(&body)))
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    *shared.init_error.lock().unwrap() = Some(json_or_text(&body));
    StatusCode::ACCEPTED
}

async fn enqueue(shared: &Shared, payload: Value) -> Result<Answer, String> {
    let n = shared.counter.fetch_add(1, Ordering::Relaxed);
    let id = format!("00000000-0000-4000-8000-{n:012}");
    let (tx, rx) = oneshot::channel();
    shared.waiting.lock().unwrap().insert(id.clone(), tx);
    shared
        .sender
        .send(Pending {
            id: id.clone(),
            payload,
        })
        .map_err(|_| "host stopped".to_string())?;
    match tokio::time::timeout(shared.timeout + Duration::from_secs(5), rx).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(_)) => Err(format!("invocation {id} was dropped")),
        Err(_) => Err(format!("invocation {id} timed out")),
    }
}

/// A Lambda API error: the type in `x-amzn-errortype`, as the REST-JSON
/// protocol carries it.
fn lambda_error(status: StatusCode, kind: &str, message: String) -> axum::response::Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-amzn-errortype",
        HeaderValue::from_str(kind).expect("ascii"),
    );
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let body = serde_json::json!({"Type": "User", "message": message}).to_string();
    (status, headers, body).into_response()
}

/// `ResourceNotFoundException` for any function but this host's.
fn unknown_function(shared: &Shared, name: &str) -> Option<axum::response::Response> {
    (name != shared.function_name && name != shared.function_arn).then(|| {
        lambda_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!("Function not found: {name}"),
        )
    })
}

/// `Invoke` (RequestResponse): the function's answer is the payload; a
/// function error is `X-Amz-Function-Error: Unhandled` with the error as
/// the payload, status 200, as Lambda answers it.
async fn lambda_invoke(
    State(shared): State<Arc<Shared>>,
    UrlPath(name): UrlPath<String>,
    body: Bytes,
) -> axum::response::Response {
    if let Some(missing) = unknown_function(&shared, &name) {
        return missing;
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-amz-executed-version",
        HeaderValue::from_static("$LATEST"),
    );
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    match enqueue(&shared, json_or_text(&body)).await {
        Ok(Answer::Response(v)) => (StatusCode::OK, headers, v.to_string()).into_response(),
        Ok(Answer::Error(v)) => {
            headers.insert(
                "x-amz-function-error",
                HeaderValue::from_static("Unhandled"),
            );
            (StatusCode::OK, headers, v.to_string()).into_response()
        }
        Err(e) => lambda_error(StatusCode::INTERNAL_SERVER_ERROR, "ServiceException", e),
    }
}

/// `GetFunctionConfiguration`: name, ARN, runtime and the environment.
async fn lambda_configuration(
    State(shared): State<Arc<Shared>>,
    UrlPath(name): UrlPath<String>,
) -> axum::response::Response {
    if let Some(missing) = unknown_function(&shared, &name) {
        return missing;
    }
    let variables = shared.environment.lock().unwrap().clone();
    let json_logs = variables
        .get("AWS_LAMBDA_LOG_FORMAT")
        .is_some_and(|f| f.eq_ignore_ascii_case("json"));
    let body = serde_json::json!({
        "FunctionName": shared.function_name,
        "FunctionArn": shared.function_arn,
        "Runtime": "provided.al2023",
        "Handler": "bootstrap",
        "Timeout": shared.timeout.as_secs(),
        "MemorySize": 256,
        "Architectures": ["arm64"],
        "Environment": {"Variables": variables},
        // Lambda's default log group, as the API names it.
        "LoggingConfig": {
            "LogFormat": if json_logs { "JSON" } else { "Text" },
            "LogGroup": format!("/aws/lambda/{}", shared.function_name),
        },
    });
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    (StatusCode::OK, headers, body.to_string()).into_response()
}
