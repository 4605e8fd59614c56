#!/usr/bin/env python3
"""Browser uploads against a running Coffer, in headless Chromium (issue 9, point 6).

Usage: scripts/ci/browser/browser_uploads.py <endpoint-url>

Serves upload.html from two other origins (two loopback ports, neither Coffer's): one named by
the bucket's CORS rule, one not. In each, the page uploads a file with an HTML-form POST (a
SigV4 POST policy signed here with boto3) and with a presigned PUT, and reads each back with a
presigned GET, all with fetch(); it POSTs what happened to its own origin's /result.

Checks: from the allowed origin every request is answered, the POST with 201 and the PUT with
200 and a readable ETag (an exposed header), and the bytes read back equal those uploaded (in
the page, and again here with boto3). From the other origin the browser refuses every fetch
(TypeError: no Access-Control-Allow-Origin, or a refused preflight), and the presigned PUT,
stopped by its preflight, stores nothing.

Chromium comes from Debian (chromium-headless-shell, or chromium; CHROMIUM overrides).
Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; the region is us-east-1.
Exits 1 on any failed check.
"""

import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

BUCKET = "browser-uploads"
HERE = os.path.dirname(os.path.abspath(__file__))
PAGE_TIMEOUT = 60


def step(msg):
    print(f"== [browser] {msg}", flush=True)


def ok(msg):
    print(f"   ok: {msg}", flush=True)


def find_chromium():
    for name in (os.environ.get("CHROMIUM"), "chromium-headless-shell", "chromium"):
        if name and shutil.which(name):
            return shutil.which(name)
    raise SystemExit(
        "no headless Chromium: apt-get install --no-install-recommends chromium-headless-shell"
    )


