#!/usr/bin/env bash
# Regenerates packages/protocol/src/gen from proto/ with buf + protoc-gen-es (both from npm).
set -euo pipefail
cd "$(dirname "$0")/../proto"
PATH="$PWD/../node_modules/.bin:$PATH" buf generate
(cd forgejo && PATH="$PWD/../../node_modules/.bin:$PATH" buf generate)
