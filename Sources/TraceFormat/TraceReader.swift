#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ZstdModule

/// Reads a `.ckvt` file: its header at once, records as a stream or by number.
///
/// Opening reads only the header and, for a finished file, the trailer and index. A file
/// without a valid trailer (an interrupted recording) still opens: `index` is nil and the
/// record stream delivers every record of every complete frame, then throws
/// `TraceError.truncated` (or `.corrupt`) naming the offset where reading stopped.
public final class TraceReader {
    public let path: String
    public let header: TraceHeader
    public let majorVersion: UInt16
    public let minorVersion: UInt16
    public let fileSize: UInt64
    /// Offset of the first frame (just past the header).
    public let dataOffset: UInt64
    /// The index of a finished file; nil when the trailer or index is missing or damaged.
    public let index: TraceIndex?
    /// Why `index` is nil when the end of the file is damaged rather than missing.
    public let indexProblem: TraceError?
    private let fd: Int32
    private let decompressor: ZstdDecompressor

    /// Opens `path` and reads its header, trailer and index.
    /// - Throws: `TraceError` if the file is missing, not a trace, of another major version,
    ///   or its header is truncated or corrupt.
    public init(path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw TraceError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw TraceError.unreadable(path: path, reason: reason)
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            close(fd)
            throw TraceError.unreadable(path: path, reason: "is a directory")
        }
        fileSize = UInt64(st.st_size)
        decompressor = try ZstdDecompressor()
        do {
            (header, majorVersion, minorVersion, dataOffset) = try Self.readHeader(fd: fd, path: path, size: fileSize)
            (index, indexProblem) = Self.readIndex(fd: fd, path: path, size: fileSize, dataOffset: dataOffset, decompressor: decompressor)
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    /// True when the file has a valid trailer and index.
    public var isFinished: Bool { index != nil }

    // MARK: Header and index

    private static func readHeader(fd: Int32, path: String, size: UInt64) throws -> (TraceHeader, UInt16, UInt16, UInt64) {
        let fixed = try readBytes(fd: fd, path: path, at: 0, count: Int(min(size, UInt64(TraceLayout.fixedHeaderSize))))
        let magicPart = Array(fixed.prefix(8))
        guard magicPart == Array(TraceLayout.magic.prefix(magicPart.count)), !fixed.isEmpty else {
            throw TraceError.notATrace(path: path, found: fixed.isEmpty ? "an empty file" : hex(magicPart))
        }
        guard fixed.count == TraceLayout.fixedHeaderSize else {
            throw TraceError.truncated(path: path, offset: 0, expected: "a \(TraceLayout.fixedHeaderSize)-byte file header, \(fixed.count) bytes present")
        }
        let (major, minor, metaLength) = fixed.withUnsafeBytes { raw -> (UInt16, UInt16, Int) in
            var r = ByteReader(raw, position: 8)
            return (try! r.u16(), try! r.u16(), Int(try! r.u32()))
        }
        let metaEnd = UInt64(TraceLayout.fixedHeaderSize + metaLength + 4)
        // A damaged length must not send us reading gigabytes: bound it, and let the CRC decide.
        guard metaLength <= TraceLayout.maxMetadataSize else {
            throw TraceError.corrupt(path: path, offset: 12, reason: "header metadata length \(metaLength) exceeds the \(TraceLayout.maxMetadataSize)-byte limit")
        }
        guard metaEnd <= size else {
            throw TraceError.truncated(path: path, offset: 0, expected: "a header of \(metaEnd) bytes (metadata \(metaLength) bytes and checksum), \(size) bytes present")
        }
        let all = try readBytes(fd: fd, path: path, at: 0, count: Int(metaEnd))
        let crcOK = all.withUnsafeBytes { raw in
            CRC32.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<Int(metaEnd) - 4]))
                == UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: Int(metaEnd) - 4, as: UInt32.self))
        }
        guard crcOK else { throw TraceError.corrupt(path: path, offset: 0, reason: "header checksum mismatch (checksum at offset \(metaEnd - 4))") }
        guard major == TraceLayout.majorVersion else {
            throw TraceError.unsupportedVersion(path: path, major: major, minor: minor, supported: TraceLayout.majorVersion)
        }
        let header: TraceHeader
        do {
            header = try all.withUnsafeBytes { try TraceHeader.decode(json: UnsafeRawBufferPointer(rebasing: $0[16..<16 + metaLength])) }
        } catch {
            throw TraceError.corrupt(path: path, offset: 16, reason: "header metadata is not the expected JSON object (\(error))")
        }
        if let problem = header.model.shapeProblem {
            throw TraceError.corrupt(path: path, offset: 16, reason: "header metadata: \(problem)")
        }
        return (header, major, minor, metaEnd)
    }

    private static func readIndex(fd: Int32, path: String, size: UInt64, dataOffset: UInt64,
                                  decompressor: ZstdDecompressor) -> (TraceIndex?, TraceError?) {
        guard size >= dataOffset + UInt64(TraceLayout.frameHeaderSize + TraceLayout.trailerSize) else { return (nil, nil) }
        let trailerOffset = size - UInt64(TraceLayout.trailerSize)
        guard let bytes = try? readBytes(fd: fd, path: path, at: trailerOffset, count: TraceLayout.trailerSize) else { return (nil, nil) }
        switch bytes.withUnsafeBytes({ Trailer.parse($0) }) {
        case .absent:
            return (nil, nil)
        case .damaged:
            return (nil, .corrupt(path: path, offset: trailerOffset, reason: "trailer checksum mismatch"))
        case let .valid(trailer):
            guard trailer.indexOffset >= dataOffset, trailer.indexOffset < trailerOffset else {
                return (nil, .corrupt(path: path, offset: trailerOffset, reason: "trailer points to index offset \(trailer.indexOffset), outside the frames"))
            }
            do {
                var budget = DecompressionBudget(fileSize: size)
                let (frame, payload) = try readFrame(fd: fd, path: path, size: trailerOffset, at: trailer.indexOffset,
                                                     decompressor: decompressor, budget: &budget)
                guard frame.kind == .index else {
                    return (nil, .corrupt(path: path, offset: trailer.indexOffset, reason: "trailer points to a records frame, expected the index frame"))
                }
                let index = try decodeIndex(payload, path: path, at: trailer.indexOffset)
                guard index.recordCount == trailer.recordCount, index.frames.count == Int(trailer.frameCount),
                      trailer.indexOffset + UInt64(TraceLayout.frameHeaderSize) + UInt64(frame.storedLength) == trailerOffset else {
                    return (nil, .corrupt(path: path, offset: trailerOffset, reason: "trailer disagrees with the index frame"))
                }
                return (index, nil)
            } catch let error as TraceError {
                return (nil, error)
            } catch {
                return (nil, .corrupt(path: path, offset: trailer.indexOffset, reason: "\(error)"))
            }
        }
    }

    private static func decodeIndex(_ payload: [UInt8], path: String, at offset: UInt64) throws -> TraceIndex {
        do {
            return try payload.withUnsafeBytes { try TraceIndex.decode($0) }
        } catch {
            throw TraceError.corrupt(path: path, offset: offset + UInt64(TraceLayout.frameHeaderSize), reason: "index payload does not decode")
        }
    }

    // MARK: Frames

    /// Reads and checks the frame at `offset`, returning its header and raw payload.
    static func readFrame(fd: Int32, path: String, size: UInt64, at offset: UInt64,
                          decompressor: ZstdDecompressor, budget: inout DecompressionBudget) throws -> (FrameHeader, [UInt8]) {
        let headerSize = UInt64(TraceLayout.frameHeaderSize)
        if offset >= size {
            throw TraceError.truncated(path: path, offset: offset, expected: "a frame header or the index frame, the file ends here")
        }
        if offset + headerSize > size {
            throw TraceError.truncated(path: path, offset: offset, expected: "a \(headerSize)-byte frame header, \(size - offset) bytes present")
        }
        let headerBytes = try readBytes(fd: fd, path: path, at: offset, count: Int(headerSize))
        let frame: FrameHeader
        switch headerBytes.withUnsafeBytes({ FrameHeader.parse($0) }) {
        case let .success(h): frame = h
        case let .failure(problem): throw TraceError.corrupt(path: path, offset: offset, reason: problem.text)
        }
        let payloadOffset = offset + headerSize
        if payloadOffset + UInt64(frame.storedLength) > size {
            throw TraceError.truncated(path: path, offset: offset,
                                       expected: "\(frame.storedLength) payload bytes for the frame at offset \(offset), \(size - payloadOffset) present")
        }
        let stored = try readBytes(fd: fd, path: path, at: payloadOffset, count: Int(frame.storedLength))
        guard CRC32.checksum(stored) == frame.payloadCRC else {
            throw TraceError.corrupt(path: path, offset: payloadOffset, reason: "payload checksum mismatch in the frame at offset \(offset)")
        }
        switch frame.codec {
        case .stored:
            return (frame, stored)
        case .zstd:
            try budget.take(frame.rawLength, path: path, at: offset)
            do {
                return (frame, try decompressor.decompress(stored, size: Int(frame.rawLength)))
            } catch {
                throw TraceError.corrupt(path: path, offset: payloadOffset, reason: "\(error)")
            }
        }
    }

    static func readBytes(fd: Int32, path: String, at offset: UInt64, count: Int) throws -> [UInt8] {
        try [UInt8](unsafeUninitializedCapacity: count) { buf, initialized in
            var done = 0
            while done < count {
                let n = pread(fd, buf.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw TraceError.unreadable(path: path, reason: "\(String(cString: strerror(errno))) at offset \(offset + UInt64(done))")
                }
                if n == 0 { break }
                done += n
            }
            initialized = done
        }
    }

    /// Decodes every record of a frame's raw payload.
    func decodeRecords(_ payload: [UInt8], frame: FrameHeader, at offset: UInt64) throws -> [TraceRecord] {
        let payloadOffset = offset + UInt64(TraceLayout.frameHeaderSize)
        return try payload.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            var records: [TraceRecord] = []
            // The smallest record is its 8-byte type and length: a count beyond that is a lie the payload exposes.
            records.reserveCapacity(min(Int(frame.recordCount), payload.count / 8))
            while reader.remaining > 0 {
                guard records.count < Int(frame.recordCount) else {
                    throw TraceError.corrupt(path: path, offset: offset, reason: "frame declares \(frame.recordCount) records, its payload holds more")
                }
                do {
                    records.append(try TraceRecord.decode(from: &reader))
                } catch let failure as TraceRecord.DecodeFailure {
                    throw TraceError.corrupt(path: path, offset: payloadOffset,
                                             reason: "\(failure.reason) (record at payload byte \(failure.offset) of the frame at offset \(offset))")
                }
            }
            guard records.count == Int(frame.recordCount) else {
                throw TraceError.corrupt(path: path, offset: offset, reason: "frame declares \(frame.recordCount) records, its payload holds \(records.count)")
            }
            return records
        }
    }

    // MARK: Streaming

    /// Iterates the records in file order, a frame at a time.
    public struct RecordIterator {
        let reader: TraceReader
        var offset: UInt64
        var nextRecord: UInt64 = 0
        var buffered: [TraceRecord] = []
        var position = 0
        var done = false
        /// What each frame read so far was, for the check of the index against them.
        var seen: [TraceIndex.Entry] = []
        /// Raw bytes this pass may still decompress.
        var budget: DecompressionBudget
        /// Complete data frames read so far.
        public private(set) var framesRead = 0

        /// The next record, nil after the last one of a finished file.
        /// - Throws: `TraceError.truncated`/`.corrupt` where reading cannot go on; every record
        ///   before that point has been returned.
        public mutating func next() throws -> TraceRecord? {
            while position == buffered.count {
                if done { return nil }
                try loadFrame()
            }
            defer { position += 1 }
            return buffered[position]
        }

        /// Offset of the next frame to read; where a truncated file stops being readable.
        public var currentOffset: UInt64 { offset }
        /// Records returned or buffered so far.
        public var recordsSeen: UInt64 { nextRecord }

        private mutating func loadFrame() throws {
            let r = reader
            let (frame, payload) = try TraceReader.readFrame(fd: r.fd, path: r.path, size: r.fileSize, at: offset,
                                                             decompressor: r.decompressor, budget: &budget)
            switch frame.kind {
            case .records:
                guard frame.firstRecord == nextRecord else {
                    throw TraceError.corrupt(path: r.path, offset: offset, reason: "frame starts at record \(frame.firstRecord), expected \(nextRecord)")
                }
                buffered = try r.decodeRecords(payload, frame: frame, at: offset)
                position = 0
                seen.append(TraceIndex.Entry(offset: offset, firstRecord: frame.firstRecord, recordCount: frame.recordCount,
                                             storedLength: frame.storedLength, rawLength: frame.rawLength))
                nextRecord += UInt64(frame.recordCount)
                offset += UInt64(TraceLayout.frameHeaderSize) + UInt64(frame.storedLength)
                framesRead += 1
            case .index:
                try r.checkEnd(indexFrame: frame, payload: payload, at: offset, framesRead: framesRead, recordsRead: nextRecord, seen: seen)
                buffered = []
                position = 0
                done = true
            }
        }
    }

    /// A fresh iterator from the first record.
    public func makeRecordIterator() -> RecordIterator {
        RecordIterator(reader: self, offset: dataOffset, budget: DecompressionBudget(fileSize: fileSize))
    }

    /// Calls `body` with each record and its number, in order.
    /// - Throws: what `body` throws, or the `TraceError` where reading stopped.
    public func forEachRecord(_ body: (UInt64, TraceRecord) throws -> Void) throws {
        var it = makeRecordIterator()
        var n: UInt64 = 0
        while let record = try it.next() {
            try body(n, record)
            n += 1
        }
    }

    /// Checks what follows the index frame met while streaming: a valid trailer that points back at it.
    private func checkEnd(indexFrame: FrameHeader, payload: [UInt8], at offset: UInt64, framesRead: Int, recordsRead: UInt64,
                          seen: [TraceIndex.Entry]) throws {
        let scanned = try Self.decodeIndex(payload, path: path, at: offset)
        guard scanned.frames.count == framesRead, scanned.recordCount == recordsRead,
              indexFrame.firstRecord == recordsRead, Int(indexFrame.recordCount) == framesRead else {
            throw TraceError.corrupt(path: path, offset: offset,
                                     reason: "index lists \(scanned.frames.count) frames and \(scanned.recordCount) records, the file holds \(framesRead) and \(recordsRead)")
        }
        // Entry by entry: the index must describe the frames as they were read.
        if let i = scanned.frames.indices.first(where: { $0 >= seen.count || scanned.frames[$0] != seen[$0] }), i < seen.count {
            let (listed, read) = (scanned.frames[i], seen[i])
            throw TraceError.corrupt(path: path, offset: offset,
                                     reason: "index entry \(i) says frame at \(listed.offset) with records \(listed.firstRecord)+\(listed.recordCount), \(listed.storedLength)/\(listed.rawLength) bytes; the frame read there is at \(read.offset) with records \(read.firstRecord)+\(read.recordCount), \(read.storedLength)/\(read.rawLength) bytes")
        }
        let trailerOffset = offset + UInt64(TraceLayout.frameHeaderSize) + UInt64(indexFrame.storedLength)
        let available = fileSize - trailerOffset
        guard available >= UInt64(TraceLayout.trailerSize) else {
            throw TraceError.truncated(path: path, offset: trailerOffset, expected: "the \(TraceLayout.trailerSize)-byte trailer, \(available) bytes present")
        }
        let bytes = try Self.readBytes(fd: fd, path: path, at: trailerOffset, count: TraceLayout.trailerSize)
        switch bytes.withUnsafeBytes({ Trailer.parse($0) }) {
        case .absent:
            throw TraceError.corrupt(path: path, offset: trailerOffset + 24, reason: "expected the trailer magic \"CKVT-END\", found \(hex(bytes[24...]))")
        case .damaged:
            throw TraceError.corrupt(path: path, offset: trailerOffset, reason: "trailer checksum mismatch")
        case let .valid(trailer):
            guard trailer.indexOffset == offset, trailer.recordCount == recordsRead, Int(trailer.frameCount) == framesRead else {
                throw TraceError.corrupt(path: path, offset: trailerOffset, reason: "trailer disagrees with the index frame at offset \(offset)")
            }
        }
        if available > UInt64(TraceLayout.trailerSize) {
            throw TraceError.corrupt(path: path, offset: trailerOffset + UInt64(TraceLayout.trailerSize),
                                     reason: "\(available - UInt64(TraceLayout.trailerSize)) unexpected bytes after the trailer")
        }
        if let index, index != scanned {
            throw TraceError.corrupt(path: path, offset: offset, reason: "index does not match the frames")
        }
    }

    // MARK: Seeking

    /// Record number `n` (0-based). Uses the index to read only the frame that holds it; an
    /// unfinished file is scanned from the start.
    /// - Complexity: O(log frames) plus one frame's decompression with an index.
    public func record(at n: UInt64) throws -> TraceRecord {
        if let index {
            guard n < index.recordCount else { throw TraceError.recordOutOfRange(path: path, index: n, count: index.recordCount) }
            // Last frame whose first record is ≤ n.
            var lo = 0, hi = index.frames.count - 1
            while lo < hi {
                let mid = (lo + hi + 1) / 2
                if index.frames[mid].firstRecord <= n { lo = mid } else { hi = mid - 1 }
            }
            let entry = index.frames[lo]
            var budget = DecompressionBudget(fileSize: fileSize)
            let (frame, payload) = try Self.readFrame(fd: fd, path: path, size: fileSize, at: entry.offset,
                                                      decompressor: decompressor, budget: &budget)
            guard frame.kind == .records, frame.firstRecord == entry.firstRecord, frame.recordCount == entry.recordCount else {
                throw TraceError.corrupt(path: path, offset: entry.offset, reason: "frame does not match its index entry")
            }
            return try decodeRecords(payload, frame: frame, at: entry.offset)[Int(n - entry.firstRecord)]
        }
        var it = makeRecordIterator()
        var i: UInt64 = 0
        while let record = try it.next() {
            if i == n { return record }
            i += 1
        }
        throw TraceError.recordOutOfRange(path: path, index: n, count: i)
    }
}

