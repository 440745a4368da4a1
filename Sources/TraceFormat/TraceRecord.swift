import HalfFloat

/// The typed records a trace holds (`Docs/trace-format.md`, "Records").
///
/// Every record is an 8-byte envelope (u16 type, u16 flags = 0, u32 body length) and a body.
/// Readers skip types they do not know, so a minor version may add types.

/// How floating-point values of a record are stored.
public enum ValueEncoding: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    /// IEEE 754 binary32: exact.
    case f32 = 1
    /// IEEE 754 binary16, round to nearest even: relative error ≤ 2⁻¹¹ for normal values,
    /// values below 6.1e-5 lose relative precision (absolute error ≤ 2⁻²⁵).
    case f16 = 2
    /// bfloat16 (the top 16 bits of binary32, round to nearest even): relative error ≤ 2⁻⁸.
    case bf16 = 3

    public var bytesPerValue: Int { self == .f32 ? 4 : 2 }
    public var description: String {
        switch self {
        case .f32: "f32"
        case .f16: "f16"
        case .bf16: "bf16"
        }
    }
}

/// Whose tokens a `tokens` record lists.
public enum TokenRole: UInt8, Sendable {
    case prompt = 0
    case generated = 1
}

/// What a `span` record marks inside the prompt.
public enum SpanRole: UInt8, Sendable {
    /// The expected answer's tokens (passkey digits, needle value).
    case answer = 0
    /// The whole inserted needle sentence.
    case needle = 1
}

/// Which per-(layer, query head) statistic over prompt keys a `head_statistic` holds.
public enum StatisticKind: UInt8, Sendable, CaseIterable {
    /// Σ over the last `window` prompt queries of post-softmax attention to each key
    /// (SnapKV, PyramidKV, Ada-KV, ChunkKV, CompressKV scores).
    case windowSum = 0
    /// Σ over the last `window` prompt queries of the squared attention (KV-Compress).
    case windowSquaredSum = 1
    /// Σ over all prompt queries of the attention each key receives (H2O).
    case accumulated = 2
}

/// Which vector of a decode step a `decode_vector` record holds.
public enum VectorKind: UInt8, Sendable {
    case query = 0
    case key = 1
    case value = 2
    /// The head's attention output before the output projection.
    case output = 3
}

/// A per-(layer, query head) statistic over the prompt's keys.
public struct HeadStatistic: Equatable, Sendable {
    public var kind: StatisticKind
    public var layer: UInt16
    /// The query head (not the KV head).
    public var head: UInt16
    /// The observation window w; 0 for `accumulated`.
    public var window: UInt16
    public var encoding: ValueEncoding
    /// One value per key position 0..<count.
    public var values: [Float]

    public init(kind: StatisticKind, layer: UInt16, head: UInt16, window: UInt16, encoding: ValueEncoding, values: [Float]) {
        self.kind = kind
        self.layer = layer
        self.head = head
        self.window = window
        self.encoding = encoding
        self.values = values
    }
}

/// A decode step's post-softmax attention row for one (layer, query head).
public struct DecodeAttention: Equatable, Sendable {
    public var layer: UInt16
    public var head: UInt16
    /// Decode step, 0 = the query of the first generated token.
    public var step: UInt32
    public var encoding: ValueEncoding
    /// One weight per cached key, in cache position order.
    public var values: [Float]

    public init(layer: UInt16, head: UInt16, step: UInt32, encoding: ValueEncoding, values: [Float]) {
        self.layer = layer
        self.head = head
        self.step = step
        self.encoding = encoding
        self.values = values
    }
}

/// A vector of a decode step (query, key, value or head output) for one (layer, head).
public struct DecodeVector: Equatable, Sendable {
    public var kind: VectorKind
    public var layer: UInt16
    /// Query head for `query`/`output`, KV head for `key`/`value`.
    public var head: UInt16
    public var step: UInt32
    public var encoding: ValueEncoding
    public var values: [Float]

    public init(kind: VectorKind, layer: UInt16, head: UInt16, step: UInt32, encoding: ValueEncoding, values: [Float]) {
        self.kind = kind
        self.layer = layer
        self.head = head
        self.step = step
        self.encoding = encoding
        self.values = values
    }
}

/// The keys or values a KV head held after the run, for every position (format 1.1): what
/// replay needs to recompute attention outputs over any kept subset.
public struct CacheVectors: Equatable, Sendable {
    /// `.key` or `.value`.
    public var kind: VectorKind
    public var layer: UInt16
    public var kvHead: UInt16
    public var encoding: ValueEncoding
    /// Vector length (the head dimension).
    public var dimension: Int
    /// Position after position, `dimension` values each.
    public var values: [Float]

