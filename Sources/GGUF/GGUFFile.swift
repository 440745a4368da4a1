// GGUF v2/v3 reader: header, metadata of every value type, tensor infos.
// Layout as specified in ggml's docs/gguf.md and read by gguf_init_from_file in ggml/src/gguf.cpp:
//   magic "GGUF", u32 version, u64 tensor count, u64 metadata count,
//   metadata: (string key, u32 type, value)*, tensor infos: (string name, u32 n_dims,
//   u64 dims[n_dims], u32 ggml type, u64 offset)*, padding to `general.alignment` (default 32),
//   tensor data. Strings are u64 length + UTF-8 bytes; arrays are u32 element type + u64 count.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Crypto
import Foundation

/// A metadata value.
public indirect enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String), uint64(UInt64), int64(Int64), float64(Double)
    case array([GGUFValue])

    /// The value as an integer, if it is one of the integer types.
    public var int: Int? {
        switch self {
        case let .uint8(v): Int(v)
        case let .int8(v): Int(v)
        case let .uint16(v): Int(v)
        case let .int16(v): Int(v)
        case let .uint32(v): Int(v)
        case let .int32(v): Int(v)
        case let .uint64(v): Int(exactly: v)
        case let .int64(v): Int(v)
        default: nil
        }
    }

    public var double: Double? {
        switch self {
        case let .float32(v): Double(v)
        case let .float64(v): v
        default: int.map(Double.init)
        }
    }

    public var string: String? { if case let .string(s) = self { s } else { nil } }
    public var bool: Bool? { if case let .bool(b) = self { b } else { nil } }
    public var array: [GGUFValue]? { if case let .array(a) = self { a } else { nil } }

    /// The type name used in error messages.
    public var typeName: String {
        switch self {
        case .uint8: "u8"
        case .int8: "i8"
        case .uint16: "u16"
        case .int16: "i16"
        case .uint32: "u32"
        case .int32: "i32"
        case .float32: "f32"
        case .bool: "bool"
        case .string: "string"
        case .uint64: "u64"
        case .int64: "i64"
        case .float64: "f64"
        case .array: "array"
        }
    }
}

/// One tensor's description: name, shape (ggml order, fastest dimension first), type, and
/// where its data starts relative to the data section.
public struct GGUFTensorInfo: Equatable, Sendable {
    public var name: String
    public var dimensions: [Int]
    /// The ggml type number (0 = F32, 1 = F16, 2 = Q4_0, 3 = Q4_1, 6 = Q5_0, 8 = Q8_0, 12 = Q4_K, 14 = Q6_K, 30 = BF16 …).
    public var type: UInt32
    /// Offset in the file of the first byte of the tensor's data.
    public var fileOffset: Int
    public var elementCount: Int { dimensions.reduce(1, *) }
}

/// Why a GGUF file cannot be read.
public enum GGUFError: LocalizedError, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case notGGUF(path: String)
    case unsupportedVersion(path: String, version: UInt32)
    case truncated(path: String, offset: Int, expected: String)
    case malformed(path: String, offset: Int, reason: String)
    case missingKey(path: String, key: String)
    case wrongType(path: String, key: String, expected: String, found: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): "\(path): cannot read: \(reason)"
        case let .notGGUF(path): "\(path): not a GGUF file: expected the magic \"GGUF\" at offset 0"
        case let .unsupportedVersion(path, v): "\(path): GGUF version \(v) at offset 4 is not supported (2 and 3 are)"
        case let .truncated(path, offset, expected): "\(path): truncated at offset \(offset): expected \(expected)"
        case let .malformed(path, offset, reason): "\(path): malformed at offset \(offset): \(reason)"
        case let .missingKey(path, key): "\(path): metadata key \"\(key)\" is missing"
        case let .wrongType(path, key, expected, found): "\(path): metadata key \"\(key)\" is \(found), expected \(expected)"
        }
    }
}

