#!/usr/bin/env python3
"""boto3 test of SSE-KMS, DSSE-KMS and S3 Bucket Keys (issue 8) against a running Coffer endpoint.

Usage: scripts/ci/boto3_sse_kms.py <endpoint-url>

Objects go under keys of Coffer's built-in KMS, managed with a boto3 "kms" client on the same
endpoint: every way of naming a key, the AWS managed key aws/s3, encryption contexts, multipart
(upload_fileobj with a TransferConfig that forces it, and by hand), bucket default encryption
with a Bucket Key, DSSE-KMS, copy_object between modes, and key states (disabled, pending
deletion, cancelled, enabled again) as S3 clients see them.

S3 refuses SSE-KMS requests over plain HTTP, and so does Coffer unless it runs with
--allow-insecure-http: use an https:// endpoint (certificates are not verified: the point is a
real client over TLS to a --tls-self-signed server) or a plain-HTTP server that allows it.

Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; the region is us-east-1. Every
check is a plain assert with a message and prints what it checked; any failure (or any unexpected
exception) prints a traceback and exits 1.
"""

import base64
import hashlib
import io
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

MIB = 1024 * 1024
CHECKS = 0


def ok(msg):
    global CHECKS
    CHECKS += 1
    print(f"   ok: {msg}", flush=True)


def step(msg):
    print(f"== [boto3 sse-kms] {msg}", flush=True)


def eq(what, actual, expected):
    assert actual == expected, f"{what}: expected {expected!r}, got {actual!r}"
    ok(f"{what} == {expected!r}")


def status(resp):
    return resp["ResponseMetadata"]["HTTPStatusCode"]


def header(resp, name):
    return resp["ResponseMetadata"]["HTTPHeaders"].get(name.lower())


def expect_error(what, code, http_status, call, *args, **kwargs):
    """`call` must raise a ClientError with this error code and HTTP status."""
    try:
        call(*args, **kwargs)
    except ClientError as e:
        got_code = e.response.get("Error", {}).get("Code")
        got_status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        assert (got_code, got_status) == (code, http_status), \
            f"{what}: expected {code} (HTTP {http_status}), got {got_code} (HTTP {got_status}): " \
            f"{e.response.get('Error', {}).get('Message')}"
        ok(f"{what} fails with {code} (HTTP {http_status})")
        return e
    raise AssertionError(f"{what} succeeded; expected {code} (HTTP {http_status})")


def context_of(b64):
    """Decodes an x-amz-server-side-encryption-context value (base64 JSON)."""
    assert b64, "no encryption context returned"
    return json.loads(base64.b64decode(b64))


