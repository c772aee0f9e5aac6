"""`make package`: the artifacts of an organisation-wide rollout.

From the `sam build` output (.aws-sam/build/<Function>/bootstrap) it writes
  dist/<function>-<sha256/16>.zip   one zip per function (content-addressed,
                                    reproducible: fixed time stamp and mode)
  dist/ballast.template.json        template.yaml with the SAM transform
                                    applied offline (service-managed StackSets
                                    refuse templates with transforms), each
                                    function's code read from
                                    s3://<ArtifactBucketPrefix>-<Region>/ballast/<zip>
and then checks what it wrote:
  - no transform and no AWS::Serverless resource is left;
  - every function's code names a zip in dist/ that holds exactly the built
    bootstrap of that function;
  - with ReportTopicArn set, the stack creates no SNS topic, and nothing that
    remains refers to a resource that is not created;
  - in each partition (aws, aws-cn, aws-us-gov), no ARN the stack would
    create names another partition: a literal `arn:aws:` fails it (the
    functions' roles are the template's own, so the transform adds no
    AWS-managed policy, whose ARN it would write for `aws`).
cfn-lint then lints the packaged template (scripts/package.sh).

Runs under .venv-tools/bin/python: samtranslator comes with the pinned SAM
CLI. Needs no AWS account: the transform is the one `sam deploy` asks
CloudFormation to run, done locally.
"""

import hashlib
import json
import pathlib
import re
import sys
import zipfile

from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD = ROOT / ".aws-sam" / "build"
DIST = ROOT / "dist"
KEY_PREFIX = "ballast/"
PACKAGED = DIST / "ballast.template.json"


class NoManagedPolicies:
    """The template names no AWS managed policy: nothing to look up in IAM."""

    def load(self):
        return {}


def zip_bootstrap(function: str, bootstrap: pathlib.Path) -> pathlib.Path:
    data = bootstrap.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    path = DIST / f"{function}-{digest}.zip"
    info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = (0o100755 & 0xFFFF) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(info, data, compresslevel=9)
    return path


def package() -> dict:
    sam = yaml_parse((ROOT / "template.yaml").read_text())
    functions = {
        name: r
        for name, r in sam["Resources"].items()
        if r["Type"] == "AWS::Serverless::Function"
    }
    DIST.mkdir(exist_ok=True)
    for old in DIST.glob("*.zip"):
        old.unlink()
    zips = {}
    for name, resource in functions.items():
        bootstrap = BUILD / name / "bootstrap"
        if not bootstrap.is_file():
            sys.exit(f"{bootstrap} is missing: run `make sam-build` (make package does)")
        binary = resource["Metadata"]["BuildProperties"]["Binary"]
        zips[name] = zip_bootstrap(binary, bootstrap)
        # The code is set on the Lambda function after the transform; SAM
        # only needs to see an S3 location here.
        resource["Properties"]["CodeUri"] = f"s3://placeholder/{zips[name].name}"
        resource.pop("Metadata", None)
    sam["Globals"]["Function"].pop("CodeUri", None)

    parameters = {k: v.get("Default") for k, v in sam["Parameters"].items() if "Default" in v}
    cfn = transform(sam, parameters, NoManagedPolicies())

    cfn["Parameters"]["ArtifactBucketPrefix"] = {
        "Type": "String",
        "AllowedPattern": "^[a-z0-9][a-z0-9.-]{1,40}$",
        "Description": (
            "The functions' code is read from s3://<ArtifactBucketPrefix>-<Region>/"
            + KEY_PREFIX
            + " (one bucket per Region: Lambda reads code from its own Region)."
        ),
    }
    for name, z in zips.items():
        cfn["Resources"][name]["Properties"]["Code"] = {
            "S3Bucket": {"Fn::Sub": "${ArtifactBucketPrefix}-${AWS::Region}"},
            "S3Key": KEY_PREFIX + z.name,
        }
    cfn["Description"] = sam["Description"] + " (packaged: the SAM transform applied; code in S3)"
    PACKAGED.write_text(json.dumps(cfn, separators=(",", ":")) + "\n")
    return cfn


# ------------------------------------------------------------------ checks