class PageOrigin:
    """An HTTP server on its own loopback port (so its own origin) serving the page, its config
    and payload, and taking the page's report at /result."""

    def __init__(self):
        self.config = None
        self.payload = b""
        self.result = None
        self.reported = threading.Event()
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.split("?")[0]
                if path == "/upload.html":
                    with open(os.path.join(HERE, "upload.html"), "rb") as f:
                        self.answer(200, "text/html; charset=utf-8", f.read())
                elif path == "/config.json":
                    self.answer(200, "application/json", json.dumps(origin.config).encode())
                elif path == "/payload.bin":
                    self.answer(200, "application/octet-stream", origin.payload)
                else:
                    self.answer(404, "text/plain", b"not here\n")

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/result":
                    origin.result = json.loads(body)
                    origin.reported.set()
                self.answer(204, "text/plain", b"")

            def answer(self, status, content_type, body):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def run_page(chromium, page, work):
    """Loads the page in a fresh headless Chromium and waits for its report."""
    profile = tempfile.mkdtemp(dir=work)
    log_path = os.path.join(work, f"chromium-{page.server.server_address[1]}.log")
    with open(log_path, "wb") as log:
        browser = subprocess.Popen(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--enable-logging=stderr",
                f"--user-data-dir={profile}",
                f"{page.origin}/upload.html",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            reported = page.reported.wait(PAGE_TIMEOUT)
        finally:
            browser.terminate()
            try:
                browser.wait(10)
            except subprocess.TimeoutExpired:
                browser.kill()
                browser.wait()
    if not reported:
        with open(log_path, "rb") as f:
            print(f.read().decode(errors="replace")[-4000:])
        raise AssertionError(f"the page at {page.origin} reported nothing in {PAGE_TIMEOUT} s")
    result = page.result
    for s in result.get("steps", []):
        print(f"   page: {json.dumps(s)}", flush=True)
    assert "page_error" not in result, f"the page failed: {result['page_error']}"
    return {s["name"]: s for s in result["steps"]}


def signed_config(s3, endpoint, prefix):
    """The form fields and URLs the page needs, signed for keys under `prefix`."""
    posted, put = f"{prefix}/posted.bin", f"{prefix}/put.bin"
    post = s3.generate_presigned_post(
        BUCKET,
        posted,
        Fields={"success_action_status": "201"},
        Conditions=[{"success_action_status": "201"}, ["content-length-range", 1, 10 << 20]],
        ExpiresIn=600,
    )

    def presign(method, key):
        return s3.generate_presigned_url(
            method, Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=600
        )

    return {
        "post": post,
        "get_posted": presign("get_object", posted),
        "put": presign("put_object", put),
        "get_put": presign("get_object", put),
    }


def check_allowed(steps, payload, s3, prefix):
    digest = hashlib.sha256(payload).hexdigest()
    post = steps["post"]
    assert post["fetched"], f"the form POST was refused: {post}"
    assert post["status"] == 201, post
    assert "<PostResponse>" in post["body"] and f"<Key>{prefix}/posted.bin</Key>" in post["body"], post
    ok("form POST answered 201 with its PostResponse, readable by the page")
    put = steps["put"]
    assert put["fetched"], f"the presigned PUT (or its preflight) was refused: {put}"
    assert put["status"] == 200, put
    assert put["etag"] == f'"{hashlib.md5(payload).hexdigest()}"', put
    ok("presigned PUT answered 200 after its preflight; its ETag (exposed) is readable")
    for name in ("get posted", "get put"):
        got = steps[name]
        assert got["fetched"] and got["status"] == 200, got
        assert got["equal"] and got["length"] == len(payload) and got["sha256"] == digest, got
    ok(f"both objects read back in the page equal the {len(payload)} bytes uploaded")
    for key in (f"{prefix}/posted.bin", f"{prefix}/put.bin"):
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert body == payload, f"{key} as stored differs from the upload"
    ok("boto3 reads the same bytes back")


def check_refused(steps, s3, prefix):
    for name in ("post", "get posted", "put", "get put"):
        assert not steps[name]["fetched"], f"{name} was readable from a foreign origin: {steps[name]}"
        assert "TypeError" in steps[name]["error"], steps[name]
    ok("the browser refused every fetch from the origin no rule names")
    try:
        s3.head_object(Bucket=BUCKET, Key=f"{prefix}/put.bin")
        raise AssertionError("the presigned PUT from the foreign origin stored an object")
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404, e
    ok("its presigned PUT stopped at the preflight: nothing stored")


def main():
    endpoint = sys.argv[1]
    chromium = find_chromium()
    version = subprocess.run([chromium, "--version"], capture_output=True, text=True).stdout
    step(f"using {chromium} ({version.strip()})")
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    work = tempfile.mkdtemp(prefix="coffer-browser.")
    allowed, foreign = PageOrigin(), PageOrigin()
    try:
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_cors(
            Bucket=BUCKET,
            CORSConfiguration={
                "CORSRules": [
                    {
                        "AllowedOrigins": [allowed.origin],
                        "AllowedMethods": ["GET", "PUT", "POST"],
                        "AllowedHeaders": ["*"],
                        "ExposeHeaders": ["ETag"],
                        "MaxAgeSeconds": 60,
                    }
                ]
            },
        )
        payload = os.urandom(300 * 1024 + 17)
        step(f"page on {allowed.origin} (named by the CORS rule) uploads and reads back")
        allowed.config = signed_config(s3, endpoint, "allowed")
        allowed.payload = payload
        check_allowed(run_page(chromium, allowed, work), payload, s3, "allowed")

        step(f"the same page on {foreign.origin} (no rule names it) is refused by the browser")
        foreign.config = signed_config(s3, endpoint, "foreign")
        # Its reads target the objects the allowed page stored: they exist, so only CORS
        # stands between the page and them.
        foreign.config["get_posted"] = allowed.config["get_posted"]
        foreign.config["get_put"] = allowed.config["get_put"]
        foreign.payload = payload
        check_refused(run_page(chromium, foreign, work), s3, "foreign")
    finally:
        allowed.close()
        foreign.close()
        shutil.rmtree(work, ignore_errors=True)
    print("browser uploads: all checks passed", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
