//! What `az-impairment` reads of the fleet: the managed groups, their
//! subnets' zones and instances.

use std::collections::BTreeMap;

use crate::report::{ActionKind, ActionRecord, ActionStatus};
use crate::resources::Group;
use crate::tags;

/// A managed Auto Scaling group as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZonedGroup {
    pub name: String,
    pub arn: Option<String>,
    /// Current subnets (`VPCZoneIdentifier`), in order.
    pub subnets: Vec<String>,
    pub max_size: i32,
    pub desired: i32,
    /// (instance ID, AZ).
    pub instances: Vec<(String, String)>,
    /// The raw `ballast:evacuated` tag, if any.
    pub evacuated: Option<String>,
}

impl From<Group> for ZonedGroup {
    fn from(g: Group) -> Self {
        ZonedGroup {
            evacuated: g.tags.get(tags::EVACUATED).cloned(),
            subnets: g.subnets().map(str::to_string).collect(),
            name: g.name,
            arn: g.arn,
            max_size: g.max_size,
            desired: g.desired_capacity,
            instances: g
                .instances
                .into_iter()
                .map(|i| (i.instance_id, i.az))
                .collect(),
        }
    }
}

/// Every managed group, and the AZ of every subnet they use or used.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FleetState {
    pub groups: Vec<ZonedGroup>,
    pub subnet_zone: BTreeMap<String, String>,
}

/// Whether `subnet` is in `az`.
pub(super) fn in_zone(fleet: &FleetState, subnet: &str, az: &str) -> bool {
    fleet.subnet_zone.get(subnet).is_some_and(|z| z == az)
}

/// The report line of a group-level action not taken (or taken).
pub(super) fn record(
    group: &ZonedGroup,
    kind: ActionKind,
    status: ActionStatus,
    detail: String,
) -> ActionRecord {
    ActionRecord {
        kind,
        target: group.name.clone(),
        asg: Some(group.name.clone()),
        status,
        detail,
    }
}

/// The groups, as the report names its resources.
pub(super) fn resources(groups: &[&ZonedGroup]) -> Vec<String> {
    groups
        .iter()
        .map(|g| g.arn.clone().unwrap_or_else(|| g.name.clone()))
        .collect()
}
