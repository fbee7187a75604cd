#!/usr/bin/env bash
# Regenerates the part of the Helm chart's values.schema.json that describes `config` (the
# daemon's config.toml): #/definitions/config, from the daemon's config types
# (`netsuite-token-rotator config-schema --chart`, see src/config/schema.rs). The rest of the
# file is the chart's own and written by hand; this keeps it as it is, key order included.
#
#   scripts/gen-config-schema.sh
#
# Run it after changing a config type (a key, its doc comment, a default); the test
# config::schema::tests::the_charts_config_schema_is_generated_from_the_config_types fails until
# then. Needs cargo and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

schema_file=helm/netsuite-token-rotator/values.schema.json
generated="$(mktemp)"
trap 'rm -f "$generated"' EXIT
cargo run --quiet --locked --bin netsuite-token-rotator -- config-schema --chart </dev/null >"$generated"

python3 - "$schema_file" "$generated" <<'PY'
import json
import sys

schema_path, generated_path = sys.argv[1], sys.argv[2]
with open(schema_path, encoding="utf-8") as f:
    schema = json.load(f)
with open(generated_path, encoding="utf-8") as f:
    generated = json.load(f)
schema.setdefault("definitions", {})["config"] = generated
schema.setdefault("properties", {})["config"] = {"$ref": "#/definitions/config"}
with open(schema_path, "w", encoding="utf-8") as f:
    json.dump(schema, f, indent=2, ensure_ascii=False)
    f.write("\n")
PY
echo "gen-config-schema: wrote #/definitions/config of $schema_file"
