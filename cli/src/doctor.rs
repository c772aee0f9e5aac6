//! `ballast doctor`: a read-only readiness audit of the account and Region
//! against what Ballast needs, before the bad day. `observe` reads (every
//! read is a Describe/List/Get), `checks` is pure (unit-tested per defect),
//! `render` prints; any `fail` exits 1 so it can gate a deploy pipeline.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use ballast::aws::reports::Subscription;
use ballast::aws::writer_probe;
use ballast::aws::{alarms, balancer, database, dns, fleet, reports, zonal_shift};
use ballast::decide::rds_failover::{finding, parse_dns_tag, request, Probed, Subject};
use ballast::decide::unhealthy_target::target_group_key;
use ballast::proof::Tls;
use ballast::resources::Access;
use ballast::resources::Instance;
use ballast::resources::{Group, MetricAlarm, TargetGroup};
use ballast::{config, tags};

use crate::steer::function_name;
use crate::{cut_at_word, json_text, subnet_zones_of, zones_of, Answer, Exit, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
}

/// The checks' ids: stable, for scripts (the README lists them).
pub mod id {
    pub const MANAGED_GROUPS: &str = "managed-groups";
    pub const ZONES: &str = "zones";
    pub const STATIC_STABILITY: &str = "static-stability";
    pub const HEALTH_CHECK: &str = "health-check";
    pub const CHANGE_FREEZE: &str = "change-freeze";
    pub const UNHEALTHY_ALARM: &str = "unhealthy-alarm";
    pub const ZONAL_ALARMS: &str = "zonal-alarms";
    pub const ZONAL_ALARM_MISSING_DATA: &str = "zonal-alarm-missing-data";
    pub const DNS_RECORD: &str = "dns-record";
    pub const STANDBY_REPLICA: &str = "standby-replica";
    pub const REPORT_SUBSCRIBERS: &str = "report-subscribers";
    pub const AUTOSHIFT_OBSERVER: &str = "autoshift-observer";
    pub const WRITER_PROBE: &str = "writer-probe";
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Which check (stable, for scripts).
    pub check: &'static str,
    /// What it looked at.
    pub subject: String,
    pub verdict: Verdict,
    pub detail: String,
    /// How to fix it (absent on a pass).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// The fix, when it is one shell command with nothing to fill in: run
    /// it as it is (the tests run each against the emulator).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

fn check(
    check: &'static str,
    subject: impl Into<String>,
    verdict: Verdict,
    detail: impl Into<String>,
    fix: Option<String>,
) -> Check {
    let command = fix
        .as_ref()
        .filter(|f| f.starts_with("aws ") && !f.contains('<') && !f.contains("..."))
        .cloned();
    Check {
        check,
        subject: subject.into(),
        verdict,
        detail: detail.into(),
        fix,
        command,
    }
}

/// What the deployed stack is configured with, read from its function's
/// environment (`GetFunctionConfiguration`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Deployment {
    pub function: String,
    pub topic_arn: Option<String>,
    pub hosted_zone_ids: Vec<String>,
    pub zonal_alarm_prefix: Option<String>,
}

/// Everything the checks look at. A read that failed is kept as its error:
/// the check it feeds says it could not look (warn), the others go on.
#[derive(Debug, Clone)]
pub struct Facts {
    pub region: String,
    pub groups: Vec<Group>,
    pub subnet_zone: BTreeMap<String, String>,
    pub target_groups: BTreeMap<String, Result<Option<TargetGroup>, String>>,
    pub alarms: Result<Vec<MetricAlarm>, String>,
    pub deployment: Result<Deployment, String>,
    /// DB id → its tags (clusters and instances that carry a Ballast tag).
    pub databases: Vec<(String, BTreeMap<String, String>, Option<Instance>)>,
    /// `<zone>/<name>` → the CNAME's value.
    pub records: BTreeMap<String, Result<Option<String>, String>>,
    /// Replica id → what it is.
    pub replicas: BTreeMap<String, Result<Option<Instance>, String>>,
    pub observer: Result<String, String>,
    pub subscriptions: Result<Vec<Subscription>, String>,
    /// Each database opted in to the writer proof: what the deployed probe
    /// answered (or why it was not asked), with the API's writer endpoint
    /// and Route 53's value of its name.
    pub probes: Vec<ProbeFact>,
}

/// One opted-in database, probed through the stack's writer probe.
#[derive(Debug, Clone)]
pub struct ProbeFact {
    pub id: String,
    pub probed: Probed,
    pub writer: Option<String>,
    pub record: Option<String>,
    pub access: Access,
}

impl Facts {
    /// Nothing read yet: every read is "not read".
    pub fn new(region: impl Into<String>) -> Facts {
        let not_read = || "not read".to_string();
        Facts {
            region: region.into(),
            groups: vec![],
            subnet_zone: BTreeMap::new(),
            target_groups: BTreeMap::new(),
            alarms: Err(not_read()),
            deployment: Err(not_read()),
            databases: vec![],
            records: BTreeMap::new(),
            replicas: BTreeMap::new(),
            observer: Err(not_read()),
            subscriptions: Err(not_read()),
            probes: vec![],
        }
    }
}

/// Every check, in a fixed order: groups, target groups and alarms,
/// zonal alarms, databases, autoshift, the report topic.
pub fn checks(f: &Facts) -> Vec<Check> {
    let mut out = vec![];
    if f.groups.is_empty() {
        out.push(check(
            id::MANAGED_GROUPS,
            "account",
            Verdict::Warn,
            format!("no Auto Scaling group is tagged {}=true: Ballast replaces and evacuates nothing", tags::MANAGED),
            Some(format!(
                "aws autoscaling create-or-update-tags --tags ResourceId=<asg>,ResourceType=auto-scaling-group,Key={},Value=true,PropagateAtLaunch=false",
                tags::MANAGED
            )),
        ));
    }
    for g in &f.groups {
        out.extend(group_checks(g, f));
    }
    // One check per target group, however many groups share it, naming them.
    let mut behind: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for g in &f.groups {
        for tg in &g.target_group_arns {
            behind.entry(tg).or_default().push(&g.name);
        }
    }
    for (tg, groups) in behind {
        let mut c = unhealthy_alarm(tg, f);
        c.detail = format!("{} (behind ASG {})", c.detail, groups.join(", "));
        out.push(c);
    }
    out.extend(zonal_alarm_checks(f));
    out.extend(database_checks(f));
    out.extend(f.probes.iter().map(probe_check));
    out.push(match &f.observer {
        Ok(s) if s == "ENABLED" => check(
            id::AUTOSHIFT_OBSERVER,
            "account",
            Verdict::Pass,
            "ARC autoshift observer notification is ENABLED: AWS-started autoshifts reach az-impairment",
            None,
        ),
        Ok(s) => check(
            id::AUTOSHIFT_OBSERVER,
            "account",
            Verdict::Fail,
            format!("ARC autoshift observer notification is {s}: an autoshift AWS starts for a zone never reaches Ballast"),
            Some(format!("aws arc-zonal-shift update-autoshift-observer-notification-status --status ENABLED --region {} (or deploy with EnableAutoshiftObserverNotification=true)", f.region)),
        ),
        Err(e) => check(
            id::AUTOSHIFT_OBSERVER,
            "account",
            Verdict::Warn,
            format!("could not read the autoshift observer notification status: {e}"),
            Some(format!("check that the caller may call arc-zonal-shift:GetAutoshiftObserverNotificationStatus in {}, then run doctor again", f.region)),
        ),
    });
    out.push(topic_check(f));
    out
}

