//! A failed primary: its standby replica promoted (the record first, never
//! twice), the tags and the record moved to it, the CNAME pointed at it;
//! or a promotion Ballast started, finished.

use super::records::Promotion;
use super::Policy;
use crate::decide::{Decline, Plan, Step};
use crate::records::Extra;
use crate::report::Severity;
use crate::resources::Instance;
use crate::tags;

/// A failed primary whose `ballast:standby-replica` names `standby_id`.
pub(super) fn failed_primary(
    primary: &Instance,
    standby: Option<&Instance>,
    standby_id: Option<String>,
    dns: Option<(String, String)>,
    dns_current: Option<&String>,
    policy: &Policy,
    resources: Vec<String>,
) -> Plan {
    let failed = format!("Primary {} is {}.", primary.id, primary.status);
    let critical = |why: Decline, reason: String, resources: Vec<String>| {
        Plan::declined(why, failed.clone(), reason, resources).with_severity(Severity::Critical)
    };
    let Some(replica_id) = standby_id else {
        return critical(
            Decline::NoStandby,
            format!(
                "{} is {} and has no {} tag: nothing safe to do automatically; a human must restore or replace it",
                primary.id,
                primary.status,
                tags::STANDBY_REPLICA
            ),
            resources,
        );
    };
    let Some(replica) = standby.filter(|r| r.id == replica_id) else {
        return critical(
            Decline::StandbyMissing,
            format!("standby replica {replica_id} does not exist: not promoted"),
            resources,
        );
    };
    let replicating = replica.source.as_deref() == Some(primary.id.as_str());
    if let Some(plan) = recorded(
        primary,
        replica,
        replicating,
        &failed,
        dns.clone(),
        dns_current,
        policy,
        &resources,
    ) {
        return plan;
    }
    if !replicating {
        return critical(
            Decline::StandbyNotReplicating,
            format!(
                "{replica_id} is not a read replica of {} (its source: {}): not promoted",
                primary.id,
                replica.source.as_deref().unwrap_or("none")
            ),
            resources,
        );
    }
    if replica.status != "available" {
        return critical(
            Decline::StandbyUnavailable,
            format!(
                "standby replica {replica_id} is {}, not available: not promoted",
                replica.status
            ),
            resources,
        );
    }
    request(
        primary,
        replica,
        &failed,
        dns,
        dns_current,
        policy,
        resources,
    )
}

/// A new promotion of `replica`: the record first — whatever happens to
/// the calls after it, later deliveries know a promotion was asked for and
/// never ask twice — then `PromoteReadReplica`, then the moves.
fn request(
    primary: &Instance,
    replica: &Instance,
    failed: &str,
    dns: Option<(String, String)>,
    dns_current: Option<&String>,
    policy: &Policy,
    resources: Vec<String>,
) -> Plan {
    let requested = Promotion {
        from: primary.id.clone(),
        promoted: false,
        at: policy.now,
        extra: Extra::default(),
    };
    let mut steps = vec![
        Step::TagDatabase {
            resource: replica.id.clone(),
            arn: replica.arn.clone(),
            key: tags::PROMOTION.into(),
            value: requested.encode(),
        },
        Step::PromoteReplica {
            replica: replica.id.clone(),
            primary: primary.id.clone(),
        },
    ];
    steps.extend(moving_steps(
        primary,
        replica,
        true,
        dns,
        dns_current,
        policy,
    ));
    let situation = format!(
        "{failed} Standby replica {} ({}, in {}) is promoted to take over.",
        replica.id,
        replica.status,
        replica.az.as_deref().unwrap_or("an unknown AZ")
    );
    promotion(steps, situation, replica, resources)
}

/// A promotion Ballast recorded: finished, never requested again — unless
/// RDS never showed it (the replica still an `available` replica of this
/// primary) for longer than the settle, when `None` lets it be requested
/// again.
#[allow(clippy::too_many_arguments)]
fn recorded(
    primary: &Instance,
    replica: &Instance,
    replicating: bool,
    failed: &str,
    dns: Option<(String, String)>,
    dns_current: Option<&String>,
    policy: &Policy,
    resources: &[String],
) -> Option<Plan> {
    let r = Promotion::of(replica, &primary.id)?;
    let unseen = replicating && replica.status == "available";
    if r.promoted || !unseen {
        let situation = format!(
            "{failed} Finishing the promotion of {} ({}) that Ballast started: moving the tags and the \
             record, not promoting again.",
            replica.id, replica.status
        );
        let steps = moving_steps(primary, replica, !r.promoted, dns, dns_current, policy);
        return Some(promotion(steps, situation, replica, resources.to_vec()));
    }
    let age = policy.now - r.at;
    if age >= policy.promotion_settle_secs {
        return None;
    }
    let situation = format!(
        "{failed} The promotion of {} was requested {age}s ago and RDS does not show it yet: \
         waiting rather than promoting twice.",
        replica.id
    );
    let reason = format!(
        "{} holds an unconfirmed promotion request; it is requested again only if RDS still shows no \
         promotion after {}s",
        tags::PROMOTION,
        policy.promotion_settle_secs
    );
    let wait = format!(
        "the promotion of {} was requested {age}s ago and RDS does not show it yet",
        replica.id
    );
    Some(
        Plan::noop(situation, resources.to_vec())
            .with_reason(reason)
            .with_severity(Severity::Warning)
            .retried(wait),
    )
}

