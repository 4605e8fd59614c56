#!/usr/bin/env python3
"""SigV2 smoke test against a Coffer endpoint started with --allow-sigv2.

Usage: scripts/ci/sigv2_smoke.py <endpoint-url>

boto3 with signature_version='s3' (botocore's HmacV1Auth) creates a bucket, puts,
gets, lists and deletes, and fetches a presigned list. Then the replay: a request
botocore signed with a Date from 2019 must be refused (403 RequestTimeTooSkewed),
while the same request signed now is served; a presigned URL valid for 30 days
and an expired one must be refused. Credentials come from AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY. Any failure prints a traceback and exits 1.
"""

import os
import signal
import sys
import time
import traceback
import urllib.error
import urllib.request

import boto3
from botocore.auth import HmacV1Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

CHECKS = 0


def ok(msg):
    global CHECKS
    CHECKS += 1
    print(f"   ok: {msg}", flush=True)


def step(msg):
    print(f"== [sigv2] {msg}", flush=True)


def fetch(url, headers=None):
    """(status, body) of a GET, error statuses included."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def code_of(body):
    text = body.decode("utf-8", "replace")
    if "<Code>" not in text:
        return None
    return text.split("<Code>", 1)[1].split("</Code>", 1)[0]


def signed_get(endpoint, path, date=None):
    """Headers botocore's SigV2 signer (HmacV1Auth) gives a GET of `path`, with its Date
    forced to `date` when given (a request captured then)."""
    creds = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    auth = HmacV1Auth(creds)
    if date is not None:
        auth._get_date = lambda: date
    req = AWSRequest(method="GET", url=endpoint + path)
    auth.add_auth(req)
    return dict(req.headers.items())


def run(endpoint):
    v2 = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        config=Config(signature_version="s3", s3={"addressing_style": "path"},
                      retries={"total_max_attempts": 1}),
    )
    bucket = f"sigv2-smoke-{int(time.time())}-{os.getpid()}"
    print(f"sigv2 smoke: endpoint={endpoint} bucket={bucket} (boto3 {boto3.__version__})",
          flush=True)

    step("signature_version='s3': bucket and object requests, presigned list")
    v2.create_bucket(Bucket=bucket)
    v2.head_bucket(Bucket=bucket)
    v2.put_object(Bucket=bucket, Key="v2.txt", Body=b"signed the old way")
    listed = [o["Key"] for o in v2.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert listed == ["v2.txt"], f"SigV2 list_objects_v2 {listed}"
    assert v2.get_object(Bucket=bucket, Key="v2.txt")["Body"].read() == b"signed the old way"
    url = v2.generate_presigned_url("list_objects", Params={"Bucket": bucket}, ExpiresIn=300)
    status, body = fetch(url)
    assert status == 200 and b"v2.txt" in body, f"SigV2 presigned list: {status} {body[:300]}"
    ok("SigV2 create/head bucket, put/get/list, presigned list")

    step("replay of a SigV2 request signed in 2019")
    path = f"/{bucket}/v2.txt"
    status, body = fetch(endpoint + path, signed_get(endpoint, path))
    assert status == 200 and body == b"signed the old way", \
        f"the same request signed now: {status} {body[:300]}"
    status, body = fetch(endpoint + path,
                         signed_get(endpoint, path, "Mon, 01 Jul 2019 00:00:00 GMT"))
    assert (status, code_of(body)) == (403, "RequestTimeTooSkewed"), \
        f"replayed 2019 request: {status} {body[:300]}"
    assert b"signed the old way" not in body
    ok("SigV2 replay (Date: Mon, 01 Jul 2019) refused: 403 RequestTimeTooSkewed")

    step("SigV2 presigned URLs are bounded in time")
    url = v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "v2.txt"},
                                    ExpiresIn=30 * 86400)
    status, body = fetch(url)
    assert (status, code_of(body)) == (400, "AuthorizationQueryParametersError"), \
        f"30-day presigned URL: {status} {body[:300]}"
    url = v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "v2.txt"},
                                    ExpiresIn=1)
    time.sleep(2.5)
    status, body = fetch(url)
    assert (status, code_of(body)) == (403, "AccessDenied"), \
        f"expired presigned URL: {status} {body[:300]}"
    ok("30-day presigned URL refused (400), expired one refused (403)")

    v2.delete_object(Bucket=bucket, Key="v2.txt")
    v2.delete_bucket(Bucket=bucket)
    ok("SigV2 delete object and bucket")


def main():
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} <endpoint-url>", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        run(sys.argv[1])
    except Exception:  # AssertionError and anything unexpected
        traceback.print_exc()
        print(f"sigv2 smoke: FAIL (after {CHECKS} passing checks)", file=sys.stderr)
        return 1
    print(f"sigv2 smoke: PASS ({CHECKS} checks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