fn group_checks(g: &Group, f: &Facts) -> Vec<Check> {
    let mut out = vec![];
    let subject = format!("asg/{}", g.name);
    // Zones the group uses now, and those an evacuation took away.
    let mut zones = zones_of(g, &f.subnet_zone);
    if let Some(e) = g
        .tags
        .get(tags::EVACUATED)
        .and_then(|v| ballast::decide::az_impairment::Evacuation::parse(v).ok())
    {
        zones.extend(e.azs.keys().cloned());
    }
    out.push(if zones.len() >= 2 {
        check(
            id::ZONES,
            &subject,
            Verdict::Pass,
            format!("{} zones: {}", zones.len(), zones.iter().cloned().collect::<Vec<_>>().join(", ")),
            None,
        )
    } else {
        check(
            id::ZONES,
            &subject,
            Verdict::Fail,
            format!(
                "subnets in {} zone(s) ({}): when that zone is impaired there is nowhere to evacuate to",
                zones.len(),
                zones.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
            Some(format!("add a subnet of another zone: aws autoscaling update-auto-scaling-group --auto-scaling-group-name {} --vpc-zone-identifier <subnet-a>,<subnet-b>", g.name)),
        )
    });
    out.push(static_stability(g, &subject));
    out.push(health_check(g, &subject));
    if let Some(c) = change_freeze(g, &subject) {
        out.push(c);
    }
    if g.target_group_arns.is_empty() {
        out.push(check(
            id::UNHEALTHY_ALARM,
            &subject,
            Verdict::Warn,
            "the group is attached to no target group: unhealthy-target has nothing to watch for it",
            None,
        ));
    }
    out
}

/// The fewest instances, spread evenly over `zones`, whose other zones
/// still hold `min_size` when the fullest one is lost.
pub fn stable_capacity(min_size: i32, zones: i32) -> i32 {
    let zones = zones.max(2);
    (min_size * zones + zones - 2) / (zones - 1)
}

/// Static stability, computed as: count the group's instances per zone now
/// (`DescribeAutoScalingGroups`), take away the zone with the most, and
/// compare what is left with `MinSize`. Below it, losing that zone leaves
/// the service short until the group launches replacements elsewhere.
pub fn static_stability(g: &Group, subject: &str) -> Check {
    let mut per_zone: BTreeMap<&str, i32> = BTreeMap::new();
    for i in &g.instances {
        *per_zone.entry(i.az.as_str()).or_default() += 1;
    }
    let total: i32 = per_zone.values().sum();
    let (largest, most) = per_zone
        .iter()
        .max_by_key(|(_, n)| **n)
        .map_or(("(none)", 0), |(z, n)| (*z, *n));
    let left = total - most;
    let detail = format!(
        "{total} instance{}; losing {largest} ({most}) leaves {left}, MinSize is {}",
        if total == 1 { "" } else { "s" },
        g.min_size
    );
    if left >= g.min_size {
        check(id::STATIC_STABILITY, subject, Verdict::Pass, detail, None)
    } else {
        let zones = per_zone.len().max(2) as i32;
        let needed = stable_capacity(g.min_size, zones);
        // MinSize stays: raising it with the capacity would raise the bar
        // the other zones must clear, and the next run would warn again.
        let max = if g.max_size < needed {
            format!(" --max-size {needed}")
        } else {
            String::new()
        };
        check(
            id::STATIC_STABILITY,
            subject,
            Verdict::Warn,
            format!(
                "{detail}: the rest cannot carry the minimum until replacements launch; run {needed} instances spread evenly over {zones} zones, so that any {} carry MinSize {} (and let no scaling policy go below {needed}), or lower MinSize to what the other zones carry ({left})",
                zones - 1,
                g.min_size,
            ),
            Some(format!(
                "aws autoscaling update-auto-scaling-group --auto-scaling-group-name {} --desired-capacity {needed}{max}",
                g.name,
            )),
        )
    }
}

/// The tag CloudFormation puts on the groups it creates.
const STACK_NAME_TAG: &str = "aws:cloudformation:stack-name";

/// A group a CloudFormation stack owns: an update of that stack writes the
/// template's `VPCZoneIdentifier` (and `MaxSize`) back, which undoes an
/// evacuation without a word. Checked only for such groups.
fn change_freeze(g: &Group, subject: &str) -> Option<Check> {
    let stack = g.tags.get(STACK_NAME_TAG)?;
    let evacuated = g
        .tags
        .get(tags::EVACUATED)
        .and_then(|v| ballast::decide::az_impairment::Evacuation::parse(v).ok())
        .map(|e| e.azs.keys().cloned().collect::<Vec<_>>())
        .filter(|azs| !azs.is_empty());
    Some(match evacuated {
        None => check(
            id::CHANGE_FREEZE,
            subject,
            Verdict::Pass,
            format!("belongs to CloudFormation stack {stack}: while a zone is evacuated, do not update that stack (an update writes the evacuated subnets back)"),
            None,
        ),
        Some(azs) => check(
            id::CHANGE_FREEZE,
            subject,
            Verdict::Warn,
            format!(
                "evacuated from {} and owned by CloudFormation stack {stack}: an update of {stack} now puts the group back into the impaired zone(s) and loses Ballast's record of its subnets",
                azs.join(", ")
            ),
            Some(format!(
                "freeze updates of stack {stack} (pipelines, drift fixes) until `ballast restore {}` has run; if one must ship, give {}'s VPCZoneIdentifier the subnets it has now, {}",
                azs[0],
                g.name,
                g.subnets().collect::<Vec<_>>().join(","),
            )),
        ),
    })
}

fn health_check(g: &Group, subject: &str) -> Check {
    let elb = g
        .health_check_type
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case("ELB"));
    let grace = g.health_check_grace_period;
    let fix_cmd = |kind: &str, grace: i32| {
        format!(
            "aws autoscaling update-auto-scaling-group --auto-scaling-group-name {} --health-check-type {kind} --health-check-grace-period {grace}",
            g.name
        )
    };
    if grace == 0 {
        return check(
            id::HEALTH_CHECK,
            subject,
            Verdict::Warn,
            format!("health check {} with a 0 s grace period: a new instance can be judged (and replaced, by the ASG or by Ballast) before it has booted", g.health_check_type),
            // ELB, or the next run warns again about EC2 checks.
            Some(fix_cmd("ELB", 300)),
        );
    }
    if elb {
        check(
            id::HEALTH_CHECK,
            subject,
            Verdict::Pass,
            format!("health check {} (grace {grace} s): the group replaces what the load balancer finds unhealthy by itself; when Ballast declines (too much of the fleet impaired, budget spent) its breaker suspends ReplaceUnhealthy so the group cannot replace the fleet", g.health_check_type),
            None,
        )
    } else {
        check(
            id::HEALTH_CHECK,
            subject,
            Verdict::Warn,
            format!("health check {} (grace {grace} s): the group replaces only instances that fail EC2 status checks; an instance the load balancer finds unhealthy waits for Ballast's mark (within its budget), and the breaker has nothing to suspend", g.health_check_type),
            Some(fix_cmd("ELB", grace)),
        )
    }
}

fn watches(alarm: &MetricAlarm, namespace: &str, metric: &str, dimension: (&str, &str)) -> bool {
    alarm.metrics.iter().any(|m| {
        m.namespace == namespace
            && m.name == metric
            && m.dimensions.get(dimension.0).map(String::as_str) == Some(dimension.1)
    })
}

