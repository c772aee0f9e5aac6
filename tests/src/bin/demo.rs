//! `make demo`: Ballast's failure stories against a local AWS emulator, with
//! the real function binaries (built with this program by `make demo`) under a
//! Lambda Runtime API host. No AWS account.

use std::time::Instant;

use ballast::report::Report;
use ballast_tests::databases::{Databases, CLUSTER, PRIMARY, REPLICA};
use ballast_tests::host::{Answer, FunctionProcess, RuntimeHost};
use ballast_tests::moto::Moto;
use ballast_tests::proving::{opt_in, secret, Rig};
use ballast_tests::servers::{try_databases, PROBER};
use ballast_tests::stack::{Stack, AZS, MANAGED_ASG, UNMANAGED_ASG};
use ballast_tests::{
    ballast_command, operator, sample_event, start_function, start_function_named,
    use_functions_beside_this_program,
};
use serde_json::Value;

struct Timeline {
    start: Instant,
}

impl Timeline {
    fn say(&self, what: &str, text: impl AsRef<str>) {
        let t = self.start.elapsed().as_secs_f64();
        let mut lines = text.as_ref().lines();
        println!(
            "  [+{t:5.1}s] {what:<9}{}",
            lines.next().unwrap_or_default()
        );
        for line in lines {
            println!("  {:>9} {:<9}{line}", "", "");
        }
    }

    fn story(&self, title: &str) {
        println!("\n{title}\n{}", "-".repeat(title.len()));
    }
}

async fn invoke(host: &RuntimeHost, process: &FunctionProcess, event: Value) -> Report {
    match host.invoke(event).await {
        Ok(Answer::Response(v)) => serde_json::from_value(v).expect("a report"),
        other => panic!(
            "the function failed: {other:?}\n{}",
            process.logs().join("\n")
        ),
    }
}

fn decision(tl: &Timeline, report: &Report) {
    tl.say(
        "decision",
        format!(
            "{} ({}): {}",
            report.outcome.as_str(),
            report.severity.as_str(),
            report.summary
        ),
    );
    if let Some(reason) = &report.reason {
        tl.say("reason", reason);
    }
    for a in &report.actions {
        let asg = a
            .asg
            .as_deref()
            .map(|g| format!(" (ASG {g})"))
            .unwrap_or_default();
        tl.say(
            "action",
            format!(
                "[{}] {} {}{}: {}",
                a.status.as_str(),
                a.kind,
                a.target,
                asg,
                a.detail
            ),
        );
    }
}

async fn delivered(tl: &Timeline, stack: &Stack) {
    let deliveries = stack.reports().await;
    if deliveries.is_empty() {
        tl.say(
            "report",
            "nothing published (noop and ignored are answered, not published)",
        );
    }
    for d in deliveries {
        let attrs: Vec<String> = d
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        tl.say(
            "report",
            format!(
                "SNS → subscriber. Subject: {}\nattributes: {}\n---- email rendering ----\n{}",
                d.subject,
                attrs.join(", "),
                d.report.email_text().trim_end()
            ),
        );
    }
}

async fn asg_state(tl: &Timeline, stack: &Stack) {
    let targets = stack.target_states().await;
    for asg in [MANAGED_ASG, UNMANAGED_ASG] {
        let mut parts = vec![];
        for id in stack.instances(asg).await {
            let target = targets.get(&id).map(String::as_str).unwrap_or("-");
            parts.push(format!(
                "{id} ASG:{} ELB:{target}",
                stack.asg_health(&id).await
            ));
        }
        tl.say("state", format!("ASG {asg}: {}", parts.join(", ")));
    }
}

