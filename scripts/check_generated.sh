#!/usr/bin/env bash
# CI guard for the contracts: regenerate every client and fail on any drift from what is
# committed, then lint the protos and check them for breaking changes.
#
#   1. scripts/generate.sh, then `git diff --exit-code` and a check for untracked files in
#      clients/python/wasteml/v1 and clients/ts/src/gen (generated code must be committed as is).
#   2. `buf lint` (STANDARD + COMMENTS, see buf.yaml).
#   3. `buf breaking` (FILE rules) against proto/ of BUF_AGAINST_REF (default HEAD~1, i.e. the
#      previous commit; CI on a branch sets it to the main branch) when that commit has a
#      proto/ directory; otherwise the check is skipped with a message.
#
# Usage: scripts/check_generated.sh      Environment: BUF_AGAINST_REF, PYTHON (see generate.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
GENERATED=(clients/python/wasteml/v1 clients/ts/src/gen)
BUF="clients/ts/node_modules/.bin/buf"
AGAINST_REF="${BUF_AGAINST_REF:-HEAD~1}"

scripts/generate.sh

status=0
if ! git diff --exit-code --stat -- "${GENERATED[@]}"; then
  echo "check_generated: generated code differs from the commit; run scripts/generate.sh and commit" >&2
  status=1
fi
untracked="$(git ls-files --others --exclude-standard -- "${GENERATED[@]}")"
if [[ -n "${untracked}" ]]; then
  echo "check_generated: generated files not committed:" >&2
  echo "${untracked}" >&2
  status=1
fi
if [[ "${status}" -ne 0 ]]; then
  exit "${status}"
fi
echo "check_generated: generated code matches the commit"

"${BUF}" lint
echo "check_generated: buf lint clean"

if ! git rev-parse --quiet --verify "${AGAINST_REF}^{commit}" >/dev/null; then
  echo "check_generated: buf breaking skipped: commit ${AGAINST_REF} is not available (first commit or shallow clone)"
elif ! git cat-file -e "${AGAINST_REF}:proto" 2>/dev/null; then
  echo "check_generated: buf breaking skipped: ${AGAINST_REF} has no proto/ directory"
else
  "${BUF}" breaking --against ".git#ref=${AGAINST_REF},subdir=proto"
  echo "check_generated: buf breaking (FILE) clean against ${AGAINST_REF}"
fi