/// A memory-mapped GGUF file: its metadata and tensor infos, read at open.
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let keys: [String]
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// Offset of the data section.
    public let dataOffset: Int
    public let fileSize: Int
    /// The mapped file (read-only); tensor data lives at `tensor.fileOffset`.
    public let bytes: UnsafeRawBufferPointer

    /// Maps `path` and parses its header, metadata and tensor infos.
    /// - Throws: `GGUFError` naming the file and the offset of the first problem.
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw GGUFError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw GGUFError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw GGUFError.unreadable(path: path, reason: "is a directory") }
        fileSize = Int(st.st_size)
        guard st.st_size >= 4 else {
            throw st.st_size == 0 ? GGUFError.notGGUF(path: path) : GGUFError.truncated(path: path, offset: 0, expected: "the 24-byte GGUF header")
        }
        guard let base = mmap(nil, fileSize, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw GGUFError.unreadable(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        bytes = UnsafeRawBufferPointer(start: base, count: fileSize)
        do {
            var r = Cursor(bytes: bytes, path: path)
            guard Array(bytes[0..<4]) == Array("GGUF".utf8) else { throw GGUFError.notGGUF(path: path) }
            r.offset = 4
            version = try r.u32("the GGUF version")
            guard version == 2 || version == 3 else { throw GGUFError.unsupportedVersion(path: path, version: version) }
            let tensorCount = try r.count("the tensor count", limit: 1 << 24)
            let kvCount = try r.count("the metadata count", limit: 1 << 24)
            var metadata: [String: GGUFValue] = [:]
            var keys: [String] = []
            for _ in 0..<kvCount {
                let key = try r.string("a metadata key")
                let type = try r.u32("the type of \(quoted(key))")
                metadata[key] = try r.value(type: type, key: key)
                keys.append(key)
            }
            self.metadata = metadata
            self.keys = keys
            let alignment = metadata["general.alignment"]?.int ?? 32
            guard alignment > 0, alignment & (alignment - 1) == 0 else {
                throw GGUFError.malformed(path: path, offset: r.offset, reason: "general.alignment \(alignment) is not a power of two")
            }
            self.alignment = alignment
            var infos: [(String, [Int], UInt32, Int)] = []
            for _ in 0..<tensorCount {
                let name = try r.string("a tensor name")
                let dims = try r.u32("the dimension count of \(quoted(name))")
                guard (1...4).contains(dims) else {
                    throw GGUFError.malformed(path: path, offset: r.offset - 4, reason: "tensor \(quoted(name)) has \(dims) dimensions (1 to 4 allowed)")
                }
                var shape: [Int] = []
                for _ in 0..<dims { shape.append(try r.count("a dimension of \(quoted(name))", limit: 1 << 40)) }
                let type = try r.u32("the type of \(quoted(name))")
                let offset = try r.count("the data offset of \(quoted(name))", limit: Int.max)
                infos.append((name, shape, type, offset))
            }
            let start = (r.offset + alignment - 1) / alignment * alignment
            dataOffset = start
            tensors = infos.map { GGUFTensorInfo(name: $0.0, dimensions: $0.1, type: $0.2, fileOffset: start + $0.3) }
        } catch {
            munmap(base, fileSize)
            throw error
        }
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: bytes.baseAddress), fileSize) }

    // MARK: Typed accessors

    /// The metadata value for `key`, or `GGUFError.missingKey`.
    public func value(_ key: String) throws -> GGUFValue {
        guard let v = metadata[key] else { throw GGUFError.missingKey(path: path, key: key) }
        return v
    }

    public func int(_ key: String) throws -> Int {
        let v = try value(key)
        guard let i = v.int else { throw GGUFError.wrongType(path: path, key: key, expected: "an integer", found: v.typeName) }
        return i
    }

    public func double(_ key: String) throws -> Double {
        let v = try value(key)
        guard let d = v.double else { throw GGUFError.wrongType(path: path, key: key, expected: "a number", found: v.typeName) }
        return d
    }

    public func string(_ key: String) throws -> String {
        let v = try value(key)
        guard let s = v.string else { throw GGUFError.wrongType(path: path, key: key, expected: "a string", found: v.typeName) }
        return s
    }

    public func strings(_ key: String) throws -> [String] {
        let v = try value(key)
        guard let a = v.array, let s = Optional(a.compactMap(\.string)), s.count == a.count else {
            throw GGUFError.wrongType(path: path, key: key, expected: "an array of strings", found: v.typeName)
        }
        return s
    }

    /// `general.architecture`, the prefix of the model's own keys.
    public var architecture: String? { metadata["general.architecture"]?.string }

    public func tensor(named name: String) -> GGUFTensorInfo? { tensors.first { $0.name == name } }
}

