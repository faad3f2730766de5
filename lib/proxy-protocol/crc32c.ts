/**
 * CRC32C (Castagnoli, RFC 3720 / RFC 4960 appendix B), as the PROXY protocol v2
 * CRC32C TLV requires. Node's zlib only offers the IEEE CRC-32, a different polynomial.
 *
 * Byte-at-a-time table lookup: PROXY headers are at most 64 KiB and checked once per
 * connection, so the simplest correct form is fast enough.
 */

/** The reflected Castagnoli polynomial 0x1EDC6F41. */
const POLY_REFLECTED = 0x82f63b78;

const TABLE: Uint32Array = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY_REFLECTED : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * CRC32C of `data`. Pass the result of a previous call as `previous` to continue a
 * checksum over several pieces: `crc32c(b, crc32c(a))` equals `crc32c(a ++ b)`.
 */
export function crc32c(data: Uint8Array, previous = 0): number {
  // The running register is the complement of the published value, so undo the
  // final XOR of the previous call to resume where it stopped.
  let crc = ~previous >>> 0;
  for (let i = 0; i < data.length; i++) {
    crc = TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  }
  return ~crc >>> 0;
}