    public init(kind: VectorKind, layer: UInt16, kvHead: UInt16, encoding: ValueEncoding, dimension: Int, values: [Float]) {
        precondition(dimension > 0 && values.count % dimension == 0, "cache vectors must hold whole vectors")
        self.kind = kind
        self.layer = layer
        self.kvHead = kvHead
        self.encoding = encoding
        self.dimension = dimension
        self.values = values
    }

    /// Positions held.
    public var count: Int { values.count / dimension }
}

/// One record of a trace.
public enum TraceRecord: Equatable, Sendable {
    case tokens(role: TokenRole, ids: [UInt32])
    /// Half-open token positions [start, end) in the prompt.
    case span(role: SpanRole, start: UInt32, end: UInt32)
    case headStatistic(HeadStatistic)
    case decodeAttention(DecodeAttention)
    case decodeVector(DecodeVector)
    case cacheVectors(CacheVectors)
    /// A key/value fact recorded with the run (outcome, timing, engine settings).
    case annotation(key: String, value: String)
    /// A record type this build does not know, kept verbatim.
    case unknown(type: UInt16, body: [UInt8])

    /// The record type codes of format 1.0.
    public enum Kind: UInt16, CaseIterable, Sendable {
        case tokens = 1, span = 2, headStatistic = 3, decodeAttention = 4, decodeVector = 5, annotation = 6, cacheVectors = 7

        public var name: String {
            switch self {
            case .tokens: "tokens"
            case .span: "span"
            case .headStatistic: "head_statistic"
            case .decodeAttention: "decode_attention"
            case .decodeVector: "decode_vector"
            case .annotation: "annotation"
            case .cacheVectors: "cache_vectors"
            }
        }
    }

    /// The type code written in the envelope.
    public var typeCode: UInt16 {
        switch self {
        case .tokens: Kind.tokens.rawValue
        case .span: Kind.span.rawValue
        case .headStatistic: Kind.headStatistic.rawValue
        case .decodeAttention: Kind.decodeAttention.rawValue
        case .decodeVector: Kind.decodeVector.rawValue
        case .annotation: Kind.annotation.rawValue
        case .cacheVectors: Kind.cacheVectors.rawValue
        case let .unknown(type, _): type
        }
    }

    /// A readable name for a type code ("unknown(9)" for codes this build does not know).
    public static func name(ofType code: UInt16) -> String {
        Kind(rawValue: code)?.name ?? "unknown(\(code))"
    }
}

// MARK: - Encoding

extension TraceRecord {
    static let envelopeSize = 8

    /// Appends envelope and body to `out`.
    func encode(into out: inout ByteWriter) {
        let start = out.bytes.count
        out.u16(typeCode)
        out.u16(0)
        out.u32(0) // body length, patched below
        switch self {
        case let .tokens(role, ids):
            out.u8(role.rawValue); out.zeros(3)
            out.u32(UInt32(ids.count))
            for id in ids { out.u32(id) }
        case let .span(role, startPos, end):
            out.u8(role.rawValue); out.zeros(3)
            out.u32(startPos); out.u32(end)
        case let .headStatistic(s):
            out.u8(s.kind.rawValue); out.u8(s.encoding.rawValue)
            out.u16(s.layer); out.u16(s.head); out.u16(s.window)
            out.u32(UInt32(s.values.count))
            Self.encodeValues(s.values, s.encoding, into: &out)
        case let .decodeAttention(a):
            out.u8(0); out.u8(a.encoding.rawValue)
            out.u16(a.layer); out.u16(a.head); out.u16(0)
            out.u32(a.step); out.u32(UInt32(a.values.count))
            Self.encodeValues(a.values, a.encoding, into: &out)
        case let .decodeVector(v):
            out.u8(v.kind.rawValue); out.u8(v.encoding.rawValue)
            out.u16(v.layer); out.u16(v.head); out.u16(0)
            out.u32(v.step); out.u32(UInt32(v.values.count))
            Self.encodeValues(v.values, v.encoding, into: &out)
        case let .cacheVectors(c):
            out.u8(c.kind.rawValue); out.u8(c.encoding.rawValue)
            out.u16(c.layer); out.u16(c.kvHead); out.u16(0)
            out.u32(UInt32(c.count)); out.u32(UInt32(c.dimension))
            Self.encodeValues(c.values, c.encoding, into: &out)
        case let .annotation(key, value):
            let k = Array(key.utf8), v = Array(value.utf8)
            out.u32(UInt32(k.count)); out.raw(k)
            out.u32(UInt32(v.count)); out.raw(v)
        case let .unknown(_, body):
            out.raw(body)
        }
        let bodyLength = UInt32(out.bytes.count - start - Self.envelopeSize)
        withUnsafeBytes(of: bodyLength.littleEndian) { le in
            for i in 0..<4 { out.bytes[start + 4 + i] = le[i] }
        }
    }

