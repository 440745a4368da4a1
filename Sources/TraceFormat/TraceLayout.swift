/// The byte layout of a `.ckvt` file, version 1.0 (`Docs/trace-format.md` is the spec).
///
/// ```
/// file    = header, data frame*, index frame, trailer
/// header  = magic[8] "\x89CKVT\r\n\x1A", u16 major, u16 minor, u32 M, metadata JSON[M], u32 crc
/// frame   = frame header[36], payload[stored length]
/// trailer = u64 index offset, u64 records, u32 data frames, u32 crc, magic[8] "CKVT-END"
/// ```
/// All integers little-endian. The writer only appends, so a file cut at any byte is a
/// prefix of a valid file and readable up to its last complete frame.
public enum TraceLayout {
    public static let magic: [UInt8] = [0x89, 0x43, 0x4B, 0x56, 0x54, 0x0D, 0x0A, 0x1A]
    public static let majorVersion: UInt16 = 1
    public static let minorVersion: UInt16 = 1
    /// magic, major, minor, metadata length.
    public static let fixedHeaderSize = 16
    /// Metadata larger than this is refused (protects a reader from a corrupt length).
    public static let maxMetadataSize = 16 << 20

    public static let frameMagic: [UInt8] = Array("CKVF".utf8)
    public static let frameHeaderSize = 36
    /// A frame's payload may not exceed this (writer limit and reader sanity check).
    public static let maxFramePayload = 1 << 30

    /// The most raw payload one pass over a file may decompress: 256 MiB plus 64 × the file's
    /// size. Traces compress about 1.1× (4× for token-heavy ones); a frame that expands past
    /// this is a decompression bomb, refused before its buffer is reserved.
    public static func decompressionBudget(fileSize: UInt64) -> UInt64 {
        let (scaled, overflow) = fileSize.multipliedReportingOverflow(by: 64)
        return overflow ? .max : (256 << 20) &+ scaled
    }

    public static let trailerMagic: [UInt8] = Array("CKVT-END".utf8)
    public static let trailerSize = 32

    /// 28 bytes per data frame in the index.
    static let indexEntrySize = 28
}

/// What a frame carries.
public enum FrameKind: UInt8, Sendable {
    case records = 1
    case index = 2
}

/// How a frame's payload is stored.
public enum FrameCodec: UInt8, Sendable {
    case stored = 0
    case zstd = 1
}

/// The 36-byte header in front of every frame.
struct FrameHeader: Equatable {
    var kind: FrameKind
    var codec: FrameCodec
    /// Records frame: number of the first record. Index frame: total records in the file.
    var firstRecord: UInt64
    /// Records frame: records in it. Index frame: number of data frames.
    var recordCount: UInt32
    var storedLength: UInt32
    var rawLength: UInt32
    var payloadCRC: UInt32

    func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: TraceLayout.frameHeaderSize)
        w.raw(TraceLayout.frameMagic)
        w.u8(kind.rawValue)
        w.u8(codec.rawValue)
        w.u16(0)
        w.u64(firstRecord)
        w.u32(recordCount)
        w.u32(storedLength)
        w.u32(rawLength)
        w.u32(payloadCRC)
        w.u32(CRC32.checksum(w.bytes))
        return w.bytes
    }

    /// Parses and checks a frame header; `reason` explains a failure.
    static func parse(_ bytes: UnsafeRawBufferPointer) -> Result<FrameHeader, FrameHeaderProblem> {
        precondition(bytes.count == TraceLayout.frameHeaderSize)
        guard Array(bytes[0..<4]) == TraceLayout.frameMagic else {
            return .failure(.badMagic(found: hex(bytes[0..<4])))
        }
        var r = ByteReader(bytes, position: 4)
        // The reads below cannot run past 36 bytes.
        let kindRaw = try! r.u8(), codecRaw = try! r.u8(), reserved = try! r.u16()
        let first = try! r.u64(), count = try! r.u32(), stored = try! r.u32(), raw = try! r.u32()
        let payloadCRC = try! r.u32(), headerCRC = try! r.u32()
        guard headerCRC == CRC32.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<32])) else {
            return .failure(.checksum)
        }
        guard let kind = FrameKind(rawValue: kindRaw) else { return .failure(.field("unknown frame kind \(kindRaw)")) }
        guard let codec = FrameCodec(rawValue: codecRaw) else { return .failure(.field("unknown frame codec \(codecRaw)")) }
        guard reserved == 0 else { return .failure(.field("reserved field is \(reserved), expected 0")) }
        guard stored <= TraceLayout.maxFramePayload, raw <= TraceLayout.maxFramePayload else {
            return .failure(.field("payload length \(max(stored, raw)) exceeds the 1 GiB frame limit"))
        }
        if codec == .stored, stored != raw { return .failure(.field("stored frame with different stored and raw lengths")) }
        return .success(FrameHeader(kind: kind, codec: codec, firstRecord: first, recordCount: count,
                                    storedLength: stored, rawLength: raw, payloadCRC: payloadCRC))
    }

    enum FrameHeaderProblem: Error {
        case badMagic(found: String)
        case checksum
        case field(String)

        var text: String {
            switch self {
            case let .badMagic(found): "expected a frame header (\"CKVF\"), found \(found)"
            case .checksum: "frame header checksum mismatch"
            case let .field(s): "frame header: \(s)"
            }
        }
    }
}

