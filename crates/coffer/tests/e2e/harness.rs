//! Known-answer tests of the test harness itself (SHA-256, HMAC, SigV4, chunk signatures, CRCs),
//! so that a failing end-to-end test points at the server, not at the harness. No server runs.

use crate::common;

use std::time::{Duration, UNIX_EPOCH};

use common::checksum::{crc32, crc32c, crc64nvme};
use common::sigv4::{Signed, Signer, amz_date, hmac_sha256, sha256_hex};

/// The example credentials of the AWS documentation.
const DOC_SIGNER: Signer<'static> = Signer {
    access_key: "AKIAIOSFODNN7EXAMPLE",
    secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    region: "us-east-1",
};
/// 2013-05-24T00:00:00Z, the time of the AWS documentation's examples.
const DOC_TIME: u64 = 1_369_353_600;

#[test]
fn sha256_matches_fips_180_examples() {
    assert_eq!(
        sha256_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        sha256_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    );
}

#[test]
fn hmac_sha256_matches_rfc_4231_case_2() {
    assert_eq!(
        hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn amz_date_formats_utc() {
    assert_eq!(
        amz_date(UNIX_EPOCH + Duration::from_secs(DOC_TIME)),
        "20130524T000000Z"
    );
    assert_eq!(
        amz_date(UNIX_EPOCH + Duration::from_secs(951_782_400)),
        "20000229T000000Z"
    );
    assert_eq!(
        amz_date(UNIX_EPOCH + Duration::from_secs(4_102_444_799)),
        "20991231T235959Z"
    );
}

/// "Example: GET Object" of the AWS docs page "Signature Calculations for the Authorization
/// Header: Transferring Payload in a Single Chunk".
#[test]
fn signer_matches_aws_get_object_example() {
    let mut headers = vec![
        (
            "host".to_string(),
            "examplebucket.s3.amazonaws.com".to_string(),
        ),
        ("range".to_string(), "bytes=0-9".to_string()),
    ];
    let signed = DOC_SIGNER.sign(
        "GET",
        "/test.txt",
        &[],
        &mut headers,
        &sha256_hex(b""),
        UNIX_EPOCH + Duration::from_secs(DOC_TIME),
    );
    assert_eq!(
        signed.signature,
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    );
}

/// The AWS docs page "Signature Calculations for the Authorization Header: Transferring Payload
/// in Multiple Chunks (Chunked Upload)": seed and the three chunk signatures.
#[test]
fn signer_matches_aws_chunked_upload_example() {
    let mut headers = vec![
        ("host".to_string(), "s3.amazonaws.com".to_string()),
        ("content-encoding".to_string(), "aws-chunked".to_string()),
        ("content-length".to_string(), "66824".to_string()),
        (
            "x-amz-decoded-content-length".to_string(),
            "66560".to_string(),
        ),
        (
            "x-amz-storage-class".to_string(),
            "REDUCED_REDUNDANCY".to_string(),
        ),
    ];
    let signed = DOC_SIGNER.sign(
        "PUT",
        "/examplebucket/chunkObject.txt",
        &[],
        &mut headers,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        UNIX_EPOCH + Duration::from_secs(DOC_TIME),
    );
    assert_eq!(
        signed.signature,
        "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    );
    let first = vec![b'a'; 65_536];
    let second = vec![b'a'; 1024];
    let body = signed.signed_chunked_body(&[&first, &second], None);
    assert_eq!(body.len(), 66_824, "the documented Content-Length");
    let text = String::from_utf8_lossy(&body);
    for signature in [
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
    ] {
        assert!(
            text.contains(signature),
            "missing chunk signature {signature}"
        );
    }
}

/// The AWS docs page "Signature Calculations for the Authorization Header: Including Trailing
/// Headers": chunk signatures and the trailer signature from the documented seed.
#[test]
fn signer_matches_aws_signed_trailer_example() {
    let seed = Signed::from_parts(
        &DOC_SIGNER,
        "20130524T000000Z",
        "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
    );
    let first = vec![b'a'; 65_536];
    let second = vec![b'a'; 1024];
    let body = seed.signed_chunked_body(
        &[&first, &second],
        Some(("x-amz-checksum-crc32c", "sOO8/Q==")),
    );
    let text = String::from_utf8_lossy(&body);
    for signature in [
        "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
        "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
        "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
    ] {
        assert!(
            text.contains(signature),
            "missing chunk signature {signature}"
        );
    }
    assert!(text.ends_with(
        "0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n\
         x-amz-checksum-crc32c:sOO8/Q==\r\n\
         x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n"
    ));
}

#[test]
fn crcs_match_their_check_values() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(crc64nvme(b"123456789"), 0xAE8B_1486_0A79_9888);
    // CRC32C of 66,560 × 'a', as the AWS trailer example states.
    assert_eq!(common::checksum::crc32c_b64(&[b'a'; 66_560]), "sOO8/Q==");
}
