#!/usr/bin/env python3
"""POST Object (browser form uploads) against a running Coffer: correctness with boto3's
presigned POSTs, and the memory a stranger can make the server hold (issue 14, point 1).

Usage: COFFER_SERVER_PID=<pid> scripts/ci/post_memory.py <endpoint-url>

Four strangers stream anonymous multipart/form-data POSTs of 400 MiB each (generated on the fly,
never held) while a boto3 generate_presigned_post upload of 200 MiB streams beside them. The
server's VmRSS and VmHWM (from /proc/<pid>/status) must stay under 256 MiB; the strangers must be
refused (403, or a reset once refused) and nothing of theirs stored; the signed upload must be
stored whole; and the server must still serve afterwards.

Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; the region is us-east-1. Any
failed check prints a traceback and exits 1.
"""

import hashlib
import http.client
import os
import sys
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

MIB = 1024 * 1024
RSS_LIMIT_KIB = 256 * 1024
STRANGERS = 4
STRANGER_BYTES = 400 * MIB
SIGNED_BYTES = 200 * MIB
STRANGER_READ_LIMIT = 64 * MIB
BUCKET = "post-memory"


def step(msg):
    print(f"== [post] {msg}", flush=True)


def ok(msg):
    print(f"   ok: {msg}", flush=True)


def memory_kib(pid):
    """(VmRSS, VmHWM) of the server in KiB."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def form_parts(fields, boundary, filename="upload.bin"):
    """The bytes before and after the file's content of a multipart/form-data body."""
    head = b""
    for name, value in fields.items():
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        ).encode() + value.encode() + b"\r\n"
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head, tail


def stream_post(url, fields, size, block, stop=None):
    """POSTs a form whose file is `size` bytes of `block` repeated, sent as it is generated.
    Returns (status or None if the connection was cut, bytes of the file the server took, the
    MD5 of what was sent)."""
    parsed = urllib.parse.urlsplit(url)
    boundary = uuid.uuid4().hex
    head, tail = form_parts(fields, boundary)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=300)
    md5 = hashlib.md5()
    left = size
    try:
        conn.putrequest("POST", parsed.path or "/")
        conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
        conn.putheader("Content-Length", str(len(head) + size + len(tail)))
        conn.endheaders()
        conn.send(head)
        while left > 0:
            if stop is not None and stop.is_set():
                return None, size - left, None
            n = min(left, len(block))
            md5.update(block[:n])
            conn.send(block[:n])
            left -= n
        conn.send(tail)
    except OSError:
        pass  # refused: the server stopped reading and closed; its answer may still be there
    try:
        resp = conn.getresponse()
        resp.read()
        return resp.status, size - left, md5.hexdigest()
    except (OSError, http.client.HTTPException):
        return None, size - left, md5.hexdigest()
    finally:
        conn.close()