extension TraceLayout {
    /// Recomputes every checksum the bytes still have the layout for — the header's, each frame's
    /// header and payload, the trailer's — walking the frames by their stored lengths. For crafting
    /// inputs (the fuzz tests and `ckv-fuzz`'s mutator): a mutant that dies at a checksum tests nothing past it.
    public static func resealChecksums(_ b: UnsafeMutableBufferPointer<UInt8>) {
        func u32(_ at: Int) -> Int { (0..<4).reduce(0) { $0 | Int(b[at + $1]) << (8 * $1) } }
        func put(_ v: UInt32, _ at: Int) { for k in 0..<4 { b[at + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(k))) } }
        func crc(_ from: Int, _ to: Int) -> UInt32 { CRC32.checksum(UnsafeRawBufferPointer(UnsafeMutableBufferPointer(rebasing: b[from..<to]))) }
        guard b.count >= fixedHeaderSize + 4 else { return }
        let metaEnd = fixedHeaderSize + u32(12)
        guard metaEnd + 4 <= b.count else { return }
        put(crc(0, metaEnd), metaEnd)
        let hasTrailer = b.count >= metaEnd + 4 + trailerSize && Array(b[(b.count - 8)...]) == trailerMagic
        let framesEnd = hasTrailer ? b.count - trailerSize : b.count
        var at = metaEnd + 4
        while at + frameHeaderSize <= framesEnd {
            let end = at + frameHeaderSize + u32(at + 20)
            if end <= framesEnd { put(crc(at + frameHeaderSize, end), at + 28) }
            put(crc(at, at + 32), at + 32)
            at = end
        }
        if hasTrailer { put(crc(framesEnd, framesEnd + 20), framesEnd + 20) }
    }

    /// `resealChecksums` on an array.
    public static func resealChecksums(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBufferPointer { resealChecksums($0) }
    }
}

/// What one pass over a file has decompressed so far, against `TraceLayout.decompressionBudget`.
struct DecompressionBudget {
    let limit: UInt64
    private(set) var used: UInt64 = 0

    init(fileSize: UInt64) { limit = TraceLayout.decompressionBudget(fileSize: fileSize) }

    /// Accounts for a frame of `raw` bytes, or refuses it.
    mutating func take(_ raw: UInt32, path: String, at offset: UInt64) throws {
        let after = used + UInt64(raw)
        guard after <= limit else {
            throw TraceError.corrupt(path: path, offset: offset,
                                     reason: "the frame declares \(raw) raw bytes, past the decompression budget of this file (\(limit) bytes: 256 MiB + 64 × its size; \(used) used)")
        }
        used = after
    }
}

/// The fixed 32 bytes at the end of a finished file.
struct Trailer: Equatable {
    var indexOffset: UInt64
    var recordCount: UInt64
    var frameCount: UInt32

