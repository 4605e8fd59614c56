//! Crash safety end to end: kill -9 during an overwrite, during a stream of overwrites and right
//! after acknowledged writes; uploads cut off by the client; restart on the same data dir keeps
//! every object old-or-new and complete, and leaves no temp files; Ctrl-C shuts down cleanly.

use crate::common;

use std::io::Write;
use std::net::Shutdown;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::presigning::PresigningConfig;
use common::raw_http::{split_url, start_partial_request};
use common::{
    TestServer, assert_s3_error, bytes_under, create_bucket, files_under, get, ok, pattern, put,
    put_multipart,
};

const MIB: usize = 1 << 20;

/// A presigned PUT URL for `bucket/key`, valid for five minutes.
async fn presigned_put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let presigned = ok(s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await);
    presigned.uri().to_string()
}

/// Waits up to 10 s for `<data-dir>/tmp/` to hold no files (the startup sweep or the failed
/// request's cleanup may run just after the server is ready); returns what is left.
fn wait_for_empty_tmp(data_dir: &Path) -> Vec<std::path::PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = files_under(&data_dir.join("tmp"));
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits up to 10 s for the in-flight upload's temp file under `tmp/` to reach `min` bytes, so
/// the test knows the server was mid-write; returns the size seen.
fn wait_for_tmp_bytes(data_dir: &Path, min: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let total = bytes_under(&data_dir.join("tmp"));
        if total >= min || Instant::now() >= deadline {
            return total;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits up to 10 s for the bytes under `blobs/` and `tmp/` to drop to `limit`; returns the total.
fn wait_for_stored_bytes_at_most(data_dir: &Path, limit: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let total = bytes_under(&data_dir.join("blobs")) + bytes_under(&data_dir.join("tmp"));
        if total <= limit || Instant::now() >= deadline {
            return total;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn kill_9_during_an_overwrite_keeps_the_old_object_and_leaks_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let old = pattern(MIB, 1);
    let mut server = TestServer::start_in(dir.path());
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    put(&s3, "bkt", "victim", &old).await;

    // A 64 MiB overwrite of which only 24 MiB ever arrive.
    let url = presigned_put(&s3, "bkt", "victim").await;
    let (addr, target) = split_url(&url);
    let stream = start_partial_request(addr, "PUT", &target, &[], 64 * MIB, &pattern(24 * MIB, 2));
    let in_flight = wait_for_tmp_bytes(dir.path(), 8 * MIB as u64);
    assert!(
        in_flight >= 8 * MIB as u64,
        "only {in_flight} bytes under tmp/ while 24 MiB were sent: is the upload streamed to tmp/?"
    );
    server.kill();
    drop(stream);

    let server = TestServer::start_in(dir.path());
    let s3 = server.client();
    assert!(
        get(&s3, "bkt", "victim").await == old,
        "the old object changed"
    );
    let left = wait_for_empty_tmp(dir.path());
    assert!(left.is_empty(), "temp files left after restart: {left:?}");
    let stored = wait_for_stored_bytes_at_most(dir.path(), (MIB + 64 * 1024) as u64);
    assert!(
        stored <= (MIB + 64 * 1024) as u64,
        "{stored} bytes stored for one 1 MiB object: the partial upload leaked"
    );
}

#[tokio::test]
async fn kill_9_right_after_acknowledged_writes_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_in(dir.path());
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    let small = pattern(1000, 1);
    let medium = pattern(3 * MIB + 1, 2);
    let parts = [pattern(5 * MIB, 3), pattern(100, 4)];
    put(&s3, "bkt", "small", &small).await;
    put(&s3, "bkt", "medium", &medium).await;
    put_multipart(&s3, "bkt", "multipart", &[&parts[0], &parts[1]]).await;
    put(&s3, "bkt", "deleted", b"gone").await;
    ok(s3.delete_object().bucket("bkt").key("deleted").send().await);
    server.kill();

    let server = TestServer::start_in(dir.path());
    let s3 = server.client();
    assert!(get(&s3, "bkt", "small").await == small);
    assert!(get(&s3, "bkt", "medium").await == medium);
    assert!(get(&s3, "bkt", "multipart").await == parts.concat());
    assert_s3_error(
        s3.get_object().bucket("bkt").key("deleted").send().await,
        404,
        "NoSuchKey",
    );
}

/// Version `v` of the object: 256 KiB starting with `v` (little endian), the rest derived from it.
fn version_body(v: u64) -> Vec<u8> {
    let mut body = pattern(256 * 1024, v);
    body[..8].copy_from_slice(&v.to_le_bytes());
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_stream_of_overwrites_leaves_one_complete_version() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_in(dir.path());
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    put(&s3, "bkt", "k", &version_body(0)).await;

    let attempted = Arc::new(AtomicU64::new(0));
    let acknowledged = Arc::new(AtomicU64::new(0));
    let writer = {
        let (s3, attempted, acknowledged) = (s3.clone(), attempted.clone(), acknowledged.clone());
        tokio::spawn(async move {
            for v in 1.. {
                attempted.store(v, Ordering::SeqCst);
                let body = aws_sdk_s3::primitives::ByteStream::from(version_body(v));
                if s3
                    .put_object()
                    .bucket("bkt")
                    .key("k")
                    .body(body)
                    .send()
                    .await
                    .is_err()
                {
                    return;
                }
                acknowledged.store(v, Ordering::SeqCst);
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while acknowledged.load(Ordering::SeqCst) < 5 {
        assert!(Instant::now() < deadline, "fewer than 5 overwrites in 30 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Kill at an arbitrary point inside some write.
    tokio::time::sleep(Duration::from_millis(37)).await;
    server.kill();
    writer.await.unwrap();
    let acknowledged = acknowledged.load(Ordering::SeqCst);
    let attempted = attempted.load(Ordering::SeqCst);

    let server = TestServer::start_in(dir.path());
    let s3 = server.client();
    let body = get(&s3, "bkt", "k").await;
    assert!(
        body.len() >= 8,
        "object of {} bytes after the crash",
        body.len()
    );
    let v = u64::from_le_bytes(body[..8].try_into().unwrap());
    assert!(
        body == version_body(v),
        "version {v} came back torn or altered"
    );
    assert!(
        (acknowledged..=attempted).contains(&v),
        "version {v} after the crash, but {acknowledged} was acknowledged and {attempted} attempted"
    );
    let left = wait_for_empty_tmp(dir.path());
    assert!(left.is_empty(), "temp files left after restart: {left:?}");
}

#[tokio::test]
async fn an_upload_cut_off_by_the_client_never_replaces_the_existing_object() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    let old = pattern(300_000, 1);
    put(&s3, "bkt", "k", &old).await;

    let url = presigned_put(&s3, "bkt", "k").await;
    let (addr, target) = split_url(&url);
    let stream = start_partial_request(addr, "PUT", &target, &[], 16 * MIB, &pattern(4 * MIB, 2));
    let in_flight = wait_for_tmp_bytes(server.data_dir(), 1);
    assert!(in_flight > 0, "the upload never reached tmp/");
    stream.shutdown(Shutdown::Both).unwrap();
    drop(stream);
    std::thread::sleep(Duration::from_millis(300));

    assert!(
        get(&s3, "bkt", "k").await == old,
        "the cut-off upload replaced the object"
    );
    let head = ok(s3.head_object().bucket("bkt").key("k").send().await);
    assert_eq!(head.content_length(), Some(300_000));
    let left = wait_for_empty_tmp(server.data_dir());
    assert!(
        left.is_empty(),
        "temp files left by the failed upload: {left:?}"
    );
    // The server is still healthy.
    put(&s3, "bkt", "after", b"still working").await;
    assert_eq!(get(&s3, "bkt", "after").await, b"still working");
}

#[tokio::test]
async fn an_upload_cut_off_by_the_client_creates_no_object() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    let url = presigned_put(&s3, "bkt", "fresh").await;
    let (addr, target) = split_url(&url);
    let mut stream = start_partial_request(addr, "PUT", &target, &[], 2 * MIB, &pattern(MIB, 2));
    stream.flush().unwrap();
    drop(stream);
    std::thread::sleep(Duration::from_millis(300));
    assert_s3_error(
        s3.get_object().bucket("bkt").key("fresh").send().await,
        404,
        "NoSuchKey",
    );
}

#[tokio::test]
async fn a_part_cut_off_by_the_client_is_not_listed() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    let upload = ok(s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("mp")
        .send()
        .await);
    let id = upload.upload_id().unwrap();
    ok(s3
        .upload_part()
        .bucket("bkt")
        .key("mp")
        .upload_id(id)
        .part_number(1)
        .body(aws_sdk_s3::primitives::ByteStream::from(pattern(
            5 * MIB,
            1,
        )))
        .send()
        .await);
    let presigned = ok(s3
        .upload_part()
        .bucket("bkt")
        .key("mp")
        .upload_id(id)
        .part_number(2)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await);
    let (addr, target) = split_url(presigned.uri());
    let stream = start_partial_request(addr, "PUT", &target, &[], 8 * MIB, &pattern(2 * MIB, 2));
    std::thread::sleep(Duration::from_millis(200));
    drop(stream);
    std::thread::sleep(Duration::from_millis(300));
    let parts = ok(s3
        .list_parts()
        .bucket("bkt")
        .key("mp")
        .upload_id(id)
        .send()
        .await);
    let numbers: Vec<_> = parts.parts().iter().map(|p| p.part_number()).collect();
    assert_eq!(numbers, [Some(1)], "a cut-off part was recorded");
}

#[tokio::test]
async fn restart_keeps_buckets_objects_metadata_and_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_in(dir.path());
    let s3 = server.client();
    create_bucket(&s3, "one").await;
    create_bucket(&s3, "two").await;
    ok(s3
        .put_object()
        .bucket("one")
        .key("doc")
        .content_type("text/plain")
        .metadata("owner", "alice")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"kept"))
        .send()
        .await);
    let upload = ok(s3
        .create_multipart_upload()
        .bucket("two")
        .key("mp")
        .send()
        .await);
    let id = upload.upload_id().unwrap().to_string();
    let part = ok(s3
        .upload_part()
        .bucket("two")
        .key("mp")
        .upload_id(&id)
        .part_number(1)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(
            b"part before restart",
        ))
        .send()
        .await);
    let status = server.interrupt(Duration::from_secs(15));
    assert!(
        status.is_some(),
        "server did not exit within 15 s of Ctrl-C"
    );

    let server = TestServer::start_in(dir.path());
    let s3 = server.client();
    let buckets = ok(s3.list_buckets().send().await);
    let names: Vec<_> = buckets.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["one", "two"]);
    let head = ok(s3.head_object().bucket("one").key("doc").send().await);
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("owner"))
            .map(String::as_str),
        Some("alice")
    );
    assert_eq!(get(&s3, "one", "doc").await, b"kept");

    let uploads = ok(s3.list_multipart_uploads().bucket("two").send().await);
    assert_eq!(
        uploads.uploads().len(),
        1,
        "the upload in progress was lost"
    );
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    ok(s3
        .complete_multipart_upload()
        .bucket("two")
        .key("mp")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await);
    assert_eq!(get(&s3, "two", "mp").await, b"part before restart");
}