#[tokio::main]
async fn main() {
    // The function binaries built with this one (`make demo`: one debug
    // build); fail early, with the build command, when one is missing.
    if let Err(e) = use_functions_beside_this_program(&[
        "unhealthy-target",
        "rds-failover",
        "az-impairment",
        "writer-probe",
    ]) {
        eprintln!("{e}");
        std::process::exit(2);
    }
    println!("Ballast demo: the real function binaries under a local Lambda Runtime API host,");
    println!("against moto (a local AWS emulator). No AWS account is used.");

    let tl = Timeline {
        start: Instant::now(),
    };
    let moto = Moto::start();
    let stack = Stack::seed(&moto.sdk_config()).await;
    tl.story("Story 1: an instance stops behind the load balancer");
    tl.say(
        "seed",
        format!(
            "VPC {} with subnets in {}; ALB web-alb → target group web-tg;\n\
             ASG {MANAGED_ASG} (2 instances, ballast:managed=true), ASG {UNMANAGED_ASG} (1 instance, unmanaged);\n\
             report topic ballast-reports with an SQS subscriber",
            stack.vpc_id,
            AZS.join(" and ")
        ),
    );

    let (host, process) = start_function("unhealthy-target", &moto, &stack.topic_arn, &[]).await;
    asg_state(&tl, &stack).await;

    let web = stack.instances(MANAGED_ASG).await;
    stack.stop(&web[..1]).await;
    tl.say(
        "fault",
        format!(
            "{} (ASG {MANAGED_ASG}) stops; ELB now reports it unused / Target.InvalidState",
            web[0]
        ),
    );

    let alarm = stack.alarm_event("unhealthy-target-alarm.json");
    tl.say(
        "event",
        format!(
            "CloudWatch Alarm State Change: {} → ALARM (AWS/ApplicationELB UnHealthyHostCount)",
            alarm["detail"]["alarmName"].as_str().unwrap_or_default()
        ),
    );
    let report = invoke(&host, &process, alarm.clone()).await;
    decision(&tl, &report);
    delivered(&tl, &stack).await;
    asg_state(&tl, &stack).await;
    stack.replace(&web[0]).await;
    tl.say(
        "asg",
        format!(
            "ASG {MANAGED_ASG} replaces {} (in AWS by itself; here TerminateInstanceInAutoScalingGroup)",
            web[0]
        ),
    );

    tl.say(
        "event",
        "the same alarm event again (EventBridge delivers at least once)",
    );
    let again = invoke(&host, &process, alarm.clone()).await;
    decision(&tl, &again);
    delivered(&tl, &stack).await;

    tl.story("Story 2: a bad deploy takes every target down; the breaker keeps the fleet");
    let mut fleet = stack.instances(MANAGED_ASG).await;
    fleet.extend(stack.instances(UNMANAGED_ASG).await);
    stack.stop(&fleet).await;
    tl.say(
        "fault",
        format!(
            "a bad deploy: all {} targets fail. ASG {MANAGED_ASG} has HealthCheckType ELB:\n\
             by itself it would terminate and replace every one of them",
            fleet.len()
        ),
    );
    tl.say("event", "CloudWatch Alarm State Change (ALARM)");
    let declined = invoke(&host, &process, alarm).await;
    decision(&tl, &declined);
    delivered(&tl, &stack).await;
    tl.say(
        "state",
        format!(
            "ASG {MANAGED_ASG} suspended processes: {:?}; ballast:suspended={}",
            stack.suspended_processes(MANAGED_ASG).await,
            stack
                .tag_of(MANAGED_ASG, ballast::tags::SUSPENDED)
                .await
                .unwrap_or_default()
        ),
    );
    let sweep = invoke(&host, &process, sample_event("scheduled-sweep.json")).await;
    tl.say(
        "sweep",
        format!("{}: {}", sweep.outcome.as_str(), sweep.summary),
    );
    delivered(&tl, &stack).await;

    stack.start(&fleet).await;
    tl.say(
        "fix",
        "the rollback is out: every target passes its health check again",
    );
    tl.say("event", "CloudWatch Alarm State Change (OK)");
    let closed = invoke(
        &host,
        &process,
        stack.alarm_event("unhealthy-target-alarm-ok.json"),
    )
    .await;
    decision(&tl, &closed);
    delivered(&tl, &stack).await;
    tl.say(
        "state",
        format!(
            "ASG {MANAGED_ASG} suspended processes: {:?}",
            stack.suspended_processes(MANAGED_ASG).await
        ),
    );
    asg_state(&tl, &stack).await;

    tl.story("Story 3: an event that is not Ballast's business");
    let ignored = invoke(&host, &process, sample_event("s3-object-created.json")).await;
    tl.say(
        "event",
        "an S3 ObjectCreated notification, sent to the wrong function",
    );
    decision(&tl, &ignored);

    let dbs = database_stories(&tl, &moto, &stack).await;
    zone_story(&tl, &moto, &stack, &dbs).await;
    proof_story(&tl, &moto, &stack, &dbs).await;

    drop(process);
    drop(host);
    drop(moto);
    println!("\nDone: the emulator and the function process are stopped.");
}