def evaluate(expr, parameters, conditions, cache):
    """The value of a condition expression for the given parameter values."""
    if isinstance(expr, dict) and len(expr) == 1:
        (fn, arg), = expr.items()
        if fn == "Fn::Equals":
            a, b = (evaluate(x, parameters, conditions, cache) for x in arg)
            return a == b
        if fn == "Fn::Not":
            return not evaluate(arg[0], parameters, conditions, cache)
        if fn == "Fn::And":
            return all(evaluate(x, parameters, conditions, cache) for x in arg)
        if fn == "Fn::Or":
            return any(evaluate(x, parameters, conditions, cache) for x in arg)
        if fn == "Condition":
            return condition(arg, parameters, conditions, cache)
        if fn == "Ref":
            return parameters[arg]
        if fn == "Fn::Join":
            sep, items = arg
            items = evaluate(items, parameters, conditions, cache)
            return sep.join(items)
        raise ValueError(f"cannot evaluate {fn} in a condition")
    return expr


def condition(name, parameters, conditions, cache):
    if name not in cache:
        cache[name] = bool(evaluate(conditions[name], parameters, conditions, cache))
    return cache[name]


def reached(node, parameters, conditions, cache):
    """Every node of `node` (itself included), following only the branches
    of Fn::If that the conditions take."""
    if isinstance(node, dict) and len(node) == 1 and "Fn::If" in node:
        name, yes, no = node["Fn::If"]
        branch = yes if condition(name, parameters, conditions, cache) else no
        yield from reached(branch, parameters, conditions, cache)
        return
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for v in children:
        yield from reached(v, parameters, conditions, cache)


def references(node, parameters, conditions, cache):
    """Resource names referred to by `node`, following only the branches of
    Fn::If that the conditions take."""
    for n in reached(node, parameters, conditions, cache):
        if not (isinstance(n, dict) and len(n) == 1):
            continue
        (fn, arg), = n.items()
        if fn == "Ref" and isinstance(arg, str):
            yield arg
        elif fn == "Fn::GetAtt":
            yield arg[0] if isinstance(arg, list) else arg.split(".")[0]
        elif fn == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else arg
            for ref in re.findall(r"\$\{([A-Za-z0-9:]+)(?:\.[A-Za-z0-9.]+)?\}", text):
                if ref not in variables:
                    yield ref


def stack_parameters(cfn, overrides):
    """Every parameter's value (its default unless overridden) and the
    pseudo parameters (`AWS::Partition`, `AWS::Region`, overridable)."""
    parameters = {"AWS::Partition": "aws", "AWS::Region": "us-east-1"}
    parameters.update({k: v for k, v in overrides.items() if k.startswith("AWS::")})
    for name, p in cfn["Parameters"].items():
        value = overrides.get(name, p.get("Default", ""))
        if p["Type"] == "CommaDelimitedList":
            value = [x for x in str(value).split(",")] if value != "" else [""]
        parameters[name] = value
    return parameters


def created(cfn, overrides):
    """The resources a stack creates with these parameter values (and
    pseudo parameters such as `AWS::Partition`); exits if one of them refers
    to a resource that is not created."""
    parameters = stack_parameters(cfn, overrides)
    conditions = cfn.get("Conditions", {})
    cache = {}
    active = {
        name: r
        for name, r in cfn["Resources"].items()
        if "Condition" not in r or condition(r["Condition"], parameters, conditions, cache)
    }
    known = set(active) | set(parameters) | {"AWS::Region", "AWS::AccountId", "AWS::Partition",
                                             "AWS::StackName", "AWS::URLSuffix", "AWS::NoValue",
                                             "AWS::StackId"}
    for name, r in active.items():
        for ref in references(r, parameters, conditions, cache):
            if ref not in known:
                sys.exit(f"with {overrides}: {name} refers to {ref}, which is not created")
    for name, o in cfn.get("Outputs", {}).items():
        if "Condition" in o and not condition(o["Condition"], parameters, conditions, cache):
            continue
        for ref in references(o, parameters, conditions, cache):
            if ref not in known:
                sys.exit(f"with {overrides}: output {name} refers to {ref}, which is not created")
    return active


def literals(node, parameters, conditions, cache):
    """Every literal string of `node`, following only the branches of Fn::If
    that the conditions take (an Fn::Sub's text included)."""
    for n in reached(node, parameters, conditions, cache):
        if isinstance(n, str):
            yield n


