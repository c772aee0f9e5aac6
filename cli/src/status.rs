//! `ballast status`: what Ballast manages and where things stand, read live
//! (Auto Scaling, EC2 subnets, RDS, Route 53), in one screen.

use std::collections::BTreeMap;

use serde::Serialize;

use ballast::aws::{database, dns, fleet, leases};
use ballast::decide::az_impairment::Evacuation;
use ballast::decide::rds_failover::{parse_dns_tag, Unproven};
use ballast::decide::unhealthy_target::{Replaced, Suspended};
use ballast::report::{now_epoch, rfc3339};
use ballast::resources::Group;
use ballast::resources::{Cluster, Instance};
use ballast::tags;

use crate::{json_text, subnet_zones_of, zones_of, Answer, Exit, StackArgs, Target};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub region: String,
    pub groups: Vec<GroupStatus>,
    pub databases: Vec<DatabaseStatus>,
    /// The lease table read (`<stack>-leases`).
    pub lease_table: String,
    /// Live leases: which invocation is changing what, until when.
    pub leases: Vec<LeaseStatus>,
    /// Why the lease table could not be read, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leases_unread: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseStatus {
    /// `asg/<name>` or `rds/<id>`.
    pub resource: String,
    pub function: String,
    pub holder: String,
    pub taken: String,
    pub expires: String,
    pub seconds_left: i64,
}

