//! The example stack's zonal canary (`examples/multi-az-web/canary.py`) is
//! code the template carries: the template's copy is the file, verbatim,
//! and the file is run here with the project's Python (moto's `.venv`,
//! which has boto3):
//! - its probe against local stand-ins: an HTTP-to-HTTPS redirect naming
//!   another host (what an ALB's port-80 listener answers) is healthy and
//!   not followed; a refused port, a server that never answers and a 5xx
//!   are failures; a dead target in one zone moves only that zone's figure;
//!   a zone with no target left measures the other zones' from itself;
//! - its discovery against the emulator: the target group's instances,
//!   with their private IPs and zones (never probed: they are not here).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use ballast_tests::moto::{venv_program, Moto};
use ballast_tests::stack::{Stack, AZS};
use ballast_tests::workspace_root;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn example() -> PathBuf {
    workspace_root().join("examples").join("multi-az-web")
}

/// Runs `code` with `canary` imported, in the venv's Python; its stdout as
/// JSON.
fn python(code: &str, env: &[(String, String)]) -> Value {
    let program = format!(
        "import json, sys\nsys.path.insert(0, {:?})\nimport canary\n{code}",
        example().display().to_string()
    );
    let out = Command::new(venv_program("python"))
        .args(["-c", &program])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("the venv's python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A loopback server that answers every request with `response` (or, with
/// `None`, reads the request and never answers).
async fn serve(response: Option<&'static str>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = socket.read(&mut buf).await;
                match response {
                    Some(r) => {
                        let _ = socket.write_all(r.as_bytes()).await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    addr
}

/// A loopback port nothing listens on.
async fn refused() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

const REDIRECT: &str = "HTTP/1.1 301 Moved Permanently\r\nLocation: https://app.example.com:443/health\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
const FAILING: &str =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// `canary.measure(zone, targets, "/health")` as (percent, probed, scope).
fn measure(zone: &str, targets: &[(SocketAddr, &str)]) -> Value {
    let targets: Vec<Value> = targets
        .iter()
        .map(|(a, z)| json!([a.ip().to_string(), a.port(), z]))
        .collect();
    python(
        &format!(
            "targets = [tuple(t) for t in json.loads({:?})]\nprint(json.dumps(canary.measure({zone:?}, targets, '/health')))",
            Value::from(targets).to_string()
        ),
        &[],
    )
}

#[test]
fn the_template_carries_the_canary_file_verbatim() {
    let file = std::fs::read_to_string(example().join("canary.py")).unwrap();
    let template = std::fs::read_to_string(example().join("template.yaml")).unwrap();
    // Each `ZipFile: |` block, its indentation taken off.
    let mut copies = vec![];
    let mut lines = template.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() != "ZipFile: |" {
            continue;
        }
        let indent = line.len() - line.trim_start().len() + 2;
        let mut block = vec![];
        while let Some(next) = lines.peek() {
            if !next.trim().is_empty() && next.len() - next.trim_start().len() < indent {
                break;
            }
            block.push(next.get(indent..).unwrap_or("").to_string());
            lines.next();
        }
        while block.last().is_some_and(|l| l.is_empty()) {
            block.pop();
        }
        copies.push(block.join("\n") + "\n");
    }
    assert_eq!(copies.len(), 2, "one canary per zone");
    for copy in copies {
        assert_eq!(copy, file, "the template's canary is canary.py");
    }
    // CloudFormation's ZipFile holds at most 4,096 characters.
    assert!(file.len() <= 4096, "{} characters", file.len());
    assert!(!template.contains("ReservedConcurrentExecutions"));
    assert!(
        !template.contains("ballast-az-${AppName}"),
        "the prefix is a parameter"
    );
}

// Multi-threaded: the Python child blocks the test's thread while the
// stand-ins answer on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirecting_target_is_healthy_and_a_dead_one_fails_only_its_zone() {
    let redirect = serve(Some(REDIRECT)).await;
    let ok = serve(Some(OK)).await;
    let dead = refused().await;
    let (a, b) = ("us-east-1a", "us-east-1b");

    // The ALB's port-80 answer (HTTPS on another name) is not followed.
    let healthy = [(redirect, a), (ok, b)];
    assert_eq!(measure(a, &healthy), json!([0.0, 1, "zone"]));
    assert_eq!(measure(b, &healthy), json!([0.0, 1, "zone"]));

    // A dead target in one zone: only that zone's figure moves.
    let one_dead = [(redirect, a), (dead, a), (ok, b)];
    assert_eq!(measure(a, &one_dead), json!([50.0, 2, "zone"]));
    assert_eq!(measure(b, &one_dead), json!([0.0, 1, "zone"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_or_failing_target_fails_and_an_empty_zone_measures_its_network() {
    let hung = serve(None).await;
    let failing = serve(Some(FAILING)).await;
    let ok = serve(Some(OK)).await;
    let (a, b) = ("us-east-1a", "us-east-1b");
    let started = std::time::Instant::now();
    assert_eq!(
        measure(a, &[(hung, a), (failing, a), (ok, b)]),
        json!([100.0, 2, "zone"])
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a probe is bounded by its time-out"
    );
    // Evacuated zone: its canary probes the other zones' targets from here.
    assert_eq!(measure(a, &[(ok, b)]), json!([0.0, 1, "other zones"]));
    assert_eq!(measure(a, &[]), json!([null, 0, "nothing"]));
}

#[tokio::test]
async fn the_canary_finds_the_target_groups_instances_with_their_zones() {
    let moto = Moto::start();
    let stack = Stack::seed(&moto.sdk_config()).await;
    let found = python(
        &format!(
            "import boto3\nprint(json.dumps(canary.targets(boto3.client('elbv2'), boto3.client('ec2'), {:?})))",
            stack.tg_arn
        ),
        &moto.env(),
    );
    let found = found.as_array().unwrap();
    // `web`'s two instances and `legacy`'s one, each with its private IP
    // in the VPC, the target group's port and a zone of the stack. (moto
    // places every instance an ASG launches in its first zone, so the zone
    // split itself is the probe tests' to show.)
    assert_eq!(found.len(), 3, "{found:?}");
    for t in found {
        assert!(t[0].as_str().unwrap().starts_with("10.0."), "{t}");
        assert_eq!(t[1], 80, "{t}");
        assert!(AZS.contains(&t[2].as_str().unwrap()), "{t}");
    }
}