/// What RDS's `InvalidDBInstanceState` answer to a `PromoteReadReplica`
/// means, read from the replica as it is right after that answer. RDS gives
/// that answer whatever the reason, so the replica itself says which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusedPromotion {
    /// No longer a replica of the primary, or being modified: a promotion
    /// is under way (an earlier request landed) — finish the job.
    UnderWay(String),
    /// Still a replica of the primary in another state (RDS documents that
    /// a replica in `backing-up` cannot be promoted): not yet — retry.
    NotYet(String),
}

/// Reads the replica after RDS refused to promote it (`None`: it is gone).
pub fn refused_promotion(replica: Option<&Instance>, primary: &str) -> RefusedPromotion {
    let Some(r) = replica else {
        return RefusedPromotion::NotYet("the replica no longer exists".into());
    };
    let replicating = r.source.as_deref() == Some(primary);
    if !replicating {
        RefusedPromotion::UnderWay(format!(
            "{} is {} and no longer a replica of {primary}: its promotion is under way",
            r.id, r.status
        ))
    } else if r.status == "modifying" {
        RefusedPromotion::UnderWay(format!("{} is modifying: its promotion is under way", r.id))
    } else {
        RefusedPromotion::NotYet(format!(
            "{} is {}, still a replica of {primary}: not promotable yet",
            r.id, r.status
        ))
    }
}

/// A promotion's plan (started or finished): one chain, `critical`, about
/// the primary and the replica.
fn promotion(
    steps: Vec<Step>,
    situation: String,
    replica: &Instance,
    resources: Vec<String>,
) -> Plan {
    let mut resources = resources;
    resources.push(replica.arn.clone());
    Plan::act(situation, steps, resources)
        .with_severity(Severity::Critical)
        .in_sequence()
}

/// The steps after `PromoteReadReplica`: the record confirmed, the DNS tag
/// added to the replica, the CNAME pointed at the replica once it is
/// available, and only then the primary's tags removed.
fn moving_steps(
    primary: &Instance,
    replica: &Instance,
    confirm: bool,
    dns: Option<(String, String)>,
    dns_current: Option<&String>,
    policy: &Policy,
) -> Vec<Step> {
    let mut steps = vec![];
    if confirm {
        steps.push(Step::TagDatabase {
            resource: replica.id.clone(),
            arn: replica.arn.clone(),
            key: tags::PROMOTION.into(),
            value: Promotion {
                from: primary.id.clone(),
                promoted: true,
                at: policy.now,
                // What a later version added to the request, kept.
                extra: Promotion::of(replica, &primary.id)
                    .map(|p| p.extra)
                    .unwrap_or_default(),
            }
            .encode(),
        });
    }
    let moved = primary.tags.get(tags::DNS_RECORD);
    // The writer proof's opt-in goes with the record it proves.
    let probe = primary
        .tags
        .get(tags::WRITER_PROBE)
        .filter(|_| moved.is_some());
    for (key, value) in [(tags::WRITER_PROBE, probe), (tags::DNS_RECORD, moved)] {
        if let Some(value) = value {
            steps.push(Step::TagDatabase {
                resource: replica.id.clone(),
                arn: replica.arn.clone(),
                key: key.into(),
                value: value.clone(),
            });
        }
    }
    // The record pointed before the primary lets go of the replica: until
    // it is, the primary's tags lead every delivery and sweep back here.
    if let (Some((zone_id, name)), Some(endpoint)) = (dns, replica.endpoint.as_ref()) {
        steps.push(Step::UpsertCname {
            zone_id,
            name,
            value: endpoint.clone(),
            ttl: policy.dns_ttl,
            previous: dns_current.cloned(),
            when_available: Some(replica.id.clone()),
        });
    }
    let unproven = primary.tags.get(tags::UNPROVEN);
    for (key, present) in [
        (tags::DNS_RECORD, moved.is_some()),
        (tags::WRITER_PROBE, probe.is_some()),
        (tags::UNPROVEN, unproven.is_some() && moved.is_some()),
    ] {
        if present {
            steps.push(Step::UntagDatabase {
                resource: primary.id.clone(),
                arn: primary.arn.clone(),
                key: key.into(),
            });
        }
    }
    steps.push(Step::UntagDatabase {
        resource: primary.id.clone(),
        arn: primary.arn.clone(),
        key: tags::STANDBY_REPLICA.into(),
    });
    steps
}
