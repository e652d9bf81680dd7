// CRC32C (Castagnoli), the checksum of every metadata block. Table-driven in
// JavaScript: node:zlib only has the IEEE crc32, and only since Node 20.15.

/** Reflected polynomial 0x1EDC6F41. */
const polynomialReflected = 0x82f63b78;

const table = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ polynomialReflected : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC32C of `bytes`; pass a previous result as `crc` to continue over a second piece. */
export function crc32c(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = table[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
