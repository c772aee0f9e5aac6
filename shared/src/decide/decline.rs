//! Why a guardrail refused to act, as a value: the report says it in a
//! sentence ([`super::Plan::reason`]); tests and code match on this.

/// The guardrail behind a `declined` decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decline {
    /// `unhealthy-target`: more targets impaired than
    /// `BALLAST_MAX_UNHEALTHY_PERCENT` allows.
    UnhealthyShare,
    /// `unhealthy-target`: a group's replacement budget is spent (its
    /// breaker may have tripped).
    BudgetSpent,
    /// `unhealthy-target`: a group's `ballast:replaced` record cannot be
    /// read, so its budget is unknown.
    BudgetUnknown,
    /// `az-impairment`: `BALLAST_MAX_EVACUATED_AZS` zones are already out.
    EvacuatedZoneLimit,
    /// `az-impairment`: the zone is a group's last.
    LastZone,
    /// `az-impairment`: a group's `ballast:evacuated` record cannot be read.
    UnreadableEvacuation,
    /// `az-impairment`: a group's subnets or max size changed since its
    /// evacuation; an operator's change is not clobbered.
    ChangedSinceEvacuation,
    /// `az-impairment`: a zone has been out longer than
    /// `BALLAST_EVACUATION_WARN_HOURS`.
    EvacuatedTooLong,
    /// `rds-failover`: the `ballast:dns-record` tag cannot be read.
    UnusableDnsTag,
    /// `rds-failover`: Ballast's tags are on a read replica.
    TagsOnReplica,
    /// `rds-failover`: a failure event while the primary still serves.
    PrimaryServing,
    /// `rds-failover`: a failed primary without `ballast:standby-replica`.
    NoStandby,
    /// `rds-failover`: the standby replica named does not exist.
    StandbyMissing,
    /// `rds-failover`: the standby is not a replica of the failed primary.
    StandbyNotReplicating,
    /// `rds-failover`: the standby replica is not `available`.
    StandbyUnavailable,
    /// `rds-failover`: the standby has received data it has not applied,
    /// more than `BALLAST_PROMOTION_MAX_UNAPPLIED_BYTES` allows (the writer
    /// probe read it): a promotion now would lose it.
    StandbyBehind,
}
