//! Listing: ListObjects (v1), ListObjectsV2 and ListObjectVersions (buckets are unversioned,
//! so every object has the one version `null`).
//!
//! One paging core walks the key range in the store, folds keys that share a prefix up to
//! the delimiter into CommonPrefixes, and skips past a folded prefix in one range jump.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use coffer_store::ObjectRecord;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use crate::conditional::timestamp_from_ms;
use crate::error::api_error;
use crate::service::Coffer;

/// S3's cap on keys per list page.
const MAX_KEYS: i32 = 1000;
/// Records fetched from the store per range scan.
const SCAN_BATCH: usize = 1000;

/// One page of a listing.
struct Page {
    objects: Vec<(String, ObjectRecord)>,
    prefixes: Vec<String>,
    truncated: bool,
    /// The last key or common prefix returned: where the next page starts after.
    last: Option<String>,
}

/// The greatest string that starts with `p`, for skipping every key under a common prefix.
fn past_prefix(p: &str) -> String {
    format!("{p}\u{10FFFF}")
}

/// If `key` (which starts with `prefix`) has `delimiter` after the prefix, its common prefix.
pub(crate) fn common_prefix<'a>(
    key: &'a str,
    prefix: &str,
    delimiter: Option<&str>,
) -> Option<&'a str> {
    let d = delimiter.filter(|d| !d.is_empty())?;
    let rest = &key[prefix.len()..];
    rest.find(d).map(|i| &key[..prefix.len() + i + d.len()])
}

async fn page(
    c: &Coffer,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<String>,
    max_keys: i32,
) -> S3Result<Page> {
    crate::bucket::require_bucket(c, bucket).await?;
    if max_keys < 0 {
        return Err(api_error!(
            InvalidArgument,
            "max-keys must be a non-negative integer"
        ));
    }
    let max = max_keys.min(MAX_KEYS) as usize;
    let mut out = Page {
        objects: Vec::new(),
        prefixes: Vec::new(),
        truncated: false,
        last: None,
    };
    if max == 0 {
        // S3 answers max-keys=0 with an empty page that is not truncated.
        return Ok(out);
    }
    // A marker inside a folded prefix resumes after the whole prefix.
    let mut cursor = after.map(|a| {
        match common_prefix(&a, prefix, delimiter).filter(|_| a.starts_with(prefix)) {
            Some(cp) => past_prefix(cp),
            None => a,
        }
    });
    loop {
        let (b, p, cur) = (bucket.to_owned(), prefix.to_owned(), cursor.clone());
        let batch = c
            .meta(move |m| m.list_objects(&b, &p, cur.as_deref(), SCAN_BATCH))
            .await?;
        if batch.is_empty() {
            return Ok(out);
        }
        let full = batch.len() == SCAN_BATCH;
        let mut jumped = false;
        for (key, mut rec) in batch {
            if out.objects.len() + out.prefixes.len() >= max {
                out.truncated = true;
                return Ok(out);
            }
            if let Some(cp) = common_prefix(&key, prefix, delimiter) {
                let cp = cp.to_owned();
                cursor = Some(past_prefix(&cp));
                out.prefixes.push(cp.clone());
                out.last = Some(cp);
                jumped = true;
                break;
            }
            c.records.check_object(bucket, &key, &mut rec)?;
            cursor = Some(key.clone());
            out.last = Some(key.clone());
            out.objects.push((key, rec));
        }
        if !jumped && !full {
            return Ok(out);
        }
    }
}

fn is_url(enc: Option<&EncodingType>) -> bool {
    enc.is_some_and(|e| e.as_str() == EncodingType::URL)
}

/// Percent-encodes a key for `encoding-type=url`: everything but unreserved characters and `/`.
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn enc(s: String, url: bool) -> String {
    if url { url_encode(&s) } else { s }
}

fn object_entry(key: String, rec: &ObjectRecord, url: bool, owner: bool) -> Object {
    Object {
        key: Some(enc(key, url)),
        e_tag: Some(ETag::Strong(rec.etag.clone())),
        size: Some(rec.size as i64),
        last_modified: Some(timestamp_from_ms(rec.last_modified_unix_ms)),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        owner: owner.then(crate::bucket::owner),
        ..Default::default()
    }
}

fn prefixes(list: Vec<String>, url: bool) -> Option<Vec<CommonPrefix>> {
    (!list.is_empty()).then(|| {
        list.into_iter()
            .map(|p| CommonPrefix {
                prefix: Some(enc(p, url)),
            })
            .collect()
    })
}

