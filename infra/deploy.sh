#!/usr/bin/env bash
# `make deploy`: build and deploy sgwarden's SAM stacks to one or more regions.
#
#   STACKS   which templates of infra/ (default: "revert-ingress notify-owner"; asg-sync
#            takes per-region peers, so it is listed explicitly when wanted)
#   REGIONS  where (default: $AWS_REGION)
#   DRY_RUN  1 prints the commands instead of running them
#
# Parameters come from infra/params/<stack>.<region>.params, else infra/params/<stack>.params:
# one Key=Value per line, # comments allowed (see the *.params.example files). The deployer
# needs the permissions in infra/deployer-policy.json. Needs the AWS SAM CLI and
# cargo-lambda (sam build runs it).
set -euo pipefail
cd "$(dirname "$0")/.."

STACKS=${STACKS:-"revert-ingress notify-owner"}
REGIONS=${REGIONS:-${AWS_REGION:-}}
[ -n "$REGIONS" ] || { echo "deploy: set REGIONS (or AWS_REGION)" >&2; exit 2; }

run() {
  if [ "${DRY_RUN:-0}" = 1 ]; then printf '%q ' "$@"; echo; else "$@"; fi
}

params_file() { # stack region -> the parameter file to use
  if [ -f "infra/params/$1.$2.params" ]; then echo "infra/params/$1.$2.params"; else echo "infra/params/$1.params"; fi
}

for stack in $STACKS; do
  [ -f "infra/$stack.yaml" ] || { echo "deploy: no infra/$stack.yaml" >&2; exit 2; }
  for region in $REGIONS; do # every parameter file is there before anything is deployed
    [ -f "$(params_file "$stack" "$region")" ] || { echo "deploy: no $(params_file "$stack" "$region") (start from infra/params/$stack.params.example)" >&2; exit 2; }
  done
  run sam build --template-file "infra/$stack.yaml" --build-dir ".aws-sam/$stack" --beta-features
  for region in $REGIONS; do
    file=$(params_file "$stack" "$region")
    [ -f "$file" ] || { echo "deploy: no $file (start from infra/params/$stack.params.example)" >&2; exit 2; }
    mapfile -t params < <(grep -v '^[[:space:]]*\(#\|$\)' "$file")
    run sam deploy --template-file ".aws-sam/$stack/template.yaml" \
      --stack-name "sgwarden-$stack" --region "$region" --resolve-s3 \
      --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
      --parameter-overrides "${params[@]}"
  done
done
