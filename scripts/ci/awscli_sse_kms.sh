#!/usr/bin/env bash
# AWS CLI test of SSE-KMS, DSSE-KMS and S3 Bucket Keys (issue 8) against a running Coffer endpoint:
# objects under a key of the built-in KMS, written and read with `aws s3` and `aws s3api`, the key
# managed with `aws kms` on the same endpoint.
#
# Usage: scripts/ci/awscli_sse_kms.sh <endpoint-url>
# Env:   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION (us-east-1)
#        AWS_CLI (optional, default "aws"), PYTHON (optional, default python3),
#        SMOKE_BIG_MIB (optional, default 100)
#
# S3 refuses SSE-KMS requests over plain HTTP, and so does Coffer unless it runs with
# --allow-insecure-http: run this against an https:// endpoint (a server started with
# --tls-self-signed; every call then passes --no-verify-ssl) or against a plain-HTTP server that
# allows it. Every step asserts its result and prints what it checked; the first failed
# assertion exits non-zero.
#
# `aws s3 cp --sse` of AWS CLI v1 accepts only AES256 and aws:kms, so DSSE-KMS is written with
# `s3api put-object --server-side-encryption aws:kms:dsse` and through a bucket default
# (put-bucket-encryption aws:kms:dsse + a plain `aws s3 cp`).
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 <endpoint-url>" >&2
    exit 2
fi
ENDPOINT=$1
AWS_CLI=${AWS_CLI:-aws}
PYTHON=${PYTHON:-python3}
BIG_MIB=${SMOKE_BIG_MIB:-100}
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
ALIAS="alias/awscli-sse-kms-$SUFFIX"
BUCKET="awscli-sse-kms-$SUFFIX"
DSSE_BUCKET="awscli-dsse-$SUFFIX"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/coffer-awscli-sse-kms.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# A command outside the checks that fails (set -e) says where, instead of ending silently.
trap 'echo "   FAIL [awscli sse-kms] step '"'"'$STEP'"'"': command at line $LINENO failed" >&2' ERR

TAG="awscli sse-kms"
# shellcheck source=scripts/ci/awscli_lib.sh
source "$(dirname "$0")/awscli_lib.sh"

# head_json KEY [BUCKET]: head-object of KEY (in BUCKET, default $BUCKET); prints its JSON.
head_json() { awsx s3api head-object --bucket "${2:-$BUCKET}" --key "$1"; }

echo "awscli sse-kms: endpoint=$ENDPOINT bucket=$BUCKET alias=$ALIAS ($("$AWS_CLI" --version 2>&1))"
mkdir -p "$WORK/up" "$WORK/down"

# ---------------------------------------------------------------------------
step "kms create-key + create-alias; s3 mb"
KEY_JSON=$(awsx kms create-key --description "awscli sse-kms")
KEY_ID=$(pyq 'd["KeyMetadata"]["KeyId"]' <<<"$KEY_JSON")
KEY_ARN=$(pyq 'd["KeyMetadata"]["Arn"]' <<<"$KEY_JSON")
echo "   key $KEY_ID ($KEY_ARN)"
awsx kms create-alias --alias-name "$ALIAS" --target-key-id "$KEY_ID"
expect_eq "describe-key $ALIAS" \
    "$(awsx kms describe-key --key-id "$ALIAS" --output text --query KeyMetadata.Arn)" "$KEY_ARN"
awsx s3 mb "s3://$BUCKET" >/dev/null
awsx s3 mb "s3://$DSSE_BUCKET" >/dev/null
ok "buckets $BUCKET and $DSSE_BUCKET created"

# ---------------------------------------------------------------------------
step "s3 cp --sse aws:kms --sse-kms-key-id $ALIAS of a ${BIG_MIB} MiB file (multipart)"
# Deliberately not a multiple of the CLI's 8 MiB chunk size: the last part is short.
BIG_SIZE=$((BIG_MIB * 1024 * 1024 + 12345))
CHUNK=$((8 * 1024 * 1024))
BIG_PARTS=$(((BIG_SIZE + CHUNK - 1) / CHUNK))
head -c "$BIG_SIZE" /dev/urandom > "$WORK/up/big.bin"
t0=$(date +%s)
awsx s3 cp --only-show-errors --sse aws:kms --sse-kms-key-id "$ALIAS" \
    "$WORK/up/big.bin" "s3://$BUCKET/big.bin"
