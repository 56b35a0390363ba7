"""The IoT policy of examples/aws/provision_gateway.sh: one gateway's certificate reaches its
own things' shadow topics and client ids, and nothing of another gateway.

The script's `--print-policy` makes no AWS call. A resource is matched as AWS IoT matches
policy resources: `*` stands for any characters, everything else (`+` too) is literal.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from pyiot.runtime.pool import client_ids, connections_needed

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "aws" / "provision_gateway.sh"
ARN = "arn:aws:iot:eu-west-1:123456789012"


def policy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), "--print-policy", "--region", "eu-west-1",
         "--account", "123456789012", *args],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def allows(document: dict, action: str, resource: str) -> bool:
    for statement in document["Statement"]:
        if statement["Effect"] != "Allow" or statement["Action"] != action:
            continue
        for pattern in statement["Resource"]:
            regex = ".*".join(re.escape(part) for part in pattern.split("*"))
            if re.fullmatch(regex, resource):
                return True
    return False


def shadow_topics(thing: str) -> list[tuple[str, str]]:
    """What pyiot's shadow client does for one thing (docs/aws.md, section 3)."""
    base = f"$aws/things/{thing}/shadow"
    return [
        ("iot:Publish", f"{ARN}:topic/{base}/get"),
        ("iot:Publish", f"{ARN}:topic/{base}/update"),
        ("iot:Subscribe", f"{ARN}:topicfilter/{base}/get/accepted"),
        ("iot:Subscribe", f"{ARN}:topicfilter/{base}/get/rejected"),
        ("iot:Subscribe", f"{ARN}:topicfilter/{base}/update/+"),
        *[
            (action, f"{ARN}:{kind}/{base}/update/{reply}")
            for reply in ("accepted", "rejected", "delta", "documents")
            for action, kind in (("iot:Subscribe", "topicfilter"), ("iot:Receive", "topic"))
        ],
        ("iot:Receive", f"{ARN}:topic/{base}/get/accepted"),
        ("iot:Receive", f"{ARN}:topic/{base}/get/rejected"),
    ]


def test_the_prefix_policy_gives_a_gateway_its_own_things_and_no_others() -> None:
    result = policy("gw1", "gw1-amp1", "gw1-proj7")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    ids = client_ids("gw1", connections_needed(120))
    for ident in [*ids, "gw1"]:
        assert allows(document, "iot:Connect", f"{ARN}:client/{ident}")
        assert allows(document, "iot:Publish", f"{ARN}:topic/pyiot/will/{ident}")
    for action, resource in shadow_topics("gw1-amp1") + shadow_topics("gw1-anything"):
        assert allows(document, action, resource), (action, resource)
    for other in ("gw10-amp1", "gw2-amp1", "amp1", "gw1"):
        for action, resource in shadow_topics(other):
            assert not allows(document, action, resource), (action, resource)
    for ident in ("gw10-1", "gw2", "gw10"):
        assert not allows(document, "iot:Connect", f"{ARN}:client/{ident}")
    # `+` in a topic filter is literal: no filter but the client's own is allowed.
    assert not allows(document, "iot:Subscribe", f"{ARN}:topicfilter/$aws/things/+/shadow/get/+")


def test_a_listed_policy_names_each_thing_and_refuses_what_does_not_fit() -> None:
    result = policy("--list", "gw1", "amp", "proj")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    for action, resource in shadow_topics("amp") + shadow_topics("proj"):
        assert allows(document, action, resource)
    for action, resource in shadow_topics("ampx"):
        assert not allows(document, action, resource)
    many = policy("--list", "gw1", *[f"thing{i:03d}" for i in range(30)])
    assert many.returncode != 0
    assert "over AWS's 2,048" in many.stderr
    assert "Traceback" not in many.stderr


def test_bad_names_are_refused_in_one_line() -> None:
    dashed = policy("gw-1", "gw-1-amp")
    assert dashed.returncode == 2
    assert "letters, digits and _ only" in dashed.stderr
    outside = policy("gw1", "amp")
    assert outside.returncode == 2
    assert outside.stderr.strip() == "thing 'amp' is not named gw1-...: rename it, or use --list"