#[tokio::test]
async fn ctrl_c_shuts_an_idle_server_down_cleanly() {
    let mut server = TestServer::start();
    let status = server.interrupt(Duration::from_secs(10));
    let output = server.output();
    let status = status.unwrap_or_else(|| panic!("no exit within 10 s of Ctrl-C\n{output}"));
    assert!(
        status.success(),
        "exit status after Ctrl-C: {status}\n{output}"
    );
}

#[tokio::test]
async fn ctrl_c_during_an_upload_finishes_or_fails_it_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_in(dir.path());
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    let body = pattern(4 * MIB, 9);
    let url = presigned_put(&s3, "bkt", "inflight").await;
    let (addr, target) = split_url(&url);
    let mut stream = start_partial_request(addr, "PUT", &target, &[], body.len(), &body[..2 * MIB]);
    std::thread::sleep(Duration::from_millis(200));
    server.send_interrupt();
    std::thread::sleep(Duration::from_millis(200));
    // The rest of the body: the server either takes it and answers, or has closed the connection.
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(&body[2 * MIB..]);
    let status = server.wait_for_exit(Duration::from_secs(20));
    assert!(
        status.is_some(),
        "no exit within 20 s of Ctrl-C\n{}",
        server.output()
    );
    drop(stream);

    let server = TestServer::start_in(dir.path());
    let s3 = server.client();
    match s3.get_object().bucket("bkt").key("inflight").send().await {
        Ok(out) => {
            let got = ok(out.body.collect().await).into_bytes();
            assert!(
                got[..] == body[..],
                "the in-flight upload was stored incomplete"
            );
        }
        Err(err) => {
            let failure = common::s3_failure::<(), _>(Err(err));
            assert_eq!(failure.code.as_deref(), Some("NoSuchKey"), "{failure:?}");
        }
    }
    let left = wait_for_empty_tmp(dir.path());
    assert!(left.is_empty(), "temp files left after restart: {left:?}");
}