/// The live leases among the table's items (expired ones wait for
/// DynamoDB's TTL sweep and mean nothing).
pub fn live_leases(items: &[leases::Held], now: i64) -> Vec<LeaseStatus> {
    items
        .iter()
        .filter(|h| h.expires > now)
        .map(|h| LeaseStatus {
            resource: h.resource.clone(),
            function: h.function.clone(),
            holder: h.holder.clone(),
            taken: rfc3339(h.taken),
            expires: rfc3339(h.expires),
            seconds_left: h.expires - now,
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupStatus {
    pub name: String,
    pub desired: i32,
    pub min: i32,
    pub max: i32,
    pub health_check_type: String,
    /// Zones of the current subnets, each with its instance count.
    pub zones: BTreeMap<String, usize>,
    /// The current subnets (`VPCZoneIdentifier`), in order.
    pub subnets: Vec<String>,
    /// Instances still in zones the group no longer uses (an evacuation
    /// under way), by zone.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub leaving: BTreeMap<String, usize>,
    /// Evacuated zone → the signals that hold it (`ballast:evacuated`).
    pub evacuated: BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evacuated_since: Option<String>,
    pub suspended_processes: Vec<String>,
    /// The breaker's record (`ballast:suspended`), readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker: Option<String>,
    /// Ballast's marks in its record (`ballast:replaced`).
    pub marks: usize,
    /// Records Ballast could not read.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseStatus {
    pub id: String,
    /// `cluster` or `instance`.
    pub kind: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
    /// Where the writer is reached (cluster endpoint or instance address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writer_endpoint: Option<String>,
    /// `<zone>/<name>` of `ballast:dns-record`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// What the CNAME points at now: `null` when there is no such CNAME or
    /// it could not be read (`problems` says which).
    pub points_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standby: Option<String>,
    /// Opted in to the writer proof: the proof through the application's
    /// name, asked of the stack's probe now (`pass`/`warn`/`fail` and what
    /// it saw).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
    /// `ballast:unproven`: since when the writer has gone unproven.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unproven_since: Option<String>,
    pub problems: Vec<String>,
}

/// One managed group, from what was read.
pub fn group_status(g: &Group, subnet_zone: &BTreeMap<String, String>) -> GroupStatus {
    let mut problems = vec![];
    let mut zones: BTreeMap<String, usize> = zones_of(g, subnet_zone)
        .into_iter()
        .map(|z| (z, 0))
        .collect();
    let mut leaving: BTreeMap<String, usize> = BTreeMap::new();
    for i in &g.instances {
        match zones.get_mut(&i.az) {
            Some(n) => *n += 1,
            None => *leaving.entry(i.az.clone()).or_default() += 1,
        }
    }
    let mut evacuated = BTreeMap::new();
    let mut evacuated_since = None;
    if let Some(v) = g.tags.get(tags::EVACUATED) {
        match Evacuation::parse(v) {
            Ok(e) => {
                for (az, hold) in e.azs {
                    let mut by: Vec<String> = hold.signals.iter().map(|s| s.token()).collect();
                    if hold.overflow {
                        by.push("more".into());
                    }
                    if let Some(t) = hold.since {
                        evacuated_since = Some(rfc3339(t));
                    }
                    evacuated.insert(az, by);
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    let breaker = g
        .tags
        .get(tags::SUSPENDED)
        .map(|v| match Suspended::parse(v) {
            Ok(s) => format!(
                "{} suspended by Ballast ({}) since {} for {}",
                s.processes.join(","),
                s.why,
                rfc3339(s.at),
                s.target_groups.join(",")
            ),
            Err(e) => format!("unreadable record ({e})"),
        });
    let marks = match g.tags.get(tags::REPLACED).map(|v| Replaced::parse(v)) {
        None => 0,
        Some(Ok(r)) => r.marks.len(),
        Some(Err(e)) => {
            problems.push(e.to_string());
            0
        }
    };
    GroupStatus {
        name: g.name.clone(),
        desired: g.desired_capacity,
        min: g.min_size,
        max: g.max_size,
        health_check_type: g.health_check_type.clone(),
        zones,
        subnets: g.subnets().map(str::to_string).collect(),
        leaving,
        evacuated,
        evacuated_since,
        suspended_processes: g.suspended_processes.clone(),
        breaker,
        marks,
        problems,
    }
}

fn record_of(tags: &BTreeMap<String, String>) -> Option<Result<(String, String), String>> {
    tags.get(tags::DNS_RECORD).map(|v| parse_dns_tag(v))
}

/// The `ballast:unproven` record, read: its time, or why it is unreadable.
fn unproven_since(tags: &BTreeMap<String, String>) -> Option<String> {
    let value = tags.get(tags::UNPROVEN)?;
    Some(match ballast::records::read::<Unproven>(value) {
        Ok(u) => format!("{} ({}s ago)", rfc3339(u.since), now_epoch() - u.since),
        Err(e) => e.to_string(),
    })
}

fn cluster_status(c: &Cluster) -> DatabaseStatus {
    DatabaseStatus {
        id: c.id.clone(),
        kind: "cluster".into(),
        status: c.status.clone(),
        writer: c.members.iter().find(|m| m.is_writer).map(|m| m.id.clone()),
        writer_endpoint: c.endpoint.clone(),
        record: None,
        points_to: None,
        standby: None,
        proof: None,
        unproven_since: unproven_since(&c.tags),
        problems: vec![],
    }
}

fn instance_status(i: &Instance) -> DatabaseStatus {
    DatabaseStatus {
        id: i.id.clone(),
        kind: "instance".into(),
        status: i.status.clone(),
        writer: Some(i.id.clone()),
        writer_endpoint: i.endpoint.clone(),
        record: None,
        points_to: None,
        standby: i.tags.get(tags::STANDBY_REPLICA).cloned(),
        proof: None,
        unproven_since: unproven_since(&i.tags),
        problems: vec![],
    }
}

/// Reads everything `status` shows.
pub async fn observe(target: &Target, stack: &StackArgs) -> Result<Status, String> {
    let aws = &target.aws;
    let groups = fleet::managed_groups(&aws.autoscaling)
        .await
        .map_err(|e| e.to_string())?;
    let subnet_zone = subnet_zones_of(aws, &groups)
        .await
        .map_err(|e| e.to_string())?;
    let groups = groups
        .iter()
        .map(|g| group_status(g, &subnet_zone))
        .collect();

    let (clusters, instances) = database::tagged(&aws.rds)
        .await
        .map_err(|e| e.to_string())?;
    let mut databases = vec![];
    let mut records = BTreeMap::new();
    let subjects = clusters
        .iter()
        .map(|c| (cluster_status(c), &c.tags))
        .chain(instances.iter().map(|i| (instance_status(i), &i.tags)));
    for (mut db, tags) in subjects {
        match record_of(tags) {
            Some(Ok((zone, name))) => {
                match dns::current_cname(&aws.route53, &zone, &name).await {
                    Ok(Some(v)) => {
                        records.insert(format!("{zone}/{name}"), Ok(Some(v.clone())));
                        db.points_to = Some(v)
                    }
                    Ok(None) => db.problems.push(format!("no CNAME {name} in zone {zone}")),
                    Err(e) => db
                        .problems
                        .push(format!("the record could not be read: {e}")),
                }
                db.record = Some(format!("{zone}/{name}"));
            }
            Some(Err(e)) => db.problems.push(e),
            None => {}
        }
        if let Some(id) = db.standby.clone() {
            db.standby = Some(match database::describe_instance(&aws.rds, &id).await {
                Ok(Some(r)) => format!(
                    "{id} {} in {}{}",
                    r.status,
                    r.az.as_deref().unwrap_or("?"),
                    r.source
                        .as_deref()
                        .map(|s| format!(", replica of {s}"))
                        .unwrap_or_else(|| ", not a replica".into())
                ),
                Ok(None) => format!("{id} (does not exist)"),
                Err(e) => format!("{id} (not read: {e})"),
            });
        }
        databases.push(db);
    }
    // The writer proof of each opted-in database, asked now.
    for fact in crate::doctor::probe_facts(aws, &stack.stack, &clusters, &instances, &records).await
    {
        let c = crate::doctor::probe_check(&fact);
        if let Some(db) = databases.iter_mut().find(|d| d.id == fact.id) {
            db.proof = Some(format!(
                "{}: {}",
                serde_json::to_value(c.verdict)
                    .unwrap_or_default()
                    .as_str()
                    .unwrap_or_default(),
                c.detail
            ));
        }
    }
    let lease_table = lease_table(&stack.stack);
    let (leases, leases_unread) = match leases::list(&aws.dynamodb, &lease_table).await {
        Ok(items) => (live_leases(&items, now_epoch()), None),
        Err(e) => (vec![], Some(e.to_string())),
    };
    Ok(Status {
        region: aws.region.clone(),
        groups,
        databases,
        lease_table,
        leases,
        leases_unread,
    })
}

/// The stack's lease table, as the template names it.
pub fn lease_table(stack: &str) -> String {
    format!("{stack}-leases")
}

/// The one-screen text rendering.
pub fn render(s: &Status) -> String {
    let mut out = format!("Ballast status, {}\n", s.region);
    out.push_str(&format!(
        "\nAuto Scaling groups tagged {}=true: {}\n",
        tags::MANAGED,
        s.groups.len()
    ));
    for g in &s.groups {
        out.push_str(&format!(
            "  {}  desired {} (min {}, max {}), health check {}\n",
            g.name, g.desired, g.min, g.max, g.health_check_type
        ));
        let zones: Vec<String> = g.zones.iter().map(|(z, n)| format!("{z} ({n})")).collect();
        out.push_str(&format!("    zones      {}\n", zones.join(", ")));
        out.push_str(&format!("    subnets    {}\n", g.subnets.join(",")));
        if !g.leaving.is_empty() {
            let leaving: Vec<String> = g
                .leaving
                .iter()
                .map(|(z, n)| format!("{n} in {z}"))
                .collect();
            out.push_str(&format!(
                "    leaving    {} (zones the group no longer uses)\n",
                leaving.join(", ")
            ));
        }
        for (az, by) in &g.evacuated {
            out.push_str(&format!(
                "    evacuated  {az}{}, held by {}\n",
                g.evacuated_since
                    .as_deref()
                    .map(|t| format!(" since {t}"))
                    .unwrap_or_default(),
                if by.is_empty() {
                    "(unnamed)".to_string()
                } else {
                    by.join(", ")
                }
            ));
        }
        if !g.suspended_processes.is_empty() {
            out.push_str(&format!(
                "    suspended  {}\n",
                g.suspended_processes.join(", ")
            ));
        }
        if let Some(b) = &g.breaker {
            out.push_str(&format!("    breaker    {b}\n"));
        }
        if g.marks > 0 {
            out.push_str(&format!("    marks      {} in Ballast's record\n", g.marks));
        }
        for p in &g.problems {
            out.push_str(&format!("    problem    {p}\n"));
        }
    }
    out.push_str(&format!(
        "\nDatabases tagged {} or {}: {}\n",
        tags::DNS_RECORD,
        tags::STANDBY_REPLICA,
        s.databases.len()
    ));
    for d in &s.databases {
        out.push_str(&format!(
            "  {} ({})  {}  writer {}\n",
            d.id,
            d.kind,
            d.status,
            d.writer.as_deref().unwrap_or("(none)")
        ));
        if let (Some(r), None) = (&d.record, &d.points_to) {
            out.push_str(&format!(
                "    record     {r} -> (unknown: see the problem below)\n"
            ));
        }
        if let (Some(r), Some(p)) = (&d.record, &d.points_to) {
            let verdict = match &d.writer_endpoint {
                Some(w) if ballast::resources::normalise(w) == ballast::resources::normalise(p) => {
                    " (the writer)"
                }
                Some(_) => " (NOT the writer endpoint)",
                None => "",
            };
            out.push_str(&format!("    record     {r} -> {p}{verdict}\n"));
        }
        if let Some(s) = &d.standby {
            out.push_str(&format!("    standby    {s}\n"));
        }
        if let Some(p) = &d.proof {
            out.push_str(&format!("    proof      {p}\n"));
        }
        if let Some(u) = &d.unproven_since {
            out.push_str(&format!("    UNPROVEN   since {u}\n"));
        }
        for p in &d.problems {
            out.push_str(&format!("    problem    {p}\n"));
        }
    }
    out.push_str(&format!(
        "\nLive leases in {}: {}\n",
        s.lease_table,
        match &s.leases_unread {
            Some(e) => format!("not read ({e})"),
            None => s.leases.len().to_string(),
        }
    ));
    for l in &s.leases {
        out.push_str(&format!(
            "  {}  held by {} ({}) since {}, {}s left\n",
            l.resource, l.function, l.holder, l.taken, l.seconds_left
        ));
    }
    out
}

pub async fn run(target: &Target, stack: &StackArgs, json: bool) -> Answer {
    match observe(target, stack).await {
        Ok(status) if json => Answer::out(Exit::Ok, json_text(&status)),
        Ok(status) => Answer::out(Exit::Ok, render(&status)),
        Err(e) => Answer::err(Exit::Aws, format!("could not read the live state: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast::resources::GroupInstance;

    fn group(tags: &[(&str, &str)]) -> Group {
        Group {
            name: "web".into(),
            arn: None,
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            target_group_arns: vec![],
            vpc_zone_identifier: "subnet-a,subnet-b".into(),
            min_size: 2,
            max_size: 6,
            desired_capacity: 4,
            instances: vec![
                GroupInstance::in_service("i-1", "web", "us-east-1a"),
                GroupInstance::in_service("i-2", "web", "us-east-1b"),
                GroupInstance::in_service("i-3", "web", "us-east-1b"),
            ],
            health_check_type: "ELB".into(),
            suspended_processes: vec!["ReplaceUnhealthy".into()],
            health_check_grace_period: 300,
        }
    }

    #[test]
    fn a_group_shows_zones_and_records_and_live_leases_show() {
        let zones = [
            ("subnet-a".to_string(), "us-east-1a".to_string()),
            ("subnet-b".to_string(), "us-east-1b".to_string()),
        ]
        .into();
        let g = group_status(
            &group(&[
                (
                    tags::SUSPENDED,
                    "p=ReplaceUnhealthy at=1764590400 why=share tg=web/abc",
                ),
                (tags::EVACUATED, "not a record"),
            ]),
            &zones,
        );
        assert_eq!(
            g.zones,
            [("us-east-1a".into(), 1), ("us-east-1b".into(), 2)].into()
        );
        assert_eq!(
            g.breaker.as_deref(),
            Some("ReplaceUnhealthy suspended by Ballast (share) since 2025-12-01T12:00:00Z for web/abc")
        );
        assert_eq!(g.problems.len(), 1, "{:?}", g.problems);
        let held = |resource: &str, expires| leases::Held {
            resource: resource.into(),
            holder: "req-1.0000abcd".into(),
            function: "az-impairment".into(),
            taken: 1_764_590_490,
            expires,
        };
        let now = 1_764_590_500;
        let leases = live_leases(&[held("asg/web", now + 12), held("asg/old", now)], now);
        assert_eq!(leases.len(), 1, "an expired item is no lease: {leases:?}");
        assert_eq!(leases[0].seconds_left, 12);
        let text = render(&Status {
            region: "us-east-1".into(),
            groups: vec![g],
            databases: vec![],
            lease_table: lease_table("ballast"),
            leases,
            leases_unread: None,
        });
        assert!(
            text.contains("Live leases in ballast-leases: 1\n  asg/web  held by az-impairment (req-1.0000abcd) since 2025-12-01T12:01:30Z, 12s left"),
            "{text}"
        );
        assert!(
            text.contains("zones      us-east-1a (1), us-east-1b (2)"),
            "{text}"
        );
        assert!(text.contains("suspended  ReplaceUnhealthy"), "{text}");
        assert!(text.contains("subnets    subnet-a,subnet-b"), "{text}");
    }
}
