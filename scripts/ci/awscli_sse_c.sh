#!/usr/bin/env bash
# AWS CLI test of SSE-C (issue 9) against a running Coffer endpoint over HTTPS: objects under keys
# the client brings on every request, and the per-bucket SSE-C block.
#
#   - a new bucket blocks SSE-C: an SSE-C upload is refused (403 AccessDenied) and
#     get-bucket-encryption shows BlockedEncryptionTypes SSE-C; put-bucket-encryption with
#     BlockedEncryptionTypes NONE opens it, and reads back so;
#   - `aws s3 cp --sse-c AES256 --sse-c-key fileb://key` up and down of a small file and of a
#     100 MiB one (multipart: CreateMultipartUpload + UploadPart, each with the key; the download
#     is ranged GETs with it), byte-exact; a range across a part boundary with s3api;
#   - head-object with the key shows the customer algorithm and the key's MD5;
#   - without the key (400 InvalidRequest) and with another key (403 AccessDenied) nothing is read;
#   - `aws s3 cp` from one key to another (--sse-c-copy-source / --sse-c-copy-source-key: a
#     CopyObject, and for the 100 MiB object UploadPartCopy), and out of SSE-C into SSE-S3;
#   - blocked again: new SSE-C writes refused, existing objects still read with their key.
#
# Usage: scripts/ci/awscli_sse_c.sh <https-endpoint-url>
# Env:   COFFER_CA_BUNDLE (required for https: the PEM certificate the server presents, e.g.
#        <data-dir>/self-signed.pem of a server started with --tls-self-signed; .ci/run sets it),
#        AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION (us-east-1),
#        AWS_CLI (optional, default "aws"), PYTHON (optional, default python3),
#        SMOKE_BIG_MIB (optional, default 100)
#
# S3 refuses SSE-C over plain HTTP, and so does Coffer unless it runs with --allow-insecure-http
# (the e2e tests check that refusal; this script needs a server that answers, so HTTPS). The
# certificate is verified against COFFER_CA_BUNDLE. Every step asserts its result and prints what
# it checked; the first failed assertion exits non-zero. The keys are random, made for the run,
# and never printed.
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
        : "${COFFER_CA_BUNDLE:?COFFER_CA_BUNDLE must name the certificate (PEM) the server presents, e.g. <data-dir>/self-signed.pem}"
        [ -s "$COFFER_CA_BUNDLE" ] || { echo "COFFER_CA_BUNDLE=$COFFER_CA_BUNDLE is not a file" >&2; exit 2; }
        TLS_ARGS=(--ca-bundle "$COFFER_CA_BUNDLE")
        ;;
    *)
        echo "note: $ENDPOINT is plain HTTP; the server must run with --allow-insecure-http for SSE-C" ;;
esac

SUFFIX="$(date +%s)-$$"
BUCKET="awscli-sse-c-$SUFFIX"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/coffer-awscli-sse-c.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# A command outside the checks that fails (set -e) says where, instead of ending silently.
trap 'echo "   FAIL [awscli sse-c] step '"'"'$STEP'"'"': command at line $LINENO failed" >&2' ERR

TAG="awscli sse-c"
# shellcheck source=scripts/ci/awscli_lib.sh
source "$(dirname "$0")/awscli_lib.sh"

# md5_b64 FILE: base64 of the MD5 of FILE (what x-amz-server-side-encryption-customer-key-MD5 carries).
md5_b64() { "$PYTHON" -c 'import base64, hashlib, sys; print(base64.b64encode(hashlib.md5(open(sys.argv[1], "rb").read()).digest()).decode())' "$1"; }

# expect_md5 WHAT ACTUAL EXPECTED NAME: like expect_eq, but names the MD5 (NAME) rather than print it.
expect_md5() {
    if [ "$2" != "$3" ]; then
        fail "$1: expected $4, got another value"
    fi
    ok "$1 == $4"
}