/// Sets a file's modification time `hours` hours into the past (with `touch`).
fn age_file(path: &Path, hours: u32) {
    let status = std::process::Command::new("touch")
        .arg("-m")
        .arg("-d")
        .arg(format!("{hours} hours ago"))
        .arg(path)
        .status()
        .expect("run touch");
    assert!(status.success(), "touch -d failed on {}", path.display());
}

#[tokio::test]
async fn the_periodic_sweep_removes_old_orphans_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::builder()
        .args(["--sweep-interval", "1"])
        .start_in(dir.path());
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    // A blob-file object whose file is old: referenced, so it must stay.
    let kept = pattern(200_000, 1);
    put(&s3, "bkt", "kept", &kept).await;
    let blob_files = files_under(&dir.path().join("blobs"));
    assert_eq!(blob_files.len(), 1, "one object, one blob file");
    age_file(&blob_files[0], 5);

    // Orphans appear while the server runs (a blob whose free failed, a dead upload's temp
    // file): old ones must go, a fresh one (an upload in progress) must stay.
    let fanout = blob_files[0].parent().unwrap();
    let old_orphan = fanout.join(format!("{}00000000000000000000000000000000", "ab"));
    let old_tmp = dir
        .path()
        .join("tmp")
        .join("deadupload0000000000000000000000");
    let fresh_tmp = dir
        .path()
        .join("tmp")
        .join("liveupload0000000000000000000000");
    for path in [&old_orphan, &old_tmp, &fresh_tmp] {
        std::fs::write(path, b"orphan bytes").unwrap();
    }
    age_file(&old_orphan, 2);
    age_file(&old_tmp, 2);

    let deadline = Instant::now() + Duration::from_secs(10);
    while (old_orphan.exists() || old_tmp.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !old_orphan.exists(),
        "an old orphan blob survived the sweep"
    );
    assert!(!old_tmp.exists(), "an old temp file survived the sweep");
    assert!(fresh_tmp.exists(), "the sweep removed a fresh temp file");
    assert!(
        blob_files[0].exists(),
        "the sweep removed a referenced blob"
    );
    assert!(get(&s3, "bkt", "kept").await == kept, "the object changed");
}
