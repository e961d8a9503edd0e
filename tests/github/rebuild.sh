#!/usr/bin/env bash
# Rebuild the vendored GitHub descriptions in tests/github/ from the npm registry:
#   openapi.json, webhooks-schema.json, webhooks/*.json
# Deterministic: the same package versions give byte-identical files (see trim.py).
# Needs npm and a Python with jsonschema (the project's dev venv by default; PYTHON=... to override).
set -euo pipefail

OPENAPI_VERSION=23.0.2
WEBHOOKS_VERSION=7.6.1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then python="$root/.venv/bin/python"; else python=python3; fi
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

unpack() {  # unpack NAME@VERSION DIR
  local spec="$1" dir="$tmp/$2" tgz
  tgz="$(cd "$tmp" && npm pack --silent "$spec" | tail -n 1)"
  mkdir -p "$dir"
  tar -xzf "$tmp/$tgz" -C "$dir"
  echo "$dir/package"
}

openapi="$(unpack "@octokit/openapi@$OPENAPI_VERSION" openapi)"
examples="$(unpack "@octokit/webhooks-examples@$WEBHOOKS_VERSION" examples)"
schemas="$(unpack "@octokit/webhooks-schemas@$WEBHOOKS_VERSION" schemas)"

"$python" "$here/trim.py" "$openapi" "$examples" "$schemas"