# The CLI's arguments naming a key file for the object (sse_c) or a copy's source (sse_c_source).
sse_c() { echo "--sse-c AES256 --sse-c-key fileb://$1"; }
sse_c_source() { echo "--sse-c-copy-source AES256 --sse-c-copy-source-key fileb://$1"; }
# s3api's (the CLI base64-encodes the key and adds its MD5).
customer() { echo "--sse-customer-algorithm AES256 --sse-customer-key fileb://$1"; }

# head_c KEY KEYFILE: head-object of KEY with the customer key in KEYFILE; prints its JSON.
# shellcheck disable=SC2046 # the helpers above print words to split
head_c() { awsx s3api head-object --bucket "$BUCKET" --key "$1" $(customer "$2"); }

echo "awscli sse-c: endpoint=$ENDPOINT bucket=$BUCKET ($("$AWS_CLI" --version 2>&1))"
mkdir -p "$WORK/up" "$WORK/down" "$WORK/keys"
head -c 32 /dev/urandom > "$WORK/keys/one"
head -c 32 /dev/urandom > "$WORK/keys/two"
K1="$WORK/keys/one"
K2="$WORK/keys/two"
K1_MD5=$(md5_b64 "$K1")
K2_MD5=$(md5_b64 "$K2")
printf 'a small file under a customer key\n' > "$WORK/up/small.txt"

# shellcheck disable=SC2046 # $(sse_c …), $(customer …) are meant to split into words
{
# ---------------------------------------------------------------------------
step "s3 mb: a new bucket blocks SSE-C (get-bucket-encryption says so; an upload is refused)"
awsx s3 mb "s3://$BUCKET" >/dev/null
ENC=$(awsx s3api get-bucket-encryption --bucket "$BUCKET")
RULE='d["ServerSideEncryptionConfiguration"]["Rules"][0]'
expect_eq "get-bucket-encryption BlockedEncryptionTypes of a new bucket" \
    "$(pyq "$RULE[\"BlockedEncryptionTypes\"][\"EncryptionType\"]" <<<"$ENC")" '["SSE-C"]'
expect_eq "get-bucket-encryption SSEAlgorithm of a new bucket" \
    "$(pyq "$RULE[\"ApplyServerSideEncryptionByDefault\"][\"SSEAlgorithm\"]" <<<"$ENC")" "AES256"
expect_s3_error AccessDenied 403 s3api put-object --bucket "$BUCKET" --key blocked.txt \
    --body "$WORK/up/small.txt" $(customer "$K1")
if "$AWS_CLI" --endpoint-url "$ENDPOINT" ${TLS_ARGS[@]+"${TLS_ARGS[@]}"} s3 cp --only-show-errors $(sse_c "$K1") \
    "$WORK/up/small.txt" "s3://$BUCKET/blocked.txt" >"$WORK/cp.out" 2>&1; then
    fail "s3 cp --sse-c into a bucket that blocks SSE-C succeeded"
fi
grep -qF "(AccessDenied)" "$WORK/cp.out" || fail "s3 cp --sse-c failed, but not with AccessDenied: $(cat "$WORK/cp.out")"
ok "s3 cp --sse-c into the new bucket fails with AccessDenied"
expect_s3_error 404 404 s3api head-object --bucket "$BUCKET" --key blocked.txt

# ---------------------------------------------------------------------------
step "put-bucket-encryption BlockedEncryptionTypes NONE opens the bucket to SSE-C"
cat > "$WORK/open.json" <<'EOF'
{"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
            "BlockedEncryptionTypes": {"EncryptionType": ["NONE"]}}]}
EOF
awsx s3api put-bucket-encryption --bucket "$BUCKET" \
    --server-side-encryption-configuration "file://$WORK/open.json"
ENC=$(awsx s3api get-bucket-encryption --bucket "$BUCKET")
expect_eq "get-bucket-encryption BlockedEncryptionTypes after NONE" \
    "$(pyq "$RULE[\"BlockedEncryptionTypes\"][\"EncryptionType\"]" <<<"$ENC")" '["NONE"]'
