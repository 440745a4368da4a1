// A thin, safe wrapper over the system libzstd (Debian `libzstd-dev`, pkg-config `libzstd`).
//
// One-shot: `Zstd.compress` / `Zstd.decompress`, or a reusable `ZstdCompressor` /
// `ZstdDecompressor` that keeps its context between calls (what a frame-per-call writer
// wants). Streaming: `ZstdStreamCompressor` / `ZstdStreamDecompressor` push arbitrary chunks
// and hand the output to a sink, never holding the whole input or output.
// Every failing libzstd call becomes a `ZstdError` carrying the raw code and the library's
// own `ZSTD_getErrorName` text.
import CZstd
import Foundation

/// A failed libzstd call: the operation, the raw `size_t` code and libzstd's own message.
public struct ZstdError: LocalizedError, CustomStringConvertible, Equatable, Sendable {
    /// What was being done ("compress", "decompress", "set parameter", …).
    public let operation: String
    /// The raw return code (a `size_t` for which `ZSTD_isError` is true), or 0 for
    /// conditions this wrapper detects itself.
    public let code: Int
    /// `ZSTD_getErrorName(code)`, or this wrapper's own explanation.
    public let message: String

    init(operation: String, code: Int) {
        self.operation = operation
        self.code = code
        self.message = String(cString: ZSTD_getErrorName(code))
    }

    init(operation: String, message: String) {
        self.operation = operation
        self.code = 0
        self.message = message
    }

    public var description: String { "zstd \(operation): \(message)" }
}

/// Namespace for the library's facts and the one-shot calls.
public enum Zstd {
    /// libzstd's default level (`ZSTD_CLEVEL_DEFAULT`, 3).
    public static let defaultLevel: Int32 = 3
    /// The levels this libzstd accepts (negative levels are the fast ones).
    public static var levels: ClosedRange<Int32> { ZSTD_minCLevel()...ZSTD_maxCLevel() }
    /// The linked library's version, e.g. "1.5.4".
    public static var version: String { String(cString: ZSTD_versionString()) }

    /// Compresses `input` into a single zstd frame.
    /// - Parameters:
    ///   - input: the bytes to compress.
    ///   - level: a level in `Zstd.levels`.
    ///   - checksum: whether the frame carries zstd's 32-bit content checksum.
    /// - Returns: the frame.
    /// - Throws: `ZstdError` when the level is out of range or libzstd fails.
    public static func compress(_ input: [UInt8], level: Int32 = defaultLevel, checksum: Bool = true) throws -> [UInt8] {
        try ZstdCompressor(level: level, checksum: checksum).compress(input)
    }

    /// Decompresses one or more concatenated zstd frames.
    /// - Parameters:
    ///   - input: the frames.
    ///   - maxSize: refuse to produce more than this many bytes (guards against a corrupt
    ///     or hostile size field).
    /// - Returns: the decompressed bytes.
    /// - Throws: `ZstdError` on corrupt input, a checksum mismatch, or output above `maxSize`.
    public static func decompress(_ input: [UInt8], maxSize: Int = 1 << 32) throws -> [UInt8] {
        var out: [UInt8] = []
        let stream = try ZstdStreamDecompressor()
        try input.withUnsafeBytes { raw in
            try stream.decompress(raw) { chunk in
                if out.count + chunk.count > maxSize {
                    throw ZstdError(operation: "decompress", message: "output exceeds the limit of \(maxSize) bytes")
                }
                out.append(contentsOf: chunk)
            }
        }
        try stream.finish()
        return out
    }

    @inline(__always)
    static func check(_ code: Int, _ operation: @autoclosure () -> String) throws -> Int {
        if ZSTD_isError(code) != 0 { throw ZstdError(operation: operation(), code: code) }
        return code
    }

    /// A compression context set to `level` and the checksum flag; the caller frees it.
    static func compressionContext(level: Int32, checksum: Bool) throws -> OpaquePointer {
        try validate(level: level)
        guard let context = ZSTD_createCCtx() else {
            throw ZstdError(operation: "create context", message: "out of memory")
        }
        do {
            _ = try check(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level), "set level")
            _ = try check(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, checksum ? 1 : 0), "set checksum flag")
        } catch {
            ZSTD_freeCCtx(context)
            throw error
        }
        return context
    }

    static func validate(level: Int32) throws {
        guard levels.contains(level) else {
            throw ZstdError(operation: "set level", message: "level \(level) is outside \(levels.lowerBound)...\(levels.upperBound)")
        }
    }
}

/// A reusable one-shot compressor: each call produces one complete, independent frame.
///
/// Keeps its `ZSTD_CCtx` between calls, so compressing many small frames does not pay for
/// a context each time. Not thread-safe; use one per task.
public final class ZstdCompressor {
    private let context: OpaquePointer
    /// The compression level this compressor uses.
    public let level: Int32

    /// - Throws: `ZstdError` if the level is outside `Zstd.levels` or libzstd refuses a parameter.
    public init(level: Int32 = Zstd.defaultLevel, checksum: Bool = true) throws {
        context = try Zstd.compressionContext(level: level, checksum: checksum)
        self.level = level
    }

    deinit { ZSTD_freeCCtx(context) }

    /// Compresses `input` into one frame (content size recorded in the frame header).
    /// - Complexity: O(n) in the input size.
    public func compress(_ input: [UInt8]) throws -> [UInt8] {
        try input.withUnsafeBytes { src in
            let bound = ZSTD_compressBound(src.count)
            return try [UInt8](unsafeUninitializedCapacity: bound) { dst, initialized in
                let n = ZSTD_compress2(context, dst.baseAddress, bound, src.baseAddress, src.count)
                initialized = try Zstd.check(n, "compress")
            }
        }
    }
}

