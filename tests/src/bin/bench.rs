//! `make bench`: what Ballast costs while it waits and when it works.
//!
//! Against a local moto, each function's release binary runs under the
//! project's Lambda Runtime API host in fresh processes; measured per process:
//! init (process start → first `GET /runtime/invocation/next`), the first
//! invocation, warm invocations, peak RSS (`VmHWM`). `unhealthy-target` runs
//! interleaved with a Python boto3 baseline (`bench/python`, under
//! `awslambdaric`) on the same state and event. Then an event storm: 500
//! alarm events through 10 function processes, with a counting proxy between
//! the functions and moto. Prints figures; asserts nothing about speed.
//!
//! Last, sweeps at scale: each function's sweep over 10, 40 and 160
//! managed groups (each behind a target group of its own) and as many
//! tagged databases, with the calls and wall time of one sweep, and an
//! estimate for 500 from the measured slope.
//!
//! `BALLAST_BENCH_RUNS` sets the processes per function (default 10);
//! `BALLAST_BENCH_ONLY=scale` runs the scale section alone;
//! `BALLAST_BENCH_FUNCTIONS_DIR` runs the function binaries of another
//! build (say, an older commit's `target/release`), for before/after
//! figures on one machine.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ballast_tests::databases::{Databases, CLUSTER};
use ballast_tests::host::{Answer, FunctionProcess, RuntimeHost};
use ballast_tests::moto::Moto;
use ballast_tests::proxy::Proxy;
use ballast_tests::stack::{Stack, LEASE_TABLE, MANAGED_ASG};
use ballast_tests::{function_binary, sample_event, workspace_root};
use serde_json::{json, Value};

const WARM: usize = 5;

/// AWS calls seen by the proxy, and the emulator's time answering them
/// (the harness's own resets go to moto directly and are not counted).
#[derive(Default, Clone, Copy)]
struct Calls {
    count: u64,
    upstream: Duration,
}

impl Calls {
    fn of(proxy: &Proxy) -> Calls {
        Calls {
            count: proxy.total_calls(),
            upstream: proxy.upstream_time().values().sum(),
        }
    }
    fn since(&self, before: &Calls) -> Calls {
        Calls {
            count: self.count - before.count,
            upstream: self.upstream.saturating_sub(before.upstream),
        }
    }
    fn add(&mut self, other: &Calls) {
        self.count += other.count;
        self.upstream += other.upstream;
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    init: Duration,
    first: Duration,
    warm: Duration,
    rss_kib: u64,
}

/// What runs in the process: a release binary, or the Python baseline.
#[derive(Clone, Copy, PartialEq)]
enum Program<'a> {
    Rust(&'a str),
    Python,
}

impl Program<'_> {
    fn label(&self) -> String {
        match self {
            Program::Rust(f) => f.to_string(),
            Program::Python => "python boto3 baseline".into(),
        }
    }
}

fn venv_python() -> PathBuf {
    workspace_root()
        .join(".venv-bench")
        .join("bin")
        .join("python")
}

async fn spawn(
    host: &RuntimeHost,
    program: Program<'_>,
    env: &[(String, String)],
) -> FunctionProcess {
    match program {
        Program::Rust(function) => host.spawn(&function_binary(function), function, env),
        Program::Python => {
            let dir = workspace_root().join("bench").join("python");
            let mut env = env.to_vec();
            env.push(("PYTHONPATH".into(), dir.display().to_string()));
            env.push(("LAMBDA_TASK_ROOT".into(), dir.display().to_string()));
            env.push(("PYTHONDONTWRITEBYTECODE".into(), "1".into()));
            host.spawn_program(
                &venv_python(),
                &["-m", "awslambdaric", "unhealthy_target.handler"],
                Some(&dir),
                "unhealthy-target-python",
                &env,
            )
        }
    }
}

async fn invoke(host: &RuntimeHost, event: Value) -> (Duration, Value) {
    let started = Instant::now();
    let answer = host.invoke(event).await.expect("the function answers");
    let took = started.elapsed();
    match answer {
        Answer::Response(v) => (took, v),
        Answer::Error(e) => panic!("function error: {e}"),
    }
}