async fn database_stories(tl: &Timeline, moto: &Moto, stack: &Stack) -> Databases {
    let dbs = Databases::seed(&moto.sdk_config()).await;
    let (host, process) = start_function("rds-failover", moto, &stack.topic_arn, &[]).await;

    tl.story("Story 4: Aurora fails over; the DNS record was on the old writer");
    let old_writer = dbs.writer().await;
    tl.say(
        "seed",
        format!(
            "Aurora cluster {CLUSTER} (writer {old_writer}), Multi-AZ MySQL billing, MySQL {PRIMARY}\n\
             with standby read replica {REPLICA}; CNAMEs in the private zone internal.example.com"
        ),
    );
    let stale = dbs.instance_endpoint(&old_writer).await;
    dbs.set_record(CLUSTER, &stale).await;
    tl.say(
        "state",
        format!("{CLUSTER}.internal.example.com -> {stale} (an instance endpoint)"),
    );
    dbs.fail_over_cluster().await;
    tl.say(
        "fault",
        format!(
            "FailoverDBCluster: the writer moves from {old_writer} to {}",
            dbs.writer().await
        ),
    );
    tl.say(
        "event",
        "RDS DB Cluster Event RDS-EVENT-0071 (failover completed)",
    );
    let report = invoke(
        &host,
        &process,
        sample_event("rds-cluster-failover-completed.json"),
    )
    .await;
    decision(tl, &report);
    delivered(tl, stack).await;
    tl.say(
        "state",
        format!(
            "{CLUSTER}.internal.example.com -> {}",
            dbs.record(CLUSTER).await.unwrap_or_default()
        ),
    );

    tl.story("Story 5: the MySQL primary fails; the standby replica takes over and DNS flips");
    tl.say(
        "state",
        format!(
            "{PRIMARY}.internal.example.com -> {}",
            dbs.record(PRIMARY).await.unwrap_or_default()
        ),
    );
    dbs.stop(PRIMARY).await;
    tl.say("fault", format!("{PRIMARY} goes down (stopped)"));
    tl.say("event", "RDS DB Instance Event RDS-EVENT-0031 (failure)");
    let report = invoke(&host, &process, sample_event("rds-instance-failure.json")).await;
    decision(tl, &report);
    delivered(tl, stack).await;
    tl.say(
        "state",
        format!(
            "{PRIMARY}.internal.example.com -> {}",
            dbs.record(PRIMARY).await.unwrap_or_default()
        ),
    );
    let tags = dbs.tags(REPLICA).await;
    tl.say(
        "state",
        format!(
            "{REPLICA} now carries ballast:dns-record={}",
            tags.get("ballast:dns-record").map_or("-", String::as_str)
        ),
    );
    tl.say("event", "the same failure event again (late or duplicated)");
    let again = invoke(&host, &process, sample_event("rds-instance-failure.json")).await;
    decision(tl, &again);
    dbs
}

async fn subnets_line(stack: &Stack, asg: &str) -> String {
    let zones: std::collections::BTreeMap<String, String> = stack.subnets.iter().cloned().collect();
    let subnets: Vec<String> = stack
        .subnets_of(asg)
        .await
        .into_iter()
        .map(|s| format!("{s} ({})", zones.get(&s).map_or("?", String::as_str)))
        .collect();
    let tag = stack.tag_of(asg, "ballast:evacuated").await;
    format!(
        "ASG {asg}: subnets {}; ballast:evacuated={}",
        subnets.join(", "),
        tag.as_deref().unwrap_or("-")
    )
}

/// An operator's command, shown as typed, and what it prints.
async fn command(tl: &Timeline, target: &ballast_cli::Target, args: &[&str]) {
    let answer = ballast_command(target, args).await;
    tl.say(
        "operator",
        format!(
            "$ ballast {}   (exit {})\n{}{}",
            args.join(" "),
            answer.exit as u8,
            answer.stdout.trim_end(),
            answer.stderr.trim_end()
        ),
    );
}

async fn zone_story(tl: &Timeline, moto: &Moto, stack: &Stack, dbs: &Databases) {
    // Deployed as the default stack `ballast` names it, so that the
    // `ballast` command finds it; with the stack's configuration.
    let (host, process) = start_function_named(
        "az-impairment",
        "ballast-az-impairment",
        moto,
        &stack.topic_arn,
        &[
            ("BALLAST_HOSTED_ZONE_IDS", dbs.zone_id.as_str()),
            ("BALLAST_ZONAL_ALARM_PREFIX", "ballast-az-"),
        ],
    )
    .await;
    let operator = operator(moto, &host);

    tl.story("Story 6: an Availability Zone is impaired, then recovers");
    for asg in [MANAGED_ASG, UNMANAGED_ASG] {
        tl.say("state", subnets_line(stack, asg).await);
    }
    tl.say(
        "event",
        "AWS Health Event: AWS_EC2_OPERATIONAL_ISSUE, statusCode open; the zone is named only in the \
         description: \"... in a single Availability Zone (USE1-AZ6) ...\"",
    );
    let report = invoke(&host, &process, sample_event("health-ec2-issue-open.json")).await;
    decision(tl, &report);
    delivered(tl, stack).await;
    for asg in [MANAGED_ASG, UNMANAGED_ASG] {
        tl.say("state", subnets_line(stack, asg).await);
    }
    tl.say(
        "event",
        "ARC Autoshift In Progress away from use1-az6 (the same zone, by AZ ID): a second signal",
    );
    let again = invoke(
        &host,
        &process,
        sample_event("arc-autoshift-in-progress.json"),
    )
    .await;
    decision(tl, &again);
    tl.say("event", "an operator asks to evacuate us-east-1b as well");
    let second = invoke(
        &host,
        &process,
        serde_json::json!({"action": "evacuate", "availabilityZone": "us-east-1b"}),
    )
    .await;
    decision(tl, &second);
    delivered(tl, stack).await;
    let notice = ballast::report::notice::notice(&report);
    tl.say(
        "chat",
        format!(
            "the same report in Slack/Teams (Amazon Q Developer custom notification, the SNS `https` key):\n{}\nthread {}\nnext: {}",
            notice.content.title,
            notice.metadata.thread_id,
            notice.content.next_steps.join("\nnext: ")
        ),
    );
    command(tl, &operator, &["status"]).await;
    tl.say(
        "event",
        "AWS Health Event: the issue is closed, but the autoshift is still on",
    );
    let closed = invoke(
        &host,
        &process,
        sample_event("health-ec2-issue-closed.json"),
    )
    .await;
    decision(tl, &closed);
    tl.say("state", subnets_line(stack, MANAGED_ASG).await);
    tl.say("event", "ARC Autoshift Completed: the last signal clears");
    let restored = invoke(
        &host,
        &process,
        sample_event("arc-autoshift-completed.json"),
    )
    .await;
    decision(tl, &restored);
    delivered(tl, stack).await;
    tl.say("state", subnets_line(stack, MANAGED_ASG).await);

    tl.story("Story 7: before the next incident, the readiness audit");
    command(tl, &operator, &["doctor"]).await;
}