fn unhealthy_alarm(tg_arn: &str, f: &Facts) -> Check {
    let key = target_group_key(tg_arn);
    let subject = format!("targetgroup/{key}");
    let Ok(alarms) = &f.alarms else {
        return check(
            id::UNHEALTHY_ALARM,
            subject,
            Verdict::Warn,
            format!(
                "could not read the alarms: {}",
                f.alarms.as_ref().err().cloned().unwrap_or_default()
            ),
            Some("allow cloudwatch:DescribeAlarms to the caller".into()),
        );
    };
    let dimension = format!("targetgroup/{key}");
    let found: Vec<&MetricAlarm> = alarms
        .iter()
        .filter(|a| {
            watches(
                a,
                "AWS/ApplicationELB",
                "UnHealthyHostCount",
                ("TargetGroup", &dimension),
            )
        })
        .collect();
    if let Some(a) = found.first() {
        return check(
            id::UNHEALTHY_ALARM,
            subject,
            Verdict::Pass,
            format!("alarm {} ({}) watches UnHealthyHostCount; its ALARM and OK reach unhealthy-target through the stack's rule", a.name, a.state),
            None,
        );
    }
    let lb = match f.target_groups.get(tg_arn) {
        Some(Ok(Some(tg))) => tg
            .load_balancer_arns
            .first()
            .and_then(|a| {
                ballast::event::Arn::parse(a)?
                    .resource
                    .strip_prefix("loadbalancer/")
            })
            .map(str::to_string),
        _ => None,
    }
    .unwrap_or_else(|| "<app/name/id of its load balancer>".into());
    check(
        id::UNHEALTHY_ALARM,
        subject,
        Verdict::Fail,
        "no alarm watches its UnHealthyHostCount: Ballast hears of unhealthy targets only at the next sweep, and the breaker closes only then",
        Some(format!(
            "aws cloudwatch put-metric-alarm --alarm-name {name}-unhealthy-hosts --namespace AWS/ApplicationELB --metric-name UnHealthyHostCount --dimensions Name=TargetGroup,Value={dimension} Name=LoadBalancer,Value={lb} --statistic Maximum --period 60 --evaluation-periods 2 --threshold 1 --comparison-operator GreaterThanOrEqualToThreshold --treat-missing-data notBreaching --region {region}",
            name = key.split('/').next().unwrap_or(key),
            region = f.region,
        )),
    )
}

/// The template's default `ZonalAlarmPrefix`.
const DEFAULT_ZONAL_PREFIX: &str = "ballast-az-";

fn zonal_alarm_checks(f: &Facts) -> Vec<Check> {
    // A read that fails shows as a warning of the checks it feeds, never as
    // their absence.
    let alarms = match &f.alarms {
        Ok(alarms) => alarms,
        Err(e) => {
            return vec![check(
                id::ZONAL_ALARMS,
                "zonal alarms",
                Verdict::Warn,
                format!("could not read the alarms: {e}"),
                Some("allow cloudwatch:DescribeAlarms to the caller".into()),
            )]
        }
    };
    let mut out = vec![];
    let prefix = match &f.deployment {
        Ok(d) => d
            .zonal_alarm_prefix
            .as_deref()
            .unwrap_or(DEFAULT_ZONAL_PREFIX),
        Err(e) => {
            out.push(check(
                id::ZONAL_ALARMS,
                "zonal alarms",
                Verdict::Warn,
                format!("could not read the stack's ZonalAlarmPrefix ({e}): checked the alarms named with the default, {DEFAULT_ZONAL_PREFIX}"),
                Some("name the stack Ballast is deployed as: ballast doctor --stack <name> (the StackName output)".into()),
            ));
            DEFAULT_ZONAL_PREFIX
        }
    };
    let zonal: Vec<&MetricAlarm> = alarms
        .iter()
        .filter(|a| a.name.starts_with(prefix))
        .filter(|a| {
            a.metrics
                .iter()
                .any(|m| m.dimensions.contains_key("AvailabilityZone"))
        })
        .collect();
    if zonal.is_empty() {
        out.push(check(
            id::ZONAL_ALARMS,
            format!("alarms {prefix}*"),
            Verdict::Warn,
            format!("no alarm named {prefix}* with an AvailabilityZone dimension: only AWS Health and ARC autoshift evacuate a zone"),
            Some("add a per-zone canary alarm (see the README, \"az-impairment\") named with the ZonalAlarmPrefix".into()),
        ));
        return out;
    }
    out.extend(zonal
        .into_iter()
        .map(|a| {
            let subject = format!("alarm/{}", a.name);
            let fix = Some(breaching(a, &f.region));
            match a.treat_missing_data.as_str() {
                "breaching" => check(id::ZONAL_ALARM_MISSING_DATA, subject, Verdict::Pass, "TreatMissingData breaching: a canary that goes silent in a dead zone keeps the zone evacuated", None),
                "notBreaching" => check(id::ZONAL_ALARM_MISSING_DATA, subject, Verdict::Fail, "TreatMissingData notBreaching: a canary that goes silent in a dead zone turns the alarm OK, and Ballast restores the zone", fix),
                other => check(id::ZONAL_ALARM_MISSING_DATA, subject, Verdict::Warn, format!("TreatMissingData {other}: a canary that goes silent in a dead zone leaves the alarm where it was or INSUFFICIENT_DATA, so the zone is never evacuated for it"), fix),
            }
        }));
    out
}

/// The command that puts alarm `a` back as it is, but with
/// `TreatMissingData` `breaching`: its whole definition, as read, in
/// `--cli-input-json` (`PutMetricAlarm` replaces an alarm whole; its tags
/// are kept).
fn breaching(a: &MetricAlarm, region: &str) -> String {
    let mut input = a.definition.clone();
    input["AlarmName"] = a.name.clone().into();
    input["TreatMissingData"] = "breaching".into();
    format!(
        "aws cloudwatch put-metric-alarm --region {region} --cli-input-json {}",
        sh_quoted(&input.to_string())
    )
}

/// `text` as one word of a POSIX shell: single-quoted, each `'` closed,
/// escaped and reopened.
fn sh_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn database_checks(f: &Facts) -> Vec<Check> {
    let mut out = vec![];
    for (id, tags, instance) in &f.databases {
        let subject = format!("db/{id}");
        if let Some(value) = tags.get(tags::DNS_RECORD) {
            let writer = instance.as_ref().and_then(|i| i.endpoint.as_deref());
            out.push(dns_record(&subject, value, writer, f));
        }
        if let Some(replica) = tags.get(tags::STANDBY_REPLICA) {
            out.push(standby(&subject, instance.as_ref(), replica, f));
        }
    }
    out
}