expect_eq "get-bucket-encryption SSEAlgorithm (kept)" \
    "$(pyq "$RULE[\"ApplyServerSideEncryptionByDefault\"][\"SSEAlgorithm\"]" <<<"$ENC")" "AES256"

# ---------------------------------------------------------------------------
step "s3 cp --sse-c AES256 --sse-c-key fileb://key: a small file up and down; head-object with the key"
awsx s3 cp --only-show-errors $(sse_c "$K1") "$WORK/up/small.txt" "s3://$BUCKET/small.txt"
awsx s3 cp --only-show-errors $(sse_c "$K1") "s3://$BUCKET/small.txt" "$WORK/down/small.txt"
expect_eq "downloaded small.txt sha256" "$(sha "$WORK/down/small.txt")" "$(sha "$WORK/up/small.txt")"
HEAD=$(head_c small.txt "$K1")
expect_eq "head-object small.txt SSECustomerAlgorithm" "$(pyq 'd.get("SSECustomerAlgorithm")' <<<"$HEAD")" "AES256"
expect_md5 "head-object small.txt SSECustomerKeyMD5 (the key's)" "$(pyq 'd.get("SSECustomerKeyMD5")' <<<"$HEAD")" "$K1_MD5" "the MD5 of key one"
expect_eq "head-object small.txt has no ServerSideEncryption" "$(pyq 'd.get("ServerSideEncryption")' <<<"$HEAD")" "null"
expect_eq "head-object small.txt ContentLength" "$(pyq 'd.get("ContentLength")' <<<"$HEAD")" "$(stat -c %s "$WORK/up/small.txt")"
if [ "$(pyq 'd.get("ETag", "").strip("\"")' <<<"$HEAD")" = "$(md5sum "$WORK/up/small.txt" | cut -d' ' -f1)" ]; then
    fail "the ETag of an SSE-C object is the MD5 of its plaintext (S3's is not)"
fi
ok "the SSE-C ETag is not the MD5 of the plaintext"
GOT=$(awsx s3api get-object --bucket "$BUCKET" --key small.txt $(customer "$K1") "$WORK/down/small2.txt")
expect_md5 "get-object small.txt SSECustomerKeyMD5" "$(pyq 'd.get("SSECustomerKeyMD5")' <<<"$GOT")" "$K1_MD5" "the MD5 of key one"
cmp "$WORK/up/small.txt" "$WORK/down/small2.txt" || fail "get-object small.txt differs"
ok "s3api get-object with the key reads small.txt byte-exact"

# ---------------------------------------------------------------------------
step "s3 cp --sse-c of a ${BIG_MIB} MiB file (multipart, every part with the key) up and down"
# Not a multiple of the CLI's 8 MiB chunk size: the last part is short.
BIG_SIZE=$((BIG_MIB * 1024 * 1024 + 4321))
CHUNK=$((8 * 1024 * 1024))
BIG_PARTS=$(((BIG_SIZE + CHUNK - 1) / CHUNK))
head -c "$BIG_SIZE" /dev/urandom > "$WORK/up/big.bin"
t0=$(date +%s)
awsx s3 cp --only-show-errors $(sse_c "$K1") "$WORK/up/big.bin" "s3://$BUCKET/big.bin"
t1=$(date +%s)
HEAD=$(head_c big.bin "$K1")
expect_eq "big.bin SSECustomerAlgorithm" "$(pyq 'd.get("SSECustomerAlgorithm")' <<<"$HEAD")" "AES256"
expect_md5 "big.bin SSECustomerKeyMD5" "$(pyq 'd.get("SSECustomerKeyMD5")' <<<"$HEAD")" "$K1_MD5" "the MD5 of key one"
expect_eq "big.bin ContentLength" "$(pyq 'd.get("ContentLength")' <<<"$HEAD")" "$BIG_SIZE"
BIG_ETAG=$(pyq 'd.get("ETag", "")' <<<"$HEAD")
case "$BIG_ETAG" in
    *"-$BIG_PARTS\"") ok "big.bin ETag $BIG_ETAG shows a $BIG_PARTS-part multipart upload" ;;
    *) fail "big.bin ETag [$BIG_ETAG] does not end in -$BIG_PARTS (was it uploaded multipart?)" ;;
esac
awsx s3 cp --only-show-errors $(sse_c "$K1") "s3://$BUCKET/big.bin" "$WORK/down/big.bin"
t2=$(date +%s)
echo "   (upload $((t1 - t0)) s, download $((t2 - t1)) s)"
expect_eq "downloaded big.bin sha256" "$(sha "$WORK/down/big.bin")" "$(sha "$WORK/up/big.bin")"
rm -f "$WORK/down/big.bin"
RANGE_FIRST=$((CHUNK - 100))
RANGE_LAST=$((CHUNK + 99))
awsx s3api get-object --bucket "$BUCKET" --key big.bin --range "bytes=$RANGE_FIRST-$RANGE_LAST" \
    $(customer "$K1") "$WORK/down/range.bin" >/dev/null
dd if="$WORK/up/big.bin" of="$WORK/up/range.bin" iflag=skip_bytes,count_bytes \
    skip="$RANGE_FIRST" count=$((RANGE_LAST - RANGE_FIRST + 1)) status=none
cmp "$WORK/up/range.bin" "$WORK/down/range.bin" || fail "bytes $RANGE_FIRST-$RANGE_LAST differ"
ok "bytes $RANGE_FIRST-$RANGE_LAST (across the first part boundary) read back byte-exact"

# ---------------------------------------------------------------------------
step "without the key or with another key nothing is read"
expect_s3_error InvalidRequest 400 s3api get-object --bucket "$BUCKET" --key small.txt "$WORK/down/refused"
expect_s3_error AccessDenied 403 s3api get-object --bucket "$BUCKET" --key small.txt \
    $(customer "$K2") "$WORK/down/refused"
expect_s3_error AccessDenied 403 s3api get-object --bucket "$BUCKET" --key big.bin \
    --range bytes=0-99 $(customer "$K2") "$WORK/down/refused"
# HEAD has no body: the CLI names the status.
expect_s3_error 400 400 s3api head-object --bucket "$BUCKET" --key big.bin
expect_s3_error 403 403 s3api head-object --bucket "$BUCKET" --key big.bin $(customer "$K2")
rm -f "$WORK/down/refused"
# The CLI heads the object first: 400 without a key, 403 with another.
for how in "without a key:400" "with another key:403"; do
    args=""
    if [ "${how%%:*}" = "with another key" ]; then args=$(sse_c "$K2"); fi
    if "$AWS_CLI" --endpoint-url "$ENDPOINT" ${TLS_ARGS[@]+"${TLS_ARGS[@]}"} s3 cp --only-show-errors $args \
        "s3://$BUCKET/big.bin" "$WORK/down/refused" >"$WORK/cp.out" 2>&1; then
        fail "s3 cp of big.bin ${how%%:*} succeeded"
    fi
    grep -qF "(${how##*:})" "$WORK/cp.out" || fail "s3 cp of big.bin ${how%%:*} failed, but not with ${how##*:}: $(cat "$WORK/cp.out")"
    [ ! -s "$WORK/down/refused" ] || fail "s3 cp left $(stat -c %s "$WORK/down/refused") bytes of big.bin behind"
    ok "s3 cp of big.bin ${how%%:*} fails (${how##*:}) and writes nothing"
done

# ---------------------------------------------------------------------------
step "s3 cp between keys (--sse-c-copy-source …-key): CopyObject, and UploadPartCopy for big.bin"
awsx s3 cp --only-show-errors $(sse_c_source "$K1") $(sse_c "$K2") \
    "s3://$BUCKET/small.txt" "s3://$BUCKET/small.two.txt"
awsx s3 cp --only-show-errors $(sse_c_source "$K1") $(sse_c "$K2") \
    "s3://$BUCKET/big.bin" "s3://$BUCKET/big.two.bin"
for obj in small.two.txt big.two.bin; do
    HEAD=$(head_c "$obj" "$K2")
    expect_md5 "$obj SSECustomerKeyMD5 (the new key's)" "$(pyq 'd.get("SSECustomerKeyMD5")' <<<"$HEAD")" "$K2_MD5" "the MD5 of key two"
    expect_s3_error AccessDenied 403 s3api get-object --bucket "$BUCKET" --key "$obj" \
        $(customer "$K1") "$WORK/down/refused"
done
case "$(pyq 'd.get("ETag", "")' <<<"$HEAD")" in
    *"-$BIG_PARTS\"") ok "big.two.bin was copied part by part ($BIG_PARTS parts)" ;;
    *) fail "big.two.bin ETag $(pyq 'd.get("ETag", "")' <<<"$HEAD") is not a $BIG_PARTS-part ETag" ;;
esac
awsx s3 cp --only-show-errors $(sse_c "$K2") "s3://$BUCKET/small.two.txt" "$WORK/down/small.two.txt"
cmp "$WORK/up/small.txt" "$WORK/down/small.two.txt" || fail "small.two.txt differs"
awsx s3 cp --only-show-errors $(sse_c "$K2") "s3://$BUCKET/big.two.bin" "$WORK/down/big.two.bin"
expect_eq "big.two.bin (read with the new key) sha256" "$(sha "$WORK/down/big.two.bin")" "$(sha "$WORK/up/big.bin")"
rm -f "$WORK/down/big.two.bin"
# Out of SSE-C: the copy is SSE-S3 and reads without a key.
awsx s3 cp --only-show-errors $(sse_c_source "$K2") --sse AES256 \
    "s3://$BUCKET/small.two.txt" "s3://$BUCKET/small.s3.txt"
HEAD=$(awsx s3api head-object --bucket "$BUCKET" --key small.s3.txt)
expect_eq "small.s3.txt ServerSideEncryption" "$(pyq 'd.get("ServerSideEncryption")' <<<"$HEAD")" "AES256"
expect_eq "small.s3.txt has no SSECustomerAlgorithm" "$(pyq 'd.get("SSECustomerAlgorithm")' <<<"$HEAD")" "null"
awsx s3 cp --only-show-errors "s3://$BUCKET/small.s3.txt" "$WORK/down/small.s3.txt"
cmp "$WORK/up/small.txt" "$WORK/down/small.s3.txt" || fail "small.s3.txt differs"
ok "copied out of SSE-C into SSE-S3, small.s3.txt reads without a key byte-exact"
# Without the source's key the copy is refused (400 InvalidRequest, as a GET without it).
expect_s3_error InvalidRequest 400 s3api copy-object --bucket "$BUCKET" --key refused.txt \
    --copy-source "$BUCKET/small.txt"

# ---------------------------------------------------------------------------
step "put-bucket-encryption BlockedEncryptionTypes SSE-C: new SSE-C writes refused, objects still read"
cat > "$WORK/block.json" <<'EOF'
{"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
            "BlockedEncryptionTypes": {"EncryptionType": ["SSE-C"]}}]}
EOF
awsx s3api put-bucket-encryption --bucket "$BUCKET" \
    --server-side-encryption-configuration "file://$WORK/block.json"
expect_eq "get-bucket-encryption BlockedEncryptionTypes" \
    "$(awsx s3api get-bucket-encryption --bucket "$BUCKET" --output json \
        --query 'ServerSideEncryptionConfiguration.Rules[0].BlockedEncryptionTypes.EncryptionType' | pyq 'd')" \
    '["SSE-C"]'
expect_s3_error AccessDenied 403 s3api put-object --bucket "$BUCKET" --key blocked-again.txt \
    --body "$WORK/up/small.txt" $(customer "$K1")
rm -f "$WORK/down/small.txt"
awsx s3 cp --only-show-errors $(sse_c "$K1") "s3://$BUCKET/small.txt" "$WORK/down/small.txt"
cmp "$WORK/up/small.txt" "$WORK/down/small.txt" || fail "small.txt differs after the block"
ok "small.txt still reads with its key under the block"
}

echo "awscli sse-c: all $CHECKS checks passed"