/// The writer proof: the API says the failover is done, and the probe,
/// through the application's own name, shows it still reaching the old
/// server; Ballast repoints the name and calls it remediated only once the
/// probe proves the writer. Needs the local MariaDB servers
/// (`scripts/databases.sh`, which installs them as root); skipped, saying
/// so, without them.
async fn proof_story(tl: &Timeline, moto: &Moto, stack: &Stack, dbs: &Databases) {
    tl.story(
        "Story 8: the API says the failover is done; the application still reaches the old server",
    );
    if let Err(e) = try_databases() {
        tl.say(
            "skipped",
            format!("this story needs real MariaDB servers: {e}\n(run `sudo bash scripts/databases.sh` once, then `make demo` again)"),
        );
        return;
    }
    secret(moto, "orders/prober", PROBER.1).await;
    let cluster_arn = dbs
        .cluster()
        .await
        .db_cluster_arn()
        .unwrap_or_default()
        .to_string();
    opt_in(dbs, &cluster_arn, "secret=orders/prober").await;
    let old_writer = dbs.writer().await;
    let stale = dbs.instance_endpoint(&old_writer).await;
    dbs.fail_over_cluster().await;
    // The rig maps each endpoint to the local server that plays it now:
    // the new writer on the primary, the old one (a reader) on the
    // read-only replica.
    let rig = Rig::start(moto, &stack.topic_arn, dbs).await;
    dbs.set_record(CLUSTER, &stale).await;
    rig.propagate(dbs).await;
    tl.say(
        "seed",
        format!(
            "{CLUSTER} opts in: ballast:writer-probe=secret=orders/prober; the writer-probe function runs\n\
             beside rds-failover, resolving through a DNS server that serves Route 53's records\n\
             (each emulated endpoint answered by a local MariaDB server: 127.0.0.21 the primary, .22 a read-only replica)"
        ),
    );
    tl.say(
        "fault",
        format!("FailoverDBCluster: {old_writer} is a reader now; {CLUSTER}.internal.example.com still -> {stale}"),
    );
    tl.say(
        "event",
        "RDS DB Cluster Event RDS-EVENT-0071 (failover completed): the API says all is well",
    );
    let first = rig
        .invoke(sample_event("rds-cluster-failover-completed.json"))
        .await;
    delivered(tl, stack).await;
    if let Err(e) = &first {
        tl.say(
            "retry",
            format!("the invocation asks Lambda to retry: {}", retry_reason(e)),
        );
    }
    tl.say(
        "state",
        "a minute later, Route 53's change has reached the resolver",
    );
    rig.propagate(dbs).await;
    tl.say("event", "Lambda's retry of the same event");
    match rig
        .invoke(sample_event("rds-cluster-failover-completed.json"))
        .await
    {
        Ok(report) => decision(tl, &report),
        Err(e) => tl.say("retry", retry_reason(&e)),
    }
    delivered(tl, stack).await;
}

/// What a Lambda error says it waits on (its message, without the report
/// it repeats).
fn retry_reason(error: &str) -> String {
    let message = serde_json::from_str::<Value>(error)
        .ok()
        .and_then(|v| v["errorMessage"].as_str().map(str::to_string))
        .unwrap_or_else(|| error.to_string());
    message
        .split("; report:")
        .next()
        .unwrap_or_default()
        .to_string()
}
