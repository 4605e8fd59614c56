#!/usr/bin/env bash
# AWS CLI smoke test of Coffer's built-in KMS (the AWS KMS JSON API on the S3 port).
#
# Usage: scripts/ci/awscli_kms_smoke.sh <endpoint-url>
# Env:   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION (us-east-1)
#        AWS_CLI (optional, default "aws"), PYTHON (optional, default python3)
#
# With an https:// endpoint (a server started with --tls-self-signed) every call passes
# --no-verify-ssl: the certificate is self-signed, the point is a real client speaking KMS over
# TLS. Every step asserts its result and prints what it checked; the first failed assertion
# exits non-zero. Out-of-range parameters (rotation period 89, deletion window 6) are not sent
# here: botocore refuses them before sending; tests/kms_*.rs check the server's answers.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 <endpoint-url>" >&2
    exit 2
fi
ENDPOINT=$1
AWS_CLI=${AWS_CLI:-aws}
PYTHON=${PYTHON:-python3}
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
export AWS_PAGER=""
export AWS_EC2_METADATA_DISABLED=true
: "${AWS_ACCESS_KEY_ID:?AWS_ACCESS_KEY_ID must be set}"
: "${AWS_SECRET_ACCESS_KEY:?AWS_SECRET_ACCESS_KEY must be set}"

TLS_ARGS=()
case "$ENDPOINT" in
    https://*)
        TLS_ARGS=(--no-verify-ssl)
        # urllib3 warns on every unverified request; the choice is deliberate here.
        export PYTHONWARNINGS="ignore:Unverified HTTPS request"
        ;;
esac

SUFFIX="$(date +%s)-$$"
ALIAS="alias/awscli-kms-smoke-$SUFFIX"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/coffer-awscli-kms-smoke.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

TAG="awscli kms"
# shellcheck source=scripts/ci/awscli_lib.sh
source "$(dirname "$0")/awscli_lib.sh"

# expect_error CODE ARGS...: the aws command must fail with the KMS error type CODE.
expect_error() {
    local code=$1
    shift
    if "$AWS_CLI" --endpoint-url "$ENDPOINT" "${TLS_ARGS[@]}" "$@" \
        >"$WORK/expect.out" 2>"$WORK/expect.err"; then
        fail "aws $* succeeded; expected $code: $(cat "$WORK/expect.out")"
    fi
    if ! grep -qF "($code)" "$WORK/expect.err"; then
        fail "aws $* failed, but not with $code: $(cat "$WORK/expect.err")"
    fi
    ok "aws $1 $2 fails with $code"
}

echo "awscli kms smoke: endpoint=$ENDPOINT alias=$ALIAS ($("$AWS_CLI" --version 2>&1))"

# ---------------------------------------------------------------------------
step "kms create-key"
KEY_JSON=$(awsx kms create-key --description "awscli kms smoke" \
    --tags TagKey=purpose,TagValue=ci-smoke)
KEY_ID=$(pyq 'd["KeyMetadata"]["KeyId"]' <<<"$KEY_JSON")
KEY_ARN=$(pyq 'd["KeyMetadata"]["Arn"]' <<<"$KEY_JSON")
echo "   key $KEY_ID ($KEY_ARN)"
expect_eq "KeyState" "$(pyq 'd["KeyMetadata"]["KeyState"]' <<<"$KEY_JSON")" "Enabled"
expect_eq "KeySpec" "$(pyq 'd["KeyMetadata"]["KeySpec"]' <<<"$KEY_JSON")" "SYMMETRIC_DEFAULT"
expect_eq "KeyUsage" "$(pyq 'd["KeyMetadata"]["KeyUsage"]' <<<"$KEY_JSON")" "ENCRYPT_DECRYPT"
expect_eq "Description" "$(pyq 'd["KeyMetadata"]["Description"]' <<<"$KEY_JSON")" "awscli kms smoke"
if [[ ! "$KEY_ARN" =~ ^arn:aws:kms:$AWS_DEFAULT_REGION:[0-9]{12}:key/$KEY_ID$ ]]; then
    fail "Arn [$KEY_ARN] is not arn:aws:kms:$AWS_DEFAULT_REGION:<account>:key/$KEY_ID"
fi
ok "Arn has the AWS shape"
LISTED=$(awsx kms list-keys)
expect_eq "list-keys contains the key" \
    "$(pyq "any(k['KeyId'] == '$KEY_ID' for k in d['Keys'])" <<<"$LISTED")" "true"
TAGS=$(awsx kms list-resource-tags --key-id "$KEY_ID")
expect_eq "tag purpose" \
    "$(pyq "[t['TagValue'] for t in d['Tags'] if t['TagKey'] == 'purpose']" <<<"$TAGS")" '["ci-smoke"]'

# ---------------------------------------------------------------------------
step "kms create-alias"
awsx kms create-alias --alias-name "$ALIAS" --target-key-id "$KEY_ID"
ALIASES=$(awsx kms list-aliases --key-id "$KEY_ID")
expect_eq "list-aliases --key-id names the alias" \
    "$(pyq '[a["AliasName"] for a in d["Aliases"]]' <<<"$ALIASES")" "[\"$ALIAS\"]"
expect_eq "describe-key by alias" \
    "$(awsx kms describe-key --key-id "$ALIAS" --output text --query KeyMetadata.KeyId)" "$KEY_ID"