t1=$(date +%s)
HEAD=$(head_json big.bin)
expect_eq "big.bin ServerSideEncryption" "$(pyq 'd.get("ServerSideEncryption")' <<<"$HEAD")" "aws:kms"
expect_eq "big.bin SSEKMSKeyId (the key ARN, not the alias)" \
    "$(pyq 'd.get("SSEKMSKeyId")' <<<"$HEAD")" "$KEY_ARN"
expect_eq "big.bin BucketKeyEnabled (none asked for)" \
    "$(pyq 'd.get("BucketKeyEnabled", False)' <<<"$HEAD")" "false"
expect_eq "big.bin ContentLength" "$(pyq 'd.get("ContentLength")' <<<"$HEAD")" "$BIG_SIZE"
BIG_ETAG=$(pyq 'd.get("ETag", "")' <<<"$HEAD")
case "$BIG_ETAG" in
    *"-$BIG_PARTS\"" | *"-$BIG_PARTS") ok "big.bin ETag $BIG_ETAG shows a $BIG_PARTS-part multipart upload" ;;
    *) fail "big.bin ETag [$BIG_ETAG] does not end in -$BIG_PARTS (was it uploaded multipart?)" ;;
esac
awsx s3 cp --only-show-errors "s3://$BUCKET/big.bin" "$WORK/down/big.bin"
t2=$(date +%s)
echo "   (upload $((t1 - t0)) s, download $((t2 - t1)) s)"
expect_eq "downloaded big.bin sha256" "$(sha "$WORK/down/big.bin")" "$(sha "$WORK/up/big.bin")"
rm -f "$WORK/down/big.bin"
# A range across a part boundary, with no encryption headers on the GET.
RANGE_FIRST=$((CHUNK - 100))
RANGE_LAST=$((CHUNK + 99))
GOT=$(awsx s3api get-object --bucket "$BUCKET" --key big.bin \
    --range "bytes=$RANGE_FIRST-$RANGE_LAST" "$WORK/down/range.bin")
expect_eq "ranged get-object ServerSideEncryption" "$(pyq 'd.get("ServerSideEncryption")' <<<"$GOT")" "aws:kms"
dd if="$WORK/up/big.bin" of="$WORK/up/range.bin" iflag=skip_bytes,count_bytes \
    skip="$RANGE_FIRST" count=$((RANGE_LAST - RANGE_FIRST + 1)) status=none
cmp "$WORK/up/range.bin" "$WORK/down/range.bin" || fail "bytes $RANGE_FIRST-$RANGE_LAST differ"
ok "bytes $RANGE_FIRST-$RANGE_LAST (across the first part boundary) read back byte-exact"

# ---------------------------------------------------------------------------
step "s3api put-object --server-side-encryption aws:kms (key id, ARN, no key id = aws/s3)"
head -c 70000 /dev/urandom > "$WORK/up/small.bin"
PUT=$(awsx s3api put-object --bucket "$BUCKET" --key small-by-id --body "$WORK/up/small.bin" \
    --server-side-encryption aws:kms --ssekms-key-id "$KEY_ID")
expect_eq "put-object (key id) ServerSideEncryption" "$(pyq 'd.get("ServerSideEncryption")' <<<"$PUT")" "aws:kms"
expect_eq "put-object (key id) SSEKMSKeyId" "$(pyq 'd.get("SSEKMSKeyId")' <<<"$PUT")" "$KEY_ARN"
if [ "$(pyq 'd.get("ETag", "").strip("\"")' <<<"$PUT")" = "$(md5sum "$WORK/up/small.bin" | cut -d' ' -f1)" ]; then
    fail "the ETag of an SSE-KMS object is the MD5 of its plaintext (S3's is not)"
fi
ok "the SSE-KMS ETag is not the MD5 of the plaintext"
PUT=$(awsx s3api put-object --bucket "$BUCKET" --key small-by-arn --body "$WORK/up/small.bin" \
    --server-side-encryption aws:kms --ssekms-key-id "$KEY_ARN")