// MARK: - Verification

/// The outcome of checking every byte of a trace.
public struct TraceVerification: Sendable {
    public var frames: Int
    public var records: UInt64
    /// The first problem found, nil when the file is intact.
    public var problem: TraceError?
    public var isValid: Bool { problem == nil }
}

extension TraceReader {
    /// Reads every frame, checks every checksum (frame CRCs, zstd content checksums), decodes
    /// every record, and checks the index and trailer against what was read.
    public func verify() -> TraceVerification {
        var it = makeRecordIterator()
        do {
            while try it.next() != nil {}
            if let indexProblem { return TraceVerification(frames: it.framesRead, records: it.recordsSeen, problem: indexProblem) }
            return TraceVerification(frames: it.framesRead, records: it.recordsSeen, problem: nil)
        } catch let error as TraceError {
            return TraceVerification(frames: it.framesRead, records: it.recordsSeen, problem: error)
        } catch {
            return TraceVerification(frames: it.framesRead, records: it.recordsSeen,
                                     problem: .corrupt(path: path, offset: it.currentOffset, reason: "\(error)"))
        }
    }
}

// MARK: - Repair

/// Rewrites the readable part of a damaged or unfinished trace as a finished file.
public enum TraceRepair {
    /// What a repair kept and why it stopped.
    public struct Outcome: Sendable {
        public var summary: TraceWriteSummary
        /// Where reading the source stopped; nil if the source was intact.
        public var stoppedBy: TraceError?
    }

    /// Copies every record of every complete, intact frame of `source` into a new finished
    /// trace at `destination` with the same header, then notes the repair in an annotation.
    public static func repair(source: String, destination: String, level: Int32 = Zstd.defaultLevel) throws -> Outcome {
        let reader = try TraceReader(path: source)
        let writer = try TraceWriter(path: destination, header: reader.header, level: level)
        var it = reader.makeRecordIterator()
        var stop: TraceError?
        while true {
            let record: TraceRecord?
            do {
                record = try it.next()
            } catch let error as TraceError {
                stop = error
                break
            }
            guard let record else { break }
            try writer.append(record)
        }
        if let stop {
            try writer.append(.annotation(key: "ckvt.repaired", value: stop.description))
        }
        return Outcome(summary: try writer.finish(), stoppedBy: stop)
    }
}
