//! A writer verified — an Aurora cluster's, or a DB instance that serves —
//! and the tagged CNAME kept on it. A failed primary is `promote`'s.

use std::collections::BTreeMap;

use super::promote;
use super::records::{dns_tag, Promotion};
use super::{Policy, Prompt};
use crate::decide::{Decline, Plan, Step};
use crate::report::Severity;
use crate::resources::{normalise, Cluster, Instance};
use crate::tags;

/// Statuses in which an instance serves traffic.
pub(super) fn is_serving(status: &str) -> bool {
    matches!(
        status,
        "available"
            | "backing-up"
            | "storage-optimization"
            | "configuring-enhanced-monitoring"
            | "configuring-iam-database-auth"
            | "configuring-log-exports"
    )
}

/// Statuses in which a primary is gone until a human repairs it.
pub(super) fn is_failed(status: &str) -> bool {
    status.starts_with("incompatible-")
        || status.starts_with("inaccessible-encryption-credentials")
        || matches!(
            status,
            "failed" | "storage-full" | "stopped" | "restore-error"
        )
}

fn same_host(a: &str, b: &str) -> bool {
    normalise(a) == normalise(b)
}

/// A transitional state: nothing to verify yet.
pub(super) fn waiting(situation: String, resources: Vec<String>) -> Plan {
    Plan::noop(
        format!(
            "{situation} Not yet verifiable; the completion event or the sweep finishes the job."
        ),
        resources,
    )
    .with_severity(Severity::Warning)
}

/// The `ballast:dns-record` tag cannot be read: declined, with why.
fn unusable_dns_tag(whose: String, reason: String, resources: Vec<String>) -> Plan {
    Plan::declined(
        Decline::UnusableDnsTag,
        format!("{whose} is tagged for DNS, but the tag is unusable."),
        reason,
        resources,
    )
    .with_severity(Severity::Warning)
}

/// Keep the record on `endpoint`: one UPSERT when it differs, else a noop.
fn keep_dns_on(
    verified: String,
    (zone_id, name): (String, String),
    current: Option<&String>,
    endpoint: Option<&String>,
    policy: &Policy,
    resources: Vec<String>,
) -> Plan {
    let Some(endpoint) = endpoint else {
        return waiting(format!("{verified} It has no endpoint yet."), resources);
    };
    if current.is_some_and(|c| same_host(c, endpoint)) {
        return Plan::noop(
            format!("{verified} {name} already points at {endpoint}."),
            resources,
        );
    }
    let situation = format!(
        "{verified} {name} pointed at {}, not at the writer.",
        current.map_or("nothing", String::as_str)
    );
    let upsert = Step::UpsertCname {
        zone_id,
        name,
        value: endpoint.clone(),
        ttl: policy.dns_ttl,
        previous: current.cloned(),
        when_available: None,
    };
    Plan::act(situation, vec![upsert], resources).with_severity(Severity::Warning)
}

/// An Aurora cluster: its writer verified, the record kept on the cluster
/// endpoint.
pub(super) fn cluster(
    cluster: &Cluster,
    writer: Option<&Instance>,
    dns_current: Option<&String>,
    prompt: &Prompt,
    policy: &Policy,
) -> Plan {
    let resources = vec![cluster.arn.clone()];
    let dns = dns_tag(&cluster.tags);
    if let Some(Err(reason)) = dns {
        return unusable_dns_tag(format!("Cluster {}", cluster.id), reason, resources);
    }
    let Some(member) = cluster.members.iter().find(|m| m.is_writer) else {
        return waiting(
            format!("Cluster {} ({}) has no writer.", cluster.id, cluster.status),
            resources,
        );
    };
    let writer_status = writer.map_or("unknown", |w| w.status.as_str());
    if cluster.status != "available" || writer_status != "available" {
        return waiting(
            format!(
                "Cluster {} is {}, its writer {} is {writer_status}.",
                cluster.id, cluster.status, member.id
            ),
            resources,
        );
    }
    let az = writer
        .and_then(|w| w.az.as_deref())
        .unwrap_or("an unknown AZ");
    let mut verified = format!(
        "Verified writer of cluster {}: {} in {az} (available).",
        cluster.id, member.id
    );
    if let Some(named) = prompt.named.as_deref() {
        if named != member.id {
            verified.push_str(&format!(
                " The event named {named}, which is no longer the writer."
            ));
        }
    }
    match dns {
        Some(Ok(record)) => keep_dns_on(
            verified,
            record,
            dns_current,
            cluster.endpoint.as_ref(),
            policy,
            resources,
        ),
        _ => Plan::noop(verified, resources),
    }
}