expect_eq "put-object (ARN) SSEKMSKeyId" "$(pyq 'd.get("SSEKMSKeyId")' <<<"$PUT")" "$KEY_ARN"
PUT=$(awsx s3api put-object --bucket "$BUCKET" --key small-managed --body "$WORK/up/small.bin" \
    --server-side-encryption aws:kms)
MANAGED_ARN=$(awsx kms describe-key --key-id alias/aws/s3 --output text --query KeyMetadata.Arn)
expect_eq "put-object (no key id) SSEKMSKeyId is alias/aws/s3's key" \
    "$(pyq 'd.get("SSEKMSKeyId")' <<<"$PUT")" "$MANAGED_ARN"
expect_eq "alias/aws/s3 KeyManager" \
    "$(awsx kms describe-key --key-id alias/aws/s3 --output text --query KeyMetadata.KeyManager)" "AWS"
for key in small-by-id small-by-arn small-managed; do
    awsx s3 cp --only-show-errors "s3://$BUCKET/$key" "$WORK/down/$key"
    cmp "$WORK/up/small.bin" "$WORK/down/$key" || fail "$key differs from what was uploaded"
done
ok "all three read back byte-exact"

# ---------------------------------------------------------------------------
step "s3api put-bucket-encryption aws:kms + BucketKeyEnabled; plain s3 cp comes back aws:kms"
cat > "$WORK/bucket-enc.json" <<EOF
{"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "$KEY_ID"},
            "BucketKeyEnabled": true}]}
EOF
awsx s3api put-bucket-encryption --bucket "$BUCKET" \
    --server-side-encryption-configuration "file://$WORK/bucket-enc.json"
ENC=$(awsx s3api get-bucket-encryption --bucket "$BUCKET")
RULE='d["ServerSideEncryptionConfiguration"]["Rules"][0]'
expect_eq "get-bucket-encryption SSEAlgorithm" \
    "$(pyq "$RULE[\"ApplyServerSideEncryptionByDefault\"][\"SSEAlgorithm\"]" <<<"$ENC")" "aws:kms"
expect_eq "get-bucket-encryption KMSMasterKeyID" \
    "$(pyq "$RULE[\"ApplyServerSideEncryptionByDefault\"].get(\"KMSMasterKeyID\")" <<<"$ENC")" "$KEY_ID"
expect_eq "get-bucket-encryption BucketKeyEnabled" \
    "$(pyq "$RULE.get(\"BucketKeyEnabled\")" <<<"$ENC")" "true"
printf 'no encryption headers on this upload\n' > "$WORK/up/plain.txt"
awsx s3 cp --only-show-errors "$WORK/up/plain.txt" "s3://$BUCKET/defaulted.txt"
HEAD=$(head_json defaulted.txt)
expect_eq "defaulted.txt ServerSideEncryption" "$(pyq 'd.get("ServerSideEncryption")' <<<"$HEAD")" "aws:kms"
expect_eq "defaulted.txt SSEKMSKeyId" "$(pyq 'd.get("SSEKMSKeyId")' <<<"$HEAD")" "$KEY_ARN"
expect_eq "defaulted.txt BucketKeyEnabled" "$(pyq 'd.get("BucketKeyEnabled")' <<<"$HEAD")" "true"
# Above the CLI's 8 MiB threshold: CreateMultipartUpload without headers takes the default too.
head -c $((9 * 1024 * 1024)) /dev/urandom > "$WORK/up/mid.bin"
awsx s3 cp --only-show-errors "$WORK/up/mid.bin" "s3://$BUCKET/defaulted-multipart.bin"
HEAD=$(head_json defaulted-multipart.bin)
expect_eq "defaulted-multipart.bin ServerSideEncryption" "$(pyq 'd.get("ServerSideEncryption")' <<<"$HEAD")" "aws:kms"
expect_eq "defaulted-multipart.bin SSEKMSKeyId" "$(pyq 'd.get("SSEKMSKeyId")' <<<"$HEAD")" "$KEY_ARN"
expect_eq "defaulted-multipart.bin BucketKeyEnabled" "$(pyq 'd.get("BucketKeyEnabled")' <<<"$HEAD")" "true"
case "$(pyq 'd.get("ETag", "")' <<<"$HEAD")" in
    *'-2"') ok "defaulted-multipart.bin was a 2-part upload" ;;
    *) fail "defaulted-multipart.bin ETag $(pyq 'd.get("ETag", "")' <<<"$HEAD") is not a 2-part ETag" ;;