    func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: TraceLayout.trailerSize)
        w.u64(indexOffset)
        w.u64(recordCount)
        w.u32(frameCount)
        w.u32(CRC32.checksum(w.bytes))
        w.raw(TraceLayout.trailerMagic)
        return w.bytes
    }

    enum Parsed {
        case valid(Trailer)
        /// The magic is there but the fields fail their checksum.
        case damaged
        /// No trailer magic: the file is unfinished or its end is damaged.
        case absent
    }

    static func parse(_ bytes: UnsafeRawBufferPointer) -> Parsed {
        precondition(bytes.count == TraceLayout.trailerSize)
        guard Array(bytes[24..<32]) == TraceLayout.trailerMagic else { return .absent }
        var r = ByteReader(bytes)
        let offset = try! r.u64(), records = try! r.u64(), frames = try! r.u32(), crc = try! r.u32()
        guard crc == CRC32.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<20])) else { return .damaged }
        return .valid(Trailer(indexOffset: offset, recordCount: records, frameCount: frames))
    }
}

/// Where each data frame lies and what it holds; the payload of the index frame.
public struct TraceIndex: Equatable, Sendable {
    /// One data frame.
    public struct Entry: Equatable, Sendable {
        /// File offset of the frame header.
        public var offset: UInt64
        public var firstRecord: UInt64
        public var recordCount: UInt32
        public var storedLength: UInt32
        public var rawLength: UInt32
    }

    public var frames: [Entry]
    /// Records per type code, in ascending type order.
    public var recordsByType: [(type: UInt16, count: UInt64)]

    public var recordCount: UInt64 { frames.reduce(0) { $0 + UInt64($1.recordCount) } }
    public var storedPayloadBytes: UInt64 { frames.reduce(0) { $0 + UInt64($1.storedLength) } }
    public var rawPayloadBytes: UInt64 { frames.reduce(0) { $0 + UInt64($1.rawLength) } }

    public static func == (a: TraceIndex, b: TraceIndex) -> Bool {
        a.frames == b.frames && a.recordsByType.map(\.type) == b.recordsByType.map(\.type)
            && a.recordsByType.map(\.count) == b.recordsByType.map(\.count)
    }

    func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 8 + frames.count * TraceLayout.indexEntrySize + recordsByType.count * 12)
        w.u32(UInt32(frames.count))
        for f in frames {
            w.u64(f.offset); w.u64(f.firstRecord); w.u32(f.recordCount); w.u32(f.storedLength); w.u32(f.rawLength)
        }
        w.u32(UInt32(recordsByType.count))
        for t in recordsByType {
            w.u16(t.type); w.u16(0); w.u64(t.count)
        }
        return w.bytes
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) throws -> TraceIndex {
        var r = ByteReader(bytes)
        let n = Int(try r.u32())
        guard n <= r.remaining / TraceLayout.indexEntrySize else { throw ByteReader.OutOfBounds(position: 0, wanted: n * TraceLayout.indexEntrySize) }
        var frames: [Entry] = []
        frames.reserveCapacity(n)
        for _ in 0..<n {
            frames.append(Entry(offset: try r.u64(), firstRecord: try r.u64(), recordCount: try r.u32(),
                                storedLength: try r.u32(), rawLength: try r.u32()))
        }
        let t = Int(try r.u32())
        var byType: [(type: UInt16, count: UInt64)] = []
        for _ in 0..<t {
            let type = try r.u16()
            try r.skip(2)
            byType.append((type, try r.u64()))
        }
        guard r.remaining == 0 else { throw ByteReader.OutOfBounds(position: r.position, wanted: 0) }
        return TraceIndex(frames: frames, recordsByType: byType)
    }
}

/// Up to 8 bytes as hex, for error messages ("end of file" when empty).
func hex(_ bytes: some Collection<UInt8>) -> String {
    if bytes.isEmpty { return "end of file" }
    let shown = bytes.prefix(8).map { byte in
        let s = String(byte, radix: 16, uppercase: true)
        return s.count == 1 ? "0" + s : s
    }
    return shown.joined(separator: " ") + (bytes.count > 8 ? " …" : "")
}
