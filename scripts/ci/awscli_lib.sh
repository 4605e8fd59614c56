# Helpers shared by the AWS CLI smoke scripts (awscli_smoke.sh, awscli_kms_smoke.sh,
# awscli_sse_kms.sh, awscli_sse_c.sh). Source it after setting TAG (the name in every line),
# ENDPOINT, AWS_CLI, PYTHON, WORK (a scratch dir, for expect_s3_error) and, for https, the
# TLS_ARGS array. Every check prints what it checked; the first failure exits non-zero naming
# its step.

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

# expect_s3_error CODE STATUS ARGS...: the aws command must fail, the CLI must name the error
# code CODE (for a HEAD, which has no body, the CLI names the status), and the server must have
# answered HTTP STATUS (read from the --debug wire log, which stays in $WORK: it holds the
# request's headers, SSE-C keys included; only its non-debug lines are printed on failure).
expect_s3_error() {
    local code=$1 status=$2
    shift 2
    if "$AWS_CLI" --debug --endpoint-url "$ENDPOINT" ${TLS_ARGS[@]+"${TLS_ARGS[@]}"} "$@" \
        >"$WORK/expect.out" 2>"$WORK/expect.err"; then
        fail "aws $* succeeded; expected $code: $(cat "$WORK/expect.out")"
    fi
    if ! grep -qF "($code)" "$WORK/expect.err" "$WORK/expect.out"; then
        fail "aws $* failed, but not with $code: $(grep -v ' - DEBUG - ' "$WORK/expect.err" | tail -n 5)"
    fi
    if ! grep -qE "HTTP/1\.1\" $status " "$WORK/expect.err"; then
        fail "aws $* failed with $code, but not with HTTP $status: $(grep -oE 'HTTP/1\.1" [0-9]+' "$WORK/expect.err" | sort -u | tr '\n' ' ')"
    fi
    local what="aws $1 $2" prev=""
    for arg in "$@"; do
        if [ "$prev" = --key ]; then what="$what of $arg"; fi
        prev=$arg
    done
    ok "$what fails with $code (HTTP $status)"
}