esac
awsx s3 cp --only-show-errors "s3://$BUCKET/defaulted.txt" "$WORK/down/defaulted.txt"
awsx s3 cp --only-show-errors "s3://$BUCKET/defaulted-multipart.bin" "$WORK/down/mid.bin"
cmp "$WORK/up/plain.txt" "$WORK/down/defaulted.txt" || fail "defaulted.txt differs"
cmp "$WORK/up/mid.bin" "$WORK/down/mid.bin" || fail "defaulted-multipart.bin differs"
ok "both read back byte-exact"
# An explicit header still wins over the bucket default.
awsx s3 cp --only-show-errors --sse AES256 "$WORK/up/plain.txt" "s3://$BUCKET/explicit-s3.txt"
HEAD=$(head_json explicit-s3.txt)
expect_eq "explicit --sse AES256 under a KMS default" \
    "$(pyq 'd.get("ServerSideEncryption")' <<<"$HEAD")" "AES256"

# ---------------------------------------------------------------------------
step "DSSE-KMS: s3api put-object --server-side-encryption aws:kms:dsse; a bucket default of aws:kms:dsse"
PUT=$(awsx s3api put-object --bucket "$BUCKET" --key dsse.bin --body "$WORK/up/small.bin" \
    --server-side-encryption aws:kms:dsse --ssekms-key-id "$ALIAS")
expect_eq "put-object ServerSideEncryption" "$(pyq 'd.get("ServerSideEncryption")' <<<"$PUT")" "aws:kms:dsse"
expect_eq "put-object SSEKMSKeyId" "$(pyq 'd.get("SSEKMSKeyId")' <<<"$PUT")" "$KEY_ARN"
HEAD=$(head_json dsse.bin)
expect_eq "dsse.bin head ServerSideEncryption" "$(pyq 'd.get("ServerSideEncryption")' <<<"$HEAD")" "aws:kms:dsse"
expect_eq "dsse.bin head SSEKMSKeyId" "$(pyq 'd.get("SSEKMSKeyId")' <<<"$HEAD")" "$KEY_ARN"
GOT=$(awsx s3api get-object --bucket "$BUCKET" --key dsse.bin "$WORK/down/dsse.bin")
expect_eq "dsse.bin get ServerSideEncryption" "$(pyq 'd.get("ServerSideEncryption")' <<<"$GOT")" "aws:kms:dsse"
cmp "$WORK/up/small.bin" "$WORK/down/dsse.bin" || fail "dsse.bin differs from what was uploaded"
ok "dsse.bin reads back byte-exact"
cat > "$WORK/dsse-enc.json" <<EOF
{"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms:dsse", "KMSMasterKeyID": "$KEY_ARN"}}]}
EOF
awsx s3api put-bucket-encryption --bucket "$DSSE_BUCKET" \
    --server-side-encryption-configuration "file://$WORK/dsse-enc.json"
expect_eq "get-bucket-encryption SSEAlgorithm ($DSSE_BUCKET)" \
    "$(awsx s3api get-bucket-encryption --bucket "$DSSE_BUCKET" \
        --query 'ServerSideEncryptionConfiguration.Rules[0].ApplyServerSideEncryptionByDefault.SSEAlgorithm' \
        --output text)" "aws:kms:dsse"
awsx s3 cp --only-show-errors "$WORK/up/mid.bin" "s3://$DSSE_BUCKET/mid.bin"
HEAD=$(head_json mid.bin "$DSSE_BUCKET")
expect_eq "plain s3 cp into the DSSE bucket: ServerSideEncryption" \
    "$(pyq 'd.get("ServerSideEncryption")' <<<"$HEAD")" "aws:kms:dsse"
