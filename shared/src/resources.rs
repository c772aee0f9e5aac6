//! What Ballast reads of the AWS resources it watches, as domain types:
//! the adapters (`aws::fleet`, `aws::balancer`, `aws::alarms`) map the SDK's
//! answers straight into these, and the decisions, the reconcilers and the
//! CLI's checks read them. Pure data: no AWS types, no I/O.

use std::collections::BTreeMap;

use crate::tags;

/// An Auto Scaling group, with what Ballast reads of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub arn: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub target_group_arns: Vec<String>,
    /// Comma-separated subnet IDs (`VPCZoneIdentifier`); see [`Group::subnets`].
    pub vpc_zone_identifier: String,
    pub min_size: i32,
    pub max_size: i32,
    pub desired_capacity: i32,
    /// Every instance in the group, as the group sees it (its zone, health
    /// and lifecycle state): the listing already says which group each
    /// instance is in.
    pub instances: Vec<GroupInstance>,
    /// `EC2`, `ELB`, `VPC_LATTICE` (the types that replace by themselves).
    pub health_check_type: String,
    /// Processes suspended on the group, by whoever suspended them.
    pub suspended_processes: Vec<String>,
    /// Seconds a new instance is spared health checks.
    pub health_check_grace_period: i32,
}

impl Group {
    /// Tagged `ballast:managed=true` (any case).
    pub fn is_managed(&self) -> bool {
        self.tags
            .get(tags::MANAGED)
            .is_some_and(|v| tags::is_true(v))
    }

    /// The subnets the group launches into now, in order, blanks dropped.
    pub fn subnets(&self) -> impl Iterator<Item = &str> {
        self.vpc_zone_identifier
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

/// An instance as its Auto Scaling group sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInstance {
    pub instance_id: String,
    pub asg: String,
    pub az: String,
    pub health_status: String,
    pub lifecycle_state: String,
}

impl GroupInstance {
    /// A healthy instance in service (tests and examples).
    pub fn in_service(id: &str, asg: &str, az: &str) -> Self {
        GroupInstance {
            instance_id: id.into(),
            asg: asg.into(),
            az: az.into(),
            health_status: "Healthy".into(),
            lifecycle_state: "InService".into(),
        }
    }
}

/// An ELBv2 target group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroup {
    pub arn: String,
    pub name: String,
    /// `instance`, `ip`, `lambda` or `alb`.
    pub target_type: String,
    /// The load balancers that route to it (CloudWatch's `LoadBalancer`
    /// dimension is the part after `:loadbalancer/`).
    pub load_balancer_arns: Vec<String>,
}

/// One registered target's health, as the load balancer reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealth {
    pub id: String,
    pub state: String,
    pub reason: Option<String>,
    /// Only set by ELB for IP targets; instance AZs come from Auto Scaling.
    pub az: Option<String>,
}

/// A CloudWatch metric alarm: every metric it watches (its own, or each of
/// a metric-math alarm's queries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricAlarm {
    pub name: String,
    pub state: String,
    /// `breaching`, `notBreaching`, `ignore`, `missing` (the default).
    pub treat_missing_data: String,
    pub metrics: Vec<WatchedMetric>,
    /// The alarm as a `PutMetricAlarm` input (the API's member names, as
    /// `--cli-input-json` takes them): put back with one setting changed,
    /// it keeps everything else (tags are kept by the API).
    pub definition: serde_json::Value,
}

/// One metric an alarm watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedMetric {
    pub namespace: String,
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(vpc_zone_identifier: &str, managed: Option<&str>) -> Group {
        Group {
            name: "web".into(),
            arn: None,
            tags: managed
                .map(|v| (tags::MANAGED.to_string(), v.to_string()))
                .into_iter()
                .collect(),
            target_group_arns: vec![],
            vpc_zone_identifier: vpc_zone_identifier.into(),
            min_size: 0,
            max_size: 0,
            desired_capacity: 0,
            instances: vec![],
            health_check_type: "EC2".into(),
            suspended_processes: vec![],
            health_check_grace_period: 0,
        }
    }

    #[test]
    fn subnets_are_the_identifiers_in_order_without_blanks() {
        let g = group(" subnet-a,subnet-b ,, subnet-c", None);
        assert_eq!(
            g.subnets().collect::<Vec<_>>(),
            ["subnet-a", "subnet-b", "subnet-c"]
        );
        assert_eq!(group("", None).subnets().count(), 0);
    }

    #[test]
    fn managed_means_the_tag_is_true_in_any_case() {
        assert!(group("", Some("true")).is_managed());
        assert!(group("", Some(" True ")).is_managed());
        assert!(!group("", Some("false")).is_managed());
        assert!(!group("", Some("yes")).is_managed());
        assert!(!group("", None).is_managed());
    }
}

// ------------------------------------------------------------------ RDS

/// A DB instance, as `rds-failover` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub arn: String,
    pub status: String,
    /// `Endpoint.Address`.
    pub endpoint: Option<String>,
    pub az: Option<String>,
    pub secondary_az: Option<String>,
    pub multi_az: bool,
    /// `ReadReplicaSourceDBInstanceIdentifier`, as an identifier.
    pub source: Option<String>,
    /// `DBClusterIdentifier` for Aurora members.
    pub cluster: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// How a client reaches its engine.
    pub access: Access,
}

/// How a client reaches a DB resource's engine: what the writer probe
/// needs besides the name and the login.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Access {
    /// `Engine` (`mysql`, `mariadb`, `postgres`, `aurora-mysql`,
    /// `aurora-postgresql`, ...).
    pub engine: Option<String>,
    /// `Endpoint.Port` (instance) or `Port` (cluster).
    pub port: Option<u16>,
    /// `MasterUserSecret.SecretArn`: the secret RDS manages for the master
    /// user, when it does.
    pub master_secret: Option<String>,
    /// The DB parameter group (an instance's first; a cluster's
    /// `DBClusterParameterGroup`): where `read_only` is set.
    pub parameter_group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMember {
    pub id: String,
    pub is_writer: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub id: String,
    pub arn: String,
    pub status: String,
    /// The cluster (writer) endpoint.
    pub endpoint: Option<String>,
    pub members: Vec<ClusterMember>,
    pub tags: BTreeMap<String, String>,
    pub access: Access,
}

/// `db.example.com` and `DB.example.com.` are the same record.
pub fn normalise(name: &str) -> String {
    let n = name.trim().trim_end_matches('.').to_ascii_lowercase();
    format!("{n}.")
}

// ---------------------------------------------------- Auto Scaling activity

/// Why an Auto Scaling activity took an instance out of service, as its
/// `Cause` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replacement {
    /// `SetInstanceHealth`: Ballast's own marks (counted from its record)
    /// and any other caller's.
    UserHealthCheck,
    /// The ASG's own ELB or VPC Lattice health check.
    LoadBalancerHealthCheck,
    /// The ASG's EC2 status checks (stopped, terminated, impaired).
    Ec2HealthCheck,
}

/// Reads an activity's `Cause`: which health check took the instance out of
/// service, or `None` when it was not a health-check replacement (a user
/// request, a capacity change, a rebalance, an instance refresh).
///
/// The texts are AWS's (EC2 Auto Scaling User Guide, "View the reason for
/// health check failures", and published activity histories), e.g.
/// `At 2022-05-14T20:11:53Z an instance was taken out of service in response
/// to a user health-check.`
pub fn replacement_cause(cause: &str) -> Option<Replacement> {
    let cause = cause.to_ascii_lowercase();
    let (_, why) = cause.split_once("taken out of service in response to")?;
    if why.contains("user health-check") || why.contains("user health check") {
        Some(Replacement::UserHealthCheck)
    } else if why.contains("elb system health check")
        || why.contains("elb health check")
        || why.contains("vpc lattice health check")
    {
        Some(Replacement::LoadBalancerHealthCheck)
    } else if why.contains("ec2 health check") || why.contains("ec2 instance status check") {
        Some(Replacement::Ec2HealthCheck)
    } else {
        None
    }
}