def run(endpoint, work):
    verify = None
    if endpoint.startswith("https://"):
        verify = False
        # urllib3 warns on every unverified request; the choice is deliberate here.
        warnings.filterwarnings("ignore", message="Unverified HTTPS request")
    common = dict(
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        verify=verify,
    )
    s3 = boto3.client("s3", config=Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        # One attempt: a refused request must show its own error, not a retry's.
        retries={"max_attempts": 1},
        connect_timeout=10,
        read_timeout=120,
    ), **common)
    kms = boto3.client("kms", config=Config(retries={"max_attempts": 1}), **common)

    suffix = f"{int(time.time())}-{os.getpid()}"
    bucket = f"boto3-sse-kms-{suffix}"
    default_bucket = f"boto3-sse-kms-default-{suffix}"
    alias = f"alias/boto3-sse-kms-{suffix}"
    print(f"boto3 sse-kms: endpoint={endpoint} bucket={bucket} "
          f"(boto3 {boto3.__version__})", flush=True)

    # ------------------------------------------------------------------
    step("kms create_key x2, create_alias; create_bucket")
    meta = kms.create_key(Description="boto3 sse-kms A")["KeyMetadata"]
    key_id, key_arn = meta["KeyId"], meta["Arn"]
    meta_b = kms.create_key(Description="boto3 sse-kms B")["KeyMetadata"]
    key_b_id, key_b_arn = meta_b["KeyId"], meta_b["Arn"]
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    alias_arn = key_arn.replace(f":key/{key_id}", f":{alias}")
    print(f"   key A {key_arn} ({alias}), key B {key_b_arn}", flush=True)
    eq("describe_key(alias) Arn", kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"], key_arn)
    for name in (bucket, default_bucket):
        s3.create_bucket(Bucket=name)
    ok(f"buckets {bucket} and {default_bucket} created")

    # ------------------------------------------------------------------
    step("put_object SSE-KMS naming the key by id, ARN, alias and alias ARN")
    body = os.urandom(100_000)
    for n, name in enumerate((key_id, key_arn, alias, alias_arn)):
        key = f"named-{n}"
        put = s3.put_object(Bucket=bucket, Key=key, Body=body,
                            ServerSideEncryption="aws:kms", SSEKMSKeyId=name)
        eq(f"put_object (SSEKMSKeyId={name}) ServerSideEncryption",
           put.get("ServerSideEncryption"), "aws:kms")
        eq(f"put_object (SSEKMSKeyId={name}) SSEKMSKeyId", put.get("SSEKMSKeyId"), key_arn)
        assert put["ETag"].strip('"') != hashlib.md5(body).hexdigest(), \
            "the ETag of an SSE-KMS object is the MD5 of its plaintext (S3's is not)"
        got = s3.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == body, f"get_object {key}: body differs"
        eq(f"get_object {key} SSEKMSKeyId", got.get("SSEKMSKeyId"), key_arn)
        head = s3.head_object(Bucket=bucket, Key=key)
        eq(f"head_object {key} ServerSideEncryption", head.get("ServerSideEncryption"), "aws:kms")
        eq(f"head_object {key} ETag", head["ETag"], put["ETag"])
    ok("ETags are not the MD5 of the plaintext; every object reads back byte-exact")
    rng = s3.get_object(Bucket=bucket, Key="named-0", Range="bytes=65530-65545")
    eq("ranged get_object status", status(rng), 206)
    assert rng["Body"].read() == body[65530:65546], "ranged get_object bytes differ"
    ok("bytes 65530-65545 (across a 64 KiB boundary) read back byte-exact")

    # ------------------------------------------------------------------
    step("put_object SSE-KMS without a key id: the AWS managed key aws/s3")
    put = s3.put_object(Bucket=bucket, Key="managed", Body=b"under aws/s3",
                        ServerSideEncryption="aws:kms")
    managed = kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]
    eq("put_object (no key id) SSEKMSKeyId", put.get("SSEKMSKeyId"), managed["Arn"])
    eq("alias/aws/s3 KeyManager", managed.get("KeyManager"), "AWS")
    aliases = [a["AliasName"] for a in kms.list_aliases()["Aliases"]]
    assert "alias/aws/s3" in aliases, f"alias/aws/s3 not in list_aliases: {aliases}"
    ok("list_aliases includes alias/aws/s3")
    eq("get_object managed", s3.get_object(Bucket=bucket, Key="managed")["Body"].read(),
       b"under aws/s3")
    expect_error("kms.encrypt under alias/aws/s3 (only S3 may use it)", "AccessDeniedException",
                 400, kms.encrypt, KeyId="alias/aws/s3", Plaintext=b"x")

    # ------------------------------------------------------------------
    step("SSEKMSEncryptionContext: merged with aws:s3:arn, returned, validated")
    ctx = base64.b64encode(json.dumps({"department": "billing"}).encode()).decode()
    put = s3.put_object(Bucket=bucket, Key="invoices/1", Body=b"invoice",
                        ServerSideEncryption="aws:kms", SSEKMSKeyId=alias,
                        SSEKMSEncryptionContext=ctx)
    returned = context_of(put.get("SSEKMSEncryptionContext"))
    eq("put_object context", returned,
       {"department": "billing", "aws:s3:arn": f"arn:aws:s3:::{bucket}/invoices/1"})
    # Coffer returns the context on GET and HEAD as well (issue 8 point 3); botocore's model
    # has no field for it there, so it is read from the raw headers.
    head = s3.head_object(Bucket=bucket, Key="invoices/1")
    eq("head_object x-amz-server-side-encryption-context",
       context_of(header(head, "x-amz-server-side-encryption-context")), returned)
    got = s3.get_object(Bucket=bucket, Key="invoices/1")
    eq("get_object body", got["Body"].read(), b"invoice")
    eq("get_object x-amz-server-side-encryption-context",
       context_of(header(got, "x-amz-server-side-encryption-context")), returned)
    for what, bad in [
        ("not base64", "not base64!"),
        ("a JSON array", base64.b64encode(b"[1]").decode()),
        ("a non-string value", base64.b64encode(b'{"a":1}').decode()),
        ("another object's aws:s3:arn",
         base64.b64encode(b'{"aws:s3:arn":"arn:aws:s3:::other/key"}').decode()),
    ]:
        expect_error(f"put_object with a context that is {what}", "InvalidArgument", 400,
                     s3.put_object, Bucket=bucket, Key="bad-context", Body=b"no",
                     ServerSideEncryption="aws:kms", SSEKMSEncryptionContext=bad)
    expect_error("head_object of the refused object", "404", 404,
                 s3.head_object, Bucket=bucket, Key="bad-context")

    # ------------------------------------------------------------------
    step("multipart under SSE-KMS: upload_fileobj with a TransferConfig forcing multipart")
    big = os.urandom(16 * MIB + 3)
    big_path = os.path.join(work, "big.bin")
    with open(big_path, "wb") as f:
        f.write(big)
    forced = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB,
                            max_concurrency=4)
    with open(big_path, "rb") as f:
        s3.upload_fileobj(f, bucket, "multipart.bin", Config=forced, ExtraArgs={
            "ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key_id,
            "SSEKMSEncryptionContext": ctx,
        })
    head = s3.head_object(Bucket=bucket, Key="multipart.bin")
    eq("multipart.bin ServerSideEncryption", head.get("ServerSideEncryption"), "aws:kms")
    eq("multipart.bin SSEKMSKeyId", head.get("SSEKMSKeyId"), key_arn)
    eq("multipart.bin ContentLength", head["ContentLength"], len(big))
    assert head["ETag"].endswith('-4"'), f"multipart.bin ETag {head['ETag']} is not a 4-part ETag"
    ok(f"multipart.bin ETag {head['ETag']} shows a 4-part upload")
    eq("multipart.bin context (the parts inherit it)",
       context_of(header(head, "x-amz-server-side-encryption-context")),
       {"department": "billing", "aws:s3:arn": f"arn:aws:s3:::{bucket}/multipart.bin"})
    down = io.BytesIO()
    s3.download_fileobj(bucket, "multipart.bin", down, Config=forced)
    assert hashlib.sha256(down.getvalue()).hexdigest() == hashlib.sha256(big).hexdigest(), \
        "multipart.bin downloaded (ranged, in parallel) differs"
    ok("multipart.bin downloads (ranged GETs in parallel) byte-exact")
    by_part = s3.get_object(Bucket=bucket, Key="multipart.bin", PartNumber=2)
    assert by_part["Body"].read() == big[5 * MIB:10 * MIB], "get_object PartNumber=2 differs"
    ok("get_object PartNumber=2 is bytes 5-10 MiB")

    step("multipart by hand: every response says aws:kms and the key")
    mpu = s3.create_multipart_upload(Bucket=bucket, Key="by-hand", ServerSideEncryption="aws:kms",
                                     SSEKMSKeyId=key_b_id)
    eq("create_multipart_upload ServerSideEncryption", mpu.get("ServerSideEncryption"), "aws:kms")
    eq("create_multipart_upload SSEKMSKeyId", mpu.get("SSEKMSKeyId"), key_b_arn)
    upload_id = mpu["UploadId"]
    p1 = s3.upload_part(Bucket=bucket, Key="by-hand", UploadId=upload_id, PartNumber=1,
                        Body=big[:5 * MIB])
    eq("upload_part ServerSideEncryption", p1.get("ServerSideEncryption"), "aws:kms")
    eq("upload_part SSEKMSKeyId", p1.get("SSEKMSKeyId"), key_b_arn)
    # Part 2 copied from an object under key A (UploadPartCopy decrypts A, encrypts under B).
    p2 = s3.upload_part_copy(Bucket=bucket, Key="by-hand", UploadId=upload_id, PartNumber=2,
                             CopySource={"Bucket": bucket, "Key": "named-0"})
    eq("upload_part_copy ServerSideEncryption", p2.get("ServerSideEncryption"), "aws:kms")
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="by-hand", UploadId=upload_id,
        MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": p1["ETag"]},
            {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]},
        ]})
    eq("complete_multipart_upload ServerSideEncryption", done.get("ServerSideEncryption"),
       "aws:kms")
    eq("complete_multipart_upload SSEKMSKeyId", done.get("SSEKMSKeyId"), key_b_arn)
    assert s3.get_object(Bucket=bucket, Key="by-hand")["Body"].read() == big[:5 * MIB] + body, \
        "by-hand differs"
    ok("by-hand (a part uploaded + a part copied from under key A) reads back byte-exact")

    # ------------------------------------------------------------------
    step("put_bucket_encryption aws:kms + BucketKeyEnabled; writes without headers get it")
    eq("get_bucket_encryption before (SSE-S3, as S3 since 2023)",
       s3.get_bucket_encryption(Bucket=default_bucket)["ServerSideEncryptionConfiguration"]
       ["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"], "AES256")
    s3.put_bucket_encryption(Bucket=default_bucket, ServerSideEncryptionConfiguration={
        "Rules": [{
            "ApplyServerSideEncryptionByDefault": {
                "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn},
            "BucketKeyEnabled": True,
        }]})
    rule = s3.get_bucket_encryption(Bucket=default_bucket)[
        "ServerSideEncryptionConfiguration"]["Rules"][0]
    eq("get_bucket_encryption SSEAlgorithm",
       rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"], "aws:kms")
    eq("get_bucket_encryption KMSMasterKeyID",
       rule["ApplyServerSideEncryptionByDefault"].get("KMSMasterKeyID"), key_arn)
    eq("get_bucket_encryption BucketKeyEnabled", rule.get("BucketKeyEnabled"), True)
    for i in range(20):
        put = s3.put_object(Bucket=default_bucket, Key=f"bk/{i}", Body=f"object {i}".encode())
        assert put.get("ServerSideEncryption") == "aws:kms", put
        assert put.get("SSEKMSKeyId") == key_arn, put
        assert put.get("BucketKeyEnabled") is True, put
        # Under a Bucket Key the context names the bucket, not the object (as on S3).
        assert context_of(put.get("SSEKMSEncryptionContext")) == \
            {"aws:s3:arn": f"arn:aws:s3:::{default_bucket}"}, put.get("SSEKMSEncryptionContext")
    ok("20 put_object without encryption headers: aws:kms, the key, BucketKeyEnabled, "
       "context aws:s3:arn = the bucket's ARN")
    for i in range(20):
        got = s3.get_object(Bucket=default_bucket, Key=f"bk/{i}")
        assert got["Body"].read() == f"object {i}".encode(), f"bk/{i} differs"
        assert got.get("BucketKeyEnabled") is True, f"get_object bk/{i}: {got.get('BucketKeyEnabled')}"
    ok("all 20 read back byte-exact, get_object says BucketKeyEnabled")
    eq("head_object bk/0 BucketKeyEnabled",
       s3.head_object(Bucket=default_bucket, Key="bk/0").get("BucketKeyEnabled"), True)
    with open(big_path, "rb") as f:
        s3.upload_fileobj(f, default_bucket, "bk-multipart.bin", Config=forced)
    head = s3.head_object(Bucket=default_bucket, Key="bk-multipart.bin")
    eq("multipart upload without headers: ServerSideEncryption",
       head.get("ServerSideEncryption"), "aws:kms")
    eq("multipart upload without headers: BucketKeyEnabled", head.get("BucketKeyEnabled"), True)
    put = s3.put_object(Bucket=default_bucket, Key="explicit-s3", Body=b"e",
                        ServerSideEncryption="AES256")
    eq("an explicit AES256 still wins over the default", put.get("ServerSideEncryption"), "AES256")
    put = s3.put_object(Bucket=default_bucket, Key="no-bucket-key", Body=b"n",
                        ServerSideEncryption="aws:kms", SSEKMSKeyId=key_b_id,
                        BucketKeyEnabled=False)
    eq("explicit BucketKeyEnabled=False: SSEKMSKeyId", put.get("SSEKMSKeyId"), key_b_arn)
    assert not put.get("BucketKeyEnabled"), f"BucketKeyEnabled {put.get('BucketKeyEnabled')}"
    ok("explicit BucketKeyEnabled=False is obeyed")
    put = s3.put_object(Bucket=bucket, Key="object-bucket-key", Body=b"o",
                        ServerSideEncryption="aws:kms", SSEKMSKeyId=key_id,
                        BucketKeyEnabled=True)
    eq("BucketKeyEnabled=True on one object in a bucket without a default",
       put.get("BucketKeyEnabled"), True)
    s3.delete_bucket_encryption(Bucket=default_bucket)
    put = s3.put_object(Bucket=default_bucket, Key="after-delete", Body=b"f")
    eq("after delete_bucket_encryption: ServerSideEncryption", put.get("ServerSideEncryption"),
       "AES256")

    # ------------------------------------------------------------------
    step("DSSE-KMS: put_object aws:kms:dsse")
    put = s3.put_object(Bucket=bucket, Key="dsse", Body=body,
                        ServerSideEncryption="aws:kms:dsse", SSEKMSKeyId=key_id)
    eq("put_object ServerSideEncryption", put.get("ServerSideEncryption"), "aws:kms:dsse")
    eq("put_object SSEKMSKeyId", put.get("SSEKMSKeyId"), key_arn)
    got = s3.get_object(Bucket=bucket, Key="dsse")
    eq("get_object ServerSideEncryption", got.get("ServerSideEncryption"), "aws:kms:dsse")
    assert got["Body"].read() == body, "dsse differs"
    ok("dsse reads back byte-exact")
    eq("head_object ServerSideEncryption",
       s3.head_object(Bucket=bucket, Key="dsse").get("ServerSideEncryption"), "aws:kms:dsse")

    # ------------------------------------------------------------------
    step("copy_object between modes: SSE-S3 -> KMS key A -> KMS key B -> DSSE -> SSE-S3")
    s3.put_object(Bucket=bucket, Key="copy-0", Body=body, ServerSideEncryption="AES256")
    chain = [
        ("copy-1", {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": alias}, "aws:kms", key_arn),
        ("copy-2", {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key_b_arn}, "aws:kms",
         key_b_arn),
        ("copy-3", {"ServerSideEncryption": "aws:kms:dsse", "SSEKMSKeyId": key_id},
         "aws:kms:dsse", key_arn),
        ("copy-4", {"ServerSideEncryption": "AES256"}, "AES256", None),
    ]
    src = "copy-0"
    for dst, args, mode, arn in chain:
        out = s3.copy_object(Bucket=bucket, Key=dst, CopySource={"Bucket": bucket, "Key": src},
                             **args)
        eq(f"copy_object {src} -> {dst} ServerSideEncryption", out.get("ServerSideEncryption"),
           mode)
        eq(f"copy_object {src} -> {dst} SSEKMSKeyId", out.get("SSEKMSKeyId"), arn)
        got = s3.get_object(Bucket=bucket, Key=dst)
        assert got["Body"].read() == body, f"{dst} differs"
        eq(f"get_object {dst} SSEKMSKeyId", got.get("SSEKMSKeyId"), arn)
        src = dst
    ok("every copy reads back byte-exact")

    # ------------------------------------------------------------------
    step("disable_key: GET and PUT under the key refused, HEAD answers; enable_key")
    kms.disable_key(KeyId=key_id)
    expect_error("get_object named-0 (key A disabled)", "KMS.DisabledException", 400,
                 s3.get_object, Bucket=bucket, Key="named-0")
    expect_error("get_object dsse (key A disabled)", "KMS.DisabledException", 400,
                 s3.get_object, Bucket=bucket, Key="dsse")
    expect_error("put_object under key A (disabled)", "KMS.DisabledException", 400,
                 s3.put_object, Bucket=bucket, Key="refused", Body=b"x",
                 ServerSideEncryption="aws:kms", SSEKMSKeyId=key_id)
    expect_error("copy_object to key A (disabled)", "KMS.DisabledException", 400,
                 s3.copy_object, Bucket=bucket, Key="refused",
                 CopySource={"Bucket": bucket, "Key": "copy-0"},
                 ServerSideEncryption="aws:kms", SSEKMSKeyId=key_id)
    expect_error("head_object refused (nothing was stored)", "404", 404,
                 s3.head_object, Bucket=bucket, Key="refused")
    # HEAD makes no KMS call (as on S3).
    head = s3.head_object(Bucket=bucket, Key="named-0")
    eq("head_object named-0 under a disabled key: SSEKMSKeyId", head.get("SSEKMSKeyId"), key_arn)
    assert s3.get_object(Bucket=bucket, Key="copy-2")["Body"].read() == body, "copy-2 differs"
    ok("an object under key B still reads")
    kms.enable_key(KeyId=key_id)
    assert s3.get_object(Bucket=bucket, Key="named-0")["Body"].read() == body, "named-0 differs"
    ok("after enable_key named-0 reads back byte-exact")

    # ------------------------------------------------------------------
    step("schedule_key_deletion: KMS.KMSInvalidStateException; cancel + enable_key: reads again")
    sched = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    eq("schedule_key_deletion KeyState", sched.get("KeyState"), "PendingDeletion")
    expect_error("get_object named-1 (key A pending deletion)", "KMS.KMSInvalidStateException",
                 400, s3.get_object, Bucket=bucket, Key="named-1")
    expect_error("get_object multipart.bin (key A pending deletion)",
                 "KMS.KMSInvalidStateException", 400,
                 s3.get_object, Bucket=bucket, Key="multipart.bin")
    expect_error("put_object under key A (pending deletion)", "KMS.KMSInvalidStateException",
                 400, s3.put_object, Bucket=bucket, Key="refused", Body=b"x",
                 ServerSideEncryption="aws:kms", SSEKMSKeyId=alias)
    eq("head_object named-1 under a key pending deletion: SSEKMSKeyId",
       s3.head_object(Bucket=bucket, Key="named-1").get("SSEKMSKeyId"), key_arn)
    kms.cancel_key_deletion(KeyId=key_id)
    # A cancelled deletion leaves the key Disabled (as in AWS KMS) until it is enabled.
    eq("KeyState after cancel_key_deletion",
       kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"], "Disabled")
    expect_error("get_object named-1 (cancelled, still disabled)", "KMS.DisabledException", 400,
                 s3.get_object, Bucket=bucket, Key="named-1")
    kms.enable_key(KeyId=key_id)
    assert s3.get_object(Bucket=bucket, Key="named-1")["Body"].read() == body, "named-1 differs"
    ok("after cancel_key_deletion + enable_key named-1 reads back byte-exact")
    down = io.BytesIO()
    s3.download_fileobj(bucket, "multipart.bin", down, Config=forced)
    assert down.getvalue() == big, "multipart.bin differs after enable_key"
    ok("and so does multipart.bin")


def main():
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} <endpoint-url>", file=sys.stderr)
        return 2
    # Turn SIGTERM (e.g. from `timeout`) into SystemExit so the temp dir is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = tempfile.mkdtemp(prefix="coffer-boto3-sse-kms.")
    try:
        run(sys.argv[1], work)
    except Exception:  # AssertionError and anything unexpected
        traceback.print_exc()
        print(f"boto3 sse-kms: FAIL (after {CHECKS} passing checks)", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"boto3 sse-kms: PASS ({CHECKS} checks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
