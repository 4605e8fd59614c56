#!/usr/bin/env python3
"""boto3 test of SSE-C (issue 9) against a running Coffer endpoint, over HTTPS.

Usage: COFFER_CA_BUNDLE=<pem> scripts/ci/boto3_sse_c.py <https-endpoint-url>

- A new bucket blocks SSE-C (put_object with a customer key: 403 AccessDenied) until
  put_bucket_encryption sets BlockedEncryptionTypes NONE.
- put_object / get_object / head_object with SSECustomerAlgorithm + SSECustomerKey (boto3
  base64-encodes the raw key and adds its MD5 itself), a range, a multipart upload_fileobj and its
  parallel ranged download; without the key 400 InvalidRequest, with another 403 AccessDenied.
- A presigned GET (generate_presigned_url with the SSE-C params): boto3 signs the three
  x-amz-server-side-encryption-customer-* headers (X-Amz-SignedHeaders names them) but puts
  neither the key nor its MD5 in the URL, so the client must send them as headers. Sent with
  them (http.client): the object; without them or with another key's: refused, no data.
- A POST form upload (generate_presigned_post with the three SSE-C fields and conditions that
  pin the algorithm and the key's MD5 — the key itself only by a starts-with "" condition, so it
  is not written into the policy), posted as multipart/form-data; read back with the key. The
  same policy with another key but the first key's MD5 is refused (400 InvalidArgument).

SSE-C needs TLS (S3 refuses it over plain HTTP, as Coffer does without --allow-insecure-http).
The server's certificate is verified against COFFER_CA_BUNDLE (e.g. <data-dir>/self-signed.pem of
a --tls-self-signed server; .ci/run sets it). A plain http:// endpoint works only against a
server started with --allow-insecure-http.

Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; the region is us-east-1. Every
check prints what it checked; any failure (or unexpected exception) prints a traceback and exits
1. The keys are random, made for the run, and never printed.
"""

import base64
import hashlib
import http.client
import io
import os
import signal
import ssl
import sys
import time
import traceback
import urllib.parse
import uuid

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

MIB = 1024 * 1024
CHECKS = 0
ALGORITHM_HEADER = "x-amz-server-side-encryption-customer-algorithm"
KEY_HEADER = "x-amz-server-side-encryption-customer-key"
MD5_HEADER = "x-amz-server-side-encryption-customer-key-md5"


def ok(msg):
    global CHECKS
    CHECKS += 1
    print(f"   ok: {msg}", flush=True)


def step(msg):
    print(f"== [boto3 sse-c] {msg}", flush=True)


def eq(what, actual, expected, shown=None):
    """`actual` must be `expected`; `shown` names it in the output instead of its value."""
    assert actual == expected, f"{what}: expected {shown or repr(expected)}, got {actual!r}"
    ok(f"{what} == {shown or repr(expected)}")


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


class CustomerKey:
    """A random SSE-C key: the raw bytes boto3 takes, and the header values S3 wants."""

    def __init__(self):
        self.raw = os.urandom(32)
        self.b64 = base64.b64encode(self.raw).decode()
        self.md5 = base64.b64encode(hashlib.md5(self.raw).digest()).decode()

    def params(self):
        """boto3's parameters (it encodes the key and adds the MD5)."""
        return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": self.raw}

    def headers(self):
        return {ALGORITHM_HEADER: "AES256", KEY_HEADER: self.b64, MD5_HEADER: self.md5}

    def __repr__(self):
        return "CustomerKey(<redacted>)"