expect_eq "plain s3 cp into the DSSE bucket: SSEKMSKeyId" "$(pyq 'd.get("SSEKMSKeyId")' <<<"$HEAD")" "$KEY_ARN"
rm -f "$WORK/down/mid.bin"
awsx s3 cp --only-show-errors "s3://$DSSE_BUCKET/mid.bin" "$WORK/down/mid.bin"
cmp "$WORK/up/mid.bin" "$WORK/down/mid.bin" || fail "the multipart DSSE object differs"
ok "the 9 MiB multipart DSSE object reads back byte-exact"

# ---------------------------------------------------------------------------
step "s3 cp between objects: SSE-KMS -> SSE-S3 (--sse AES256) -> SSE-KMS -> DSSE"
# Above 8 MiB the CLI copies with CreateMultipartUpload + UploadPartCopy; the small one is a
# single CopyObject.
for src in defaulted-multipart.bin small-by-id; do
    awsx s3 cp --only-show-errors --sse AES256 "s3://$BUCKET/$src" "s3://$BUCKET/$src.to-s3"
    HEAD=$(head_json "$src.to-s3")
    expect_eq "$src -> $src.to-s3 ServerSideEncryption" \
        "$(pyq 'd.get("ServerSideEncryption")' <<<"$HEAD")" "AES256"
    expect_eq "$src.to-s3 has no SSEKMSKeyId" "$(pyq 'd.get("SSEKMSKeyId")' <<<"$HEAD")" "null"
    awsx s3 cp --only-show-errors --sse aws:kms --sse-kms-key-id "$KEY_ARN" \
        "s3://$BUCKET/$src.to-s3" "s3://$BUCKET/$src.back-to-kms"
    HEAD=$(head_json "$src.back-to-kms")
    expect_eq "$src.to-s3 -> $src.back-to-kms ServerSideEncryption" \
        "$(pyq 'd.get("ServerSideEncryption")' <<<"$HEAD")" "aws:kms"
    expect_eq "$src.back-to-kms SSEKMSKeyId" "$(pyq 'd.get("SSEKMSKeyId")' <<<"$HEAD")" "$KEY_ARN"
    awsx s3 cp --only-show-errors "s3://$BUCKET/$src.back-to-kms" "s3://$DSSE_BUCKET/$src.to-dsse"
    HEAD=$(head_json "$src.to-dsse" "$DSSE_BUCKET")
    expect_eq "$src.back-to-kms -> $DSSE_BUCKET/$src.to-dsse (bucket default) ServerSideEncryption" \
        "$(pyq 'd.get("ServerSideEncryption")' <<<"$HEAD")" "aws:kms:dsse"
done
for obj in "$BUCKET/defaulted-multipart.bin.to-s3" "$BUCKET/defaulted-multipart.bin.back-to-kms" \
    "$DSSE_BUCKET/defaulted-multipart.bin.to-dsse"; do
    rm -f "$WORK/down/copy.bin"
    awsx s3 cp --only-show-errors "s3://$obj" "$WORK/down/copy.bin"
    cmp "$WORK/up/mid.bin" "$WORK/down/copy.bin" || fail "s3://$obj differs from the original"
done
for obj in "$BUCKET/small-by-id.to-s3" "$BUCKET/small-by-id.back-to-kms" "$DSSE_BUCKET/small-by-id.to-dsse"; do
    rm -f "$WORK/down/copy.bin"
    awsx s3 cp --only-show-errors "s3://$obj" "$WORK/down/copy.bin"
    cmp "$WORK/up/small.bin" "$WORK/down/copy.bin" || fail "s3://$obj differs from the original"
done
ok "every copy reads back byte-exact"

# ---------------------------------------------------------------------------
step "kms disable-key: GET and PUT under the key are refused, HEAD still answers; enable-key"
awsx kms disable-key --key-id "$KEY_ID"
expect_eq "describe-key KeyState" \
    "$(awsx kms describe-key --key-id "$KEY_ID" --output text --query KeyMetadata.KeyState)" "Disabled"