/// An opted-in database can be proven through its name by the deployed
/// probe: reached, logged in, answered, writable (and TLS verified, else a
/// warning).
pub(crate) fn probe_check(p: &ProbeFact) -> Check {
    let subject = format!("db/{}", p.id);
    let fail = |detail: String, fix: String| {
        check(id::WRITER_PROBE, &subject, Verdict::Fail, detail, Some(fix))
    };
    let proof = match &p.probed {
        Probed::NotOptedIn => {
            return check(id::WRITER_PROBE, &subject, Verdict::Pass, "not opted in", None)
        }
        Probed::NotAsked(why) => {
            return fail(
                format!("opted in to the writer proof, but it cannot be asked: {why}"),
                format!("fix what stops it: {why}"),
            )
        }
        Probed::Unanswered(why) => {
            return fail(
                format!("the writer probe did not answer: {why}"),
                "check the writer-probe function's logs and that the caller may invoke it (lambda:InvokeFunction), then run doctor again".into(),
            )
        }
        Probed::Proof(proof) => proof,
    };
    let writer = p.writer.as_deref().unwrap_or_default();
    let proven = proof.proves_writer()
        && proof
            .chain
            .iter()
            .any(|hop| ballast::resources::normalise(hop) == ballast::resources::normalise(writer));
    if !proven {
        let (detail, fix) = finding(proof, writer, p.record.as_deref(), &p.access);
        return fail(format!("{detail} ({})", proof.describe()), fix);
    }
    match &proof.tls {
        Some(Tls::Verified { .. }) => check(id::WRITER_PROBE, &subject, Verdict::Pass, format!("proven: {}", proof.describe()), None),
        _ => check(
            id::WRITER_PROBE,
            &subject,
            Verdict::Warn,
            format!("proven, but TLS is encrypted and NOT verified: {}", proof.describe()),
            Some("deploy with ProbeCaBundle naming the Region's RDS CA bundle inside the function (e.g. from a layer given as ProbeLayerArn): https://truststore.pki.rds.amazonaws.com/<region>/<region>-bundle.pem".into()),
        ),
    }
}

/// The command that creates (or repoints) the CNAME `name` in `zone` at
/// `value`, with Ballast's default TTL.
fn upsert_cname(zone: &str, name: &str, value: &str) -> String {
    let batch = serde_json::json!({"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
        "Name": name, "Type": "CNAME", "TTL": ballast::config::DEFAULT_DNS_TTL,
        "ResourceRecords": [{"Value": value}]}}]});
    format!(
        "aws route53 change-resource-record-sets --hosted-zone-id {zone} --change-batch '{batch}'"
    )
}

/// `writer`: the endpoint the record must point at, when the tagged
/// resource is an instance (a cluster's is its writer endpoint).
fn dns_record(subject: &str, value: &str, writer: Option<&str>, f: &Facts) -> Check {
    let (zone, name) = match parse_dns_tag(value) {
        Ok(zn) => zn,
        Err(e) => {
            return check(
                id::DNS_RECORD,
                subject,
                Verdict::Fail,
                e,
                Some(format!(
                    "tag {} as <HostedZoneId>/<record name>",
                    tags::DNS_RECORD
                )),
            )
        }
    };
    if let Ok(d) = &f.deployment {
        if !d.hosted_zone_ids.iter().any(|z| z == &zone) {
            return check(
                id::DNS_RECORD,
                subject,
                Verdict::Fail,
                format!(
                    "{zone}/{name}: Ballast may not change zone {zone} (HostedZoneIds = [{}]), so a failover leaves the record on the old writer",
                    d.hosted_zone_ids.join(",")
                ),
                Some(format!("sam deploy --parameter-overrides HostedZoneIds={}", d.hosted_zone_ids.iter().cloned().chain([zone.clone()]).collect::<Vec<_>>().join(","))),
            );
        }
    }
    match f.records.get(&format!("{zone}/{name}")) {
        // Whether Ballast may change the zone is the stack's HostedZoneIds:
        // unread, the record cannot pass.
        Some(Ok(Some(v))) if f.deployment.is_err() => check(
            id::DNS_RECORD,
            subject,
            Verdict::Warn,
            format!(
                "{zone}/{name} is a CNAME to {v}, but the stack's HostedZoneIds could not be read ({}): whether Ballast may change zone {zone} is unknown",
                f.deployment.as_ref().err().cloned().unwrap_or_default()
            ),
            Some("name the stack Ballast is deployed as: ballast doctor --stack <name> (the StackName output)".into()),
        ),
        Some(Ok(Some(v))) => check(id::DNS_RECORD, subject, Verdict::Pass, format!("{zone}/{name} is a CNAME to {v}"), None),
        Some(Ok(None)) => check(
            id::DNS_RECORD,
            subject,
            Verdict::Fail,
            format!("{zone}/{name}: no such CNAME in the zone (a typo in the tag, or the record was never created)"),
            Some(match writer {
                Some(w) => upsert_cname(&zone, &name, w),
                None => format!("create the CNAME {name} in {zone}, pointing at the cluster's writer endpoint, or correct the tag"),
            }),
        ),
        Some(Err(e)) => check(id::DNS_RECORD, subject, Verdict::Warn, format!("{zone}/{name} could not be read: {e}"), Some("allow route53:ListResourceRecordSets to the caller".into())),
        None => check(id::DNS_RECORD, subject, Verdict::Warn, format!("{zone}/{name} was not read"), None),
    }
}

fn standby(subject: &str, primary: Option<&Instance>, replica: &str, f: &Facts) -> Check {
    let Some(primary) = primary else {
        return check(
            id::STANDBY_REPLICA,
            subject,
            Verdict::Fail,
            format!(
                "{} is set on a cluster: standbys are promoted only for DB instances",
                tags::STANDBY_REPLICA
            ),
            None,
        );
    };
    // A new replica of this primary outside its zone, and the tag on it.
    // A zone of this account's groups other than the primary's, when one is
    // known; else a placeholder that says which.
    let other = |az: &str| {
        f.subnet_zone
            .values()
            .find(|z| z.as_str() != az)
            .cloned()
            .unwrap_or_else(|| format!("<a zone other than {az}>"))
    };
    let elsewhere = primary
        .az
        .as_deref()
        .map(|az| format!(" --availability-zone {}", other(az)))
        .unwrap_or_default();
    let create = |id: &str| {
        format!(
            "aws rds create-db-instance-read-replica --db-instance-identifier {id} --source-db-instance-identifier {}{elsewhere}",
            primary.id
        )
    };
    let retag = |id: &str| {
        format!(
            "aws rds add-tags-to-resource --resource-name {} --tags Key={},Value={id}",
            primary.arn,
            tags::STANDBY_REPLICA
        )
    };
    let standby = format!("{}-standby", primary.id);
    let new_standby = Some(format!("{} && {}", create(&standby), retag(&standby)));
    match f.replicas.get(replica) {
        Some(Ok(Some(r))) => {
            let problem = if r.source.as_deref() != Some(primary.id.as_str()) {
                Some((
                    format!(
                        "{replica} is not a read replica of {} (it replicates from {})",
                        primary.id,
                        r.source.as_deref().unwrap_or("nothing")
                    ),
                    new_standby,
                ))
            } else if r.status != "available" {
                Some((
                    format!("{replica} is {}, not available", r.status),
                    Some(format!(
                        "aws rds wait db-instance-available --db-instance-identifier {replica}"
                    )),
                ))
            } else if r.az.is_some() && r.az == primary.az {
                Some((
                    format!(
                        "{replica} is in {}, the primary's zone: it fails with it",
                        r.az.as_deref().unwrap_or("?")
                    ),
                    new_standby,
                ))
            } else {
                None
            };
            match problem {
                Some((p, fix)) => check(id::STANDBY_REPLICA, subject, Verdict::Fail, p, fix),
                None => check(
                    id::STANDBY_REPLICA,
                    subject,
                    Verdict::Pass,
                    format!(
                        "{replica}: available replica of {} in {} (primary in {})",
                        primary.id,
                        r.az.as_deref().unwrap_or("?"),
                        primary.az.as_deref().unwrap_or("?")
                    ),
                    None,
                ),
            }
        }
        Some(Ok(None)) => check(
            id::STANDBY_REPLICA,
            subject,
            Verdict::Fail,
            format!("{replica} does not exist"),
            Some(create(replica)),
        ),
        Some(Err(e)) => check(
            id::STANDBY_REPLICA,
            subject,
            Verdict::Warn,
            format!("{replica} could not be read: {e}"),
            None,
        ),
        None => check(
            id::STANDBY_REPLICA,
            subject,
            Verdict::Warn,
            format!("{replica} was not read"),
            None,
        ),
    }
}

