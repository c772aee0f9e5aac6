"""The Python baseline of Ballast's benchmarks: the `unhealthy-target` logic
as most AWS samples would write it, with boto3, run under `awslambdaric`.

Same job as the Rust function on the same event: find the target group of
the alarm, read target health, map impaired instances to their Auto Scaling
groups, keep the managed ones, hold the same guardrail, mark them
unhealthy, publish the report to SNS. Not a product: a yardstick.
"""

import json
import os
from datetime import datetime, timezone

import boto3

# Clients at init, once per process (as the AWS samples do).
ELBV2 = boto3.client("elbv2")
AUTOSCALING = boto3.client("autoscaling")
SNS = boto3.client("sns")
TOPIC_ARN = os.environ["BALLAST_TOPIC_ARN"]
MAX_UNHEALTHY_PERCENT = int(os.environ.get("BALLAST_MAX_UNHEALTHY_PERCENT", "50"))
DRY_RUN = os.environ.get("BALLAST_DRY_RUN", "false").lower() == "true"


def target_group_arn(event):
    detail = event.get("detail", {})
    for metric in detail.get("configuration", {}).get("metrics", []):
        dims = metric.get("metricStat", {}).get("metric", {}).get("dimensions", {})
        if "TargetGroup" in dims:
            return "arn:aws:elasticloadbalancing:{}:{}:{}".format(
                event["region"], event["account"], dims["TargetGroup"]
            )
    return None


def impaired(description):
    health = description["TargetHealth"]
    return health["State"] == "unhealthy" or (
        health["State"] == "unused" and health.get("Reason") == "Target.InvalidState"
    )


def handler(event, context):
    tg = target_group_arn(event)
    if tg is None:
        return {"outcome": "ignored", "reason": "not an alarm on a target group"}
    targets = ELBV2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
    bad = [t["Target"]["Id"] for t in targets if impaired(t)]
    actions, outcome, reason = [], "noop", None
    if targets and 100 * len(bad) > MAX_UNHEALTHY_PERCENT * len(targets):
        outcome, reason = "declined", "suspect the application or its health check"
    elif bad:
        instances = AUTOSCALING.describe_auto_scaling_instances(InstanceIds=bad)[
            "AutoScalingInstances"
        ]
        names = sorted({i["AutoScalingGroupName"] for i in instances})
        groups = AUTOSCALING.describe_auto_scaling_groups(AutoScalingGroupNames=names)[
            "AutoScalingGroups"
        ]
        managed = {
            g["AutoScalingGroupName"]
            for g in groups
            if any(
                t["Key"] == "ballast:managed" and t["Value"].lower() == "true"
                for t in g.get("Tags", [])
            )
        }
        for i in instances:
            if (
                i["AutoScalingGroupName"] not in managed
                or i["HealthStatus"].upper() != "HEALTHY"
                or i["LifecycleState"] != "InService"
            ):
                continue
            if not DRY_RUN:
                AUTOSCALING.set_instance_health(
                    InstanceId=i["InstanceId"],
                    HealthStatus="Unhealthy",
                    ShouldRespectGracePeriod=True,
                )
            actions.append({"kind": "mark-unhealthy", "target": i["InstanceId"],
                            "asg": i["AutoScalingGroupName"], "status": "done"})
        if actions:
            outcome = "dry-run" if DRY_RUN else "remediated"
    report = {
        "version": "1",
        "function": "unhealthy-target",
        "outcome": outcome,
        "summary": "{} of {} targets impaired".format(len(bad), len(targets)),
        "resources": [tg],
        "actions": actions,
        "reason": reason,
        "region": event.get("region"),
        "time": datetime.now(timezone.utc).isoformat(),
    }
    if outcome not in ("noop", "ignored"):
        SNS.publish(
            TopicArn=TOPIC_ARN,
            Subject="[ballast] unhealthy-target: {}".format(outcome)[:100],
            Message=json.dumps(report),
        )
    return report
