//! `template.yaml` against the code and the sample events: every EventBridge
//! rule routes the events in `events/` to the function meant for them and
//! nowhere else (matched with quamina, an implementation of EventBridge's
//! pattern language — moto does not serve `TestEventPattern`), and the
//! functions get the contract's binaries and variables.

use std::collections::{BTreeMap, BTreeSet};

use ballast::config;
use ballast_tests::{sample_event, workspace_root};
use serde_json::{json, Value};
use yaml_serde::Value as Yaml;

/// template.yaml as JSON, with `!Ref <parameter>` replaced by the
/// parameter's default and `!Ref AWS::Region` by the samples' Region
/// (other intrinsics are kept as `{"!Tag": value}`).
fn template() -> Value {
    let text = std::fs::read_to_string(workspace_root().join("template.yaml"))
        .expect("template.yaml is readable");
    let yaml: Yaml = yaml_serde::from_str(&text).expect("template.yaml is YAML");
    let raw = to_json(&yaml, &BTreeMap::new());
    let mut defaults: BTreeMap<String, Value> = raw["Parameters"]
        .as_object()
        .expect("the template has parameters")
        .iter()
        .map(|(name, p)| (name.clone(), p["Default"].clone()))
        .collect();
    // The Region of the sample events.
    defaults.insert("AWS::Region".into(), json!("us-east-1"));
    to_json(&yaml, &defaults)
}

fn to_json(y: &Yaml, defaults: &BTreeMap<String, Value>) -> Value {
    match y {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => json!(b),
        Yaml::Number(n) => serde_json::to_value(n).expect("a number"),
        Yaml::String(s) => json!(s),
        Yaml::Sequence(items) => items.iter().map(|i| to_json(i, defaults)).collect(),
        Yaml::Mapping(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = k
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("{k:?}"));
                    (key, to_json(v, defaults))
                })
                .collect(),
        ),
        Yaml::Tagged(t) => {
            let tag = t.tag.to_string();
            let inner = to_json(&t.value, defaults);
            match (tag.as_str(), inner.as_str().and_then(|r| defaults.get(r))) {
                ("!Ref", Some(default)) => default.clone(),
                _ => json!({ tag: inner }),
            }
        }
    }
}

/// Every function of the template, the writer probe included.
fn all_functions(t: &Value) -> BTreeMap<String, Value> {
    t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(id, r)| (id.clone(), r.clone()))
        .collect()
}

/// The reconcilers: the functions events trigger (the writer probe is
/// invoked by `rds-failover` alone).
fn functions(t: &Value) -> BTreeMap<String, Value> {
    all_functions(t)
        .into_iter()
        .filter(|(_, f)| f["Properties"]["Events"].is_object())
        .collect()
}

/// Every statement a function's role allows: its own policies and the
/// managed policies it attaches (both branches of an `!If`).
fn permissions(t: &Value, function: &str) -> Vec<Value> {
    fn statements(node: &Value, out: &mut Vec<Value>) {
        match node {
            Value::Object(m) => match m.get("Statement") {
                Some(Value::Array(list)) => out.extend(list.iter().cloned()),
                _ => m.values().for_each(|v| statements(v, out)),
            },
            Value::Array(list) => list.iter().for_each(|v| statements(v, out)),
            _ => {}
        }
    }
    let role = t["Resources"][function]["Properties"]["Role"]["!GetAtt"]
        .as_str()
        .and_then(|a| a.strip_suffix(".Arn"))
        .unwrap_or_else(|| panic!("{function} has no role of the stack's"));
    let role = &t["Resources"][role];
    assert_eq!(role["Type"], "AWS::IAM::Role", "{function}");
    let mut out = vec![];
    statements(&role["Properties"]["Policies"], &mut out);
    let managed = role["Properties"]["ManagedPolicyArns"].as_array();
    for managed in managed.into_iter().flatten() {
        let name = managed["!Ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{function} attaches a policy not of the stack: {managed}"));
        assert_eq!(t["Resources"][name]["Type"], "AWS::IAM::ManagedPolicy");
        statements(
            &t["Resources"][name]["Properties"]["PolicyDocument"],
            &mut out,
        );
    }
    out
}

/// The actions of a statement, as written.
fn actions(statement: &Value) -> Vec<String> {
    match &statement["Action"] {
        Value::String(a) => vec![a.clone()],
        Value::Array(list) => list
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect(),
        other => panic!("an action that is neither a string nor a list: {other}"),
    }
}

/// Each function writes only its own log group, which the stack creates,
/// names and keeps (a deleted stack leaves its decisions readable and a new
/// stack of the same name deploys): no `logs:CreateLogGroup`, and no
/// AWS-managed policy (`AWSLambdaBasicExecutionRole` allows both on `*`).
#[test]
fn each_function_writes_only_its_own_kept_log_group() {
    let t = template();
    for (id, f) in all_functions(&t) {
        let group = f["Properties"]["LoggingConfig"]["LogGroup"]["!Ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{id} logs to a group of the stack's"))
            .to_string();
        let g = &t["Resources"][&group];
        assert_eq!(g["Type"], "AWS::Logs::LogGroup", "{id}");
        assert_eq!(g["DeletionPolicy"], "Retain", "{id}");
        assert_eq!(g["UpdateReplacePolicy"], "Retain", "{id}");
        assert!(
            g["Properties"]["LogGroupName"].is_null(),
            "{id}: a named, kept group would block the next stack of that name"
        );
        assert!(
            f["Properties"]["Policies"].is_null(),
            "{id}: SAM would add AWSLambdaBasicExecutionRole"
        );
        let logs: Vec<Value> = permissions(&t, &id)
            .into_iter()
            .filter(|s| actions(s).iter().any(|a| a.starts_with("logs:")))
            .collect();
        assert_eq!(logs.len(), 1, "{id}: {logs:?}");
        assert_eq!(
            actions(&logs[0]).into_iter().collect::<BTreeSet<_>>(),
            set(&["logs:CreateLogStream", "logs:PutLogEvents"]),
            "{id}"
        );
        assert_eq!(
            logs[0]["Resource"],
            json!({"!GetAtt": format!("{group}.Arn")}),
            "{id}"
        );
        // Failed asynchronous invocations reach the dead-letter queue.
        assert!(
            permissions(&t, &id)
                .iter()
                .any(|s| actions(s) == ["sqs:SendMessage"]
                    && s["Resource"] == json!({"!GetAtt": "DeadLetterQueue.Arn"})),
            "{id}"
        );
    }
}