fn topic_check(f: &Facts) -> Check {
    let subject = match &f.deployment {
        Ok(d) => d.topic_arn.clone().unwrap_or_else(|| "report topic".into()),
        Err(_) => "report topic".into(),
    };
    let subscriptions = match (&f.deployment, &f.subscriptions) {
        (Err(e), _) => return check(
            id::REPORT_SUBSCRIBERS,
            subject,
            Verdict::Warn,
            format!("could not read the deployed stack's configuration: {e}"),
            Some(
                "pass --stack <name> (the stack's name), and allow lambda:GetFunctionConfiguration"
                    .into(),
            ),
        ),
        (_, Err(e)) => {
            return check(
                id::REPORT_SUBSCRIBERS,
                subject,
                Verdict::Warn,
                format!("could not list the topic's subscriptions: {e}"),
                None,
            )
        }
        (_, Ok(s)) => s,
    };
    let confirmed: Vec<String> = subscriptions
        .iter()
        .filter(|s| s.confirmed)
        .map(|s| format!("{} {}", s.protocol, s.endpoint))
        .collect();
    let fix = Some(format!("aws sns subscribe --topic-arn {subject} --protocol email --notification-endpoint you@example.com (or deploy with ReportEmail=...)"));
    if !confirmed.is_empty() {
        check(
            id::REPORT_SUBSCRIBERS,
            subject,
            Verdict::Pass,
            format!("{} confirmed: {}", confirmed.len(), confirmed.join(", ")),
            None,
        )
    } else if !subscriptions.is_empty() {
        check(
            id::REPORT_SUBSCRIBERS,
            subject,
            Verdict::Warn,
            format!(
                "{} subscription(s), none confirmed yet: reports reach nobody",
                subscriptions.len()
            ),
            Some("confirm the subscription (the link in the email SNS sent)".into()),
        )
    } else {
        check(
            id::REPORT_SUBSCRIBERS,
            subject,
            Verdict::Fail,
            "no subscriber: every report Ballast publishes reaches nobody",
            fix,
        )
    }
}

/// An AWS error in one line: the call, and the service's code (or its
/// message's first line, cut at a word if long), not the SDK's context.
fn brief(e: &ballast::aws::AwsError) -> String {
    let what = e.code.clone().unwrap_or_else(|| {
        let first = e.message.lines().next().unwrap_or_default();
        cut_at_word(first, 160)
    });
    format!("{} {}: {what}", e.operation, e.resource)
}

/// Reads every fact. A read whose failure a check can report (a target
/// group, the alarms, the deployment, a record, a replica, the observer
/// setting, the subscriptions) is kept as that failure and the audit goes
/// on; a failed read of what every check stands on (the managed groups,
/// their subnets' zones, the tagged databases) ends it with that error.
pub async fn observe(target: &Target, stack: &str) -> Result<Facts, String> {
    let aws = &target.aws;
    let mut f = Facts::new(aws.region.clone());
    f.groups = fleet::managed_groups(&aws.autoscaling)
        .await
        .map_err(|e| brief(&e))?;
    f.subnet_zone = subnet_zones_of(aws, &f.groups)
        .await
        .map_err(|e| brief(&e))?;
    let tgs: BTreeSet<&String> = f.groups.iter().flat_map(|g| &g.target_group_arns).collect();
    for tg in tgs {
        let read = balancer::describe_target_group(&aws.elbv2, tg)
            .await
            .map_err(|e| brief(&e));
        f.target_groups.insert(tg.clone(), read);
    }
    f.alarms = alarms::metric_alarms(&aws.cloudwatch)
        .await
        .map_err(|e| brief(&e));
    f.deployment = deployment(target, &function_name(stack, "az-impairment")).await;

    let (clusters, instances) = database::tagged(&aws.rds).await.map_err(|e| brief(&e))?;
    for c in &clusters {
        f.databases.push((c.id.clone(), c.tags.clone(), None));
    }
    for i in &instances {
        f.databases
            .push((i.id.clone(), i.tags.clone(), Some(i.clone())));
    }
    for (_, tags, _) in &f.databases {
        if let Some(Ok((zone, name))) = tags.get(tags::DNS_RECORD).map(|v| parse_dns_tag(v)) {
            let read = dns::current_cname(&aws.route53, &zone, &name)
                .await
                .map_err(|e| brief(&e));
            f.records.insert(format!("{zone}/{name}"), read);
        }
        if let Some(replica) = tags.get(tags::STANDBY_REPLICA) {
            let read = database::describe_instance(&aws.rds, replica)
                .await
                .map_err(|e| brief(&e));
            f.replicas.insert(replica.clone(), read);
        }
    }
    f.probes = probe_facts(aws, stack, &clusters, &instances, &f.records).await;
    f.observer = zonal_shift::observer_notification(&aws.zonal_shift)
        .await
        .map_err(|e| brief(&e));
    f.subscriptions = match &f.deployment {
        Ok(Deployment {
            topic_arn: Some(topic),
            ..
        }) => reports::subscriptions(&aws.sns, topic)
            .await
            .map_err(|e| brief(&e)),
        Ok(_) => Err("the function has no BALLAST_TOPIC_ARN".into()),
        Err(e) => Err(e.clone()),
    };
    Ok(f)
}

/// Each database opted in to the writer proof, asked of the stack's
/// writer probe (`<stack>-writer-probe`, invoked as rds-failover invokes
/// it: the probe only reads).
pub(crate) async fn probe_facts(
    aws: &ballast::aws::Aws,
    stack: &str,
    clusters: &[ballast::resources::Cluster],
    instances: &[Instance],
    records: &BTreeMap<String, Result<Option<String>, String>>,
) -> Vec<ProbeFact> {
    let function = function_name(stack, "writer-probe");
    let record_of = |tags: &BTreeMap<String, String>| {
        let (zone, name) = tags
            .get(tags::DNS_RECORD)
            .and_then(|v| parse_dns_tag(v).ok())?;
        records
            .get(&format!("{zone}/{name}"))?
            .clone()
            .ok()
            .flatten()
    };
    let subjects = clusters
        .iter()
        .map(|c| {
            let record = record_of(&c.tags);
            (
                c.id.clone(),
                c.endpoint.clone(),
                c.access.clone(),
                record.clone(),
                Subject::Cluster {
                    cluster: c.clone(),
                    writer: None,
                    dns_current: record,
                },
            )
        })
        .chain(instances.iter().map(|i| {
            let record = record_of(&i.tags);
            (
                i.id.clone(),
                i.endpoint.clone(),
                i.access.clone(),
                record.clone(),
                Subject::Instance {
                    primary: i.clone(),
                    standby: None,
                    dns_current: record,
                },
            )
        }));
    let mut out = vec![];
    for (id, writer, access, record, subject) in subjects {
        let probed = match request(&subject, true) {
            Err(Probed::NotOptedIn) => continue,
            Err(other) => other,
            Ok(r) => match writer_probe::invoke(&aws.lambda, &function, &r).await {
                Ok(writer_probe::Answer::Proof(p)) => Probed::Proof(p),
                Ok(writer_probe::Answer::Refused(why)) => Probed::Unanswered(why),
                Err(e) if e.has_code("ResourceNotFoundException") => Probed::NotAsked(format!(
                    "this stack has no writer probe ({function} does not exist): deploy it with the ProbeSubnetIds and ProbeSecurityGroupIds parameters"
                )),
                Err(e) => Probed::Unanswered(brief(&e)),
            },
        };
        out.push(ProbeFact {
            id,
            probed,
            writer,
            record,
            access,
        });
    }
    out
}

