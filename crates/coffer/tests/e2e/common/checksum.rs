//! Reference checksums (CRC32, CRC32C, CRC64NVME) computed independently of the server, to
//! state what the server must store and return. Slow, simple, table-driven; tests only.

/// A reflected CRC table for `poly`.
fn table(poly: u64) -> [u64; 256] {
    let mut table = [0u64; 256];
    for (i, slot) in table.iter_mut().enumerate() {
        let mut crc = i as u64;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ poly
            } else {
                crc >> 1
            };
        }
        *slot = crc;
    }
    table
}

fn reflected_crc(data: &[u8], poly: u64, width_mask: u64) -> u64 {
    let table = table(poly);
    let mut crc = width_mask;
    for &b in data {
        crc = table[((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8);
    }
    (crc ^ width_mask) & width_mask
}

pub fn crc32(data: &[u8]) -> u32 {
    reflected_crc(data, 0xEDB8_8320, 0xFFFF_FFFF) as u32
}

pub fn crc32c(data: &[u8]) -> u32 {
    reflected_crc(data, 0x82F6_3B78, 0xFFFF_FFFF) as u32
}

pub fn crc64nvme(data: &[u8]) -> u64 {
    reflected_crc(data, 0x9A6C_9329_AC4B_C9B5, u64::MAX)
}

/// The `x-amz-checksum-crc32` value of `data`: base64 of the big-endian CRC.
pub fn crc32_b64(data: &[u8]) -> String {
    aws_smithy_types::base64::encode(crc32(data).to_be_bytes())
}

pub fn crc32c_b64(data: &[u8]) -> String {
    aws_smithy_types::base64::encode(crc32c(data).to_be_bytes())
}

pub fn crc64nvme_b64(data: &[u8]) -> String {
    aws_smithy_types::base64::encode(crc64nvme(data).to_be_bytes())
}

/// The `x-amz-checksum-sha256` value of `data`.
pub fn sha256_b64(data: &[u8]) -> String {
    aws_smithy_types::base64::encode(super::sigv4::sha256(data))
}