class Http:
    """Plain requests to the endpoint (presigned URLs, forms), TLS verified like boto3's."""

    def __init__(self, endpoint, ca_bundle):
        parts = urllib.parse.urlsplit(endpoint)
        self.https = parts.scheme == "https"
        self.netloc = parts.netloc
        self.context = ssl.create_default_context(cafile=ca_bundle) if self.https else None

    def request(self, method, url, headers=None, body=None):
        """(status, headers with lowercase names, body) of one request to `url`."""
        parts = urllib.parse.urlsplit(url)
        assert parts.netloc == self.netloc, f"{url} is not on {self.netloc}"
        if self.https:
            conn = http.client.HTTPSConnection(parts.netloc, timeout=60, context=self.context)
        else:
            conn = http.client.HTTPConnection(parts.netloc, timeout=60)
        try:
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            conn.request(method, target, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()


def error_code(body):
    """The <Code> of an S3 error document, or None."""
    text = body.decode(errors="replace")
    start = text.find("<Code>")
    end = text.find("</Code>")
    return text[start + 6:end] if 0 <= start < end else None


def form_body(fields, filename, content):
    """A multipart/form-data body: `fields` in order, then the file; and its content type."""
    boundary = f"----coffer-{uuid.uuid4().hex}"
    body = b""
    for name, value in fields.items():
        body += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                 ).encode() + value.encode() + b"\r\n"
    body += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
             f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n').encode()
    body += content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def run(endpoint, ca_bundle):
    verify = ca_bundle if endpoint.startswith("https://") else None
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        verify=verify,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            # One attempt: a refused request must show its own error, not a retry's.
            retries={"max_attempts": 1},
            connect_timeout=10,
            read_timeout=120,
        ),
    )
    raw = Http(endpoint, ca_bundle)
    key, other = CustomerKey(), CustomerKey()
    bucket = f"boto3-sse-c-{int(time.time())}-{os.getpid()}"
    print(f"boto3 sse-c: endpoint={endpoint} bucket={bucket} (boto3 {boto3.__version__})",
          flush=True)

    # ------------------------------------------------------------------
    step("create_bucket: SSE-C blocked; put_bucket_encryption BlockedEncryptionTypes NONE opens it")
    s3.create_bucket(Bucket=bucket)
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    eq("get_bucket_encryption BlockedEncryptionTypes of a new bucket",
       rule.get("BlockedEncryptionTypes", {}).get("EncryptionType"), ["SSE-C"])
    expect_error("put_object with a customer key into the new bucket", "AccessDenied", 403,
                 s3.put_object, Bucket=bucket, Key="blocked", Body=b"no", **key.params())
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
        "BlockedEncryptionTypes": {"EncryptionType": ["NONE"]},
    }]})
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    eq("get_bucket_encryption BlockedEncryptionTypes after NONE",
       rule.get("BlockedEncryptionTypes", {}).get("EncryptionType"), ["NONE"])

    # ------------------------------------------------------------------
    step("put_object / get_object / head_object with SSECustomerAlgorithm + SSECustomerKey")
    body = os.urandom(150_000)
    put = s3.put_object(Bucket=bucket, Key="doc", Body=body, **key.params())
    eq("put_object SSECustomerAlgorithm", put.get("SSECustomerAlgorithm"), "AES256")
    eq("put_object SSECustomerKeyMD5", put.get("SSECustomerKeyMD5"), key.md5, "the key's MD5")
    eq("put_object ServerSideEncryption (none for SSE-C)", put.get("ServerSideEncryption"), None)
    assert put["ETag"].strip('"') != hashlib.md5(body).hexdigest(), \
        "the ETag of an SSE-C object is the MD5 of its plaintext (S3's is not)"
    ok("the ETag is not the MD5 of the plaintext")
    got = s3.get_object(Bucket=bucket, Key="doc", **key.params())
    assert got["Body"].read() == body, "get_object doc: body differs"
    ok("get_object with the key reads doc byte-exact")
    eq("get_object SSECustomerKeyMD5", got.get("SSECustomerKeyMD5"), key.md5, "the key's MD5")
    head = s3.head_object(Bucket=bucket, Key="doc", **key.params())
    eq("head_object SSECustomerAlgorithm", head.get("SSECustomerAlgorithm"), "AES256")
    eq("head_object SSECustomerKeyMD5", head.get("SSECustomerKeyMD5"), key.md5, "the key's MD5")
    eq("head_object ETag", head["ETag"], put["ETag"])
    rng = s3.get_object(Bucket=bucket, Key="doc", Range="bytes=65530-65545", **key.params())
    assert rng["Body"].read() == body[65530:65546], "ranged get_object differs"
    ok("bytes 65530-65545 (across a 64 KiB segment boundary) read back byte-exact")
    expect_error("get_object without the key", "InvalidRequest", 400,
                 s3.get_object, Bucket=bucket, Key="doc")
    expect_error("get_object with another key", "AccessDenied", 403,
                 s3.get_object, Bucket=bucket, Key="doc", **other.params())
    expect_error("head_object with another key", "403", 403,
                 s3.head_object, Bucket=bucket, Key="doc", **other.params())

    step("upload_fileobj / download_fileobj multipart under the key (every part carries it)")
    big = os.urandom(12 * MIB + 5)
    forced = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB,
                            max_concurrency=3)
    s3.upload_fileobj(io.BytesIO(big), bucket, "multipart.bin", Config=forced,
                      ExtraArgs=key.params())
    head = s3.head_object(Bucket=bucket, Key="multipart.bin", **key.params())
    assert head["ETag"].endswith('-3"'), f"multipart.bin ETag {head['ETag']} is not a 3-part ETag"
    ok(f"multipart.bin ETag {head['ETag']} shows a 3-part upload")
    eq("multipart.bin SSECustomerKeyMD5", head.get("SSECustomerKeyMD5"), key.md5, "the key's MD5")
    down = io.BytesIO()
    s3.download_fileobj(bucket, "multipart.bin", down, Config=forced, ExtraArgs=key.params())
    assert hashlib.sha256(down.getvalue()).digest() == hashlib.sha256(big).digest(), \
        "multipart.bin differs"
    ok("multipart.bin downloads (ranged GETs in parallel, each with the key) byte-exact")

    # ------------------------------------------------------------------
    step("presigned GET: the key is signed as headers, not put in the URL; sent as headers")
    url = s3.generate_presigned_url("get_object", ExpiresIn=300, Params={
        "Bucket": bucket, "Key": "doc", **key.params()})
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    signed = query["X-Amz-SignedHeaders"][0].split(";")
    for name in (ALGORITHM_HEADER, KEY_HEADER, MD5_HEADER):
        assert name in signed, f"{name} not in X-Amz-SignedHeaders {signed}"
    ok(f"X-Amz-SignedHeaders names the three SSE-C headers: {';'.join(signed)}")
    unquoted = urllib.parse.unquote(url)
    for what, value in (("key", key.b64), ("key MD5", key.md5)):
        assert value not in url and value not in unquoted, f"the {what} is in the presigned URL"
    ok("neither the key nor its MD5 is in the URL")
    status, headers, data = raw.request("GET", url, headers=key.headers())
    eq("presigned GET with the key's headers: status", status, 200)
    assert data == body, "presigned GET: body differs"
    ok("presigned GET with the key's headers reads doc byte-exact")
    eq("presigned GET: x-amz-server-side-encryption-customer-algorithm",
       headers.get(ALGORITHM_HEADER), "AES256")
    eq("presigned GET: x-amz-server-side-encryption-customer-key-md5",
       headers.get(MD5_HEADER), key.md5, "the key's MD5")
    # Without the headers the URL's signature does not hold (they are signed); with another
    # key's the signature fails too. Either way no data.
    for what, hdrs in (("without the key's headers", {}), ("with another key's headers",
                                                           other.headers())):
        status, _, data = raw.request("GET", url, headers=hdrs)
        assert status == 403 and error_code(data) == "SignatureDoesNotMatch", \
            f"presigned GET {what}: {status} {data[:300]!r}"
        assert body[:64] not in data, f"presigned GET {what} returned object data"
        ok(f"presigned GET {what}: 403 SignatureDoesNotMatch, no data")
    # A presigned URL made without the SSE-C params, used without the key: as a GET without it.
    bare = s3.generate_presigned_url("get_object", ExpiresIn=300,
                                     Params={"Bucket": bucket, "Key": "doc"})
    status, _, data = raw.request("GET", bare)
    assert (status, error_code(data)) == (400, "InvalidRequest"), \
        f"presigned GET without SSE-C params and no headers: {status} {data[:300]!r}"
    ok("a presigned URL without the SSE-C params, sent without the key: 400 InvalidRequest")

    # ------------------------------------------------------------------
    step("POST form upload (generate_presigned_post) with the SSE-C fields; read back with the key")
    fields = {ALGORITHM_HEADER: "AES256", KEY_HEADER: key.b64,
              "x-amz-server-side-encryption-customer-key-MD5": key.md5,
              "success_action_status": "201"}
    conditions = [
        {ALGORITHM_HEADER: "AES256"},
        # The MD5 pins the key (the server checks one against the other); the key itself is not
        # written into the policy document.
        ["starts-with", f"${KEY_HEADER}", ""],
        {"x-amz-server-side-encryption-customer-key-MD5": key.md5},
        {"success_action_status": "201"},
        ["content-length-range", 1, MIB],
    ]
    post = s3.generate_presigned_post(bucket, "posted/${filename}", Fields=fields,
                                      Conditions=conditions, ExpiresIn=300)
    policy = base64.b64decode(post["fields"]["policy"]).decode()
    assert key.b64 not in policy, "the key is in the POST policy"
    ok("the POST policy names the key's MD5, not the key")
    content = os.urandom(40_000)
    form, content_type = form_body(post["fields"], "form.bin", content)
    status, headers, data = raw.request("POST", post["url"], body=form,
                                        headers={"Content-Type": content_type})
    eq("POST status (success_action_status 201)", status, 201)
    assert b"<Key>posted/form.bin</Key>" in data, f"PostResponse: {data[:400]!r}"
    ok("the PostResponse names posted/form.bin")
    eq("POST x-amz-server-side-encryption-customer-algorithm", headers.get(ALGORITHM_HEADER),
       "AES256")
    eq("POST x-amz-server-side-encryption-customer-key-md5", headers.get(MD5_HEADER), key.md5,
       "the key's MD5")
    got = s3.get_object(Bucket=bucket, Key="posted/form.bin", **key.params())
    assert got["Body"].read() == content, "posted/form.bin differs"
    ok("posted/form.bin reads back with the key byte-exact")
    eq("get_object posted/form.bin SSECustomerKeyMD5", got.get("SSECustomerKeyMD5"), key.md5,
       "the key's MD5")
    expect_error("get_object posted/form.bin without the key", "InvalidRequest", 400,
                 s3.get_object, Bucket=bucket, Key="posted/form.bin")
    expect_error("get_object posted/form.bin with another key", "AccessDenied", 403,
                 s3.get_object, Bucket=bucket, Key="posted/form.bin", **other.params())
    # The same signed policy with another key in the form: the MD5 no longer matches the key.
    swapped = dict(post["fields"])
    swapped[KEY_HEADER] = other.b64
    form, content_type = form_body(swapped, "swapped.bin", b"another key")
    status, _, data = raw.request("POST", post["url"], body=form,
                                  headers={"Content-Type": content_type})
    eq("POST with another key under the first key's MD5",
       (status, error_code(data)), (400, "InvalidArgument"))
    expect_error("head_object posted/swapped.bin (nothing stored)", "404", 404,
                 s3.head_object, Bucket=bucket, Key="posted/swapped.bin")


def main():
    if len(sys.argv) != 2:
        print(f"usage: COFFER_CA_BUNDLE=<pem> {sys.argv[0]} <endpoint-url>", file=sys.stderr)
        return 2
    endpoint = sys.argv[1]
    ca_bundle = os.environ.get("COFFER_CA_BUNDLE")
    if endpoint.startswith("https://") and not (ca_bundle and os.path.isfile(ca_bundle)):
        print("COFFER_CA_BUNDLE must name the certificate (PEM) the server presents, "
              "e.g. <data-dir>/self-signed.pem", file=sys.stderr)
        return 2
    # Turn SIGTERM (e.g. from `timeout`) into SystemExit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        run(endpoint, ca_bundle)
    except Exception:  # AssertionError and anything unexpected
        traceback.print_exc()
        print(f"boto3 sse-c: FAIL (after {CHECKS} passing checks)", file=sys.stderr)
        return 1
    print(f"boto3 sse-c: PASS ({CHECKS} checks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