/// The stack's configuration, from its function's environment.
pub async fn deployment(target: &Target, function: &str) -> Result<Deployment, String> {
    let out = target
        .lambda
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
        .map_err(|e| {
            ballast::aws::AwsError::from_sdk("GetFunctionConfiguration", function, e).to_string()
        })?;
    let env = out.environment();
    if let Some(err) = env.and_then(|e| e.error()) {
        return Err(format!(
            "the environment of {function} is not readable: {} {}",
            err.error_code().unwrap_or_default(),
            err.message().unwrap_or_default()
        ));
    }
    let vars = env.and_then(|e| e.variables()).cloned().unwrap_or_default();
    Ok(Deployment {
        function: function.to_string(),
        topic_arn: vars.get(config::TOPIC_ARN).cloned(),
        hosted_zone_ids: vars
            .get(config::HOSTED_ZONE_IDS)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|z| !z.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        zonal_alarm_prefix: vars.get(config::ZONAL_ALARM_PREFIX).cloned(),
    })
}

pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let mark = match c.verdict {
            Verdict::Pass => "pass",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        };
        out.push_str(&format!(
            "{mark}  {:<26} {}: {}\n",
            c.check, c.subject, c.detail
        ));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("      fix: {fix}\n"));
        }
    }
    let count = |v| checks.iter().filter(|c| c.verdict == v).count();
    out.push_str(&format!(
        "\n{} checks: {} pass, {} warn, {} fail\n",
        checks.len(),
        count(Verdict::Pass),
        count(Verdict::Warn),
        count(Verdict::Fail)
    ));
    out
}

pub fn exit_of(checks: &[Check]) -> Exit {
    if checks.iter().any(|c| c.verdict == Verdict::Fail) {
        Exit::Attention
    } else {
        Exit::Ok
    }
}

