#!/usr/bin/env python3
"""boto3 smoke test against a running Coffer endpoint.

Usage: scripts/ci/boto3_smoke.py <endpoint-url>

Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; the region is
us-east-1. Every check is a plain assert with a message; any failure (or any
unexpected exception) prints a traceback and exits 1.
"""

import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

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
    print(f"== [boto3] {msg}", flush=True)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MIB), b""):
            h.update(chunk)
    return h.hexdigest()


def status(resp):
    return resp["ResponseMetadata"]["HTTPStatusCode"]


def header(resp, name):
    return resp["ResponseMetadata"]["HTTPHeaders"].get(name.lower())


def run(endpoint, work):
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10,
            read_timeout=120,
        ),
    )
    bucket = f"boto3-smoke-{int(time.time())}-{os.getpid()}"
    print(f"boto3 smoke: endpoint={endpoint} bucket={bucket} "
          f"(boto3 {boto3.__version__})", flush=True)

    # ------------------------------------------------------------------
    step("create_bucket")
    resp = s3.create_bucket(Bucket=bucket)
    assert status(resp) == 200, f"create_bucket status {status(resp)}"
    s3.head_bucket(Bucket=bucket)
    ok(f"bucket {bucket} created and head_bucket succeeds")
    names = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    assert bucket in names, f"list_buckets {names} lacks {bucket}"
    ok("list_buckets includes the new bucket")

    # ------------------------------------------------------------------
    step("put_object with Metadata and ContentType")
    key = "docs/hello.txt"
    data = b"Hello, Coffer! 0123456789 abcdefghijklmnopqrstuvwxyz\n"
    metadata = {"color": "blue", "owner": "ci-smoke"}
    ctype = "text/plain; charset=utf-8"
    put = s3.put_object(Bucket=bucket, Key=key, Body=data,
                        Metadata=metadata, ContentType=ctype)
    assert put.get("ServerSideEncryption") == "AES256", \
        f"put_object ServerSideEncryption={put.get('ServerSideEncryption')!r}"
    ok("put_object response has ServerSideEncryption=AES256")
    md5 = hashlib.md5(data).hexdigest()
    assert put["ETag"].strip('"') == md5, \
        f"put_object ETag {put['ETag']} != MD5 of plaintext {md5}"
    ok(f"put_object ETag is the MD5 of the plaintext ({md5})")

    # ------------------------------------------------------------------
    step("get_object")
    got = s3.get_object(Bucket=bucket, Key=key)
    body = got["Body"].read()
    assert body == data, f"get_object body {body!r} != {data!r}"
    ok(f"get_object body matches ({len(data)} bytes)")
    assert got.get("Metadata") == metadata, \
        f"get_object Metadata {got.get('Metadata')} != {metadata}"
    ok(f"get_object Metadata == {metadata}")
    assert got.get("ContentType") == ctype, \
        f"get_object ContentType {got.get('ContentType')!r} != {ctype!r}"
    ok(f"get_object ContentType == {ctype!r}")
    assert got.get("ServerSideEncryption") == "AES256", \
        f"get_object ServerSideEncryption={got.get('ServerSideEncryption')!r}"
    ok("get_object ServerSideEncryption == AES256")
    assert got.get("ContentLength") == len(data), \
        f"get_object ContentLength {got.get('ContentLength')} != {len(data)}"
    ok("get_object ContentLength matches")

    # ------------------------------------------------------------------
    step("head_object")
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head.get("ContentLength") == len(data), \
        f"head_object ContentLength {head.get('ContentLength')} != {len(data)}"
    assert head.get("Metadata") == metadata, \
        f"head_object Metadata {head.get('Metadata')} != {metadata}"
    assert head.get("ContentType") == ctype, \
        f"head_object ContentType {head.get('ContentType')!r} != {ctype!r}"
    assert head.get("ServerSideEncryption") == "AES256", \
        f"head_object ServerSideEncryption={head.get('ServerSideEncryption')!r}"
    assert head.get("ETag") == put["ETag"], \
        f"head_object ETag {head.get('ETag')} != put ETag {put['ETag']}"
    assert head.get("LastModified") is not None, "head_object has no LastModified"
    ok("head_object ContentLength, Metadata, ContentType, SSE=AES256, ETag all match")

    # ------------------------------------------------------------------
    step("copy_object")
    copy = s3.copy_object(Bucket=bucket, Key="docs/hello-copy.txt",
                          CopySource={"Bucket": bucket, "Key": key})
    assert copy.get("ServerSideEncryption") == "AES256", \
        f"copy_object ServerSideEncryption={copy.get('ServerSideEncryption')!r}"
    assert copy.get("CopyObjectResult", {}).get("ETag"), \
        f"copy_object has no CopyObjectResult.ETag: {copy}"
    ok("copy_object response has ServerSideEncryption=AES256 and an ETag")
    cgot = s3.get_object(Bucket=bucket, Key="docs/hello-copy.txt")
    cbody = cgot["Body"].read()
    assert cbody == data, f"copied body {cbody!r} != {data!r}"
    assert cgot.get("Metadata") == metadata, \
        f"copy did not keep Metadata: {cgot.get('Metadata')}"
    assert cgot.get("ServerSideEncryption") == "AES256", \
        f"copied object ServerSideEncryption={cgot.get('ServerSideEncryption')!r}"
    ok("copied object has the same body and Metadata, SSE=AES256")

    # ------------------------------------------------------------------
    step("list_objects_v2 pagination (MaxKeys=2 over 5 keys)")
    page_keys = [f"page/key-{i}" for i in range(5)]
    for i, k in enumerate(page_keys):
        s3.put_object(Bucket=bucket, Key=k, Body=f"page {i}\n".encode())
    seen, sizes, truncs = [], [], []
    kwargs = {"Bucket": bucket, "Prefix": "page/", "MaxKeys": 2}
    for _ in range(10):
        page = s3.list_objects_v2(**kwargs)
        contents = page.get("Contents", [])
        assert len(contents) <= 2, f"page has {len(contents)} keys > MaxKeys=2"
        assert page.get("KeyCount") == len(contents), \
            f"KeyCount {page.get('KeyCount')} != {len(contents)} entries"
        seen += [o["Key"] for o in contents]
        sizes.append(len(contents))
        truncs.append(page.get("IsTruncated"))
        if not page.get("IsTruncated"):
            break
        token = page.get("NextContinuationToken")
        assert token, "IsTruncated but no NextContinuationToken"
        kwargs["ContinuationToken"] = token
    assert seen == page_keys, f"paginated keys {seen} != {page_keys}"
    assert sizes == [2, 2, 1], f"page sizes {sizes} != [2, 2, 1]"
    assert truncs == [True, True, False], f"IsTruncated sequence {truncs}"
    ok(f"3 pages of sizes {sizes} via ContinuationToken returned all 5 keys in order")

    # ------------------------------------------------------------------
    step("ranged get_object (bytes=2-5)")
    rng = s3.get_object(Bucket=bucket, Key=key, Range="bytes=2-5")
    rbody = rng["Body"].read()
    assert status(rng) == 206, f"ranged get status {status(rng)} != 206"
    assert rbody == data[2:6], f"ranged body {rbody!r} != {data[2:6]!r}"
    assert rng.get("ContentRange") == f"bytes 2-5/{len(data)}", \
        f"ContentRange {rng.get('ContentRange')!r}"
    assert rng.get("ContentLength") == 4, f"ranged ContentLength {rng.get('ContentLength')}"
    ok(f"206 with body {rbody!r} and Content-Range bytes 2-5/{len(data)}")

    # ------------------------------------------------------------------
    step("presigned GET url")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    with urllib.request.urlopen(url, timeout=30) as r:
        pbody = r.read()
        pstatus = r.status
        psse = r.headers.get("x-amz-server-side-encryption")
    assert pstatus == 200, f"presigned GET status {pstatus}"
    assert pbody == data, f"presigned GET body {pbody!r} != {data!r}"
    assert psse == "AES256", f"presigned GET x-amz-server-side-encryption={psse!r}"
    ok("presigned GET (urllib) returns the object, SSE=AES256")

    # A tampered signature must be refused.
    parts = urllib.parse.urlsplit(url)
    q = urllib.parse.parse_qsl(parts.query)
    q = [(k, ("0" * len(v) if k == "X-Amz-Signature" else v)) for k, v in q]
    bad = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(q)))
    try:
        urllib.request.urlopen(bad, timeout=30).read()
        raise AssertionError("presigned GET with a zeroed signature was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 403, f"tampered presigned GET got {e.code}, want 403"
    ok("presigned GET with a tampered signature is refused with 403")

    # ------------------------------------------------------------------
    step("presigned PUT url")
    pkey = "presigned/put.bin"
    payload = os.urandom(64 * 1024) + b"presigned-put-tail"
    purl = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": pkey}, ExpiresIn=300)
    # Content-Type is not signed (only host is); set it so urllib does not
    # send its default application/x-www-form-urlencoded.
    req = urllib.request.Request(purl, data=payload, method="PUT",
                                 headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 200, f"presigned PUT status {r.status}"
        psse = r.headers.get("x-amz-server-side-encryption")
    assert psse == "AES256", f"presigned PUT x-amz-server-side-encryption={psse!r}"
    ok(f"presigned PUT (urllib) of {len(payload)} bytes accepted, SSE=AES256")
    back = s3.get_object(Bucket=bucket, Key=pkey)
    bbody = back["Body"].read()
    assert bbody == payload, "object uploaded via presigned PUT reads back differently"
    assert back.get("ServerSideEncryption") == "AES256", \
        f"presigned-PUT object SSE={back.get('ServerSideEncryption')!r}"
    ok("object uploaded via presigned PUT reads back byte-exact")

    # ------------------------------------------------------------------
    step("upload_file 20 MiB multipart (threshold 5 MiB) and download_file")
    src = os.path.join(work, "big-src.bin")
    dst = os.path.join(work, "big-dst.bin")
    big_size = 20 * MIB + 4321  # last part is short
    with open(src, "wb") as f:
        f.write(os.urandom(big_size))
    tcfg = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB,
                          max_concurrency=4)
    bkey = "multipart/big.bin"
    t0 = time.time()
    s3.upload_file(src, bucket, bkey, Config=tcfg)
    t1 = time.time()
    bhead = s3.head_object(Bucket=bucket, Key=bkey)
    assert bhead.get("ContentLength") == big_size, \
        f"multipart ContentLength {bhead.get('ContentLength')} != {big_size}"
    assert bhead.get("ServerSideEncryption") == "AES256", \
        f"multipart object SSE={bhead.get('ServerSideEncryption')!r}"
    nparts = -(-big_size // (5 * MIB))
    assert bhead["ETag"].strip('"').endswith(f"-{nparts}"), \
        f"multipart ETag {bhead['ETag']} does not end in -{nparts}"
    ok(f"head_object: {big_size} bytes, SSE=AES256, ETag {bhead['ETag']} ({nparts} parts)")
    s3.download_file(bucket, bkey, dst, Config=tcfg)
    t2 = time.time()
    print(f"   (upload {t1 - t0:.1f} s, download {t2 - t1:.1f} s)", flush=True)
    assert os.path.getsize(dst) == big_size, \
        f"downloaded size {os.path.getsize(dst)} != {big_size}"
    assert sha256_file(dst) == sha256_file(src), "downloaded file sha256 differs"
    ok("download_file result is byte-exact (sha256)")

    # ------------------------------------------------------------------
    step("upload_file of empty and non-empty files over one kept-alive connection")
    # s3transfer sends `Expect: 100-continue`; an empty body gets no `100 Continue`, and botocore
    # then misreads the next response on that connection unless the server closes it. With one
    # connection, one attempt and a 5 s read timeout, such a stall fails here.
    one = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      read_timeout=5, retries={"total_max_attempts": 1}, max_pool_connections=1),
    )
    serial = TransferConfig(use_threads=False)
    sizes = [0, 5, 0, 0, 7, 0, 3]
    for i, n in enumerate(sizes):
        path = os.path.join(work, f"small-{i}.bin")
        with open(path, "wb") as f:
            f.write(b"z" * n)
        one.upload_file(path, bucket, f"small/{i}", Config=serial)
    got = [one.head_object(Bucket=bucket, Key=f"small/{i}")["ContentLength"]
           for i in range(len(sizes))]
    assert got == sizes, f"sizes {got} != {sizes}"
    ok(f"{len(sizes)} uploads ({sizes.count(0)} empty) in a row, no read timeout, sizes {got}")
    one.delete_objects(Bucket=bucket, Delete={
        "Objects": [{"Key": f"small/{i}"} for i in range(len(sizes))], "Quiet": True})

    # ------------------------------------------------------------------
    step("SigV2 (signature_version='s3') is refused by default")
    # SigV2 works only on a server started with --allow-sigv2 (scripts/ci/sigv2_smoke.py).
    v2 = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        config=Config(signature_version="s3", s3={"addressing_style": "path"},
                      retries={"total_max_attempts": 1}),
    )
    for name, call in [
        ("list_objects_v2", lambda: v2.list_objects_v2(Bucket=bucket)),
        ("put_object", lambda: v2.put_object(Bucket=bucket, Key="v2.txt", Body=b"old")),
    ]:
        try:
            call()
            raise AssertionError(f"SigV2 {name} succeeded on a server without --allow-sigv2")
        except ClientError as e:
            got = (e.response["ResponseMetadata"]["HTTPStatusCode"],
                   e.response.get("Error", {}).get("Code"))
            assert got == (400, "InvalidRequest"), f"SigV2 {name}: {got}, want 400 InvalidRequest"
    url = v2.generate_presigned_url("list_objects", Params={"Bucket": bucket}, ExpiresIn=300)
    try:
        urllib.request.urlopen(url)
        raise AssertionError("a SigV2 presigned URL worked on a server without --allow-sigv2")
    except urllib.error.HTTPError as e:
        assert e.code == 400, f"SigV2 presigned list: HTTP {e.code}, want 400"
    ok("SigV2 header-signed and presigned requests refused: 400 InvalidRequest")

    # ------------------------------------------------------------------
    step("delete_objects")
    all_keys = []
    for pg in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        all_keys += [o["Key"] for o in pg.get("Contents", [])]
    expected = sorted([key, "docs/hello-copy.txt", pkey, bkey] + page_keys)
    assert sorted(all_keys) == expected, f"bucket holds {sorted(all_keys)}, want {expected}"
    ok(f"bucket lists exactly the {len(expected)} expected keys")
    dresp = s3.delete_objects(Bucket=bucket, Delete={
        "Objects": [{"Key": k} for k in all_keys], "Quiet": False})
    deleted = sorted(d["Key"] for d in dresp.get("Deleted", []))
    assert not dresp.get("Errors"), f"delete_objects errors: {dresp.get('Errors')}"
    assert deleted == expected, f"delete_objects Deleted {deleted} != {expected}"
    ok(f"delete_objects reports all {len(deleted)} keys deleted, no errors")
    left = s3.list_objects_v2(Bucket=bucket)
    assert left.get("KeyCount", 0) == 0 and not left.get("Contents"), \
        f"objects remain after delete_objects: {left.get('Contents')}"
    ok("bucket is empty afterwards")
    try:
        s3.head_object(Bucket=bucket, Key=key)
        raise AssertionError("head_object on a deleted key succeeded")
    except ClientError as e:
        code = e.response["ResponseMetadata"]["HTTPStatusCode"]
        assert code == 404, f"head_object on deleted key: HTTP {code}, want 404"
    ok("head_object on a deleted key gives 404")

    # ------------------------------------------------------------------
    step("iam: a user limited by its identity policy, changed on the running server")
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"max_attempts": 1}),
    )
    s3.put_object(Bucket=bucket, Key="iam/readable.txt", Body=b"for the reader")
    user = f"reader-{os.getpid()}"
    iam.create_user(UserName=user)
    read_only = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject",
             "Resource": f"arn:aws:s3:::{bucket}/iam/*"},
        ],
    }
    iam.put_user_policy(UserName=user, PolicyName="read", PolicyDocument=json.dumps(read_only))
    got = iam.get_user_policy(UserName=user, PolicyName="read")["PolicyDocument"]
    assert got == read_only, f"get_user_policy returned {got!r}"
    key = iam.create_access_key(UserName=user)["AccessKey"]
    reader = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      retries={"max_attempts": 1}),
    )
    body = reader.get_object(Bucket=bucket, Key="iam/readable.txt")["Body"].read()
    assert body == b"for the reader", body
    for call in (lambda: reader.put_object(Bucket=bucket, Key="iam/new", Body=b"x"),
                 lambda: reader.list_buckets()):
        try:
            call()
            raise AssertionError("a read-only user was allowed to write or list buckets")
        except ClientError as e:
            assert e.response["Error"]["Code"] == "AccessDenied", e.response["Error"]
    ok("the user reads what its policy allows and nothing else")
    names = [u["UserName"] for u in iam.list_users()["Users"]]
    assert user in names, names
    iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
    iam.delete_user_policy(UserName=user, PolicyName="read")
    iam.delete_user(UserName=user)
    try:
        reader.get_object(Bucket=bucket, Key="iam/readable.txt")
        raise AssertionError("a deleted access key still works")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "InvalidAccessKeyId", e.response["Error"]
    s3.delete_object(Bucket=bucket, Key="iam/readable.txt")
    ok("deleting the user's key, policy and user takes effect at once")

    # ------------------------------------------------------------------
    step("delete_bucket")
    dresp = s3.delete_bucket(Bucket=bucket)
    assert status(dresp) == 204, f"delete_bucket status {status(dresp)} != 204"
    try:
        s3.head_bucket(Bucket=bucket)
        raise AssertionError("head_bucket succeeded after delete_bucket")
    except ClientError as e:
        code = e.response["ResponseMetadata"]["HTTPStatusCode"]
        assert code == 404, f"head_bucket after delete: HTTP {code}, want 404"
    ok("bucket deleted; head_bucket gives 404")


def main():
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} <endpoint-url>", file=sys.stderr)
        return 2
    # Turn SIGTERM (e.g. from `timeout`) into SystemExit so the temp dir is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = tempfile.mkdtemp(prefix="coffer-boto3-smoke.")
    try:
        run(sys.argv[1], work)
    except Exception:  # AssertionError and anything unexpected
        traceback.print_exc()
        print(f"boto3 smoke: FAIL (after {CHECKS} passing checks)", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"boto3 smoke: PASS ({CHECKS} checks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