    /// The record as stored inside a frame's raw payload: envelope and body.
    public func encodedBytes() -> [UInt8] {
        var w = ByteWriter(capacity: encodedSize)
        encode(into: &w)
        return w.bytes
    }

    /// The encoded size of the record, envelope included.
    var encodedSize: Int {
        let body: Int
        switch self {
        case let .tokens(_, ids): body = 8 + 4 * ids.count
        case .span: body = 12
        case let .headStatistic(s): body = 12 + s.encoding.bytesPerValue * s.values.count
        case let .decodeAttention(a): body = 16 + a.encoding.bytesPerValue * a.values.count
        case let .decodeVector(v): body = 16 + v.encoding.bytesPerValue * v.values.count
        case let .cacheVectors(c): body = 16 + c.encoding.bytesPerValue * c.values.count
        case let .annotation(k, v): body = 8 + k.utf8.count + v.utf8.count
        case let .unknown(_, b): body = b.count
        }
        return Self.envelopeSize + body
    }

    static func encodeValues(_ values: [Float], _ encoding: ValueEncoding, into out: inout ByteWriter) {
        let start = out.bytes.count
        let n = values.count
        out.bytes.append(contentsOf: repeatElement(0, count: n * encoding.bytesPerValue))
        out.bytes.withUnsafeMutableBytes { raw in
            let dst = UnsafeMutableRawBufferPointer(rebasing: raw[start...])
            values.withUnsafeBufferPointer { src in
                switch encoding {
                case .f32:
                    for i in 0..<n { dst.storeBytes(of: src[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
                case .f16:
                    for i in 0..<n { dst.storeBytes(of: halfBits(src[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
                case .bf16:
                    for i in 0..<n { dst.storeBytes(of: bfloat16Bits(src[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
                }
            }
        }
    }

    /// Rounds binary32 to binary16 bits (nearest, ties to even), as `Float16(v).bitPattern`.
    @inline(__always)
    static func halfBits(_ v: Float) -> UInt16 { HalfFloat.bits(v) }

    /// Rounds binary32 to bfloat16 (nearest, ties to even; NaN stays a quiet NaN).
    static func bfloat16Bits(_ v: Float) -> UInt16 {
        let bits = v.bitPattern
        if v.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        let rounding: UInt32 = 0x7FFF + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    /// The value `v` becomes after a round trip through `encoding`.
    public static func quantized(_ v: Float, _ encoding: ValueEncoding) -> Float {
        switch encoding {
        case .f32: v
        case .f16: Float(Float16(bitPattern: halfBits(v)))
        case .bf16: Float(bitPattern: UInt32(bfloat16Bits(v)) << 16)
        }
    }
}

// MARK: - Decoding

extension TraceRecord {
    /// Why a record body could not be decoded (offset relative to the frame payload).
    struct DecodeFailure: Error {
        let offset: Int
        let reason: String
    }

    /// Decodes the record at the reader's position.
    static func decode(from reader: inout ByteReader) throws -> TraceRecord {
        let at = reader.position
        func fail(_ reason: String) -> DecodeFailure { DecodeFailure(offset: at, reason: reason) }
        let type: UInt16, length: Int
        do {
            type = try reader.u16()
            _ = try reader.u16()
            length = Int(try reader.u32())
        } catch {
            throw fail("record envelope needs 8 bytes, \(reader.remaining) left in the frame")
        }
        guard type != 0 else { throw fail("record type 0 is reserved (a payload of zeros is no record)") }
        guard length <= reader.remaining else {
            throw fail("record of type \(type) declares \(length) body bytes, \(reader.remaining) left in the frame")
        }
        var body = ByteReader(try reader.bytes(length))
        do {
            guard let kind = Kind(rawValue: type) else {
                return .unknown(type: type, body: Array(body.bytes))
            }
            let record: TraceRecord
            switch kind {
            case .tokens:
                guard let role = TokenRole(rawValue: try body.u8()) else { throw fail("unknown token role") }
                try body.skip(3)
                let n = Int(try body.u32())
                guard n * 4 == body.remaining else { throw fail("tokens record declares \(n) ids in \(body.remaining) bytes") }
                var ids = [UInt32](); ids.reserveCapacity(n)
                for _ in 0..<n { ids.append(try body.u32()) }
                record = .tokens(role: role, ids: ids)
            case .span:
                guard let role = SpanRole(rawValue: try body.u8()) else { throw fail("unknown span role") }
                try body.skip(3)
                let start = try body.u32(), end = try body.u32()
                guard start <= end else { throw fail("span [\(start), \(end)) ends before it starts") }
                record = .span(role: role, start: start, end: end)
            case .headStatistic:
                guard let statKind = StatisticKind(rawValue: try body.u8()) else { throw fail("unknown statistic kind") }
                let encoding = try decodeEncoding(try body.u8(), fail)
                let layer = try body.u16(), head = try body.u16(), window = try body.u16()
                let values = try decodeValues(&body, count: Int(try body.u32()), encoding, fail)
                record = .headStatistic(HeadStatistic(kind: statKind, layer: layer, head: head, window: window, encoding: encoding, values: values))
            case .decodeAttention:
                try body.skip(1)
                let encoding = try decodeEncoding(try body.u8(), fail)
                let layer = try body.u16(), head = try body.u16()
                try body.skip(2)
                let step = try body.u32()
                let values = try decodeValues(&body, count: Int(try body.u32()), encoding, fail)
                record = .decodeAttention(DecodeAttention(layer: layer, head: head, step: step, encoding: encoding, values: values))
            case .decodeVector:
                guard let vk = VectorKind(rawValue: try body.u8()) else { throw fail("unknown vector kind") }
                let encoding = try decodeEncoding(try body.u8(), fail)
                let layer = try body.u16(), head = try body.u16()
                try body.skip(2)
                let step = try body.u32()
                let values = try decodeValues(&body, count: Int(try body.u32()), encoding, fail)
                record = .decodeVector(DecodeVector(kind: vk, layer: layer, head: head, step: step, encoding: encoding, values: values))
            case .cacheVectors:
                guard let vk = VectorKind(rawValue: try body.u8()), vk == .key || vk == .value else { throw fail("cache vectors must be keys or values") }
                let encoding = try decodeEncoding(try body.u8(), fail)
                let layer = try body.u16(), head = try body.u16()
                try body.skip(2)
                let count = Int(try body.u32()), dimension = Int(try body.u32())
                guard dimension > 0 else { throw fail("cache vectors of dimension 0") }
                let (total, overflow) = count.multipliedReportingOverflow(by: dimension)
                guard !overflow, total <= body.remaining else {
                    throw fail("cache vectors declare \(count) × \(dimension) values in \(body.remaining) bytes")
                }
                let values = try decodeValues(&body, count: total, encoding, fail)
                record = .cacheVectors(CacheVectors(kind: vk, layer: layer, kvHead: head, encoding: encoding, dimension: dimension, values: values))
            case .annotation:
                let key = try body.bytes(Int(try body.u32()))
                let value = try body.bytes(Int(try body.u32()))
                record = .annotation(key: String(decoding: key, as: UTF8.self), value: String(decoding: value, as: UTF8.self))
            }
            guard body.remaining == 0 else { throw fail("\(kind.name) record has \(body.remaining) bytes after its fields") }
            return record
        } catch is ByteReader.OutOfBounds {
            throw fail("record of type \(type) is shorter than its fields")
        }
    }

    private static func decodeEncoding(_ raw: UInt8, _ fail: (String) -> DecodeFailure) throws -> ValueEncoding {
        guard let e = ValueEncoding(rawValue: raw) else { throw fail("unknown value encoding \(raw)") }
        return e
    }

    private static func decodeValues(_ body: inout ByteReader, count: Int, _ encoding: ValueEncoding,
                                     _ fail: (String) -> DecodeFailure) throws -> [Float] {
        guard count * encoding.bytesPerValue == body.remaining else {
            throw fail("declares \(count) \(encoding) values in \(body.remaining) bytes")
        }
        let raw = try body.bytes(count * encoding.bytesPerValue)
        return [Float](unsafeUninitializedCapacity: count) { out, initialized in
            switch encoding {
            case .f32:
                for i in 0..<count { out[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
            case .f16:
                HalfFloat.table.withUnsafeBufferPointer { table in
                    for i in 0..<count { out[i] = table[Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))] }
                }
            case .bf16:
                for i in 0..<count { out[i] = Float(bitPattern: UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16) }
            }
            initialized = count
        }
    }
}