pub async fn run(target: &Target, stack: &str, json: bool) -> Answer {
    let facts = match observe(target, stack).await {
        Ok(f) => f,
        Err(e) => return Answer::err(Exit::Aws, format!("could not read the account: {e}")),
    };
    let checks = checks(&facts);
    let exit = exit_of(&checks);
    if json {
        Answer::out(
            exit,
            json_text(&serde_json::json!({"checks": checks, "failed": exit == Exit::Attention})),
        )
    } else {
        Answer::out(exit, render(&checks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast::resources::GroupInstance;
    use ballast::resources::WatchedMetric;

    const TG: &str = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web/abc";

    fn group() -> Group {
        Group {
            name: "web".into(),
            arn: None,
            tags: [
                (tags::MANAGED.to_string(), "true".to_string()),
                (STACK_NAME_TAG.to_string(), "web".to_string()),
            ]
            .into(),
            target_group_arns: vec![TG.into()],
            vpc_zone_identifier: "subnet-a,subnet-b,subnet-c".into(),
            min_size: 2,
            max_size: 9,
            desired_capacity: 3,
            instances: vec![
                GroupInstance::in_service("i-1", "web", "us-east-1a"),
                GroupInstance::in_service("i-2", "web", "us-east-1b"),
                GroupInstance::in_service("i-3", "web", "us-east-1c"),
            ],
            health_check_type: "ELB".into(),
            suspended_processes: vec![],
            health_check_grace_period: 300,
        }
    }

    fn alarm(name: &str, dims: &[(&str, &str)], missing: &str) -> MetricAlarm {
        MetricAlarm {
            name: name.into(),
            state: "OK".into(),
            treat_missing_data: missing.into(),
            metrics: vec![WatchedMetric {
                namespace: "AWS/ApplicationELB".into(),
                name: "UnHealthyHostCount".into(),
                dimensions: dims
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }],
            definition: serde_json::json!({"AlarmName": name, "TreatMissingData": missing}),
        }
    }

    fn instance(id: &str, az: &str, source: Option<&str>, tags: &[(&str, &str)]) -> Instance {
        Instance {
            id: id.into(),
            arn: format!("arn:aws:rds:us-east-1:1:db:{id}"),
            status: "available".into(),
            endpoint: Some(format!("{id}.rds.amazonaws.com")),
            az: Some(az.into()),
            secondary_az: None,
            multi_az: false,
            source: source.map(str::to_string),
            cluster: None,
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            access: Default::default(),
        }
    }

    /// The seeded standby replica, to break.
    fn replica(f: &mut Facts) -> &mut Instance {
        f.replicas
            .get_mut("orders-b")
            .and_then(|r| r.as_mut().ok())
            .and_then(|r| r.as_mut())
            .expect("the seeded replica")
    }

    /// An account with nothing to fix.
    fn ready() -> Facts {
        let mut f = Facts::new("us-east-1");
        f.groups = vec![group()];
        f.subnet_zone = [
            ("subnet-a", "us-east-1a"),
            ("subnet-b", "us-east-1b"),
            ("subnet-c", "us-east-1c"),
        ]
        .iter()
        .map(|(s, z)| (s.to_string(), z.to_string()))
        .collect();
        f.alarms = Ok(vec![
            alarm(
                "web-unhealthy",
                &[
                    ("TargetGroup", "targetgroup/web/abc"),
                    ("LoadBalancer", "app/lb/1"),
                ],
                "notBreaching",
            ),
            alarm(
                "ballast-az-canary-a",
                &[("AvailabilityZone", "us-east-1a")],
                "breaching",
            ),
        ]);
        f.deployment = Ok(Deployment {
            function: "ballast-az-impairment".into(),
            topic_arn: Some("arn:aws:sns:us-east-1:1:reports".into()),
            hosted_zone_ids: vec!["Z1".into()],
            zonal_alarm_prefix: Some("ballast-az-".into()),
        });
        let primary = instance(
            "orders",
            "us-east-1a",
            None,
            &[
                (tags::DNS_RECORD, "Z1/db.example.com"),
                (tags::STANDBY_REPLICA, "orders-b"),
            ],
        );
        f.databases = vec![("orders".into(), primary.tags.clone(), Some(primary))];
        f.records.insert(
            "Z1/db.example.com.".into(),
            Ok(Some("orders.rds.amazonaws.com".into())),
        );
        f.replicas.insert(
            "orders-b".into(),
            Ok(Some(instance(
                "orders-b",
                "us-east-1b",
                Some("orders"),
                &[],
            ))),
        );
        f.observer = Ok("ENABLED".into());
        f.subscriptions = Ok(vec![Subscription {
            protocol: "email".into(),
            endpoint: "sre@example.com".into(),
            confirmed: true,
        }]);
        f
    }

    #[test]
    fn a_ready_account_passes_every_check() {
        let all = checks(&ready());
        assert!(
            all.iter().all(|c| c.verdict == Verdict::Pass),
            "{}",
            render(&all)
        );
        assert_eq!(all.len(), 10, "{}", render(&all));
        assert_eq!(exit_of(&all), Exit::Ok);
    }

    #[test]
    fn each_defect_is_reported_with_its_fix() {
        type Seed = fn(&mut Facts);
        let cases: Vec<(&str, Verdict, Seed)> = vec![
            ("zones", Verdict::Fail, |f| {
                f.groups[0].vpc_zone_identifier = "subnet-a".into()
            }),
            ("static-stability", Verdict::Warn, |f| {
                f.groups[0].min_size = 3
            }),
            ("health-check", Verdict::Warn, |f| {
                f.groups[0].health_check_type = "EC2".into()
            }),
            ("health-check", Verdict::Warn, |f| {
                f.groups[0].health_check_grace_period = 0
            }),
            ("unhealthy-alarm", Verdict::Fail, |f| {
                f.alarms.as_mut().unwrap().remove(0).name.clear()
            }),
            ("zonal-alarm-missing-data", Verdict::Fail, |f| {
                f.alarms.as_mut().unwrap()[1].treat_missing_data = "notBreaching".into()
            }),
            ("zonal-alarm-missing-data", Verdict::Warn, |f| {
                f.alarms.as_mut().unwrap()[1].treat_missing_data = "missing".into()
            }),
            ("zonal-alarms", Verdict::Warn, |f| {
                f.alarms.as_mut().unwrap().remove(1);
            }),
            ("dns-record", Verdict::Fail, |f| {
                f.databases[0]
                    .1
                    .insert(tags::DNS_RECORD.into(), "db.example.com".into());
            }),
            ("dns-record", Verdict::Fail, |f| {
                f.deployment.as_mut().unwrap().hosted_zone_ids.clear()
            }),
            ("dns-record", Verdict::Fail, |f| {
                f.records.insert("Z1/db.example.com.".into(), Ok(None));
            }),
            ("standby-replica", Verdict::Fail, |f| {
                f.replicas.insert("orders-b".into(), Ok(None));
            }),
            ("standby-replica", Verdict::Fail, |f| {
                replica(f).source = Some("other".into())
            }),
            ("standby-replica", Verdict::Fail, |f| {
                replica(f).az = Some("us-east-1a".into())
            }),
            ("standby-replica", Verdict::Fail, |f| {
                replica(f).status = "creating".into()
            }),
            ("autoshift-observer", Verdict::Fail, |f| {
                f.observer = Ok("DISABLED".into())
            }),
            ("autoshift-observer", Verdict::Warn, |f| {
                f.observer = Err("AccessDenied".into())
            }),
            ("report-subscribers", Verdict::Fail, |f| {
                f.subscriptions = Ok(vec![])
            }),
            ("report-subscribers", Verdict::Warn, |f| {
                f.subscriptions.as_mut().unwrap()[0].confirmed = false
            }),
            ("managed-groups", Verdict::Warn, |f| f.groups.clear()),
            ("change-freeze", Verdict::Warn, |f| {
                f.groups[0].tags.insert(
                    tags::EVACUATED.into(),
                    "azs=us-east-1c@1764590000 subnets=subnet-a/subnet-b/subnet-c max=9 by=us-east-1c/operator".into(),
                );
            }),
        ];
        for (name, verdict, seed) in cases {
            let mut f = ready();
            seed(&mut f);
            let all = checks(&f);
            let hit: Vec<&Check> = all
                .iter()
                .filter(|c| c.check == name && c.verdict == verdict)
                .collect();
            assert_eq!(hit.len(), 1, "{name} {verdict:?}:\n{}", render(&all));
            assert!(hit[0].fix.is_some(), "{name} {verdict:?} without a fix");
            // Only the seeded defect shows (a lost group takes its checks along).
            let others = all.iter().filter(|c| c.verdict != Verdict::Pass).count();
            assert_eq!(others, 1, "{name} {verdict:?}:\n{}", render(&all));
            assert_eq!(exit_of(&all) == Exit::Attention, verdict == Verdict::Fail);
        }
    }

    #[test]
    fn static_stability_is_what_the_other_zones_hold_against_the_minimum() {
        let mut g = group();
        g.instances = vec![
            GroupInstance::in_service("i-1", "web", "us-east-1a"),
            GroupInstance::in_service("i-2", "web", "us-east-1a"),
            GroupInstance::in_service("i-3", "web", "us-east-1b"),
        ];
        let c = static_stability(&g, "asg/web");
        assert_eq!(c.verdict, Verdict::Warn);
        assert!(
            c.detail
                .starts_with("3 instances; losing us-east-1a (2) leaves 1, MinSize is 2"),
            "{}",
            c.detail
        );
        // Two zones, minimum 2: 4 instances, 2 a zone.
        assert!(
            c.detail
                .contains("run 4 instances spread evenly over 2 zones"),
            "{}",
            c.detail
        );
        let fix = c.fix.unwrap();
        assert!(
            fix.contains("--desired-capacity 4") && !fix.contains("--min-size"),
            "{fix}"
        );
        // One command, nothing to fill in: runnable as printed.
        assert_eq!(c.command.as_deref(), Some(fix.as_str()));
    }

    /// The fix, applied (the capacity it names, spread evenly; MinSize
    /// kept), passes the check: it does not ask again for more.
    #[test]
    fn the_static_stability_fix_makes_the_check_pass() {
        let azs = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"];
        for zones in 2..=4usize {
            for min in 1..=20 {
                let needed = stable_capacity(min, zones as i32);
                let mut g = group();
                g.min_size = min;
                g.instances = (0..needed as usize)
                    .map(|i| GroupInstance::in_service(&format!("i-{i}"), "web", azs[i % zones]))
                    .collect();
                let c = static_stability(&g, "asg/web");
                assert_eq!(
                    c.verdict,
                    Verdict::Pass,
                    "{zones} zones, MinSize {min}: {}",
                    c.detail
                );
                // And it is the fewest: one less warns.
                g.instances.pop();
                let fewer = static_stability(&g, "asg/web");
                assert_eq!(
                    fewer.verdict,
                    Verdict::Warn,
                    "{zones} zones, MinSize {min}, {} instances",
                    needed - 1
                );
            }
        }
    }

    /// Each standby fix names the real primary and does what the finding
    /// needs: create the missing replica; wait for one not available; a new
    /// replica outside the primary's zone, and the tag on it, for one that
    /// fails with the primary or replicates another. No placeholder primary.
    #[test]
    fn standby_fixes_name_the_primary_and_fit_the_finding() {
        let primary = instance("orders", "us-east-1a", None, &[]);
        let fix_for = |r: Option<Instance>| {
            let mut f = Facts::new("us-east-1");
            f.replicas.insert("orders-b".into(), Ok(r));
            let c = standby("db/orders", Some(&primary), "orders-b", &f);
            assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
            c.fix.unwrap()
        };
        let missing = fix_for(None);
        assert!(missing.starts_with("aws rds create-db-instance-read-replica --db-instance-identifier orders-b --source-db-instance-identifier orders --availability-zone <a zone other than us-east-1a>"), "{missing}");
        let same_zone = fix_for(Some(instance(
            "orders-b",
            "us-east-1a",
            Some("orders"),
            &[],
        )));
        assert!(
            same_zone.contains("--db-instance-identifier orders-standby --source-db-instance-identifier orders")
                && same_zone.contains("add-tags-to-resource --resource-name arn:aws:rds:us-east-1:1:db:orders --tags Key=ballast:standby-replica,Value=orders-standby"),
            "{same_zone}"
        );
        let foreign = fix_for(Some(instance(
            "orders-b",
            "us-east-1b",
            Some("billing"),
            &[],
        )));
        assert!(foreign.contains("orders-standby"), "{foreign}");
        let mut backing_up = instance("orders-b", "us-east-1b", Some("orders"), &[]);
        backing_up.status = "backing-up".into();
        assert_eq!(
            fix_for(Some(backing_up)),
            "aws rds wait db-instance-available --db-instance-identifier orders-b"
        );
        for fix in [missing, same_zone, foreign] {
            assert!(!fix.contains("<primary>"), "{fix}");
        }
    }

    /// A read that fails shows as a warning of the checks it feeds, never
    /// as their absence or a pass.
    #[test]
    fn an_unread_stack_or_alarm_list_warns_instead_of_hiding_checks() {
        let verdict = |all: &[Check], name: &str, subject: &str| {
            all.iter()
                .find(|c| c.check == name && c.subject == subject)
                .map(|c| c.verdict)
        };
        // The stack's configuration unread (a --stack that names no
        // function): the zonal alarms are still checked, with the default
        // prefix, and said so; a record cannot pass.
        let mut f = ready();
        f.deployment = Err("ResourceNotFoundException".into());
        if let Ok(alarms) = f.alarms.as_mut() {
            alarms.push(alarm(
                "ballast-az-canary-b",
                &[("AvailabilityZone", "us-east-1b")],
                "notBreaching",
            ));
        }
        let all = checks(&f);
        assert_eq!(
            verdict(&all, "zonal-alarms", "zonal alarms"),
            Some(Verdict::Warn)
        );
        assert_eq!(
            verdict(
                &all,
                "zonal-alarm-missing-data",
                "alarm/ballast-az-canary-b"
            ),
            Some(Verdict::Fail),
            "{}",
            render(&all)
        );
        assert_eq!(
            verdict(&all, "dns-record", "db/orders"),
            Some(Verdict::Warn)
        );
        // The alarms unread: said, not silent.
        let mut f = ready();
        f.alarms = Err("AccessDenied".into());
        let all = checks(&f);
        assert_eq!(
            verdict(&all, "zonal-alarms", "zonal alarms"),
            Some(Verdict::Warn)
        );
    }

    #[test]
    fn a_long_error_is_cut_at_a_word() {
        let long = "dispatch failure: error trying to connect: tcp connect error: Connection refused (os error 111) while reaching https://autoscaling.us-east-1.amazonaws.com/ after three attempts";
        let cut = cut_at_word(long, 60);
        assert!(cut.ends_with('…') && cut.chars().count() <= 61, "{cut}");
        assert!(long.starts_with(cut.trim_end_matches('…')), "{cut}");
        assert!(
            long[cut.len() - '…'.len_utf8()..].starts_with(' '),
            "cut mid-word: {cut}"
        );
        assert_eq!(cut_at_word("AccessDenied", 60), "AccessDenied");
    }

    /// A target group shared by several groups is checked once, naming them.
    #[test]
    fn a_shared_target_group_is_checked_once_naming_its_groups() {
        let mut f = ready();
        let mut api = group();
        api.name = "api".into();
        f.groups.push(api);
        let all = checks(&f);
        let alarms: Vec<&Check> = all
            .iter()
            .filter(|c| c.check == "unhealthy-alarm")
            .collect();
        assert_eq!(alarms.len(), 1, "{}", render(&all));
        assert!(
            alarms[0].detail.ends_with("(behind ASG web, api)"),
            "{}",
            alarms[0].detail
        );
    }

    /// The grace-period fix sets the ELB type too: applied, the check passes.
    #[test]
    fn the_health_check_fix_makes_the_check_pass() {
        for kind in ["EC2", "ELB"] {
            let mut g = group();
            g.health_check_type = kind.into();
            g.health_check_grace_period = 0;
            let c = health_check(&g, "asg/web");
            assert_eq!(c.verdict, Verdict::Warn);
            let fix = c.fix.unwrap();
            assert!(
                fix.contains("--health-check-type ELB --health-check-grace-period 300"),
                "{fix}"
            );
            g.health_check_type = "ELB".into();
            g.health_check_grace_period = 300;
            assert_eq!(health_check(&g, "asg/web").verdict, Verdict::Pass);
        }
    }

    fn probe_fact(probed: Probed) -> ProbeFact {
        ProbeFact {
            id: "orders".into(),
            probed,
            writer: Some("orders.abc.rds.amazonaws.com".into()),
            record: Some("orders.abc.rds.amazonaws.com".into()),
            access: Access {
                parameter_group: Some("orders-params".into()),
                ..Access::default()
            },
        }
    }

    fn proof(via: &str, writable: bool, tls: Option<Tls>) -> Probed {
        let mut p =
            ballast::proof::Proof::of("db.example.com", 3306, ballast::proof::Engine::Mysql);
        p.chain = vec![via.into()];
        p.tls = tls;
        p.server = Some(ballast::proof::Server {
            identity: "orders".into(),
            version: "8.0".into(),
            writable,
            read_only_because: if writable {
                vec![]
            } else {
                vec!["read_only=ON".into()]
            },
        });
        Probed::Proof(Box::new(p))
    }

    #[test]
    fn an_opted_in_database_passes_only_when_proven_with_verified_tls() {
        let verified = Some(Tls::Verified {
            verified_for: "orders.abc.rds.amazonaws.com".into(),
        });
        let c = probe_check(&probe_fact(proof(
            "orders.abc.rds.amazonaws.com",
            true,
            verified,
        )));
        assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
        let c = probe_check(&probe_fact(proof(
            "orders.abc.rds.amazonaws.com",
            true,
            Some(Tls::EncryptedOnly),
        )));
        assert_eq!(c.verdict, Verdict::Warn);
        assert!(c.fix.unwrap().contains("ProbeCaBundle"));
        let c = probe_check(&probe_fact(proof(
            "orders.abc.rds.amazonaws.com",
            false,
            None,
        )));
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(
            c.detail.contains("The writer refuses writes"),
            "{}",
            c.detail
        );
        assert!(c
            .fix
            .unwrap()
            .contains("--db-parameter-group-name orders-params"));
        let c = probe_check(&probe_fact(proof("old.abc.rds.amazonaws.com", false, None)));
        assert!(c.detail.contains("Stale resolver"), "{}", c.detail);
        let c = probe_check(&probe_fact(Probed::NotAsked("no probe".into())));
        assert_eq!(
            (c.verdict, c.fix.as_deref()),
            (Verdict::Fail, Some("fix what stops it: no probe"))
        );
        let mut login =
            ballast::proof::Proof::of("db.example.com", 3306, ballast::proof::Engine::Mysql);
        login.failure = Some(ballast::proof::Failure {
            stage: ballast::proof::Stage::Login,
            message: "Access denied".into(),
        });
        let c = probe_check(&probe_fact(Probed::Proof(Box::new(login))));
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.detail.contains("failed at login"), "{}", c.detail);
        assert!(c.fix.unwrap().contains("secret"));
        assert_eq!(
            probe_check(&probe_fact(Probed::Unanswered("x".into()))).verdict,
            Verdict::Fail
        );
    }
}
