/// Little-endian encoding helpers shared by the header, records, frames and index.

/// Appends little-endian scalars and raw bytes to a growing buffer.
struct ByteWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func raw(_ v: some Sequence<UInt8>) { bytes.append(contentsOf: v) }
    mutating func zeros(_ n: Int) { bytes.append(contentsOf: repeatElement(0, count: n)) }
}

/// Reads little-endian scalars from a byte buffer, failing (not trapping) past its end.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    private(set) var position: Int

    init(_ bytes: UnsafeRawBufferPointer, position: Int = 0) {
        self.bytes = bytes
        self.position = position
    }

    var remaining: Int { bytes.count - position }

    struct OutOfBounds: Error {
        let position: Int
        let wanted: Int
    }

    private mutating func take(_ n: Int) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= remaining else { throw OutOfBounds(position: position, wanted: n) }
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<position + n])
    }

    mutating func u8() throws -> UInt8 { try take(1)[0] }
    mutating func u16() throws -> UInt16 { UInt16(littleEndian: try take(2).loadUnaligned(as: UInt16.self)) }
    mutating func u32() throws -> UInt32 { UInt32(littleEndian: try take(4).loadUnaligned(as: UInt32.self)) }
    mutating func u64() throws -> UInt64 { UInt64(littleEndian: try take(8).loadUnaligned(as: UInt64.self)) }
    mutating func bytes(_ n: Int) throws -> UnsafeRawBufferPointer { try take(n) }
    mutating func skip(_ n: Int) throws { _ = try take(n) }
}
