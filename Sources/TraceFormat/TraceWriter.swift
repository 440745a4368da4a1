#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ZstdModule

/// What a finished (or abandoned) writer put on disk.
public struct TraceWriteSummary: Equatable, Sendable {
    public var records: UInt64
    public var frames: Int
    /// Record bytes before compression (envelopes included).
    public var rawPayloadBytes: UInt64
    /// Record bytes as stored in frames.
    public var storedPayloadBytes: UInt64
    /// The whole file: header, frames, index, trailer.
    public var fileBytes: UInt64
}

/// Streams records into a `.ckvt` file.
///
/// Records are buffered until the pending frame reaches `frameSize` raw bytes, then the frame
/// is compressed and appended to the file with a single `write`. The writer never seeks back:
/// the file on disk is always a prefix of the finished file, so a process killed at any
/// moment leaves a trace readable up to its last complete frame (`TraceReader`), which
/// `TraceRepair` can turn into a finished file. Memory use is one pending frame plus 28
/// bytes of index per frame written.
public final class TraceWriter {
    public let path: String
    /// Raw bytes at which the pending frame is closed.
    public let frameSize: Int
    private var fd: Int32
    private let compressor: ZstdCompressor?
    private var pending = ByteWriter()
    private var pendingRecords: UInt32 = 0
    private var offset: UInt64 = 0
    private var frames: [TraceIndex.Entry] = []
    private var typeCounts: [UInt16: UInt64] = [:]
    private var recordCount: UInt64 = 0
    private var summary: TraceWriteSummary?

    /// Creates (or replaces) the file at `path` and writes the header.
    /// - Parameters:
    ///   - header: model, task and producer metadata.
    ///   - level: the zstd level of every frame; `nil` stores frames uncompressed.
    ///   - frameSize: raw payload bytes per frame (default 1 MiB): smaller frames lose less
    ///     on a crash and seek faster, larger ones compress better.
    /// - Throws: `TraceError.writeFailed` if the file cannot be created or written,
    ///   `ZstdError` for a level outside `Zstd.levels`.
    public init(path: String, header: TraceHeader, level: Int32? = Zstd.defaultLevel, frameSize: Int = 1 << 20) throws {
        precondition(frameSize > 0 && frameSize <= TraceLayout.maxFramePayload, "frame size out of range")
        self.path = path
        self.frameSize = frameSize
        self.compressor = try level.map { try ZstdCompressor(level: $0, checksum: true) }
        let json = try header.encodedJSON()
        guard json.count <= TraceLayout.maxMetadataSize else {
            throw TraceError.writeFailed(path: path, reason: "header metadata is \(json.count) bytes, the limit is \(TraceLayout.maxMetadataSize)")
        }
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TraceError.writeFailed(path: path, reason: String(cString: strerror(errno))) }
        var w = ByteWriter(capacity: TraceLayout.fixedHeaderSize + json.count + 4)
        w.raw(TraceLayout.magic)
        w.u16(TraceLayout.majorVersion)
        w.u16(TraceLayout.minorVersion)
        w.u32(UInt32(json.count))
        w.raw(json)
        w.u32(CRC32.checksum(w.bytes))
        try writeAll(w.bytes)
        pending = ByteWriter(capacity: frameSize + frameSize / 8)
    }

    deinit {
        // An abandoned writer keeps what it has: the pending frame is written, no index.
        if summary == nil, fd >= 0 {
            try? closeFrame()
            close(fd)
        }
    }

    /// Records appended so far.
    public var recordsWritten: UInt64 { recordCount }

    /// Appends one record; writes a frame when the pending one is full.
    /// - Complexity: O(size of the record), plus a frame's compression every `frameSize` bytes.
    public func append(_ record: TraceRecord) throws {
        precondition(summary == nil, "append after finish")
        guard record.encodedSize <= TraceLayout.maxFramePayload else {
            throw TraceError.writeFailed(path: path, reason: "a record of \(record.encodedSize) bytes exceeds the 1 GiB frame limit")
        }
        if pending.bytes.count > 0, pending.bytes.count + record.encodedSize > TraceLayout.maxFramePayload {
            try closeFrame()
        }
        record.encode(into: &pending)
        pendingRecords += 1
        typeCounts[record.typeCode, default: 0] += 1
        if pending.bytes.count >= frameSize { try closeFrame() }
    }

    /// Writes the pending records as a frame now (e.g. at a task boundary), even if it is small.
    public func flush() throws {
        precondition(summary == nil, "flush after finish")
        try closeFrame()
    }

    /// Writes the last frame, the index and the trailer, and closes the file.
    /// - Returns: counts and sizes of what was written.
    @discardableResult
    public func finish() throws -> TraceWriteSummary {
        if let summary { return summary }
        try closeFrame()
        let index = TraceIndex(frames: frames, recordsByType: typeCounts.keys.sorted().map { ($0, typeCounts[$0]!) })
        let indexOffset = offset
        try writeFrame(kind: .index, payload: index.encoded(), firstRecord: recordCount, count: UInt32(frames.count))
        try writeAll(Trailer(indexOffset: indexOffset, recordCount: recordCount, frameCount: UInt32(frames.count)).encoded())
        guard fsync(fd) == 0 || errno == EINVAL else {
            throw TraceError.writeFailed(path: path, reason: String(cString: strerror(errno)))
        }
        close(fd)
        fd = -1
        let s = TraceWriteSummary(records: recordCount, frames: frames.count, rawPayloadBytes: index.rawPayloadBytes,
                                  storedPayloadBytes: index.storedPayloadBytes, fileBytes: offset)
        summary = s
        return s
    }

    private func closeFrame() throws {
        guard pendingRecords > 0 else { return }
        let first = recordCount
        let entryOffset = offset
        let (stored, raw) = try writeFrame(kind: .records, payload: pending.bytes, firstRecord: first, count: pendingRecords)
        frames.append(TraceIndex.Entry(offset: entryOffset, firstRecord: first, recordCount: pendingRecords,
                                       storedLength: stored, rawLength: raw))
        recordCount += UInt64(pendingRecords)
        pendingRecords = 0
        pending.bytes.removeAll(keepingCapacity: true)
    }

    /// Compresses (if it pays) and appends one frame; returns (stored, raw) lengths.
    @discardableResult
    private func writeFrame(kind: FrameKind, payload: [UInt8], firstRecord: UInt64, count: UInt32) throws -> (UInt32, UInt32) {
        var codec = FrameCodec.stored
        var body = payload
        if let compressor {
            let packed = try compressor.compress(payload)
            if packed.count < payload.count {
                codec = .zstd
                body = packed
            }
        }
        let header = FrameHeader(kind: kind, codec: codec, firstRecord: firstRecord, recordCount: count,
                                 storedLength: UInt32(body.count), rawLength: UInt32(payload.count),
                                 payloadCRC: CRC32.checksum(body))
        // One write per frame: header and payload together.
        var frame = header.encoded()
        frame.append(contentsOf: body)
        try writeAll(frame)
        return (UInt32(body.count), UInt32(payload.count))
    }

    private func writeAll(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw TraceError.writeFailed(path: path, reason: String(cString: strerror(errno)))
                }
                done += n
            }
        }
        offset += UInt64(bytes.count)
    }
}