def client(endpoint):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def check_presigned_posts(s3):
    step("a small presigned POST (urllib) round-trips byte for byte")
    post = s3.generate_presigned_post(
        BUCKET,
        "notes/${filename}",
        Fields={"Content-Type": "text/plain", "x-amz-meta-origin": "ci"},
        Conditions=[
            {"Content-Type": "text/plain"},
            {"x-amz-meta-origin": "ci"},
            ["content-length-range", 1, 1024],
        ],
        ExpiresIn=300,
    )
    boundary = uuid.uuid4().hex
    payload = b"posted from a browser form\n"
    head, tail = form_parts(post["fields"], boundary, filename="hello.txt")
    req = urllib.request.Request(
        post["url"],
        data=head + payload + tail,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 204, f"presigned POST answered {resp.status}"
        assert resp.headers["ETag"] == f'"{hashlib.md5(payload).hexdigest()}"', resp.headers
    got = s3.get_object(Bucket=BUCKET, Key="notes/hello.txt")
    assert got["Body"].read() == payload, "the object differs from the file"
    assert got["ContentType"] == "text/plain", got["ContentType"]
    assert got["Metadata"] == {"origin": "ci"}, got["Metadata"]
    ok("presigned POST stored notes/hello.txt with its type and metadata")

    step("a file over content-length-range is refused and nothing is stored")
    req = urllib.request.Request(
        post["url"],
        data=head + b"x" * 2048 + tail,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        method="POST",
    )
    s3.delete_object(Bucket=BUCKET, Key="notes/hello.txt")
    try:
        urllib.request.urlopen(req, timeout=60)
        raise AssertionError("a file over the policy's range was accepted")
    except urllib.error.HTTPError as e:
        body = e.read().decode()
        assert e.code == 400 and "<Code>EntityTooLarge</Code>" in body, (e.code, body)
    try:
        s3.head_object(Bucket=BUCKET, Key="notes/hello.txt")
        raise AssertionError("the refused upload was stored")
    except ClientError:
        pass
    ok("EntityTooLarge, nothing stored")


def check_memory(s3, endpoint, pid):
    step(f"{STRANGERS} anonymous 400 MiB forms and a signed 200 MiB upload at once")
    _, start_hwm = memory_kib(pid)
    stop = threading.Event()
    done = threading.Event()
    peak = [0]

    def sample():
        while not done.is_set():
            rss, _ = memory_kib(pid)
            peak[0] = max(peak[0], rss)
            if rss > RSS_LIMIT_KIB:
                stop.set()  # the check has failed; spare the machine
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    block = os.urandom(MIB)
    url = f"{endpoint}/{BUCKET}"
    results = {}

    def stranger(i):
        fields = {"key": f"stranger-{i}", "Content-Type": "application/octet-stream"}
        results[f"stranger-{i}"] = stream_post(url, fields, STRANGER_BYTES, block, stop)

    big = s3.generate_presigned_post(
        BUCKET,
        "signed-large",
        Conditions=[["content-length-range", 0, SIGNED_BYTES]],
        ExpiresIn=600,
    )

    def signed():
        results["signed"] = stream_post(big["url"], big["fields"], SIGNED_BYTES, block, stop)

    threads = [threading.Thread(target=stranger, args=(i,)) for i in range(STRANGERS)]
    threads.append(threading.Thread(target=signed))
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    sampler.join()
    _, end_hwm = memory_kib(pid)
    top = max(peak[0], end_hwm)
    print(
        f"   server RSS: {start_hwm // 1024} MiB at start, peak {top // 1024} MiB "
        f"over {time.monotonic() - started:.1f} s",
        flush=True,
    )
    assert top < RSS_LIMIT_KIB and not stop.is_set(), (
        f"the server reached {top // 1024} MiB of RSS; the limit is {RSS_LIMIT_KIB // 1024} MiB"
    )
    ok(f"peak RSS {top // 1024} MiB < {RSS_LIMIT_KIB // 1024} MiB")
    for i in range(STRANGERS):
        status, taken, _ = results[f"stranger-{i}"]
        # Refused after the fields; what the client got to send beyond them sat in socket
        # buffers or was read (and dropped) to let it see the answer.
        assert status in (403, None) and taken < STRANGER_READ_LIMIT, (
            f"an anonymous form got {status} after sending {taken // MIB} MiB of its file"
        )
    status, _, md5 = results["signed"]
    assert status == 204, f"the signed upload got {status}"
    answers = [results[f"stranger-{i}"][:2] for i in range(STRANGERS)]
    ok(f"strangers refused, (status, bytes sent): {answers}; signed upload 204")

    step("nothing of the strangers stored, the signed upload whole, the server still serves")
    for i in range(STRANGERS):
        try:
            s3.head_object(Bucket=BUCKET, Key=f"stranger-{i}")
            raise AssertionError(f"stranger-{i} was stored")
        except ClientError:
            pass
    head = s3.head_object(Bucket=BUCKET, Key="signed-large")
    assert head["ContentLength"] == SIGNED_BYTES, head["ContentLength"]
    assert head["ETag"] == f'"{md5}"', (head["ETag"], md5)
    s3.put_object(Bucket=BUCKET, Key="after", Body=b"still serving")
    assert s3.get_object(Bucket=BUCKET, Key="after")["Body"].read() == b"still serving"
    ok("signed-large has its size and ETag; PUT/GET still work")


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    pid = os.environ.get("COFFER_SERVER_PID")
    if not pid:
        print("COFFER_SERVER_PID must name the server process", file=sys.stderr)
        return 2
    try:
        s3 = client(sys.argv[1])
        s3.create_bucket(Bucket=BUCKET)
        check_presigned_posts(s3)
        check_memory(s3, sys.argv[1], int(pid))
    except Exception:
        traceback.print_exc()
        print("post memory check: FAIL", flush=True)
        return 1
    print("post memory check: PASS", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