PARTITIONS = {"aws": "us-east-1", "aws-cn": "cn-north-1", "aws-us-gov": "us-gov-west-1"}


def foreign_arns(cfn, partition):
    """ARN texts that a stack in `partition` would carry and that name
    another partition."""
    # With hosted zones: their statement names each zone's ARN.
    overrides = {"AWS::Partition": partition, "AWS::Region": PARTITIONS[partition],
                 "HostedZoneIds": "Z0EXAMPLE1,Z0EXAMPLE2"}
    active = created(cfn, overrides)
    parameters = stack_parameters(cfn, overrides)
    conditions, cache = cfn.get("Conditions", {}), {}
    found = []
    for name, r in list(active.items()) + list(cfn.get("Outputs", {}).items()):
        for text in literals(r, parameters, conditions, cache):
            for named in re.findall(r"arn:([a-z-]+):", text):
                if named != partition:
                    found.append(f"{name}: {text}")
    return found


def check(cfn):
    assert "Transform" not in cfn, "the packaged template still names a transform"
    serverless = [n for n, r in cfn["Resources"].items() if r["Type"].startswith("AWS::Serverless::")]
    assert not serverless, f"SAM resources left: {serverless}"

    lambdas = {n: r for n, r in cfn["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}
    built = sorted(p.name for p in BUILD.iterdir() if (p / "bootstrap").is_file())
    assert sorted(lambdas) == built, f"functions {sorted(lambdas)} but built {built}"
    for name, r in lambdas.items():
        code = r["Properties"]["Code"]
        assert set(code) == {"S3Bucket", "S3Key"}, f"{name}: {code}"
        key = code["S3Key"]
        assert key.startswith(KEY_PREFIX), f"{name}: {key}"
        zipped = DIST / key[len(KEY_PREFIX):]
        with zipfile.ZipFile(zipped) as z:
            assert z.namelist() == ["bootstrap"], f"{zipped}: {z.namelist()}"
            inside = z.read("bootstrap")
            mode = z.getinfo("bootstrap").external_attr >> 16
        assert inside == (BUILD / name / "bootstrap").read_bytes(), f"{zipped} is not {name}'s build"
        assert mode & 0o111, f"{zipped}: bootstrap is not executable"
        print(f"{name}: s3://<ArtifactBucketPrefix>-<Region>/{key} ({zipped.stat().st_size:,} B)")

    own = created(cfn, {})
    assert any(r["Type"] == "AWS::SNS::Topic" for r in own.values()), "no topic by default"
    central = "arn:aws:sns:us-east-1:111122223333:org-ballast-reports"
    shared = created(cfn, {"ReportTopicArn": central, "ReportEmail": "ops@example.com"})
    topics = [n for n, r in shared.items() if r["Type"].startswith("AWS::SNS::")]
    assert not topics, f"with ReportTopicArn set the stack still creates {topics}"
    env = shared["UnhealthyTarget"]["Properties"]["Environment"]["Variables"]["BALLAST_TOPIC_ARN"]
    print(f"ReportTopicArn set: no SNS resource created; {len(own) - len(shared)} fewer resources; "
          f"BALLAST_TOPIC_ARN = {json.dumps(env)}")
    for partition in PARTITIONS:
        foreign = foreign_arns(cfn, partition)
        assert not foreign, f"in {partition}, ARNs of another partition: {foreign}"
    print(f"partitions {', '.join(PARTITIONS)}: every ARN in the stack's own partition")


def main():
    only_check = sys.argv[1:] == ["--check"]
    cfn = json.loads(PACKAGED.read_text()) if only_check else package()
    check(cfn)
    size = PACKAGED.stat().st_size
    # CloudFormation: 1 MB from S3 (--template-url), 51,200 B inline.
    assert size <= 1_000_000, f"{PACKAGED} is {size:,} B: over CloudFormation's 1 MB"
    print(f"{PACKAGED.relative_to(ROOT)}: {len(cfn['Resources'])} resources, {size:,} B "
          f"({'fits' if size <= 51_200 else 'over'} the 51,200 B of --template-body: "
          "give it with --template-url)")


if __name__ == "__main__":
    main()