pub async fn list_objects(
    c: &Coffer,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let input = req.input;
    let prefix = input.prefix.clone().unwrap_or_default();
    let max_keys = input.max_keys.unwrap_or(MAX_KEYS);
    let p = page(
        c,
        &input.bucket,
        &prefix,
        input.delimiter.as_deref(),
        input.marker.clone().filter(|m| !m.is_empty()),
        max_keys,
    )
    .await?;
    let url = is_url(input.encoding_type.as_ref());
    let next_marker = (p.truncated && input.delimiter.is_some())
        .then(|| p.last.clone().map(|l| enc(l, url)))
        .flatten();
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        prefix: Some(enc(prefix, url)),
        marker: input.marker.map(|m| enc(m, url)),
        max_keys: Some(max_keys),
        is_truncated: Some(p.truncated),
        contents: Some(
            p.objects
                .into_iter()
                .map(|(k, r)| object_entry(k, &r, url, true))
                .collect(),
        ),
        common_prefixes: prefixes(p.prefixes, url),
        delimiter: input.delimiter.map(|d| enc(d, url)),
        next_marker,
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

pub async fn list_objects_v2(
    c: &Coffer,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let input = req.input;
    let prefix = input.prefix.clone().unwrap_or_default();
    let max_keys = input.max_keys.unwrap_or(MAX_KEYS);
    let after = match &input.continuation_token {
        Some(token) => Some(decode_token(token)?),
        None => input.start_after.clone().filter(|s| !s.is_empty()),
    };
    let p = page(
        c,
        &input.bucket,
        &prefix,
        input.delimiter.as_deref(),
        after,
        max_keys,
    )
    .await?;
    let url = is_url(input.encoding_type.as_ref());
    let key_count = (p.objects.len() + p.prefixes.len()) as i32;
    let next = if p.truncated {
        p.last.as_deref().map(encode_token)
    } else {
        None
    };
    let owner = input.fetch_owner == Some(true);
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(enc(prefix, url)),
        max_keys: Some(max_keys),
        key_count: Some(key_count),
        continuation_token: input.continuation_token,
        is_truncated: Some(p.truncated),
        next_continuation_token: next,
        contents: Some(
            p.objects
                .into_iter()
                .map(|(k, r)| object_entry(k, &r, url, owner))
                .collect(),
        ),
        common_prefixes: prefixes(p.prefixes, url),
        delimiter: input.delimiter.map(|d| enc(d, url)),
        encoding_type: input.encoding_type,
        start_after: input.start_after.map(|s| enc(s, url)),
        ..Default::default()
    }))
}

/// A continuation token that resumes after `last` (a key, a common prefix or a bucket name).
pub(crate) fn encode_token(last: &str) -> String {
    B64URL.encode(last)
}

/// The name a continuation token of [`encode_token`] resumes after.
pub(crate) fn decode_token(token: &str) -> S3Result<String> {
    B64URL
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            api_error!(
                InvalidArgument,
                "The continuation token provided is incorrect"
            )
        })
}

pub async fn list_object_versions(
    c: &Coffer,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let input = req.input;
    let prefix = input.prefix.clone().unwrap_or_default();
    let max_keys = input.max_keys.unwrap_or(MAX_KEYS);
    let p = page(
        c,
        &input.bucket,
        &prefix,
        input.delimiter.as_deref(),
        input.key_marker.clone().filter(|m| !m.is_empty()),
        max_keys,
    )
    .await?;
    let url = is_url(input.encoding_type.as_ref());
    let versions = p
        .objects
        .into_iter()
        .map(|(k, rec)| ObjectVersion {
            key: Some(enc(k, url)),
            version_id: Some("null".to_owned()),
            is_latest: Some(true),
            e_tag: Some(ETag::Strong(rec.etag.clone())),
            size: Some(rec.size as i64),
            last_modified: Some(timestamp_from_ms(rec.last_modified_unix_ms)),
            storage_class: Some(ObjectVersionStorageClass::from_static(
                ObjectVersionStorageClass::STANDARD,
            )),
            owner: Some(crate::bucket::owner()),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(input.bucket),
        prefix: Some(enc(prefix, url)),
        key_marker: input.key_marker,
        version_id_marker: input.version_id_marker,
        max_keys: Some(max_keys),
        is_truncated: Some(p.truncated),
        next_key_marker: if p.truncated {
            p.last.clone().map(|l| enc(l, url))
        } else {
            None
        },
        next_version_id_marker: if p.truncated {
            Some("null".to_owned())
        } else {
            None
        },
        versions: Some(versions),
        common_prefixes: prefixes(p.prefixes, url),
        delimiter: input.delimiter.map(|d| enc(d, url)),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefix_stops_at_first_delimiter_after_prefix() {
        assert_eq!(common_prefix("a/b/c", "", Some("/")), Some("a/"));
        assert_eq!(common_prefix("a/b/c", "a/", Some("/")), Some("a/b/"));
        assert_eq!(common_prefix("a/b", "a/", Some("/")), None);
        assert_eq!(common_prefix("a/b", "", None), None);
        assert_eq!(common_prefix("a/b", "", Some("")), None);
    }

    #[test]
    fn url_encoding_keeps_slashes_and_escapes_the_rest() {
        assert_eq!(url_encode("dir/a b+ü.txt"), "dir/a%20b%2B%C3%BC.txt");
    }
}
