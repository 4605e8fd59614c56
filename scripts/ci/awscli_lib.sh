# Helpers shared by the AWS CLI smoke scripts (awscli_smoke.sh, awscli_kms_smoke.sh,
# awscli_sse_kms.sh). Source it after setting TAG (the name in every line), ENDPOINT, AWS_CLI,
# PYTHON and, for https, the TLS_ARGS array. Every check prints what it checked; the first
# failure exits non-zero naming its step.

CHECKS=0
STEP=""
step() { STEP=$1; echo "== [$TAG] $STEP"; }
ok()   { CHECKS=$((CHECKS + 1)); echo "   ok: $*"; }
fail() { echo "   FAIL [$TAG] step '$STEP': $*" >&2; exit 1; }

# aws with the endpoint (and TLS_ARGS, if any); on failure print the command and abort.
awsx() {
    if ! "$AWS_CLI" --endpoint-url "$ENDPOINT" ${TLS_ARGS[@]+"${TLS_ARGS[@]}"} "$@"; then
        fail "command failed: aws $*"
    fi
}

# pyq EXPR: evaluate a Python expression over the JSON document on stdin (as d).
pyq() {
    "$PYTHON" -c '
import json, sys
raw = sys.stdin.read().strip()
d = json.loads(raw) if raw else {}
v = eval(sys.argv[1], {"d": d})
print(v if isinstance(v, str) else json.dumps(v))
' "$1"
}

# expect_eq WHAT ACTUAL EXPECTED
expect_eq() {
    if [ "$2" != "$3" ]; then
        fail "$1: expected [$3], got [$2]"
    fi
    ok "$1 == $3"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }
