#!/usr/bin/env bash
# AWS CLI smoke test against a running Coffer endpoint.
#
# Usage: scripts/ci/awscli_smoke.sh <endpoint-url>
# Env:   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION (us-east-1)
#        AWS_CLI (optional, default "aws"), SMOKE_BIG_MIB (optional, default 100)
#
# Every step asserts its result and prints what it checked; the first failed
# assertion exits non-zero.
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

BUCKET="awscli-smoke-$(date +%s)-$$"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/coffer-awscli-smoke.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

TAG="awscli"
# shellcheck source=scripts/ci/awscli_lib.sh
source "$(dirname "$0")/awscli_lib.sh"


# Keys (last column) of `aws s3 ls` object lines; keys may contain spaces.
ls_keys() { sed -nE 's/^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8} +[0-9]+ (.*)$/\1/p'; }

echo "awscli smoke: endpoint=$ENDPOINT bucket=$BUCKET ($("$AWS_CLI" --version 2>&1))"

# ---------------------------------------------------------------------------
step "s3 mb"
awsx s3 mb "s3://$BUCKET"
awsx s3api head-bucket --bucket "$BUCKET" >/dev/null
ok "head-bucket succeeds for $BUCKET"
"$AWS_CLI" --endpoint-url "$ENDPOINT" s3 ls > "$WORK/buckets.txt" || fail "s3 ls (ListBuckets) failed"
grep -qE " $BUCKET\$" "$WORK/buckets.txt" || fail "s3 ls does not list bucket $BUCKET: $(cat "$WORK/buckets.txt")"
ok "s3 ls lists bucket $BUCKET"

# ---------------------------------------------------------------------------
step "s3 cp small file up and down"
mkdir -p "$WORK/up" "$WORK/down"
printf 'hello from coffer awscli smoke\nline two\n' > "$WORK/up/small.txt"
awsx s3 cp --no-progress "$WORK/up/small.txt" "s3://$BUCKET/small.txt"
awsx s3 cp --no-progress "s3://$BUCKET/small.txt" "$WORK/down/small.txt"
cmp "$WORK/up/small.txt" "$WORK/down/small.txt" || fail "downloaded small.txt differs from upload"
ok "small.txt round-trips byte-exact ($(stat -c %s "$WORK/up/small.txt") bytes)"

# ---------------------------------------------------------------------------
step "s3 cp ${BIG_MIB} MiB random file (multipart) up and down"
# Deliberately not a multiple of the 8 MiB chunk size: last part is short.
BIG_SIZE=$((BIG_MIB * 1024 * 1024 + 12345))
CHUNK=$((8 * 1024 * 1024))
BIG_PARTS=$(((BIG_SIZE + CHUNK - 1) / CHUNK))
head -c "$BIG_SIZE" /dev/urandom > "$WORK/up/big.bin"
t0=$(date +%s)
awsx s3 cp --only-show-errors "$WORK/up/big.bin" "s3://$BUCKET/big.bin"
t1=$(date +%s)
awsx s3 cp --only-show-errors "s3://$BUCKET/big.bin" "$WORK/down/big.bin"
t2=$(date +%s)
echo "   (upload $((t1 - t0)) s, download $((t2 - t1)) s)"
expect_eq "downloaded big.bin sha256" "$(sha "$WORK/down/big.bin")" "$(sha "$WORK/up/big.bin")"
HEAD_BIG=$(awsx s3api head-object --bucket "$BUCKET" --key big.bin)
expect_eq "big.bin ContentLength" "$(pyq 'd.get("ContentLength")' <<<"$HEAD_BIG")" "$BIG_SIZE"
expect_eq "big.bin ServerSideEncryption" "$(pyq 'd.get("ServerSideEncryption")' <<<"$HEAD_BIG")" "AES256"
BIG_ETAG=$(pyq 'd.get("ETag", "")' <<<"$HEAD_BIG")
case "$BIG_ETAG" in
    *"-$BIG_PARTS\"" | *"-$BIG_PARTS") ok "big.bin ETag $BIG_ETAG shows a $BIG_PARTS-part multipart upload" ;;
    *) fail "big.bin ETag [$BIG_ETAG] does not end in -$BIG_PARTS (was it uploaded multipart?)" ;;
esac

# ---------------------------------------------------------------------------
step "s3api head-object reports SSE-S3"
HEAD_SMALL=$(awsx s3api head-object --bucket "$BUCKET" --key small.txt)
expect_eq "small.txt ServerSideEncryption" "$(pyq 'd.get("ServerSideEncryption")' <<<"$HEAD_SMALL")" "AES256"
expect_eq "small.txt ContentLength" "$(pyq 'd.get("ContentLength")' <<<"$HEAD_SMALL")" "$(stat -c %s "$WORK/up/small.txt")"
expect_eq "small.txt ETag (MD5 of plaintext)" "$(pyq 'd.get("ETag", "").strip("\"")' <<<"$HEAD_SMALL")" \
    "$(md5sum "$WORK/up/small.txt" | cut -d' ' -f1)"

# ---------------------------------------------------------------------------
step "s3api put-object --server-side-encryption AES256"
printf 'explicit sse-s3 request\n' > "$WORK/up/explicit.txt"
PUT_OUT=$(awsx s3api put-object --bucket "$BUCKET" --key explicit.txt \
    --body "$WORK/up/explicit.txt" --server-side-encryption AES256)
expect_eq "put-object response ServerSideEncryption" "$(pyq 'd.get("ServerSideEncryption")' <<<"$PUT_OUT")" "AES256"
HEAD_EXPLICIT=$(awsx s3api head-object --bucket "$BUCKET" --key explicit.txt)
expect_eq "explicit.txt head-object ServerSideEncryption" \
    "$(pyq 'd.get("ServerSideEncryption")' <<<"$HEAD_EXPLICIT")" "AES256"
awsx s3 cp --no-progress "s3://$BUCKET/explicit.txt" "$WORK/down/explicit.txt"
cmp "$WORK/up/explicit.txt" "$WORK/down/explicit.txt" || fail "explicit.txt round-trip differs"
ok "explicit.txt round-trips byte-exact"

# ---------------------------------------------------------------------------
step "s3 sync a nested tree up and back down"
SRC="$WORK/tree-src"
DST="$WORK/tree-dst"
mkdir -p "$SRC/d1/sub" "$SRC/d2/deep/er" "$SRC/d3"
EXPECTED_KEYS="$WORK/expected-keys.txt"
: > "$EXPECTED_KEYS"
n=0
for rel in top1.txt top2.txt top3.bin \
           d1/a.txt d1/b.txt d1/c.bin "d1/with space.txt" \
           d1/sub/x.txt d1/sub/y.txt d1/sub/z.bin \
           d2/one.txt d2/two.txt d2/deep/three.txt d2/deep/four.bin \
           d2/deep/er/five.txt d2/deep/er/six.txt \
           d3/empty.txt d3/seven.txt d3/eight.bin d3/nine.txt; do
    n=$((n + 1))
    case "$rel" in
        d3/empty.txt) : > "$SRC/$rel" ;;
        *.bin) head -c $((n * 1531)) /dev/urandom > "$SRC/$rel" ;;
        *) printf 'file %d: %s\n' "$n" "$rel" > "$SRC/$rel" ;;
    esac
    echo "sync/$rel" >> "$EXPECTED_KEYS"
done
sort -o "$EXPECTED_KEYS" "$EXPECTED_KEYS"
# Old mtimes so the idempotence check below cannot be confused by
# second-granularity LastModified values.
find "$SRC" -type f -exec touch -d '2020-01-02 03:04:05' {} +
awsx s3 sync --only-show-errors "$SRC" "s3://$BUCKET/sync/"
ok "synced $n files up"

"$AWS_CLI" --endpoint-url "$ENDPOINT" s3 ls --recursive "s3://$BUCKET/sync/" > "$WORK/ls-sync.txt" \
    || fail "s3 ls --recursive failed"
ls_keys < "$WORK/ls-sync.txt" | sort > "$WORK/actual-keys.txt"
if ! diff -u "$EXPECTED_KEYS" "$WORK/actual-keys.txt"; then
    fail "s3 ls --recursive s3://$BUCKET/sync/ does not show exactly the synced keys"
fi
ok "s3 ls --recursive shows exactly the $n synced keys"

RESYNC=$("$AWS_CLI" --endpoint-url "$ENDPOINT" s3 sync "$SRC" "s3://$BUCKET/sync/") || fail "second sync failed"
[ -z "$RESYNC" ] || fail "second sync of an unchanged tree transferred files: $RESYNC"
ok "second sync of the unchanged tree is a no-op"

mkdir -p "$DST"
awsx s3 sync --only-show-errors "s3://$BUCKET/sync/" "$DST"
diff -r "$SRC" "$DST" || fail "tree synced back down differs from source (diff -r)"
ok "tree synced back down to a fresh dir is identical (diff -r)"

# ---------------------------------------------------------------------------
step "s3api list-objects-v2 with --prefix and --delimiter"
LIST=$(awsx s3api list-objects-v2 --bucket "$BUCKET" --prefix sync/ --delimiter /)
expect_eq "CommonPrefixes under sync/" \
    "$(pyq 'sorted(p["Prefix"] for p in d.get("CommonPrefixes") or [])' <<<"$LIST")" \
    '["sync/d1/", "sync/d2/", "sync/d3/"]'
expect_eq "Contents directly under sync/" \
    "$(pyq 'sorted(o["Key"] for o in d.get("Contents") or [])' <<<"$LIST")" \
    '["sync/top1.txt", "sync/top2.txt", "sync/top3.bin"]'
LIST2=$(awsx s3api list-objects-v2 --bucket "$BUCKET" --prefix sync/d2/ --delimiter /)
expect_eq "CommonPrefixes under sync/d2/" \
    "$(pyq 'sorted(p["Prefix"] for p in d.get("CommonPrefixes") or [])' <<<"$LIST2")" \
    '["sync/d2/deep/"]'
expect_eq "Contents directly under sync/d2/" \
    "$(pyq 'sorted(o["Key"] for o in d.get("Contents") or [])' <<<"$LIST2")" \
    '["sync/d2/one.txt", "sync/d2/two.txt"]'
LIST3=$(awsx s3api list-objects-v2 --bucket "$BUCKET" --delimiter /)
expect_eq "CommonPrefixes at bucket root" \
    "$(pyq 'sorted(p["Prefix"] for p in d.get("CommonPrefixes") or [])' <<<"$LIST3")" '["sync/"]'
expect_eq "Contents at bucket root" \
    "$(pyq 'sorted(o["Key"] for o in d.get("Contents") or [])' <<<"$LIST3")" \
    '["big.bin", "explicit.txt", "small.txt"]'

# ---------------------------------------------------------------------------
step "s3 ls shows expected keys"
"$AWS_CLI" --endpoint-url "$ENDPOINT" s3 ls "s3://$BUCKET/" > "$WORK/ls-root.txt" || fail "s3 ls bucket failed"
grep -qE '^ +PRE sync/$' "$WORK/ls-root.txt" || fail "s3 ls does not show 'PRE sync/': $(cat "$WORK/ls-root.txt")"
ok "s3 ls shows PRE sync/"
expect_eq "s3 ls object keys at root" "$(ls_keys < "$WORK/ls-root.txt" | sort | tr '\n' ' ')" \
    "big.bin explicit.txt small.txt "
grep -qE " $BIG_SIZE big.bin\$" "$WORK/ls-root.txt" || fail "s3 ls does not show size $BIG_SIZE for big.bin"
ok "s3 ls shows big.bin with size $BIG_SIZE"

# ---------------------------------------------------------------------------
step "s3 rm --recursive"
awsx s3 rm --recursive --only-show-errors "s3://$BUCKET/"
LEFT=$(awsx s3api list-objects-v2 --bucket "$BUCKET")
expect_eq "objects left after rm --recursive" "$(pyq 'len(d.get("Contents") or [])' <<<"$LEFT")" "0"

# ---------------------------------------------------------------------------
step "s3 rb"
awsx s3 rb "s3://$BUCKET"
if "$AWS_CLI" --endpoint-url "$ENDPOINT" s3api head-bucket --bucket "$BUCKET" >/dev/null 2>&1; then
    fail "bucket $BUCKET still exists after s3 rb"
fi
ok "head-bucket fails after s3 rb"

echo "awscli smoke: PASS ($CHECKS checks)"
