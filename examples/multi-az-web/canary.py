"""Zonal canary of the multi-AZ web example: one function per AZ, in that
AZ's private subnet, publishes Web/Canary ZonalFailurePercent for its zone
every minute; Ballast's zonal alarms watch it.

It probes the application's instances directly, by private IP, not the load
balancer: an ALB always balances across zones, so a request through it
measures every zone at once, and a sick zone would fail the canary of the
healthy one too. The targets come from the target group (DescribeTargetHealth)
and EC2 (their private IPs and zones):

- the zone has targets: probe those (the app in this zone, over this zone's
  network);
- the zone has none (Ballast evacuated it, or it scaled in): probe the other
  zones' targets from here, which measures this zone's own network path, so
  the alarm recovers once the zone does and Ballast can restore it.

A probe is an HTTP GET of the health-check path; any answer below 400 is
healthy, and a redirect is not followed (an HTTP-to-HTTPS redirect names a
host the canary has no certificate for). Refused, timed out or 5xx: failed.

The template carries this file verbatim (Code.ZipFile); the tests run it.
"""

import http.client
import os

import boto3

TIMEOUT_SECONDS = 3


def probe(ip, port, path, timeout=TIMEOUT_SECONDS):
    """True when the target answers the health check below 400."""
    connection = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"User-Agent": "zonal-canary"})
        return connection.getresponse().status < 400
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def measure(zone, targets, path, check=probe):
    """(failure percent, probed targets, what was probed) for `zone`, from
    `targets`: (ip, port, az) of the application's instances. `None` as the
    percent when there is nothing to probe at all."""
    here = [t for t in targets if t[2] == zone]
    probed, scope = (here, "zone") if here else ([t for t in targets if t[2] != zone], "other zones")
    if not probed:
        return None, 0, "nothing"
    failed = sum(1 for ip, port, _ in probed if not check(ip, port, path))
    return 100.0 * failed / len(probed), len(probed), scope


def targets(elbv2, ec2, target_group_arn):
    """(private ip, port, az) of every running instance registered in the
    target group, whatever its health (a sick instance is what is measured)."""
    described = elbv2.describe_target_health(TargetGroupArn=target_group_arn)
    ports = {}
    for d in described.get("TargetHealthDescriptions", []):
        target = d.get("Target", {})
        if target.get("Id", "").startswith("i-"):
            ports[target["Id"]] = target.get("Port", 80)
    if not ports:
        return []
    found = []
    pages = ec2.get_paginator("describe_instances").paginate(InstanceIds=sorted(ports))
    for page in pages:
        for reservation in page.get("Reservations", []):
            for i in reservation.get("Instances", []):
                ip = i.get("PrivateIpAddress")
                if ip and i.get("State", {}).get("Name") == "running":
                    found.append((ip, ports[i["InstanceId"]], i["Placement"]["AvailabilityZone"]))
    return found


def handler(event, context):
    zone = os.environ["ZONE"]
    path = os.environ.get("HEALTH_CHECK_PATH", "/")
    found = targets(boto3.client("elbv2"), boto3.client("ec2"), os.environ["TARGET_GROUP_ARN"])
    percent, count, scope = measure(zone, found, path)
    if percent is not None:
        boto3.client("cloudwatch").put_metric_data(Namespace="Web/Canary", MetricData=[{
            "MetricName": "ZonalFailurePercent", "Unit": "Percent",
            "Dimensions": [{"Name": "AvailabilityZone", "Value": zone}],
            "Value": percent}])
    return {"zone": zone, "failurePercent": percent, "probed": count, "scope": scope}