expect_s3_error KMS.DisabledException 400 s3api get-object --bucket "$BUCKET" --key small-by-id "$WORK/down/refused"
expect_s3_error KMS.DisabledException 400 s3api get-object --bucket "$BUCKET" --key dsse.bin "$WORK/down/refused"
# The bucket's default turns Bucket Keys on for SSE-KMS writes that do not say otherwise, and a
# cached bucket-level key may serve writes for a short while after the key is disabled (as on
# S3): this write turns the Bucket Key off, so it must ask the KMS. Objects written under a
# Bucket Key are not checked here for the same reason.
expect_s3_error KMS.DisabledException 400 s3api put-object --bucket "$BUCKET" --key refused \
    --body "$WORK/up/plain.txt" --server-side-encryption aws:kms --ssekms-key-id "$KEY_ID" \
    --no-bucket-key-enabled
expect_s3_error 404 404 s3api head-object --bucket "$BUCKET" --key refused
# The high-level command reports it too (and writes no file).
rm -f "$WORK/down/refused"
if "$AWS_CLI" --endpoint-url "$ENDPOINT" ${TLS_ARGS[@]+"${TLS_ARGS[@]}"} s3 cp --only-show-errors \
    "s3://$BUCKET/big.bin" "$WORK/down/refused" >"$WORK/cp.out" 2>&1; then
    fail "s3 cp of big.bin succeeded under a disabled key"
fi
grep -qF "(KMS.DisabledException)" "$WORK/cp.out" || fail "s3 cp failed, but not with KMS.DisabledException: $(cat "$WORK/cp.out")"
[ ! -s "$WORK/down/refused" ] || fail "s3 cp left $(stat -c %s "$WORK/down/refused") bytes of big.bin behind"
ok "s3 cp of big.bin fails with KMS.DisabledException and writes nothing"
# HEAD makes no KMS call (as on S3): the metadata still answers.
HEAD=$(head_json big.bin)
expect_eq "head-object under a disabled key: ServerSideEncryption" \
    "$(pyq 'd.get("ServerSideEncryption")' <<<"$HEAD")" "aws:kms"
expect_eq "head-object under a disabled key: SSEKMSKeyId" "$(pyq 'd.get("SSEKMSKeyId")' <<<"$HEAD")" "$KEY_ARN"
# An object under another key (SSE-S3 here) is not affected.
awsx s3 cp --only-show-errors "s3://$BUCKET/small-by-id.to-s3" "$WORK/down/unaffected"
cmp "$WORK/up/small.bin" "$WORK/down/unaffected" || fail "small-by-id.to-s3 differs"
ok "an SSE-S3 object still reads"
awsx kms enable-key --key-id "$KEY_ID"
rm -f "$WORK/down/small-by-id"
awsx s3 cp --only-show-errors "s3://$BUCKET/small-by-id" "$WORK/down/small-by-id"
cmp "$WORK/up/small.bin" "$WORK/down/small-by-id" || fail "small-by-id differs after enable-key"
ok "after enable-key small-by-id reads back byte-exact"
GOT=$(awsx s3api get-object --bucket "$BUCKET" --key big.bin --range "bytes=$RANGE_FIRST-$RANGE_LAST" \
    "$WORK/down/range2.bin")
cmp "$WORK/up/range.bin" "$WORK/down/range2.bin" || fail "big.bin range differs after enable-key"
ok "after enable-key a range of big.bin reads back byte-exact"

# ---------------------------------------------------------------------------
step "/-/metrics counts the KMS calls S3 made"
# (urllib rather than curl: python is here anyway; the certificate is self-signed, as above.)
"$PYTHON" -c '
import ssl, sys, urllib.request
ctx = ssl._create_unverified_context()
with urllib.request.urlopen(sys.argv[1], timeout=10, context=ctx) as r:
    sys.stdout.write(r.read().decode())' "$ENDPOINT/-/metrics" > "$WORK/metrics.txt" \
    || fail "GET $ENDPOINT/-/metrics failed"
for op in GenerateDataKey Decrypt; do
    n=$(sed -nE "s/^coffer_kms_service_calls_total\\{op=\"$op\"\\} ([0-9]+)\$/\\1/p" "$WORK/metrics.txt")
    [ -n "$n" ] && [ "$n" -gt 0 ] || fail "no positive coffer_kms_service_calls_total{op=\"$op\"}: $(grep kms_service "$WORK/metrics.txt" || true)"
    ok "coffer_kms_service_calls_total{op=\"$op\"} = $n"
done

echo "awscli sse-kms: all $CHECKS checks passed"