expect_error AlreadyExistsException kms create-alias --alias-name "$ALIAS" --target-key-id "$KEY_ID"

# ---------------------------------------------------------------------------
step "kms encrypt / decrypt round trip with --encryption-context"
head -c 3000 /dev/urandom > "$WORK/plain.bin"
awsx kms encrypt --key-id "$ALIAS" --plaintext "fileb://$WORK/plain.bin" \
    --encryption-context purpose=ci,stage=smoke \
    --output text --query CiphertextBlob | base64 -d > "$WORK/ct.bin"
[ -s "$WORK/ct.bin" ] || fail "encrypt returned an empty CiphertextBlob"
if cmp -s "$WORK/plain.bin" "$WORK/ct.bin"; then fail "the ciphertext is the plaintext"; fi
ok "encrypt returned a $(stat -c %s "$WORK/ct.bin")-byte ciphertext blob"
awsx kms decrypt --ciphertext-blob "fileb://$WORK/ct.bin" \
    --encryption-context stage=smoke,purpose=ci \
    --output text --query Plaintext | base64 -d > "$WORK/round.bin"
cmp "$WORK/plain.bin" "$WORK/round.bin" || fail "decrypted bytes differ from the plaintext"
ok "decrypt (no --key-id) gives back the 3000 plaintext bytes"
expect_eq "decrypt KeyId" "$(awsx kms decrypt --ciphertext-blob "fileb://$WORK/ct.bin" \
    --encryption-context purpose=ci,stage=smoke --output text --query KeyId)" "$KEY_ARN"
expect_error InvalidCiphertextException kms decrypt --ciphertext-blob "fileb://$WORK/ct.bin" \
    --encryption-context purpose=ci,stage=other
expect_error InvalidCiphertextException kms decrypt --ciphertext-blob "fileb://$WORK/ct.bin"

# ---------------------------------------------------------------------------
step "kms generate-data-key"
DK=$(awsx kms generate-data-key --key-id "$KEY_ID" --key-spec AES_256 \
    --encryption-context bucket=smoke)
pyq 'd["Plaintext"]' <<<"$DK" | base64 -d > "$WORK/dk.bin"
pyq 'd["CiphertextBlob"]' <<<"$DK" | base64 -d > "$WORK/dk.ct"
expect_eq "data key length" "$(stat -c %s "$WORK/dk.bin")" "32"
awsx kms decrypt --ciphertext-blob "fileb://$WORK/dk.ct" --encryption-context bucket=smoke \
    --output text --query Plaintext | base64 -d > "$WORK/dk.round"
cmp "$WORK/dk.bin" "$WORK/dk.round" || fail "decrypt of the data key blob differs from its Plaintext"
ok "the data key's CiphertextBlob decrypts to its Plaintext"

# ---------------------------------------------------------------------------
step "kms enable-key-rotation / get-key-rotation-status / rotate-key-on-demand"
STATUS=$(awsx kms get-key-rotation-status --key-id "$KEY_ID")
expect_eq "KeyRotationEnabled before" "$(pyq 'd["KeyRotationEnabled"]' <<<"$STATUS")" "false"
awsx kms enable-key-rotation --key-id "$KEY_ID" --rotation-period-in-days 180
STATUS=$(awsx kms get-key-rotation-status --key-id "$KEY_ID")
expect_eq "KeyRotationEnabled" "$(pyq 'd["KeyRotationEnabled"]' <<<"$STATUS")" "true"
expect_eq "RotationPeriodInDays" "$(pyq 'd.get("RotationPeriodInDays")' <<<"$STATUS")" "180"
awsx kms rotate-key-on-demand --key-id "$KEY_ID" >/dev/null
ROTATIONS=$(awsx kms list-key-rotations --key-id "$KEY_ID")
expect_eq "list-key-rotations count" "$(pyq 'len(d["Rotations"])' <<<"$ROTATIONS")" "1"
awsx kms decrypt --ciphertext-blob "fileb://$WORK/ct.bin" \
    --encryption-context purpose=ci,stage=smoke \
    --output text --query Plaintext | base64 -d > "$WORK/round2.bin"
cmp "$WORK/plain.bin" "$WORK/round2.bin" || fail "a ciphertext from before the rotation no longer decrypts"
ok "the ciphertext made before the rotation still decrypts"

# ---------------------------------------------------------------------------
step "kms schedule-key-deletion"
DEL=$(awsx kms schedule-key-deletion --key-id "$KEY_ID" --pending-window-in-days 7)
expect_eq "KeyState" "$(pyq 'd.get("KeyState")' <<<"$DEL")" "PendingDeletion"
expect_eq "PendingWindowInDays" "$(pyq 'd.get("PendingWindowInDays")' <<<"$DEL")" "7"
[ -n "$(pyq 'd.get("DeletionDate", "")' <<<"$DEL")" ] || fail "no DeletionDate in $DEL"
ok "DeletionDate is set"
expect_eq "describe-key KeyState" \
    "$(awsx kms describe-key --key-id "$KEY_ID" --output text --query KeyMetadata.KeyState)" \
    "PendingDeletion"
expect_error KMSInvalidStateException kms encrypt --key-id "$KEY_ID" \
    --plaintext "fileb://$WORK/plain.bin"
expect_error KMSInvalidStateException kms decrypt --ciphertext-blob "fileb://$WORK/ct.bin" \
    --encryption-context purpose=ci,stage=smoke

echo "awscli kms smoke: all $CHECKS checks passed"