fn describe_instance(i: &Instance) -> String {
    let az = i.az.as_deref().unwrap_or("an unknown AZ");
    if i.multi_az {
        let standby = i.secondary_az.as_deref().unwrap_or("another AZ");
        format!(
            "Verified {} ({}): Multi-AZ, primary in {az}, standby in {standby}.",
            i.id, i.status
        )
    } else {
        format!("Verified {} ({}): single-AZ in {az}.", i.id, i.status)
    }
}

/// A DB instance (Multi-AZ, or a primary with a standby replica): verified
/// while it serves, its standby promoted once it has failed.
pub(super) fn instance(
    primary: &Instance,
    standby: Option<&Instance>,
    dns_current: Option<&String>,
    prompt: &Prompt,
    policy: &Policy,
) -> Plan {
    let resources = vec![primary.arn.clone()];
    let dns = dns_tag(&primary.tags);
    let standby_id = standby_of(&primary.tags);
    let tagged = dns.is_some() || standby_id.is_some();
    let unusable = matches!(dns, Some(Err(_)));
    if let Some(plan) = not_a_writer_to_verify(primary, tagged, unusable, &resources) {
        return plan;
    }
    let dns = match dns {
        Some(Err(reason)) => return unusable_dns_tag(primary.id.clone(), reason, resources),
        Some(Ok(record)) => Some(record),
        None => None,
    };
    if is_serving(&primary.status) {
        return serving(
            primary,
            standby_id,
            dns,
            dns_current,
            prompt,
            policy,
            resources,
        );
    }
    if !is_failed(&primary.status) {
        return waiting(format!("{} is {}.", primary.id, primary.status), resources);
    }
    promote::failed_primary(
        primary,
        standby,
        standby_id,
        dns,
        dns_current,
        policy,
        resources,
    )
}

/// The replica named by `ballast:standby-replica`.
fn standby_of(tags: &BTreeMap<String, String>) -> Option<String> {
    tags.get(tags::STANDBY_REPLICA)
        .map(|s| s.trim().to_string())
}

/// Why `primary` is not Ballast's to verify, if it is not: a cluster
/// member, untagged (`tagged`: it carries a ballast tag), or a read replica
/// Ballast did not promote (an unusable DNS tag is said first, by the
/// caller).
fn not_a_writer_to_verify(
    primary: &Instance,
    tagged: bool,
    dns_unusable: bool,
    resources: &[String],
) -> Option<Plan> {
    let resources = resources.to_vec();
    if let Some(cluster) = &primary.cluster {
        return Some(Plan::ignored(
            format!(
                "{} is a member of cluster {cluster}: it is handled at the cluster",
                primary.id
            ),
            resources,
        ));
    }
    if !tagged {
        return Some(Plan::noop(
            format!(
                "{} ({}) carries no ballast tag: nothing to verify or repoint (a promotion moves the tags to the promoted replica).",
                primary.id, primary.status
            ),
            resources,
        ));
    }
    // A replica Ballast promoted still names its source while RDS promotes
    // it (minutes; moto for good): the record says it is a writer now.
    let source = primary.source.as_deref()?;
    if dns_unusable || Promotion::of(primary, source).is_some() {
        return None;
    }
    Some(
        Plan::declined(
            Decline::TagsOnReplica,
            format!("{} is a read replica of {source}, not a writer.", primary.id),
            format!(
                "ballast tags on a read replica would send writes to a read-only endpoint; tag the primary {source} instead"
            ),
            resources,
        )
        .with_severity(Severity::Warning),
    )
}

/// A primary that serves: verified, the record kept on it; never a
/// promotion (two writers), whatever the event says.
fn serving(
    primary: &Instance,
    standby_id: Option<String>,
    dns: Option<(String, String)>,
    dns_current: Option<&String>,
    prompt: &Prompt,
    policy: &Policy,
    resources: Vec<String>,
) -> Plan {
    if let (Some(class), Some(r)) = (prompt.class, &standby_id) {
        if class.suggests_primary_failure() {
            return Plan::declined(
                Decline::PrimaryServing,
                format!(
                    "A {} event arrived for {}, but it is {}.",
                    class.as_str(),
                    primary.id,
                    primary.status
                ),
                format!(
                    "never promote while the primary is available: promoting {r} now would split brain (two writers)"
                ),
                resources,
            )
            .with_severity(Severity::Warning);
        }
    }
    let verified = describe_instance(primary);
    match dns {
        Some(record) => keep_dns_on(
            verified,
            record,
            dns_current,
            primary.endpoint.as_ref(),
            policy,
            resources,
        ),
        None => Plan::noop(verified, resources),
    }
}
