#!/usr/bin/env bash
# AWS CLI test of bucket policies (issue 9) against a running Coffer endpoint: AWS's "deny
# unencrypted object uploads" policy put with `s3api put-bucket-policy`, an upload without
# `x-amz-server-side-encryption` refused with AccessDenied and one with `AES256` accepted (Coffer
# encrypts every object anyway; the policy tests the request header), get-bucket-policy returning
# the policy as sent, get-bucket-policy-status, `aws s3 cp --sse AES256` of a multipart-sized
# file completing under the policy (and without --sse refused), a policy naming another bucket
# refused with MalformedPolicy, and delete-bucket-policy lifting the rule.
#
# Usage: scripts/ci/awscli_bucket_policy.sh <endpoint-url>
# Env:   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (the root pair), AWS_DEFAULT_REGION (us-east-1)
#        AWS_CLI (optional, default "aws"), PYTHON (optional, default python3)
#
# Meant for an https:// endpoint (a server started with --tls-self-signed; every call then passes
# --no-verify-ssl). Every step asserts its result and prints what it checked; the first failed
# assertion exits non-zero.
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

BUCKET="awscli-policy-$(date +%s)-$$"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/coffer-awscli-policy.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'echo "   FAIL [awscli bucket policy] step '"'"'$STEP'"'"': command at line $LINENO failed" >&2' ERR

TAG="awscli bucket policy"
# shellcheck source=scripts/ci/awscli_lib.sh
source "$(dirname "$0")/awscli_lib.sh"

# expect_s3_error CODE ARGS...: the aws command must fail and the CLI must name the error CODE.
expect_s3_error() {
    local code=$1
    shift
    if "$AWS_CLI" --endpoint-url "$ENDPOINT" ${TLS_ARGS[@]+"${TLS_ARGS[@]}"} "$@" \
        >"$WORK/expect.out" 2>"$WORK/expect.err"; then
        fail "aws $* succeeded; expected $code: $(cat "$WORK/expect.out")"
    fi
    if ! grep -qF "($code)" "$WORK/expect.err"; then
        fail "aws $* failed, but not with $code: $(tail -n 5 "$WORK/expect.err")"
    fi
    ok "aws $1 $2 fails with $code"
}

step "create bucket $BUCKET"
awsx s3api create-bucket --bucket "$BUCKET" >/dev/null
echo "plain text" >"$WORK/file.txt"
ok "bucket created"

# AWS's policy ("How to Prevent Uploads of Unencrypted Objects to Amazon S3"), bucket name filled in.
cat >"$WORK/policy.json" <<JSON
{
     "Version": "2012-10-17",
     "Id": "PutObjPolicy",
     "Statement": [
           {
                "Sid": "DenyIncorrectEncryptionHeader",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": "arn:aws:s3:::$BUCKET/*",
                "Condition": {
                        "StringNotEquals": {
                               "s3:x-amz-server-side-encryption": "AES256"
                         }
                }
           },
           {
                "Sid": "DenyUnEncryptedObjectUploads",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": "arn:aws:s3:::$BUCKET/*",
                "Condition": {
                        "Null": {
                               "s3:x-amz-server-side-encryption": "true"
                        }
               }
           }
     ]
 }
JSON

step "put-bucket-policy (deny unencrypted uploads)"
awsx s3api put-bucket-policy --bucket "$BUCKET" --policy "file://$WORK/policy.json"
ok "policy accepted"

step "get-bucket-policy returns the policy as sent"
got=$(awsx s3api get-bucket-policy --bucket "$BUCKET" | pyq 'd["Policy"]')
[ "$got" = "$(cat "$WORK/policy.json")" ] || fail "get-bucket-policy returned: $got"
ok "the returned policy is the one sent, byte for byte (${#got} characters)"

step "get-bucket-policy-status"
public=$(awsx s3api get-bucket-policy-status --bucket "$BUCKET" | pyq 'd["PolicyStatus"]["IsPublic"]')
expect_eq "IsPublic" "$public" "false"

step "an upload without x-amz-server-side-encryption is refused"
expect_s3_error AccessDenied s3api put-object --bucket "$BUCKET" --key plain.txt --body "$WORK/file.txt"
expect_s3_error AccessDenied s3api put-object --bucket "$BUCKET" --key kms.txt --body "$WORK/file.txt" \
    --server-side-encryption aws:kms

step "an upload with --server-side-encryption AES256 is accepted"
sse=$(awsx s3api put-object --bucket "$BUCKET" --key aes.txt --body "$WORK/file.txt" \
    --server-side-encryption AES256 | pyq 'd["ServerSideEncryption"]')
expect_eq "PutObject ServerSideEncryption" "$sse" "AES256"
awsx s3api get-object --bucket "$BUCKET" --key aes.txt "$WORK/back.txt" >/dev/null
expect_eq "object read back" "$(sha "$WORK/back.txt")" "$(sha "$WORK/file.txt")"

step "aws s3 cp --sse AES256 of a 20 MiB file (a multipart upload) completes under the policy"
# UploadPart and CompleteMultipartUpload carry no x-amz-server-side-encryption: the policy sees
# the upload's mode, set when it was created.
head -c $((20 * 1024 * 1024)) /dev/urandom >"$WORK/big.bin"
awsx s3 cp --sse AES256 "$WORK/big.bin" "s3://$BUCKET/big.bin" >/dev/null
awsx s3 cp "s3://$BUCKET/big.bin" "$WORK/big.back" >/dev/null
expect_eq "multipart object read back" "$(sha "$WORK/big.back")" "$(sha "$WORK/big.bin")"
etag=$(awsx s3api head-object --bucket "$BUCKET" --key big.bin | pyq 'd["ETag"]')
case "$etag" in
    *-*) ok "stored as a multipart object (ETag $etag)" ;;
    *) fail "expected a multipart ETag, got $etag" ;;
esac
expect_s3_error AccessDenied s3 cp "$WORK/big.bin" "s3://$BUCKET/big-plain.bin"

step "a policy naming another bucket is MalformedPolicy"
sed "s/$BUCKET/someone-elses-bucket/g" "$WORK/policy.json" >"$WORK/other.json"
expect_s3_error MalformedPolicy s3api put-bucket-policy --bucket "$BUCKET" --policy "file://$WORK/other.json"

step "delete-bucket-policy lifts the rule"
awsx s3api delete-bucket-policy --bucket "$BUCKET"
expect_s3_error NoSuchBucketPolicy s3api get-bucket-policy --bucket "$BUCKET"
awsx s3api put-object --bucket "$BUCKET" --key plain.txt --body "$WORK/file.txt" >/dev/null
ok "an upload without the header is accepted again"

step "clean up"
awsx s3 rm "s3://$BUCKET" --recursive >/dev/null
awsx s3api delete-bucket --bucket "$BUCKET"
ok "bucket removed"

echo "[$TAG] all $CHECKS checks passed"
