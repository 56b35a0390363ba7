#!/usr/bin/env bash
# Provision one pyiot gateway on AWS IoT Core with the AWS CLI: its things, a certificate and
# key, and a policy that gives the certificate exactly its own things' shadow topics
# (docs/aws.md, "A gateway at scale").
#
#   provision_gateway.sh [--list] [--region REGION] [--out DIR] GATEWAY THING...
#   provision_gateway.sh --print-policy [--list] [--region R] [--account A] GATEWAY THING...
#
# GATEWAY names the gateway (letters, digits, `_`, no dash): pyiot runs with
# `--client-id GATEWAY`, and connects as GATEWAY, or GATEWAY-1, GATEWAY-2, ... when its
# things need several connections (10 things a connection).
#
# By default the policy allows the things named GATEWAY-* (any number of them), and every
# THING must be named so. With --list it names each THING instead (no prefix needed, but a
# policy holds at most 2,048 characters: a few things only).
#
# --print-policy prints the policy document and stops: no AWS call, no credentials needed.
#
# Needs: aws (CLI v2, credentials allowed to manage IoT), python3, curl.
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

list=0 print_only=0 region="" account="" out=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --list) list=1; shift ;;
        --print-policy) print_only=1; shift ;;
        --region) region="${2:?--region needs a value}"; shift 2 ;;
        --account) account="${2:?--account needs a value}"; shift 2 ;;
        --out) out="${2:?--out needs a value}"; shift 2 ;;
        -h|--help) usage ;;
        -*) echo "unknown option $1" >&2; usage ;;
        *) break ;;
    esac
done
[[ $# -ge 2 ]] || usage
gateway="$1"; shift
things=("$@")

if [[ ! "$gateway" =~ ^[A-Za-z0-9_]+$ ]]; then
    echo "gateway name '$gateway': use letters, digits and _ only (the dash separates the" \
         "connection number, and keeps gw1-* from matching gw10-...)" >&2
    exit 2
fi
for thing in "${things[@]}"; do
    if [[ ! "$thing" =~ ^[A-Za-z0-9_:-]{1,128}$ ]]; then
        echo "thing name '$thing': AWS allows letters, digits, _ : and -, up to 128" >&2
        exit 2
    fi
    if [[ $list -eq 0 && "$thing" != "$gateway"-* ]]; then
        echo "thing '$thing' is not named $gateway-...: rename it, or use --list" >&2
        exit 2
    fi
done

if [[ $print_only -eq 0 ]]; then
    region="${region:-${AWS_REGION:-$(aws configure get region || true)}}"
    [[ -n "$region" ]] || { echo "no region: give --region or set AWS_REGION" >&2; exit 2; }
    account="${account:-$(aws sts get-caller-identity --query Account --output text)}"
fi

# The policy document: Connect as the gateway's client ids; Publish get/update requests and
# the connections' wills; Subscribe/Receive the replies (`get/accepted` and `get/rejected`
# for a get, `update/+` for the rest: `*` is the policy wildcard, `+` would be literal).
policy_json() {
    python3 - "${region:-REGION}" "${account:-ACCOUNT}" "$gateway" "$list" "${things[@]}" <<'PY'
import json, sys

region, account, gateway, listed, *things = sys.argv[1:]
arn = f"arn:aws:iot:{region}:{account}"
names = things if listed == "1" else [f"{gateway}-*"]
shadow = [f"$aws/things/{name}/shadow" for name in names]
statement = [
    {"Effect": "Allow", "Action": "iot:Connect",
     "Resource": [f"{arn}:client/{gateway}", f"{arn}:client/{gateway}-*"]},
    {"Effect": "Allow", "Action": "iot:Publish",
     "Resource": [f"{arn}:topic/{s}/{a}" for s in shadow for a in ("get", "update")]
     + [f"{arn}:topic/pyiot/will/{gateway}", f"{arn}:topic/pyiot/will/{gateway}-*"]},
    {"Effect": "Allow", "Action": "iot:Subscribe",
     "Resource": [f"{arn}:topicfilter/{s}/{a}" for s in shadow for a in ("get/*", "update/*")]},
    {"Effect": "Allow", "Action": "iot:Receive",
     "Resource": [f"{arn}:topic/{s}/{a}" for s in shadow for a in ("get/*", "update/*")]},
]
document = json.dumps({"Version": "2012-10-17", "Statement": statement}, separators=(",", ":"))
if len(document) > 2048:
    sys.exit(f"the policy is {len(document)} characters, over AWS's 2,048: "
             f"name the things {gateway}-... and leave out --list")
print(document)
PY
}

policy="$(policy_json)"
if [[ $print_only -eq 1 ]]; then
    printf '%s\n' "$policy"
    exit 0
fi

out="${out:-$gateway}"
mkdir -p "$out"
chmod 700 "$out"
name="pyiot-$gateway"

for thing in "${things[@]}"; do
    aws iot create-thing --thing-name "$thing" --region "$region" >/dev/null
done

cert_arn="$(aws iot create-keys-and-certificate --set-as-active --region "$region" \
    --certificate-pem-outfile "$out/$gateway.cert.pem" \
    --public-key-outfile "$out/$gateway.public.key" \
    --private-key-outfile "$out/$gateway.private.key" \
    --query certificateArn --output text)"
chmod 600 "$out/$gateway.private.key"

if aws iot get-policy --policy-name "$name" --region "$region" >/dev/null 2>&1; then
    # Re-provisioning: the new document becomes the default version (AWS keeps 5 at most).
    aws iot create-policy-version --policy-name "$name" --policy-document "$policy" \
        --set-as-default --region "$region" >/dev/null
else
    aws iot create-policy --policy-name "$name" --policy-document "$policy" \
        --region "$region" >/dev/null
fi
aws iot attach-policy --policy-name "$name" --target "$cert_arn" --region "$region"
for thing in "${things[@]}"; do
    aws iot attach-thing-principal --thing-name "$thing" --principal "$cert_arn" \
        --region "$region"
done

[[ -f "$out/AmazonRootCA1.pem" ]] ||
    curl -fsS -o "$out/AmazonRootCA1.pem" https://www.amazontrust.com/repository/AmazonRootCA1.pem
endpoint="$(aws iot describe-endpoint --endpoint-type iot:Data-ATS --region "$region" \
    --query endpointAddress --output text)"

connections=$(( (${#things[@]} + 9) / 10 ))
echo "gateway $gateway: ${#things[@]} things, $connections connection(s), policy $name"
echo "certificate $cert_arn"
echo "run on the gateway (copy $out/ there; the key stays private):"
echo "  pyiot run FILES... --client-id $gateway --endpoint $endpoint \\"
echo "      --cert $out/$gateway.cert.pem --key $out/$gateway.private.key --ca $out/AmazonRootCA1.pem"
