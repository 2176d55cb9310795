//! TFRecord framing, the container of TensorBoard event files: each record is
//! `length (u64 LE) · masked CRC-32C of the length (u32 LE) · data · masked CRC-32C of the data`,
//! where masking rotates the CRC right by 15 bits and adds 0xa282ead8 (TensorFlow's
//! `core/lib/hash/crc32c.h`), so that a CRC of bytes that hold CRCs is not degenerate.

const MASK_DELTA: u32 = 0xa282_ead8;

/// The masked CRC-32C of `bytes`.
pub fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// Appends one framed record holding `data` to `out`.
pub fn frame(data: &[u8], out: &mut Vec<u8>) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_and_its_mask_match_known_values() {
        // The CRC-32C check value (RFC 3720, iSCSI).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(masked_crc(b""), MASK_DELTA);
    }

    #[test]
    fn a_record_is_framed_as_tensorflow_writes_it() {
        let mut out = Vec::new();
        frame(b"abc", &mut out);
        // The bytes TensorBoard's own writer (tensorboard.summary.writer.record_writer) gives
        // for the payload `abc`.
        let want: [u8; 19] = [
            0x03, 0, 0, 0, 0, 0, 0, 0, // length 3
            0xb0, 0x99, 0x49, 0x0e, // masked CRC of the length
            b'a', b'b', b'c', //
            0x6e, 0x57, 0xf1, 0x21, // masked CRC of `abc`
        ];
        assert_eq!(out, want);
    }
}