/// Reads little-endian values from the mapped bytes, failing with the offset past the end.
private struct Cursor {
    let bytes: UnsafeRawBufferPointer
    let path: String
    var offset = 0

    mutating func need(_ n: Int, _ what: @autoclosure () -> String) throws {
        guard n >= 0, n <= bytes.count - offset else {
            throw GGUFError.truncated(path: path, offset: offset, expected: what())
        }
    }

    mutating func load<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        try need(MemoryLayout<T>.size, what())
        defer { offset += MemoryLayout<T>.size }
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    mutating func u32(_ what: @autoclosure () -> String) throws -> UInt32 { try load(UInt32.self, what()) }

    /// A u64 count or size, bounded so a damaged value cannot drive a huge loop or allocation.
    mutating func count(_ what: @autoclosure () -> String, limit: Int) throws -> Int {
        let at = offset
        let v = try load(UInt64.self, what())
        guard v <= UInt64(limit) else {
            throw GGUFError.malformed(path: path, offset: at, reason: "\(what()) is \(v), above the limit of \(limit)")
        }
        return Int(v)
    }

    mutating func string(_ what: @autoclosure () -> String) throws -> String {
        let n = try count("the length of \(what())", limit: bytes.count)
        try need(n, "\(n) bytes of \(what())")
        defer { offset += n }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + n]), as: UTF8.self)
    }

    mutating func value(type: UInt32, key: String) throws -> GGUFValue {
        let what = "the value of \(quoted(key))"
        switch type {
        case 0: return .uint8(try load(UInt8.self, what))
        case 1: return .int8(try load(Int8.self, what))
        case 2: return .uint16(try load(UInt16.self, what))
        case 3: return .int16(try load(Int16.self, what))
        case 4: return .uint32(try load(UInt32.self, what))
        case 5: return .int32(try load(Int32.self, what))
        case 6: return .float32(Float(bitPattern: try load(UInt32.self, what)))
        case 7:
            let at = offset
            let b = try load(UInt8.self, what)
            guard b <= 1 else { throw GGUFError.malformed(path: path, offset: at, reason: "bool \(quoted(key)) is \(b)") }
            return .bool(b == 1)
        case 8: return .string(try string(what))
        case 9:
            let elementType = try u32("the element type of \(quoted(key))")
            guard elementType != 9 else { throw GGUFError.malformed(path: path, offset: offset - 4, reason: "nested array in \(quoted(key))") }
            let n = try count("the length of \(quoted(key))", limit: bytes.count)
            var items: [GGUFValue] = []
            items.reserveCapacity(n)
            for _ in 0..<n { items.append(try value(type: elementType, key: key)) }
            return .array(items)
        case 10: return .uint64(try load(UInt64.self, what))
        case 11: return .int64(try load(Int64.self, what))
        case 12: return .float64(Double(bitPattern: try load(UInt64.self, what)))
        default:
            throw GGUFError.malformed(path: path, offset: offset - 4, reason: "unknown value type \(type) for \(quoted(key))")
        }
    }
}

extension GGUFError {
    public var errorDescription: String? { description }
}

/// A key or tensor name read from a file, as an error message shows it: quoted, control
/// characters escaped, cut at 64 characters (a damaged length can make a "name" of megabytes).
func quoted(_ name: String) -> String {
    var shown = ""
    for (i, c) in name.unicodeScalars.enumerated() {
        if i == 64 { return "\"\(shown)…\" (\(name.utf8.count) bytes)" }
        shown += c.properties.generalCategory == .control || c == "\"" ? c.escaped(asASCII: true) : String(c)
    }
    return "\"\(shown)\""
}

extension GGUFFile {
    /// sha256 of the whole file, lowercase hex: the identity a trace records for the weights it
    /// was recorded from (`ModelIdentity.ggufSHA256`), and what a plan matches its model's file by.
    public var sha256: String { SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined() }
}