/// az-impairment reads back only the alarms the zonal rule routes: the
/// ones named with `ZonalAlarmPrefix`.
#[test]
fn alarms_are_read_by_the_zonal_prefix_only() {
    let t = template();
    let prefix = t["Parameters"]["ZonalAlarmPrefix"]["Default"]
        .as_str()
        .unwrap();
    let mut readers = 0;
    for id in functions(&t).keys() {
        for s in permissions(&t, id) {
            if actions(&s).iter().any(|a| a == "cloudwatch:DescribeAlarms") {
                readers += 1;
                assert_eq!(actions(&s), ["cloudwatch:DescribeAlarms"], "{id}");
                let arn = s["Resource"]["!Sub"].as_str().unwrap_or_default();
                assert_eq!(
                    arn,
                    "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:${ZonalAlarmPrefix}*",
                    "{id}"
                );
                assert!(!prefix.is_empty());
            }
        }
    }
    assert_eq!(readers, 1, "az-impairment reads the zonal alarms back");
}

/// `Function/Event` → the EventBridge pattern of that rule.
fn rule_patterns(t: &Value) -> BTreeMap<String, Value> {
    let mut rules = BTreeMap::new();
    for (id, f) in functions(t) {
        for (name, event) in f["Properties"]["Events"].as_object().unwrap() {
            if event["Type"] == "EventBridgeRule" {
                rules.insert(
                    format!("{id}/{name}"),
                    event["Properties"]["Pattern"].clone(),
                );
            }
        }
    }
    rules
}

/// Which rules match `event`, by quamina.
fn matching_rules(rules: &BTreeMap<String, Value>, event: &Value) -> BTreeSet<String> {
    let mut q = quamina::Quamina::<String>::new();
    for (name, pattern) in rules {
        q.add_pattern(name.clone(), &pattern.to_string())
            .unwrap_or_else(|e| panic!("the pattern of {name} is not valid: {e:?}"));
    }
    q.matches_for_event(event.to_string().as_bytes())
        .expect("the event is JSON")
        .into_iter()
        .collect()
}