/// A reusable one-shot decompressor for frames whose decompressed size is known.
public final class ZstdDecompressor {
    private let context: OpaquePointer

    public init() throws {
        guard let context = ZSTD_createDCtx() else {
            throw ZstdError(operation: "create context", message: "out of memory")
        }
        self.context = context
    }

    deinit { ZSTD_freeDCtx(context) }

    /// Decompresses `input`, which must expand to exactly `size` bytes.
    /// - Throws: `ZstdError` on corrupt data, a content-checksum mismatch, or a size other than `size`.
    public func decompress(_ input: [UInt8], size: Int) throws -> [UInt8] {
        try input.withUnsafeBytes { src in
            try [UInt8](unsafeUninitializedCapacity: size) { dst, initialized in
                let n = try Zstd.check(ZSTD_decompressDCtx(context, dst.baseAddress, size, src.baseAddress, src.count), "decompress")
                guard n == size else {
                    throw ZstdError(operation: "decompress", message: "frame expands to \(n) bytes, \(size) expected")
                }
                initialized = n
            }
        }
    }
}

/// Streaming compression: feed chunks of any size, receive compressed output in a sink.
///
/// The output of one stream is a single zstd frame (content size unknown up front).
/// Memory use is the context plus one output buffer, independent of the input length.
public final class ZstdStreamCompressor {
    private let context: OpaquePointer
    private var buffer: [UInt8]
    private var finished = false

    public init(level: Int32 = Zstd.defaultLevel, checksum: Bool = true) throws {
        context = try Zstd.compressionContext(level: level, checksum: checksum)
        buffer = [UInt8](repeating: 0, count: ZSTD_CStreamOutSize())
    }

    deinit { ZSTD_freeCCtx(context) }

    /// Compresses one more chunk; output produced so far goes to `sink`.
    public func compress(_ chunk: UnsafeRawBufferPointer, into sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        precondition(!finished, "compress after finish")
        try drive(chunk, mode: ZSTD_e_continue, sink: sink)
    }

    /// Ends the frame (epilogue and checksum) and hands the remaining output to `sink`.
    public func finish(into sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        precondition(!finished, "finish called twice")
        try drive(UnsafeRawBufferPointer(start: nil, count: 0), mode: ZSTD_e_end, sink: sink)
        finished = true
    }

    private func drive(_ chunk: UnsafeRawBufferPointer, mode: ZSTD_EndDirective, sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        var input = ZSTD_inBuffer(src: chunk.baseAddress, size: chunk.count, pos: 0)
        let capacity = buffer.count
        try buffer.withUnsafeMutableBytes { out in
            while true {
                var output = ZSTD_outBuffer(dst: out.baseAddress, size: capacity, pos: 0)
                let remaining = try Zstd.check(ZSTD_compressStream2(context, &output, &input, mode), "compress stream")
                if output.pos > 0 { try sink(UnsafeRawBufferPointer(rebasing: out[0..<output.pos])) }
                let done = mode == ZSTD_e_end ? remaining == 0 : input.pos == input.size
                if done { break }
            }
        }
    }
}

/// Streaming decompression: feed compressed chunks of any size (one or several
/// concatenated frames), receive decompressed output in a sink.
public final class ZstdStreamDecompressor {
    private let context: OpaquePointer
    private var buffer: [UInt8]
    private var lastHint = 0
    private var consumedAny = false

    public init() throws {
        guard let context = ZSTD_createDCtx() else {
            throw ZstdError(operation: "create context", message: "out of memory")
        }
        self.context = context
        self.buffer = [UInt8](repeating: 0, count: ZSTD_DStreamOutSize())
    }

    deinit { ZSTD_freeDCtx(context) }

    /// True when every frame fed so far is complete (the input may stop here).
    public var isAtFrameBoundary: Bool { lastHint == 0 }

    /// Decompresses one more chunk; output goes to `sink`.
    /// - Throws: `ZstdError` on corrupt data or a content-checksum mismatch.
    public func decompress(_ chunk: UnsafeRawBufferPointer, into sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        var input = ZSTD_inBuffer(src: chunk.baseAddress, size: chunk.count, pos: 0)
        if chunk.count > 0 { consumedAny = true }
        let capacity = buffer.count
        try buffer.withUnsafeMutableBytes { out in
            while input.pos < input.size {
                var output = ZSTD_outBuffer(dst: out.baseAddress, size: capacity, pos: 0)
                lastHint = try Zstd.check(ZSTD_decompressStream(context, &output, &input), "decompress stream")
                if output.pos > 0 { try sink(UnsafeRawBufferPointer(rebasing: out[0..<output.pos])) }
            }
            // Flush anything libzstd still holds after the input is consumed.
            while lastHint != 0 {
                var output = ZSTD_outBuffer(dst: out.baseAddress, size: capacity, pos: 0)
                lastHint = try Zstd.check(ZSTD_decompressStream(context, &output, &input), "decompress stream")
                if output.pos == 0 { break }
                try sink(UnsafeRawBufferPointer(rebasing: out[0..<output.pos]))
            }
        }
    }

    /// Checks that the input ended on a frame boundary.
    /// - Throws: `ZstdError` if the last frame is incomplete (or no input was given).
    public func finish() throws {
        guard consumedAny else { throw ZstdError(operation: "decompress", message: "no input") }
        guard lastHint == 0 else {
            throw ZstdError(operation: "decompress", message: "input ends inside a frame (\(lastHint) more bytes expected)")
        }
    }
}

extension ZstdError {
    public var errorDescription: String? { description }
}