/// One fresh process: init, a first invocation, warm invocations. `prepare`
/// puts the world back before every invocation (outside the timed window), so
/// that every invocation does the same work.
async fn one_process<F, Fut>(
    program: Program<'_>,
    env: &[(String, String)],
    events: &[Value],
    prepare: &F,
) -> Sample
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let host = RuntimeHost::start(&program.label(), Duration::from_secs(60)).await;
    prepare(0).await;
    let process = spawn(&host, program, env).await;
    let first_next = loop {
        if let Some(t) = host.first_next() {
            break t;
        }
        if let Some(err) = host.init_error() {
            panic!("{}: init failed: {err}", program.label());
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    };
    let init = first_next.duration_since(process.started);
    let (first, report) = invoke(&host, events[0].clone()).await;
    assert_ne!(report["outcome"], "failed", "{}: {report}", program.label());
    let mut warm = vec![];
    for i in 1..=WARM {
        prepare(i).await;
        warm.push(invoke(&host, events[i % events.len()].clone()).await.0);
    }
    warm.sort();
    let rss_kib = process.peak_rss_kib().unwrap_or(0);
    Sample {
        init,
        first,
        warm: warm[warm.len() / 2],
        rss_kib,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Row {
    label: String,
    init: Duration,
    init_max: Duration,
    first: Duration,
    warm: Duration,
    rss_mib: f64,
}

fn summarise(label: String, samples: &[Sample]) -> Row {
    Row {
        label,
        init: median(samples.iter().map(|s| s.init).collect()),
        init_max: samples.iter().map(|s| s.init).max().unwrap_or_default(),
        first: median(samples.iter().map(|s| s.first).collect()),
        warm: median(samples.iter().map(|s| s.warm).collect()),
        rss_mib: {
            let mut r: Vec<u64> = samples.iter().map(|s| s.rss_kib).collect();
            r.sort();
            r[r.len() / 2] as f64 / 1024.0
        },
    }
}

fn print_rows(runs: usize, rows: &[Row]) {
    println!(
        "{:<24} {:>5} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "function", "procs", "init ms", "init max", "first ms", "warm ms", "peak RSS MiB"
    );
    for r in rows {
        println!(
            "{:<24} {:>5} {:>12.1} {:>12.1} {:>12.1} {:>12.1} {:>12.1}",
            r.label,
            runs,
            ms(r.init),
            ms(r.init_max),
            ms(r.first),
            ms(r.warm),
            r.rss_mib
        );
    }
}

fn sizes() {
    println!("\n{:<24} {:>12} {:>12}", "binary", "bytes", "zip -9 bytes");
    for f in ["unhealthy-target", "rds-failover", "az-impairment"] {
        let bin = function_binary(f);
        let dir = tempdir();
        std::fs::copy(&bin, dir.join("bootstrap")).expect("copy the binary");
        let status = std::process::Command::new("zip")
            .args(["-q", "-9", "bootstrap.zip", "bootstrap"])
            .current_dir(&dir)
            .status()
            .expect("zip is installed");
        assert!(status.success());
        let size = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        println!(
            "{:<24} {:>12} {:>12}",
            f,
            size(bin),
            size(dir.join("bootstrap.zip"))
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ballast-bench-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn env_for(moto: &Moto, topic_arn: &str) -> Vec<(String, String)> {
    let mut env = moto.env();
    env.push(("BALLAST_TOPIC_ARN".into(), topic_arn.into()));
    env.push(("BALLAST_LEASE_TABLE".into(), LEASE_TABLE.into()));
    env
}

/// The share of the world `unhealthy-target` reads: one of the two managed
/// instances stopped, marked `Healthy` again before every invocation.
async fn bench_unhealthy_target(runs: usize) -> (Row, Row) {
    let moto = Moto::start();
    let stack = Stack::seed(&moto.sdk_config()).await;
    let stopped = stack.instances(MANAGED_ASG).await[0].clone();
    stack.stop(std::slice::from_ref(&stopped)).await;
    // Both programs reach moto through the counting proxy (no faults), so
    // the calls each makes are counted and the emulator's share is known.
    let proxy = Proxy::start(&moto.endpoint(), 0.0, 1).await;
    let mut env = proxy.env(&moto);
    env.push(("BALLAST_TOPIC_ARN".into(), stack.topic_arn.clone()));
    env.push(("BALLAST_LEASE_TABLE".into(), LEASE_TABLE.into()));
    let event = stack.alarm_event("unhealthy-target-alarm.json");
    let prepare = |_: usize| {
        let asg = stack.autoscaling.clone();
        let id = stopped.clone();
        async move {
            asg.set_instance_health()
                .instance_id(id)
                .health_status("Healthy")
                .send()
                .await
                .expect("SetInstanceHealth Healthy");
        }
    };
    let (mut rust, mut python) = (vec![], vec![]);
    // Interleaved A B A B: both see the same emulator at the same age.
    let (mut rust_calls, mut python_calls) = (Calls::default(), Calls::default());
    for _ in 0..runs {
        let before = Calls::of(&proxy);
        rust.push(
            one_process(
                Program::Rust("unhealthy-target"),
                &env,
                std::slice::from_ref(&event),
                &prepare,
            )
            .await,
        );
        rust_calls.add(&Calls::of(&proxy).since(&before));
        let before = Calls::of(&proxy);
        python.push(
            one_process(
                Program::Python,
                &env,
                std::slice::from_ref(&event),
                &prepare,
            )
            .await,
        );
        python_calls.add(&Calls::of(&proxy).since(&before));
    }
    let per = (runs * (1 + WARM)) as f64;
    println!(
        "AWS calls per invocation (through the counting proxy): unhealthy-target {:.1} ({:.1} ms in moto), python {:.1} ({:.1} ms in moto)",
        rust_calls.count as f64 / per,
        ms(rust_calls.upstream) / per,
        python_calls.count as f64 / per,
        ms(python_calls.upstream) / per,
    );
    (
        summarise("unhealthy-target".into(), &rust),
        summarise("python boto3 baseline".into(), &python),
    )
}

async fn bench_rds_failover(runs: usize) -> Row {
    let moto = Moto::start();
    let stack = Stack::seed(&moto.sdk_config()).await;
    let dbs = Databases::seed(&moto.sdk_config()).await;
    dbs.fail_over_cluster().await;
    let env = env_for(&moto, &stack.topic_arn);
    let event = sample_event("rds-cluster-failover-completed.json");
    // The CNAME is put back on a wrong value before each invocation, so each
    // one verifies the writer and corrects the record.
    let prepare = |_: usize| async { dbs.set_record(CLUSTER, "stale.example.com").await };
    let samples = {
        let mut v = vec![];
        for _ in 0..runs {
            v.push(
                one_process(
                    Program::Rust("rds-failover"),
                    &env,
                    std::slice::from_ref(&event),
                    &prepare,
                )
                .await,
            );
        }
        v
    };
    summarise("rds-failover".into(), &samples)
}

async fn bench_az_impairment(runs: usize) -> Row {
    let moto = Moto::start();
    let stack = Stack::seed(&moto.sdk_config()).await;
    let env = env_for(&moto, &stack.topic_arn);
    let evacuate = sample_event("az-impairment-evacuate.json");
    let restore = sample_event("az-impairment-restore.json");
    // First invocation evacuates; warm ones alternate restore / evacuate.
    let events = [evacuate, restore.clone()];
    let prepare = |_: usize| async {};
    let mut samples = vec![];
    for _ in 0..runs {
        samples.push(one_process(Program::Rust("az-impairment"), &env, &events, &prepare).await);
        // WARM is odd: the last warm invocation evacuated. Put the AZ back.
        let host = RuntimeHost::start("az-impairment", Duration::from_secs(60)).await;
        let _p = host.spawn(&function_binary("az-impairment"), "az-impairment", &env);
        invoke(&host, restore.clone()).await;
    }
    summarise("az-impairment".into(), &samples)
}

/// 500 alarm events for one target group of 10 managed instances, 2 of them
/// stopped, through 10 function processes sharing one Runtime API host.
async fn storm() {
    const EVENTS: usize = 500;
    /// Lambda retries a failed async invocation twice.
    const STAND_DOWN_RETRIES: usize = 2;
    const PROCESSES: usize = 10;
    let moto = Moto::start();
    let stack = Stack::seed(&moto.sdk_config()).await;
    // A managed group of 10 behind a target group of its own.
    let tg_arn = stack.add_service("storm", 10).await;
    let instances = stack.instances("storm").await;
    stack.stop(&instances[..2]).await;

    let proxy = Proxy::start(&moto.endpoint(), 0.0, 1).await;
    let mut env = proxy.env(&moto);
    env.push(("BALLAST_TOPIC_ARN".into(), stack.topic_arn.clone()));
    env.push(("BALLAST_LEASE_TABLE".into(), LEASE_TABLE.into()));
    let host = RuntimeHost::start("unhealthy-target", Duration::from_secs(60)).await;
    let processes: Vec<FunctionProcess> = (0..PROCESSES)
        .map(|_| {
            host.spawn(
                &function_binary("unhealthy-target"),
                "unhealthy-target",
                &env,
            )
        })
        .collect();
    let mut event = stack.alarm_event("unhealthy-target-alarm.json");
    let tg_suffix = tg_arn
        .split_once(":targetgroup/")
        .map(|(_, s)| s)
        .unwrap_or_default();
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"]
        ["TargetGroup"] = json!(format!("targetgroup/{tg_suffix}"));

    let started = Instant::now();
    let host = std::sync::Arc::new(host);
    let tasks: Vec<_> = (0..EVENTS)
        .map(|i| {
            let host = host.clone();
            let mut e = event.clone();
            e["id"] = json!(format!("storm-{i:04}"));
            tokio::spawn(async move {
                let t = Instant::now();
                // A stand-down asks Lambda to retry: retried here as Lambda
                // does (twice), compressed to a second apart (a holder gives
                // its lease back within milliseconds).
                let mut retries = 0;
                loop {
                    let answer = host.invoke(e.clone()).await;
                    let stood_down = matches!(&answer, Ok(Answer::Error(v))
                        if v["errorMessage"].as_str().is_some_and(|m| m.contains("stands down")));
                    if stood_down && retries < STAND_DOWN_RETRIES {
                        retries += 1;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                    return (t.elapsed(), answer, retries);
                }
            })
        })
        .collect();
    let mut latencies = vec![];
    let (mut errors, mut outcomes) = (0, std::collections::BTreeMap::<String, usize>::new());
    let mut stand_downs = 0;
    for t in tasks {
        let (took, answer, retries) = t.await.expect("task");
        stand_downs += retries;
        latencies.push(took);
        match answer {
            Ok(Answer::Response(r)) => {
                *outcomes
                    .entry(r["outcome"].as_str().unwrap_or("?").to_string())
                    .or_default() += 1
            }
            _ => errors += 1,
        }
    }
    let total = started.elapsed();
    latencies.sort();
    let marked: Vec<String> = {
        let mut v = vec![];
        for id in &instances[..2] {
            v.push(format!("{id}={}", stack.asg_health(id).await));
        }
        v
    };
    println!(
        "\nevent storm: {EVENTS} alarm events, {PROCESSES} processes, 2 of 10 instances stopped"
    );
    println!(
        "  total {:.0} ms, {:.2} ms per event, latency p50 {:.1} ms p99 {:.1} ms (queueing included)",
        ms(total),
        ms(total) / EVENTS as f64,
        ms(latencies[EVENTS / 2]),
        ms(latencies[EVENTS * 99 / 100])
    );
    println!(
        "  outcomes {outcomes:?}, function errors {errors} (after {stand_downs} stand-downs retried)"
    );
    println!(
        "  SetInstanceHealth calls {} (for 2 impaired instances), SNS Publish {}, AWS calls in all {}",
        proxy.calls_of("SetInstanceHealth"),
        proxy.calls_of("Publish"),
        proxy.total_calls()
    );
    println!("  ASG health after: {}", marked.join(", "));
    drop(processes);
}

/// One sweep per function over `groups` managed groups, each behind a
/// target group of its own, and as many tagged databases (the seed's Aurora
/// cluster and two instances, then Multi-AZ instances), each with its
/// CNAME:
/// target group of its own (one instance each: moto gives a subnet 251 addresses): the calls and wall time of
/// the second sweep (the first warms the process).
async fn scale_point(groups: usize) -> Vec<(&'static str, u64, Duration)> {
    let moto = Moto::start();
    let stack = Stack::seed(&moto.sdk_config()).await;
    // The seed's `web` is the first managed group.
    for i in 1..groups {
        stack.add_service(&format!("svc-{i:03}"), 1).await;
    }
    let dbs = Databases::seed(&moto.sdk_config()).await;
    for i in 3..groups {
        dbs.add_database(&format!("db-{i:03}")).await;
    }
    let proxy = Proxy::start(&moto.endpoint(), 0.0, 1).await;
    let mut env = proxy.env(&moto);
    env.push(("BALLAST_TOPIC_ARN".into(), stack.topic_arn.clone()));
    env.push(("BALLAST_LEASE_TABLE".into(), LEASE_TABLE.into()));
    let mut out = vec![];
    // The template's timeouts.
    for (function, timeout) in [
        ("unhealthy-target", 60),
        ("rds-failover", 300),
        ("az-impairment", 120),
    ] {
        let host = RuntimeHost::start(function, Duration::from_secs(timeout)).await;
        let _process = host.spawn(&function_binary(function), function, &env);
        let sweep = sample_event("scheduled-sweep.json");
        let (_, first) = invoke(&host, sweep.clone()).await;
        assert_eq!(first["outcome"], "noop", "{first:#}");
        let before = proxy.total_calls();
        let (took, _) = invoke(&host, sweep).await;
        out.push((function, proxy.total_calls() - before, took));
    }
    out
}

async fn scale() {
    println!(
        "\nsweeps at scale: N managed groups, each behind its own target group (1 instance each), and N tagged databases; one sweep, the second of two"
    );
    println!(
        "  {:<18} {:>6} {:>8} {:>15} {:>10}",
        "function", "N", "calls", "calls per N", "wall ms"
    );
    let mut points: Vec<(&str, usize, u64, Duration)> = vec![];
    for groups in [10, 40, 160] {
        for (function, calls, took) in scale_point(groups).await {
            println!(
                "  {function:<18} {groups:>6} {calls:>8} {:>15.2} {:>10.1}",
                calls as f64 / groups as f64,
                ms(took)
            );
            points.push((function, groups, calls, took));
        }
    }
    for function in ["unhealthy-target", "rds-failover", "az-impairment"] {
        let at = |n: usize| {
            points
                .iter()
                .find(|p| p.0 == function && p.1 == n)
                .map(|p| (p.2 as f64, ms(p.3)))
                .unwrap_or_default()
        };
        let ((c40, t40), (c160, t160)) = (at(40), at(160));
        let (calls_slope, time_slope) = ((c160 - c40) / 120.0, (t160 - t40) / 120.0);
        println!(
            "  {function}: at 500 groups, about {:.0} calls and {:.0} ms (the slope from 40 to 160 groups)",
            c160 + calls_slope * 340.0,
            t160 + time_slope * 340.0
        );
    }
}

#[tokio::main]
async fn main() {
    if let Some(dir) = std::env::var_os("BALLAST_BENCH_FUNCTIONS_DIR") {
        ballast_tests::use_functions_from(PathBuf::from(dir));
    }
    if std::env::var("BALLAST_BENCH_ONLY").as_deref() == Ok("scale") {
        scale().await;
        return;
    }
    let runs: usize = std::env::var("BALLAST_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .max(1);
    println!(
        "Ballast benchmarks — {} — {} processes per function, {WARM} warm invocations each; medians",
        std::env::consts::ARCH,
        runs
    );
    let (rust, python) = bench_unhealthy_target(runs).await;
    let rds = bench_rds_failover(runs).await;
    let az = bench_az_impairment(runs).await;
    println!();
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let ratios = format!(
        "Rust / Python (unhealthy-target): init {:.3}, first invocation {:.3}, warm invocation {:.3}, peak RSS {:.3}",
        ratio(ms(rust.init), ms(python.init)),
        ratio(ms(rust.first), ms(python.first)),
        ratio(ms(rust.warm), ms(python.warm)),
        ratio(rust.rss_mib, python.rss_mib)
    );
    print_rows(runs, &[rust, python, rds, az]);
    println!("\n{ratios}");
    sizes();
    storm().await;
    scale().await;
}
