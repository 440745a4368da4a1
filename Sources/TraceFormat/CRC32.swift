import CZlib

/// CRC-32 as zlib computes it (ISO-HDLC: polynomial 0x04C11DB7 reflected, initial and final
/// XOR 0xFFFFFFFF; `crc32("123456789") == 0xCBF43926`), the checksum of every `.ckvt` frame.
/// Any language's zlib binding (`zlib.crc32` in Python) computes the same value.
public enum CRC32 {
    /// The CRC-32 of `bytes`, continuing from `seed` (0 to start).
    public static func checksum(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        var crc = UInt(seed)
        var base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
        var left = bytes.count
        // zlib takes a 32-bit length; feed larger buffers in pieces.
        while left > 0, let p = base {
            let n = min(left, Int(UInt32.max >> 1))
            crc = crc32(crc, p, UInt32(n))
            base = p + n
            left -= n
        }
        return UInt32(truncatingIfNeeded: crc)
    }

    /// The CRC-32 of a byte array (or any contiguous bytes).
    public static func checksum(_ bytes: [UInt8], seed: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0, seed: seed) }
    }
}