/// The text of a `!Sub`, in its one-string or its [string, variables] form.
fn sub_text(v: &Value) -> Option<&str> {
    let sub = v.get("!Sub")?;
    sub.as_str().or_else(|| sub.get(0).and_then(Value::as_str))
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Every sample event, and the rules that must deliver it (none: the event
/// is a direct invoke, a schedule, or something Ballast must never see).
const ROUTES: &[(&str, &[&str])] = &[
    (
        "unhealthy-target-alarm.json",
        &["UnhealthyTarget/UnHealthyHostCountAlarm"],
    ),
    (
        "unhealthy-target-alarm-az.json",
        &["UnhealthyTarget/UnHealthyHostCountAlarm"],
    ),
    (
        "unhealthy-target-alarm-ok.json",
        &["UnhealthyTarget/UnHealthyHostCountAlarm"],
    ),
    ("unhealthy-target-direct.json", &[]),
    (
        "rds-cluster-failover-completed.json",
        &["RdsFailover/DatabaseFailover"],
    ),
    (
        "rds-instance-multi-az-failover.json",
        &["RdsFailover/DatabaseFailover"],
    ),
    (
        "rds-instance-failure.json",
        &["RdsFailover/DatabaseLifecycle"],
    ),
    (
        "rds-instance-stopped.json",
        &["RdsFailover/DatabaseLifecycle"],
    ),
    ("rds-instance-backup.json", &[]),
    ("rds-failover-direct.json", &[]),
    ("health-ec2-issue-open.json", &["AzImpairment/HealthIssue"]),
    (
        "health-ec2-issue-closed.json",
        &["AzImpairment/HealthIssue"],
    ),
    (
        "arc-autoshift-in-progress.json",
        &["AzImpairment/Autoshift"],
    ),
    ("arc-autoshift-completed.json", &["AzImpairment/Autoshift"]),
    (
        "arc-fis-autoshift-in-progress.json",
        &["AzImpairment/Autoshift"],
    ),
    // Practice runs never move capacity: no rule delivers them.
    ("arc-practice-run-interrupted.json", &[]),
    // Delivered (it is an EC2 issue); answered `ignored`: Region-wide.
    (
        "health-ec2-issue-public.json",
        &["AzImpairment/HealthIssue"],
    ),
    ("az-impairment-alarm.json", &["AzImpairment/ZonalAlarm"]),
    ("az-impairment-evacuate.json", &[]),
    ("az-impairment-restore.json", &[]),
    ("scheduled-sweep.json", &[]),
    ("s3-object-created.json", &[]),
];

#[test]
fn every_sample_event_reaches_exactly_the_rules_meant_for_it() {
    let rules = rule_patterns(&template());
    for (file, expected) in ROUTES {
        assert_eq!(
            matching_rules(&rules, &sample_event(file)),
            set(expected),
            "{file}"
        );
    }
}

#[test]
fn every_sample_event_has_a_route_and_every_rule_a_sample() {
    let listed: BTreeSet<String> = ROUTES.iter().map(|(f, _)| f.to_string()).collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(workspace_root().join("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert_eq!(
        listed, on_disk,
        "ROUTES must classify every file in events/"
    );
    let routed: BTreeSet<String> = ROUTES
        .iter()
        .flat_map(|(_, r)| r.iter().map(|s| s.to_string()))
        .collect();
    let rules: BTreeSet<String> = rule_patterns(&template()).into_keys().collect();
    assert_eq!(routed, rules, "every rule is proven by a sample event");
}

/// Variations of the samples that must not invoke anything, or must reach
/// another rule: the patterns are precise, not just permissive.
#[test]
fn rules_reject_near_misses() {
    let rules = rule_patterns(&template());
    let with = |file: &str, edit: &dyn Fn(&mut Value)| {
        let mut e = sample_event(file);
        edit(&mut e);
        matching_rules(&rules, &e)
    };
    // An UnHealthyHostCount alarm without data is no verdict either way.
    assert_eq!(
        with("unhealthy-target-alarm.json", &|e| e["detail"]["state"]
            ["value"] =
            json!("INSUFFICIENT_DATA")),
        set(&[])
    );
    // Another metric of the load balancer is not unhealthy-target's business.
    assert_eq!(
        with("unhealthy-target-alarm.json", &|e| {
            e["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["name"] =
                json!("TargetResponseTime")
        }),
        set(&[])
    );
    // A zonal alarm that recovers restores the AZ.
    assert_eq!(
        with("az-impairment-alarm.json", &|e| e["detail"]["state"]
            ["value"] = json!("OK")),
        set(&["AzImpairment/ZonalAlarm"])
    );
    // A per-AZ alarm without the zonal prefix never moves capacity; one with
    // the prefix but no AvailabilityZone dimension says nothing about a zone.
    assert_eq!(
        with("az-impairment-alarm.json", &|e| e["detail"]["alarmName"] =
            json!("web-canary-us-east-1a")),
        set(&[])
    );
    assert_eq!(
        with("az-impairment-alarm.json", &|e| {
            e["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"] =
                json!({"CanaryName": "web"})
        }),
        set(&[])
    );
    // A public Health event of another Region (sent to this one as its
    // backup Region) is not this stack's business.
    assert_eq!(
        with("health-ec2-issue-open.json", &|e| e["detail"]
            ["eventRegion"] =
            json!("us-west-2")),
        set(&[])
    );
    // Health issues of other services, and scheduled changes, move nothing.
    assert_eq!(
        with("health-ec2-issue-open.json", &|e| e["detail"]["service"] =
            json!("RDS")),
        set(&[])
    );
    assert_eq!(
        with("health-ec2-issue-open.json", &|e| {
            e["detail"]["eventTypeCategory"] = json!("scheduledChange")
        }),
        set(&[])
    );
    // RDS notifications rds-failover does not act on stay out; the lifecycle
    // events it does act on come through their own rule.
    assert_eq!(
        with("rds-instance-backup.json", &|e| {
            e["detail"]["EventCategories"] = json!(["notification"]);
            e["detail"]["EventID"] = json!("RDS-EVENT-0088")
        }),
        set(&[])
    );
    assert_eq!(
        with("rds-instance-backup.json", &|e| {
            e["detail"]["EventCategories"] = json!(["notification"]);
            e["detail"]["EventID"] = json!("RDS-EVENT-0087")
        }),
        set(&["RdsFailover/DatabaseLifecycle"])
    );
    assert_eq!(
        with("rds-instance-backup.json", &|e| {
            e["detail"]["EventCategories"] = json!(["read replica"]);
            e["detail"]["EventID"] = json!("RDS-EVENT-0045")
        }),
        set(&["RdsFailover/DatabaseLifecycle"])
    );
}

/// DB instance and cluster events as the RDS User Guide lists them (*Amazon
/// RDS event categories and event messages*): ID and category.
const RDS_EVENTS: &[(&str, &str)] = &[
    ("RDS-EVENT-0004", "availability"),
    ("RDS-EVENT-0006", "availability"),
    ("RDS-EVENT-0022", "availability"),
    ("RDS-EVENT-0221", "availability"),
    ("RDS-EVENT-0222", "availability"),
    ("RDS-EVENT-0330", "availability"),
    ("RDS-EVENT-0419", "availability"),
    ("RDS-EVENT-0001", "backup"),
    ("RDS-EVENT-0002", "backup"),
    ("RDS-EVENT-0012", "configuration change"),
    ("RDS-EVENT-0217", "configuration change"),
    ("RDS-EVENT-0013", "failover"),
    ("RDS-EVENT-0015", "failover"),
    ("RDS-EVENT-0034", "failover"),
    ("RDS-EVENT-0049", "failover"),
    ("RDS-EVENT-0050", "failover"),
    ("RDS-EVENT-0051", "failover"),
    ("RDS-EVENT-0065", "failover"),
    ("RDS-EVENT-0069", "failover"),
    ("RDS-EVENT-0070", "failover"),
    ("RDS-EVENT-0071", "failover"),
    ("RDS-EVENT-0072", "failover"),
    ("RDS-EVENT-0073", "failover"),
    ("RDS-EVENT-0031", "failure"),
    ("RDS-EVENT-0035", "failure"),
    ("RDS-EVENT-0036", "failure"),
    ("RDS-EVENT-0058", "failure"),
    ("RDS-EVENT-0079", "failure"),
    ("RDS-EVENT-0080", "failure"),
    ("RDS-EVENT-0081", "failure"),
    ("RDS-EVENT-0165", "failure"),
    ("RDS-EVENT-0188", "failure"),
    ("RDS-EVENT-0219", "failure"),
    ("RDS-EVENT-0220", "failure"),
    ("RDS-EVENT-0223", "failure"),
    ("RDS-EVENT-0224", "failure"),
    ("RDS-EVENT-0237", "failure"),
    ("RDS-EVENT-0254", "failure"),
    ("RDS-EVENT-0278", "failure"),
    ("RDS-EVENT-0306", "failure"),
    ("RDS-EVENT-0315", "failure"),
    ("RDS-EVENT-0328", "failure"),
    ("RDS-EVENT-0353", "failure"),
    ("RDS-EVENT-0418", "failure"),
    ("RDS-EVENT-0420", "failure"),
    ("RDS-EVENT-0007", "low storage"),
    ("RDS-EVENT-0089", "low storage"),
    ("RDS-EVENT-0026", "maintenance"),
    ("RDS-EVENT-0087", "notification"),
    ("RDS-EVENT-0088", "notification"),
    ("RDS-EVENT-0045", "read replica"),
    ("RDS-EVENT-0046", "read replica"),
    ("RDS-EVENT-0057", "read replica"),
    ("RDS-EVENT-0062", "read replica"),
    ("RDS-EVENT-0202", "read replica"),
    ("RDS-EVENT-0020", "recovery"),
    ("RDS-EVENT-0052", "recovery"),
];

/// The rules deliver exactly the RDS events the code acts on: a storage-full
/// shutdown (an `availability` event) reaches the function, a refused
/// failover and the failure-category events that leave a database serving
/// do not.
#[test]
fn rds_rules_deliver_exactly_the_events_rds_failover_acts_on() {
    use ballast::event::rds::EventClass;
    let rules = rule_patterns(&template());
    let mut delivered = vec![];
    for (id, category) in RDS_EVENTS {
        let mut e = sample_event("rds-instance-backup.json");
        e["detail"]["EventID"] = json!(id);
        e["detail"]["EventCategories"] = json!([category]);
        let routed = !matching_rules(&rules, &e).is_empty();
        let acted = EventClass::of(id, &[category.to_string()]).is_ok();
        assert_eq!(
            routed, acted,
            "{id} [{category}]: routed {routed}, acted on {acted}"
        );
        if routed {
            delivered.push(*id);
        }
    }
    for id in [
        "RDS-EVENT-0221",
        "RDS-EVENT-0419",
        "RDS-EVENT-0031",
        "RDS-EVENT-0049",
    ] {
        assert!(delivered.contains(&id), "{id}");
    }
    for id in [
        "RDS-EVENT-0034",
        "RDS-EVENT-0079",
        "RDS-EVENT-0223",
        "RDS-EVENT-0222",
    ] {
        assert!(!delivered.contains(&id), "{id}");
    }
}

#[test]
fn functions_are_the_contracts_binaries_with_its_variables() {
    let t = template();
    let binaries: BTreeSet<String> = all_functions(&t)
        .values()
        .map(|f| {
            assert_eq!(f["Metadata"]["BuildMethod"], "rust-cargolambda");
            f["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .expect("each function names its binary")
                .to_string()
        })
        .collect();
    assert_eq!(
        binaries,
        set(&[
            "unhealthy-target",
            "rds-failover",
            "az-impairment",
            "writer-probe"
        ])
    );
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"], json!(["arm64"]));
    assert_eq!(globals["Handler"], "bootstrap");
    let variables: BTreeSet<String> = globals["Environment"]["Variables"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        variables,
        set(&[
            config::TOPIC_ARN,
            config::DRY_RUN,
            config::MAX_UNHEALTHY_PERCENT,
            config::MAX_REPLACED_PERCENT,
            config::REPLACEMENT_WINDOW_MINUTES,
            config::MAX_EVACUATED_AZS,
            config::DNS_TTL,
            config::EVACUATION_WARN_HOURS,
            config::HOSTED_ZONE_IDS,
            config::ZONAL_ALARM_PREFIX,
            config::LEASE_TABLE,
            config::PROOF_GRACE_MINUTES,
            config::PROMOTION_MAX_UNAPPLIED_BYTES,
        ])
    );
    assert_eq!(
        globals["Environment"]["Variables"][config::LEASE_TABLE],
        json!({"!Ref": "LeaseTable"})
    );
    // The template's defaults are the contract's defaults.
    let lookup = |name: &str| {
        globals["Environment"]["Variables"][name]
            .as_str()
            .map(str::to_string)
            .or_else(|| {
                globals["Environment"]["Variables"][name]
                    .as_u64()
                    .map(|n| n.to_string())
            })
            .or_else(|| deployed(name))
    };
    let parsed =
        config::Config::from_lookup(lookup).expect("the defaults are a valid configuration");
    let contract = config::Config::from_lookup(deployed).unwrap();
    assert_eq!(parsed, contract);
}

/// What the stack's resources give the required variables (a topic, the
/// lease table) once deployed.
fn deployed(name: &str) -> Option<String> {
    match name {
        config::TOPIC_ARN => Some("arn:aws:sns:us-east-1:123456789012:ballast-reports".into()),
        config::LEASE_TABLE => Some("ballast-leases".into()),
        _ => None,
    }
}

/// Unprocessed events outlive the stack: the dead-letter queue is kept when
/// the stack is deleted or the queue replaced (and is unnamed, so a new
/// stack does not collide with it).
#[test]
fn the_dead_letter_queue_outlives_the_stack() {
    let t = template();
    let dlq = &t["Resources"]["DeadLetterQueue"];
    assert_eq!(dlq["DeletionPolicy"], "Retain");
    assert_eq!(dlq["UpdateReplacePolicy"], "Retain");
    assert!(dlq["Properties"]["QueueName"].is_null());
    // Its key too, or what it keeps could not be read.
    let key = dlq["Properties"]["KmsMasterKeyId"]["!Ref"]
        .as_str()
        .unwrap();
    assert_eq!(t["Resources"][key]["DeletionPolicy"], "Retain");
    assert_eq!(t["Resources"][key]["UpdateReplacePolicy"], "Retain");
}

/// Throttling is not loss: Lambda retries a throttled asynchronous event
/// until its maximum age. The "lost" alarms count only what is lost; each
/// function has its own alarm for throttling that lasts.
#[test]
fn throttles_warn_apart_from_lost_events() {
    let t = template();
    let resources = t["Resources"].as_object().unwrap();
    for (id, _) in functions(&t) {
        let lost = &resources[&format!("{id}LostInvocations")];
        let text = lost.to_string();
        assert!(text.contains("AsyncEventsDropped"), "{id}");
        assert!(
            !text.contains("Throttles"),
            "{id}: throttles are not lost events"
        );
        let throttled = &resources[&format!("{id}Throttled")]["Properties"];
        assert_eq!(throttled["MetricName"], "Throttles", "{id}");
        assert_eq!(throttled["Namespace"], "AWS/Lambda", "{id}");
        let periods = throttled["EvaluationPeriods"].as_i64().unwrap();
        let period = throttled["Period"].as_i64().unwrap();
        assert!(periods * period >= 900, "{id}: sustained, not one throttle");
        assert_eq!(
            throttled["DatapointsToAlarm"],
            throttled["EvaluationPeriods"]
        );
    }
}

/// Every `LogLevel` the template admits keeps the EMF records (Lambda drops
/// a JSON line below the application log level and reads one without a
/// level as INFO): Ballast's metric alarms must not go silent at WARN.
#[test]
fn every_log_level_keeps_the_metrics_records() {
    let t = template();
    let allowed = t["Parameters"]["LogLevel"]["AllowedValues"]
        .as_array()
        .unwrap()
        .clone();
    assert!(allowed.len() >= 5, "{allowed:?}");
    let rank = |l: &str| {
        ballast::metrics::LAMBDA_LEVELS
            .iter()
            .position(|x| *x == l)
            .unwrap_or_else(|| panic!("{l} is not a Lambda log level"))
    };
    for level in allowed {
        let level = level.as_str().unwrap();
        let kept = ballast::metrics::kept_level(Some(level));
        assert!(
            rank(kept) >= rank(level),
            "LogLevel {level}: records at {kept}"
        );
    }
    for (id, f) in functions(&t) {
        let logging = &f["Properties"]["LoggingConfig"];
        assert_eq!(logging["LogFormat"], "JSON", "{id}");
        // `!Ref LogLevel`, resolved to its default here.
        assert_eq!(
            logging["ApplicationLogLevel"], t["Parameters"]["LogLevel"]["Default"],
            "{id}"
        );
    }
}

/// The lease table is the contract's (key `resource`, TTL on `expires`),
/// on demand and encrypted, and the functions may only write its items.
#[test]
fn the_lease_table_is_the_contracts_and_only_its_items_are_writable() {
    let t = template();
    let table = &t["Resources"]["LeaseTable"];
    assert_eq!(table["Type"], "AWS::DynamoDB::Table");
    let p = &table["Properties"];
    assert_eq!(p["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        p["KeySchema"],
        json!([{"AttributeName": ballast::aws::leases::KEY, "KeyType": "HASH"}])
    );
    assert_eq!(
        p["AttributeDefinitions"],
        json!([{"AttributeName": ballast::aws::leases::KEY, "AttributeType": "S"}])
    );
    assert_eq!(
        p["TimeToLiveSpecification"],
        json!({"AttributeName": ballast::aws::leases::EXPIRES, "Enabled": true})
    );
    assert_eq!(p["SSESpecification"]["SSEEnabled"], true);
    for id in functions(&t).keys() {
        let statements = permissions(&t, id);
        let text = Value::from(statements.clone()).to_string();
        let actions: BTreeSet<String> = text
            .match_indices("dynamodb:")
            .map(|(i, _)| text[i..].split('"').next().unwrap_or_default().to_string())
            .collect();
        assert_eq!(
            actions,
            set(&[
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem"
            ]),
            "{id}"
        );
        let statements = statements
            .iter()
            .filter(|s| s["Action"].to_string().contains("dynamodb:"))
            .collect::<Vec<_>>();
        assert_eq!(statements.len(), 1, "{id}");
        assert_eq!(
            statements[0]["Resource"],
            json!({"!GetAtt": "LeaseTable.Arn"}),
            "{id}"
        );
    }
}

#[test]
fn the_reconcilers_sweep_on_a_schedule_and_every_rule_has_a_dead_letter_queue() {
    let t = template();
    for (id, f) in functions(&t) {
        let events = f["Properties"]["Events"].as_object().unwrap();
        let schedules = events.values().filter(|e| e["Type"] == "Schedule").count();
        assert_eq!(schedules, 1, "{id}: scheduled sweeps");
        for (name, e) in events {
            assert!(
                e["Properties"]["DeadLetterConfig"]["Arn"].is_object(),
                "{id}/{name} has no dead-letter queue"
            );
            assert!(
                e["Properties"]["RetryPolicy"]["MaximumRetryAttempts"].is_number(),
                "{id}/{name} has no retry policy"
            );
        }
    }
}

/// Every value a parameter admits (its `MinValue` and `MaxValue`, or each
/// of its `AllowedValues`) is a value the functions accept at init: a
/// parameter the template lets through and `config.rs` refuses would fail
/// every invocation of all three functions.
#[test]
fn every_value_a_parameter_admits_is_a_valid_configuration() {
    let text = std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap();
    let raw = to_json(&yaml_serde::from_str(&text).unwrap(), &BTreeMap::new());
    let mut checked = 0;
    for (variable, value) in raw["Globals"]["Function"]["Environment"]["Variables"]
        .as_object()
        .unwrap()
    {
        let Some(parameter) = value["!Ref"].as_str() else {
            continue;
        };
        let p = &raw["Parameters"][parameter];
        let admitted: Vec<String> = match p["Type"].as_str() {
            Some("Number") => ["MinValue", "MaxValue"]
                .iter()
                .filter_map(|b| p[*b].as_i64())
                .map(|n| n.to_string())
                .collect(),
            _ => p["AllowedValues"]
                .as_array()
                .map(|v| {
                    v.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        };
        for v in admitted {
            let parsed = config::Config::from_lookup(|name| {
                if name == variable {
                    Some(v.clone())
                } else {
                    deployed(name)
                }
            });
            assert!(
                parsed.is_ok(),
                "parameter {parameter} admits {v}, which {variable} refuses: {parsed:?}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 13, "only {checked} values checked");
}

/// Every alarm of the stack notifies the report topic, and each metric-math
/// alarm is one CloudWatch accepts: at most 10 metrics, one expression that
/// returns data, and every rule it watches one of the stack's.
#[test]
fn every_alarm_notifies_the_topic_within_cloudwatchs_limits() {
    let t = template();
    let rule_names: BTreeSet<String> = functions(&t)
        .values()
        .flat_map(|f| {
            f["Properties"]["Events"]
                .as_object()
                .unwrap()
                .values()
                .filter_map(|e| {
                    let p = &e["Properties"];
                    sub_text(&p["RuleName"])
                        .or_else(|| sub_text(&p["Name"]))
                        .map(str::to_string)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let mut alarms = 0;
    for (id, r) in t["Resources"].as_object().unwrap() {
        if r["Type"] != "AWS::CloudWatch::Alarm" {
            continue;
        }
        alarms += 1;
        let p = &r["Properties"];
        // The stack's own topic, or the central one (ReportTopicArn).
        let topic = json!({"!If": ["CreatesReportTopic", {"!Ref": "ReportTopic"}, ""]});
        assert!(
            p["AlarmActions"]
                .as_array()
                .is_some_and(|a| a.contains(&topic)),
            "{id} does not notify the report topic: {}",
            p["AlarmActions"]
        );
        let Some(queries) = p["Metrics"].as_array() else {
            continue;
        };
        let stats = queries
            .iter()
            .filter(|q| q.get("MetricStat").is_some())
            .count();
        assert!(
            stats <= 10,
            "{id} watches {stats} metrics, CloudWatch allows 10"
        );
        let returned = queries
            .iter()
            .filter(|q| q["ReturnData"] == json!(true))
            .count();
        assert_eq!(returned, 1, "{id}: exactly one query returns data");
        for q in queries {
            let metric = &q["MetricStat"]["Metric"];
            if metric["Namespace"] != "AWS/Events" {
                continue;
            }
            let rule = sub_text(&metric["Dimensions"][0]["Value"]).unwrap();
            assert!(
                rule_names.contains(rule),
                "{id} watches {rule}, not a rule of the stack"
            );
        }
    }
    assert!(alarms >= 12, "{alarms} alarms");
}

/// The longest stack name the README promises. Names built from it
/// (`${AWS::StackName}-<suffix>`) must fit their service's limit: 64
/// characters for EventBridge rules and Lambda functions.
const MAX_STACK_NAME: usize = 40;

#[test]
fn names_built_from_the_stack_name_fit_for_the_documented_longest_stack_name() {
    fn walk(v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if let Some(sub) = sub_text(x) {
                        if ["RuleName", "Name", "FunctionName"].contains(&k.as_str()) {
                            // `${Prefix}` is NamePrefix, or the stack name.
                            let prefix = &x["!Sub"][1]["Prefix"]["!If"];
                            assert_eq!(prefix[0], "HasNamePrefix", "{k}: {x}");
                            assert_eq!(prefix[2], json!({"!Ref": "AWS::StackName"}), "{k}: {x}");
                            if let Some(suffix) = sub.strip_prefix("${Prefix}") {
                                out.push((k.clone(), suffix.to_string()));
                            }
                        }
                    }
                    walk(x, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut names = vec![];
    walk(&template()["Resources"], &mut names);
    assert!(names.len() >= 12, "{names:?}");
    let longest = names.iter().map(|(_, s)| s.len()).max().unwrap();
    assert_eq!(
        MAX_STACK_NAME + longest,
        64,
        "the README's longest stack name ({MAX_STACK_NAME}) is not what the names allow: {names:?}"
    );
    // NamePrefix admits the same length.
    let pattern = template()["Parameters"]["NamePrefix"]["AllowedPattern"].clone();
    assert_eq!(
        pattern,
        json!(format!(
            "^$|^[a-zA-Z][a-zA-Z0-9-]{{0,{}}}$",
            MAX_STACK_NAME - 1
        ))
    );
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("at most {MAX_STACK_NAME} characters")),
        "the README states the longest stack name"
    );
}

/// `local-env.json` (for `sam local invoke --env-vars`) sets only variables
/// the template gives the functions, with the template's defaults makes a
/// configuration the functions accept, and keeps a local run in dry run.
#[test]
fn the_local_env_file_makes_a_valid_dry_run_configuration() {
    let t = template();
    let globals = t["Globals"]["Function"]["Environment"]["Variables"]
        .as_object()
        .unwrap()
        .clone();
    let text = std::fs::read_to_string(workspace_root().join("local-env.json")).unwrap();
    let local: Value = serde_json::from_str(&text).unwrap();
    let overrides = local["Parameters"]
        .as_object()
        .expect("one set for every function");
    for name in overrides.keys() {
        assert!(
            globals.contains_key(name),
            "{name} is not a variable of the functions"
        );
    }
    let value = |name: &str| -> Option<String> {
        overrides
            .get(name)
            .or_else(|| globals.get(name))
            .and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
    };
    let config = config::Config::from_lookup(value).expect("a valid configuration");
    assert!(
        config.dry_run,
        "a local invoke against a real account must not act"
    );
}

/// What the dashboard's panels may show: metrics the functions' EMF record
/// really carries (read from a record `metrics::record` writes, not from a
/// list) and AWS metrics the stack's own alarms watch; and every alarm of
/// the stack in its status panel. A panel on a metric nothing writes is a
/// bug.
#[test]
fn the_dashboard_shows_only_metrics_that_are_written_and_every_alarm() {
    let t = template();
    let d = &t["Resources"]["Dashboard"];
    assert_eq!(d["Type"], "AWS::CloudWatch::Dashboard");
    let sub = d["Properties"]["DashboardBody"]["!Sub"]
        .as_array()
        .expect("DashboardBody is a !Sub with variables");
    let (body, vars) = (sub[0].as_str().unwrap(), sub[1].as_object().unwrap());

    // Each ${...} names a variable, a pseudo parameter or a resource of the
    // right type; it is replaced by a value that says what it stood for.
    let mut text = String::new();
    let mut rest = body;
    let mut alarm_refs = BTreeSet::new();
    while let Some(i) = rest.find("${") {
        text.push_str(&rest[..i]);
        let end = rest[i..].find('}').expect("a closed ${}") + i;
        let name = &rest[i + 2..end];
        let value = match name.split_once('.') {
            _ if vars.contains_key(name) => format!("var-{name}"),
            _ if name == "AWS::Region" => "us-east-1".into(),
            Some((alarm, "Arn")) => {
                assert_eq!(
                    t["Resources"][alarm]["Type"], "AWS::CloudWatch::Alarm",
                    "{name}"
                );
                alarm_refs.insert(alarm.to_string());
                format!("alarm-arn-{alarm}")
            }
            Some((queue, "QueueName")) => {
                assert_eq!(t["Resources"][queue]["Type"], "AWS::SQS::Queue", "{name}");
                format!("queue-{queue}")
            }
            None => {
                assert_eq!(
                    t["Resources"][name]["Type"], "AWS::Serverless::Function",
                    "{name}"
                );
                format!("function-{name}")
            }
            _ => panic!("${{{name}}} in the dashboard"),
        };
        text.push_str(&value);
        rest = &rest[end + 1..];
    }
    text.push_str(rest);
    let body: Value = serde_json::from_str(&text).expect("the dashboard body is JSON");

    // What the functions write: one record's own namespace, metric names
    // and dimension sets, and every outcome a record can carry.
    let record = ballast::metrics::record(
        "unhealthy-target",
        "noop",
        None,
        std::time::Duration::ZERO,
        0,
        "INFO",
    );
    let emf = &record["_aws"]["CloudWatchMetrics"][0];
    let namespace = emf["Namespace"].as_str().unwrap();
    let names: BTreeSet<&str> = emf["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect();
    let dimension_sets: BTreeSet<Vec<String>> = emf["Dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|set| {
            let mut s: Vec<String> = set
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().to_string())
                .collect();
            s.sort();
            s
        })
        .collect();
    let outcomes: BTreeSet<&str> = ballast::report::Outcome::ALL
        .iter()
        .map(|o| o.as_str())
        .chain([
            ballast::metrics::ERROR_OUTCOME,
            ballast::metrics::STOOD_DOWN_OUTCOME,
        ])
        .collect();

    // What AWS writes that the stack watches: every metric its alarms read.
    let mut watched: BTreeSet<(String, String, Vec<String>)> = BTreeSet::new();
    for r in t["Resources"].as_object().unwrap().values() {
        if r["Type"] != "AWS::CloudWatch::Alarm" {
            continue;
        }
        let p = &r["Properties"];
        let mut add = |m: &Value| {
            if let (Some(ns), Some(name)) = (m["Namespace"].as_str(), m["MetricName"].as_str()) {
                let mut dims: Vec<String> = m["Dimensions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| d["Name"].as_str().unwrap().to_string())
                    .collect();
                dims.sort();
                watched.insert((ns.into(), name.into(), dims));
            }
        };
        add(p);
        for q in p["Metrics"].as_array().into_iter().flatten() {
            add(&q["MetricStat"]["Metric"]);
        }
    }

    let check = |ns: &str, name: &str, dims: &[(String, Option<String>)], panel: &str| {
        let mut dim_names: Vec<String> = dims.iter().map(|(d, _)| d.clone()).collect();
        dim_names.sort();
        if ns == namespace {
            assert!(names.contains(name), "{panel}: {ns}/{name} is not written");
            assert!(
                dimension_sets.contains(&dim_names),
                "{panel}: {ns}/{name} is not written under {dim_names:?}"
            );
            for (d, v) in dims {
                if let (true, Some(v)) = (d == "outcome", v) {
                    assert!(outcomes.contains(v.as_str()), "{panel}: no outcome {v}");
                }
            }
        } else {
            assert!(
                watched.contains(&(ns.to_string(), name.to_string(), dim_names.clone())),
                "{panel}: {ns}/{name} {dim_names:?} is no metric the stack's alarms watch"
            );
        }
    };

    let mut panels = 0;
    let mut alarm_panel = BTreeSet::new();
    for w in body["widgets"].as_array().unwrap() {
        let p = &w["properties"];
        let title = p["title"].as_str().unwrap_or("text");
        match w["type"].as_str().unwrap() {
            "text" => assert!(p["markdown"].as_str().unwrap().contains("var-Runbook")),
            "alarm" => {
                for a in p["alarms"].as_array().unwrap() {
                    let a = a.as_str().unwrap().strip_prefix("alarm-arn-").unwrap();
                    alarm_panel.insert(a.to_string());
                }
            }
            "metric" => {
                assert_eq!(p["region"], "us-east-1", "{title}");
                for row in p["metrics"].as_array().unwrap() {
                    let row = row.as_array().unwrap();
                    if let Some(expr) = row[0]["expression"].as_str() {
                        // SEARCH('{Namespace,dim,...} MetricName="X" ...', ...)
                        let query = expr
                            .split_once("SEARCH('{")
                            .unwrap_or_else(|| panic!("{title}: {expr}"))
                            .1;
                        let (schema, filter) = query.split_once('}').unwrap();
                        let mut parts = schema.split(',');
                        let ns = parts.next().unwrap();
                        let dims: Vec<(String, Option<String>)> =
                            parts.map(|d| (d.to_string(), None)).collect();
                        let name = filter
                            .split_once("MetricName=\"")
                            .unwrap()
                            .1
                            .split('"')
                            .next()
                            .unwrap();
                        check(ns, name, &dims, title);
                    } else {
                        let words: Vec<&str> = row.iter().filter_map(|v| v.as_str()).collect();
                        let dims: Vec<(String, Option<String>)> = words[2..]
                            .chunks(2)
                            .map(|kv| (kv[0].to_string(), Some(kv[1].to_string())))
                            .collect();
                        check(words[0], words[1], &dims, title);
                    }
                    panels += 1;
                }
            }
            other => panic!("a {other} widget"),
        }
    }
    assert!(panels >= 15, "{panels} metric rows");
    let alarms: BTreeSet<String> = t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|(id, r)| {
            assert!(
                r["Condition"].is_null(),
                "{id} is conditional: the dashboard names it"
            );
            id.clone()
        })
        .collect();
    assert_eq!(
        alarm_panel, alarms,
        "the alarm panel holds every alarm of the stack"
    );
    assert_eq!(alarm_refs, alarms);
}

/// Every ARN the template writes is in the stack's own partition: a
/// `!Sub` builds it with `${AWS::Partition}`, and a literal one names
/// `aws`, `aws-cn` or `aws-us-gov` only on the branch of the `InChina` /
/// `InGovCloud` condition that is that partition (`make package` checks
/// the packaged template the same way, in each partition).
#[test]
fn every_arn_is_in_the_stacks_own_partition() {
    fn walk(node: &Value, branch: &mut Vec<(String, bool)>, found: &mut Vec<String>) {
        match node {
            Value::String(s) => {
                for (i, _) in s.match_indices("arn:") {
                    let rest = &s[i + 4..];
                    let partition = if rest.starts_with("${AWS::Partition}") {
                        "${AWS::Partition}"
                    } else {
                        rest.split(':').next().unwrap_or_default()
                    };
                    let on = |cond: &str| {
                        branch
                            .iter()
                            .rev()
                            .find(|(c, _)| c == cond)
                            .map(|(_, b)| *b)
                    };
                    let ok = match partition {
                        "${AWS::Partition}" => true,
                        "aws-cn" => on("InChina") == Some(true),
                        "aws-us-gov" => on("InGovCloud") == Some(true),
                        "aws" => on("InChina") == Some(false) && on("InGovCloud") == Some(false),
                        other => panic!("an ARN in partition {other:?}: {s}"),
                    };
                    if !ok {
                        found.push(s.clone());
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, branch, found)),
            Value::Object(m) => match m.get("!If").and_then(Value::as_array) {
                Some(args) if args.len() == 3 => {
                    let cond = args[0].as_str().unwrap_or_default().to_string();
                    for (i, b) in [(1, true), (2, false)] {
                        branch.push((cond.clone(), b));
                        walk(&args[i], branch, found);
                        branch.pop();
                    }
                }
                _ => m.values().for_each(|v| walk(v, branch, found)),
            },
            _ => {}
        }
    }
    let t = template();
    let mut found = vec![];
    walk(&t["Resources"], &mut vec![], &mut found);
    walk(&t["Outputs"], &mut vec![], &mut found);
    assert!(
        found.is_empty(),
        "ARNs not in the stack's partition: {found:#?}"
    );
    // The conditions mean what the branches assume.
    assert_eq!(
        t["Conditions"]["InChina"],
        json!({"!Equals": [{"!Ref": "AWS::Partition"}, "aws-cn"]})
    );
    assert_eq!(
        t["Conditions"]["InGovCloud"],
        json!({"!Equals": [{"!Ref": "AWS::Partition"}, "aws-us-gov"]})
    );
}

/// The writer probe is there only with its subnets and security groups: in
/// the VPC, invoked by rds-failover alone (the one function allowed to, on
/// it alone), with no mutating permission but its own logs, the secrets it
/// reads and the network interfaces Lambda needs in a VPC; rds-failover is
/// told its name only when it exists, and may move the probe's tags.
#[test]
fn the_writer_probe_runs_in_the_vpc_only_when_given_one_and_only_reads() {
    let t = template();
    let r = &t["Resources"];
    let probe = &r["WriterProbe"];
    assert_eq!(probe["Condition"], "HasProbe");
    for dependent in ["WriterProbeRole", "WriterProbeLogs"] {
        assert_eq!(r[dependent]["Condition"], "HasProbe", "{dependent}");
    }
    assert_eq!(t["Outputs"]["WriterProbeFunction"]["Condition"], "HasProbe");
    // Parameters as written, not resolved to their defaults.
    let text = std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap();
    let raw = to_json(&yaml_serde::from_str(&text).unwrap(), &BTreeMap::new());
    let probe = &raw["Resources"]["WriterProbe"];
    let has_probe = raw["Conditions"]["HasProbe"].to_string();
    for p in ["ProbeSubnetIds", "ProbeSecurityGroupIds"] {
        assert!(has_probe.contains(p), "{has_probe}");
        assert_eq!(t["Parameters"][p]["Type"], "CommaDelimitedList");
        assert_eq!(t["Parameters"][p]["Default"], "", "off by default");
    }
    let vpc = &probe["Properties"]["VpcConfig"];
    assert_eq!(vpc["SubnetIds"], json!({"!Ref": "ProbeSubnetIds"}));
    assert_eq!(
        vpc["SecurityGroupIds"],
        json!({"!Ref": "ProbeSecurityGroupIds"})
    );
    assert!(
        probe["Properties"]["Events"].is_null(),
        "no trigger of its own"
    );
    assert_eq!(
        probe["Properties"]["Environment"]["Variables"]["BALLAST_PROBE_CA_BUNDLE"],
        json!({"!Ref": "ProbeCaBundle"})
    );
    let timeout = probe["Properties"]["Timeout"].as_i64().unwrap();
    assert!(
        (8..=30).contains(&timeout),
        "above the probe's 7 s bound: {timeout}"
    );

    let allowed: BTreeSet<String> = permissions(&t, "WriterProbe")
        .iter()
        .flat_map(actions)
        .collect();
    let mutating: Vec<&String> = allowed
        .iter()
        .filter(|a| {
            *a != "rds-db:connect"
                && !a.starts_with("logs:")
                && !a.contains(":Get")
                && !a.contains(":Describe")
                && !a.starts_with("kms:")
                && *a != "sqs:SendMessage"
                && !a.contains("NetworkInterface")
                && !a.contains("PrivateIpAddresses")
        })
        .collect();
    assert!(mutating.is_empty(), "{mutating:?}");
    assert!(allowed.contains("secretsmanager:GetSecretValue"));
    // IAM database authentication: as the one user the stack names.
    let iam = Value::from(permissions(&t, "WriterProbe")).to_string();
    assert!(
        raw["Resources"]["WriterProbeRole"]
            .to_string()
            .contains("dbuser:*/${ProbeIamDbUser}"),
        "{iam}"
    );
    assert!(!allowed
        .iter()
        .any(|a| a.starts_with("rds:") || a.starts_with("route53:") || a.starts_with("sns:")));

    // rds-failover: invokes it, and only it; learns its name only with it.
    let invoke: Vec<Value> = permissions(&t, "RdsFailover")
        .into_iter()
        .filter(|s| actions(s).iter().any(|a| a.starts_with("lambda:")))
        .collect();
    assert_eq!(invoke.len(), 1, "{invoke:?}");
    assert_eq!(actions(&invoke[0]), ["lambda:InvokeFunction"]);
    assert_eq!(invoke[0]["Resource"], json!({"!GetAtt": "WriterProbe.Arn"}));
    for (id, _) in functions(&t) {
        if id != "RdsFailover" {
            assert!(
                !permissions(&t, &id)
                    .iter()
                    .any(|s| actions(s).iter().any(|a| a.starts_with("lambda:"))),
                "{id}"
            );
        }
    }
    assert_eq!(
        raw["Resources"]["RdsFailover"]["Properties"]["Environment"]["Variables"]
            [config::WRITER_PROBE_FUNCTION],
        json!({"!If": ["HasProbe", {"!Ref": "WriterProbe"}, ""]})
    );
    let tag_keys = Value::from(permissions(&t, "RdsFailover")).to_string();
    for key in [ballast::tags::WRITER_PROBE, ballast::tags::UNPROVEN] {
        assert!(tag_keys.contains(key), "rds-failover may not move {key}");
    }
}
