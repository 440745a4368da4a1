import Foundation
import Testing
import TestSupport
@testable import TraceFormat

// MARK: - Fixtures

private struct Rng {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func unit() -> Float { Float(next() >> 40) / Float(1 << 24) }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

private let header = TraceHeader(
    model: ModelIdentity(name: "test-model", architecture: "llama", ggufSHA256: String(repeating: "ab", count: 32),
                         layers: 4, queryHeads: 6, kvHeads: 2, headDim: 16, contextLength: 2048),
    task: TaskDescription(kind: "passkey", seed: 42, promptTokens: 300, parameters: ["depth": "0.5"]),
    producer: "ckv-sim tests", notes: ["purpose": "fixture"])

/// Records of every kind, values already representable in their encoding so round trips compare exactly.
private func fixtureRecords(seed: UInt64 = 1, prompt: Int = 300, steps: Int = 6) -> [TraceRecord] {
    var rng = Rng(state: seed)
    var records: [TraceRecord] = [.tokens(role: .prompt, ids: (0..<prompt).map { _ in UInt32(rng.next() % 50000) }),
                                  .span(role: .answer, start: 120, end: 125),
                                  .annotation(key: "task.answer", value: "68147 ✓")]
    let encodings: [ValueEncoding] = [.f16, .bf16, .f32]
    for layer in 0..<4 {
        for head in 0..<6 {
            for (k, kind) in StatisticKind.allCases.enumerated() {
                let e = encodings[(layer + head + k) % 3]
                let values = (0..<prompt).map { _ in TraceRecord.quantized(rng.unit(), e) }
                records.append(.headStatistic(HeadStatistic(kind: kind, layer: UInt16(layer), head: UInt16(head),
                                                            window: kind == .accumulated ? 0 : 8, encoding: e, values: values)))
            }
        }
    }
    for step in 0..<steps {
        for layer in 0..<4 {
            for head in 0..<6 {
                let values = (0..<(prompt + step + 1)).map { _ in TraceRecord.quantized(rng.unit(), .f16) }
                records.append(.decodeAttention(DecodeAttention(layer: UInt16(layer), head: UInt16(head), step: UInt32(step), encoding: .f16, values: values)))
            }
            records.append(.decodeVector(DecodeVector(kind: .output, layer: UInt16(layer), head: 0, step: UInt32(step), encoding: .f32,
                                                      values: (0..<16).map { _ in rng.unit() - 0.5 })))
        }
    }
    records.append(.tokens(role: .generated, ids: (0..<UInt32(steps)).map { $0 + 100 }))
    records.append(.unknown(type: 999, body: [1, 2, 3, 4, 5]))
    return records
}

private func scratchDirectory() throws -> URL { try TestSupport.scratchDirectory("ckvt-tests") }

@discardableResult
private func writeTrace(_ path: String, _ records: [TraceRecord], frameSize: Int = 8 << 10, level: Int32? = 3) throws -> TraceWriteSummary {
    let writer = try TraceWriter(path: path, header: header, level: level, frameSize: frameSize)
    for r in records { try writer.append(r) }
    return try writer.finish()
}

private func readAll(_ path: String) throws -> [TraceRecord] {
    var out: [TraceRecord] = []
    try TraceReader(path: path).forEachRecord { _, r in out.append(r) }
    return out
}

/// Reads as far as possible: the records delivered and the error that stopped reading.
private func readPrefix(_ path: String) -> (records: [TraceRecord], error: Error?) {
    var out: [TraceRecord] = []
    do {
        let reader = try TraceReader(path: path)
        var it = reader.makeRecordIterator()
        while let r = try it.next() { out.append(r) }
        return (out, nil)
    } catch {
        return (out, error)
    }
}

// MARK: - Tests

@Suite("CRC-32")
struct CRCTests {
    @Test func knownVector() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([UInt8]()) == 0)
    }
}

@Suite("trace round trip")
struct RoundTripTests {
    @Test("every record kind and encoding survives write and read", arguments: [Int32?.none, 1, 3, 9])
    func roundTrip(level: Int32?) throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("t.ckvt").path
        let records = fixtureRecords()
        let summary = try writeTrace(path, records, level: level)
        #expect(summary.records == UInt64(records.count))
        #expect(summary.frames > 5)
        let reader = try TraceReader(path: path)
        #expect(reader.header == header)
        #expect(reader.isFinished)
        #expect(try readAll(path) == records)
        #expect(reader.verify().isValid)
        let index = try #require(reader.index)
        #expect(index.recordCount == UInt64(records.count))
        let byType = Dictionary(uniqueKeysWithValues: index.recordsByType.map { ($0.type, $0.count) })
        #expect(byType[TraceRecord.Kind.headStatistic.rawValue] == 4 * 6 * 3)
        #expect(byType[999] == 1)
        #expect(summary.fileBytes == reader.fileSize)
    }

    @Test("records are reachable by number through the index and without it")
    func seek() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("t.ckvt").path
        let records = fixtureRecords(seed: 9)
        try writeTrace(path, records, frameSize: 4096)
        let reader = try TraceReader(path: path)
        var rng = Rng(state: 5)
        for n in [0, records.count - 1] + (0..<40).map({ _ in rng.below(records.count) }) {
            #expect(try reader.record(at: UInt64(n)) == records[n])
        }
        #expect(throws: TraceError.self) { try reader.record(at: UInt64(records.count)) }
    }

    @Test("lossy encodings stay within their stated error")
    func encodings() {
        var rng = Rng(state: 11)
        for _ in 0..<10_000 {
            let v = (rng.unit() + 1e-4) * (rng.below(2) == 0 ? 1 : 300)
            #expect(TraceRecord.quantized(v, .f32) == v)
            #expect(abs(TraceRecord.quantized(v, .f16) - v) <= v * 0x1p-11)
            #expect(abs(TraceRecord.quantized(v, .bf16) - v) <= v * 0x1p-8)
        }
    }

    @Test("the fast f16 rounding gives Float16's bits across the float range")
    func halfRounding() {
        var mismatches = 0
        for bits in stride(from: UInt64(0), to: 1 << 32, by: 613) {
            let v = Float(bitPattern: UInt32(bits))
            let fast = TraceRecord.halfBits(v), reference = Float16(v)
            if reference.isNaN ? !Float16(bitPattern: fast).isNaN : fast != reference.bitPattern { mismatches += 1 }
        }
        // Ties and the overflow edge, which a stride can miss.
        for v: Float in [65504, 65519.99, 65520, 65535, 6.1035156e-05, 5.9604645e-08, 2.9802322e-08, 2.9802326e-08, 1.00048828125, 1.00146484375, -0.0] {
            if TraceRecord.halfBits(v) != Float16(v).bitPattern { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }

    @Test("frames close at the frame size: the writer never buffers more than one frame")
    func frameBound() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("t.ckvt").path
        let records = fixtureRecords()
        let frameSize = 4096
        try writeTrace(path, records, frameSize: frameSize)
        let largest = records.map { $0.encodedSize }.max()!
        let index = try #require(try TraceReader(path: path).index)
        for frame in index.frames {
            #expect(Int(frame.rawLength) < frameSize + largest)
        }
    }
}

@Suite("damaged traces")
struct DamageTests {
    /// Every way a writer can be interrupted leaves a prefix of the finished file (the writer only
    /// appends). For cuts at every frame boundary and at seeded random offsets, the reader must return
    /// exactly the records of the complete frames and then report truncation at the first incomplete one.
    @Test("truncated at every frame boundary and at random offsets")
    func truncation() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let full = dir.appendingPathComponent("full.ckvt").path
        let records = fixtureRecords(seed: 3)
        try writeTrace(full, records, frameSize: 8 << 10)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: full)))
        let reader = try TraceReader(path: full)
        let index = try #require(reader.index)
        let trailerOffset = UInt64(bytes.count - TraceLayout.trailerSize)
        let indexOffset = UInt64(index.frames.last!.offset) + 36 + UInt64(index.frames.last!.storedLength)

        var cuts = Set<Int>([0, 1, 7, 8, 15, 16, Int(reader.dataOffset) - 1, Int(reader.dataOffset), bytes.count - 1])
        for f in index.frames {
            cuts.formUnion([Int(f.offset), Int(f.offset) + 1, Int(f.offset) + 35, Int(f.offset) + 36, Int(f.offset) + 36 + Int(f.storedLength) - 1])
        }
        cuts.formUnion([Int(indexOffset), Int(indexOffset) + 40, Int(trailerOffset), Int(trailerOffset) + 31])
        var rng = Rng(state: 2024)
        for _ in 0..<150 { cuts.insert(rng.below(bytes.count)) }

        let cutPath = dir.appendingPathComponent("cut.ckvt").path
        for cut in cuts.sorted() {
            try Data(bytes[0..<cut]).write(to: URL(fileURLWithPath: cutPath))
            let (got, error) = readPrefix(cutPath)
            if cut < Int(reader.dataOffset) {
                if cut == 0 {
                    guard case .notATrace = error as? TraceError else { Issue.record("cut \(cut): \(String(describing: error))"); continue }
                } else {
                    guard case .truncated(_, 0, _) = error as? TraceError else { Issue.record("cut \(cut): \(String(describing: error))"); continue }
                }
                continue
            }
            let complete = index.frames.filter { $0.offset + 36 + UInt64($0.storedLength) <= UInt64(cut) }
            let expectedRecords = complete.reduce(0) { $0 + Int($1.recordCount) }
            #expect(got == Array(records.prefix(expectedRecords)), "cut \(cut)")
            let expectedOffset: UInt64 = complete.count < index.frames.count ? index.frames[complete.count].offset
                : (UInt64(cut) < trailerOffset ? indexOffset : trailerOffset)
            guard case let .truncated(path, offset, _) = error as? TraceError else {
                Issue.record("cut \(cut): expected truncation, got \(String(describing: error))")
                continue
            }
            #expect(path == cutPath)
            #expect(offset == expectedOffset, "cut \(cut)")
            #expect((error as! TraceError).description.contains("truncated at offset \(expectedOffset)"))
            #expect(!(try TraceReader(path: cutPath).verify().isValid))
        }
    }

    /// The bundled traces (recorded from the engine) get the same treatment as the fixture: intact,
    /// and readable up to the last complete frame when cut at any frame boundary.
    @Test("bundled traces verify and survive truncation at every frame boundary")
    func bundledTraces() throws {
        let traces = TestSupport.repositoryRoot.appendingPathComponent("Traces")
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: traces.path)) ?? []).filter { $0.hasSuffix(".ckvt") }.sorted()
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for file in files {
            let path = traces.appendingPathComponent(file).path
            let reader = try TraceReader(path: path)
            #expect(reader.verify().isValid, "\(file)")
            let index = try #require(reader.index)
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            let cut = dir.appendingPathComponent("cut.ckvt").path
            for (k, frame) in index.frames.enumerated() {
                try Data(bytes[0..<Int(frame.offset)]).write(to: URL(fileURLWithPath: cut))
                let (got, error) = readPrefix(cut)
                #expect(UInt64(got.count) == frame.firstRecord, "\(file) cut at frame \(k)")
                guard case let .truncated(_, offset, _) = error as? TraceError else { Issue.record("\(file): \(String(describing: error))"); continue }
                #expect(offset == frame.offset)
            }
        }
    }

    @Test("an abandoned writer leaves a readable file that repair finishes")
    func abandonedWriter() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("abandoned.ckvt").path
        let records = fixtureRecords(seed: 4)
        do {
            let writer = try TraceWriter(path: path, header: header, frameSize: 8 << 10)
            for r in records.prefix(100) { try writer.append(r) }
            // No finish(): the writer goes away as if the recording failed.
        }
        let (got, error) = readPrefix(path)
        #expect(got == Array(records.prefix(100)))
        guard case .truncated = error as? TraceError else { Issue.record("\(String(describing: error))"); return }

        let repaired = dir.appendingPathComponent("repaired.ckvt").path
        let outcome = try TraceRepair.repair(source: path, destination: repaired)
        #expect(outcome.stoppedBy != nil)
        let back = try readAll(repaired)
        #expect(Array(back.dropLast()) == Array(records.prefix(100)))
        guard case let .annotation(key, _) = back.last else { Issue.record("no repair note"); return }
        #expect(key == "ckvt.repaired")
        #expect(try TraceReader(path: repaired).verify().isValid)
    }

    /// Every byte of a trace is covered by a magic, a checksum or a cross-check.
    @Test("a flipped byte anywhere is found by verify", arguments: [UInt64(1), 2, 3])
    func flips(seed: UInt64) throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let full = dir.appendingPathComponent("full.ckvt").path
        try writeTrace(full, fixtureRecords(seed: seed, prompt: 120, steps: 3), frameSize: 4 << 10)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: full)))
        let flipped = dir.appendingPathComponent("flipped.ckvt").path
        var rng = Rng(state: seed &* 77)
        for _ in 0..<120 {
            var copy = bytes
            let at = rng.below(copy.count)
            copy[at] ^= UInt8(1 + rng.below(255))
            try Data(copy).write(to: URL(fileURLWithPath: flipped))
            do {
                let reader = try TraceReader(path: flipped)
                let result = reader.verify()
                #expect(!result.isValid, "flip at \(at) went unnoticed")
                if let problem = result.problem { #expect(problem.description.hasPrefix(flipped)) }
            } catch let error as TraceError {
                #expect(error.description.hasPrefix(flipped))
            }
        }
    }

    @Test("missing, empty, foreign and future-version files get one clear error")
    func badFiles() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let missing = dir.appendingPathComponent("missing.ckvt").path
        #expect(throws: TraceError.unreadable(path: missing, reason: "No such file or directory")) { try TraceReader(path: missing) }

        let empty = dir.appendingPathComponent("empty.ckvt").path
        try Data().write(to: URL(fileURLWithPath: empty))
        #expect(throws: TraceError.notATrace(path: empty, found: "an empty file")) { try TraceReader(path: empty) }

        let foreign = dir.appendingPathComponent("foreign.ckvt").path
        try Data("GGUF\u{3}\0\0\0 and more bytes".utf8).write(to: URL(fileURLWithPath: foreign))
        #expect(throws: TraceError.notATrace(path: foreign, found: "47 47 55 46 03 00 00 00")) { try TraceReader(path: foreign) }

        // A well-formed header of major version 2.
        var w = ByteWriter()
        w.raw(TraceLayout.magic); w.u16(2); w.u16(0); w.u32(2); w.raw(Array("{}".utf8))
        w.u32(CRC32.checksum(w.bytes))
        let future = dir.appendingPathComponent("future.ckvt").path
        try Data(w.bytes).write(to: URL(fileURLWithPath: future))
        #expect(throws: TraceError.unsupportedVersion(path: future, major: 2, minor: 0, supported: 1)) { try TraceReader(path: future) }
        #expect(TraceError.unsupportedVersion(path: future, major: 2, minor: 0, supported: 1).description.contains("offset 8"))
    }
}

/// Files crafted with valid checksums (issue #21): counts and shapes that would allocate or trap
/// are refused in one line naming the file and offset.
@Suite("crafted traces")
struct CraftedTraceTests {
    static func write(_ h: TraceHeader, _ records: [TraceRecord]) throws -> String {
        let path = try TestSupport.scratchDirectory("crafted").appendingPathComponent("t.ckvt").path
        let w = try TraceWriter(path: path, header: h, level: nil, frameSize: 4096)
        for r in records { try w.append(r) }
        _ = try w.finish()
        return path
    }

    static func message(_ body: () throws -> Void) -> String {
        do { try body() } catch { return "\(error)" }
        return "no error"
    }

    @Test("header shapes: negative or absurd layer and head counts, KV heads not dividing, global layers past the layer count")
    func headerShapes() throws {
        func model(_ change: (inout ModelIdentity) -> Void) -> TraceHeader {
            var h = header
            change(&h.model)
            return h
        }
        let cases: [(TraceHeader, String)] = [
            (model { $0.layers = -1 }, "model.layers is -1"),
            (model { $0.layers = Int.max }, "model.layers is \(Int.max)"),
            (model { $0.queryHeads = -6 }, "model.query_heads is -6"),
            (model { $0.kvHeads = 4 }, "model.kv_heads 4 does not divide model.query_heads 6"),
            (model { $0.globalLayers = [1, 9] }, "model.global_layers holds 9, outside the 4 layers"),
            (model { $0.slidingWindow = 0 }, "model.sliding_window is 0"),
        ]
        for (h, expected) in cases {
            let path = try Self.write(h, [.tokens(role: .prompt, ids: [1, 2, 3])])
            let text = Self.message { _ = try TraceReader(path: path) }
            #expect(text.contains(expected) && text.contains(path) && !text.contains("\n"), "\(text)")
        }
    }

    @Test("a frame claiming 2^32 − 1 records and cache vectors whose count × dimension overflows: refused without the allocation")
    func counts() throws {
        let path = try Self.write(header, [.tokens(role: .prompt, ids: Array(0..<64))])
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let frame = Int(try TraceReader(path: path).dataOffset)
        for k in 0..<4 { bytes[frame + 16 + k] = 0xFF }
        TraceLayout.resealChecksums(&bytes)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let text = Self.message { try TraceReader(path: path).forEachRecord { _, _ in } }
        #expect(text.contains("declares 4294967295 records"), "\(text)")

        // count 2^32 − 1 × dimension 2^32 − 1 in a few bytes.
        var body = ByteWriter()
        body.u8(VectorKind.value.rawValue); body.u8(ValueEncoding.f16.rawValue); body.u16(0); body.u16(0); body.u16(0)
        body.u32(.max); body.u32(.max)
        body.raw([0, 0, 0, 0])
        let cachePath = try Self.write(header, [.unknown(type: TraceRecord.Kind.cacheVectors.rawValue, body: body.bytes)])
        let cache = Self.message { try TraceReader(path: cachePath).forEachRecord { _, _ in } }
        #expect(cache.contains("cache vectors declare 4294967295 × 4294967295 values"), "\(cache)")

        // A payload of zeros reads as type-0 records: reserved, so refused at the first.
        let zeros = try Self.write(header, Array(repeating: .unknown(type: 0, body: []), count: 1000))
        let z = Self.message { try TraceReader(path: zeros).forEachRecord { _, _ in } }
        #expect(z.contains("record type 0 is reserved"), "\(z)")

        // More records than the frame declares stops at the first extra one.
        let many = try Self.write(header, (0..<50).map { .tokens(role: .generated, ids: [UInt32($0)]) })
        var m = [UInt8](try Data(contentsOf: URL(fileURLWithPath: many)))
        let at = Int(try TraceReader(path: many).dataOffset)
        for k in 0..<4 { m[at + 16 + k] = k == 0 ? 1 : 0 }
        TraceLayout.resealChecksums(&m)
        try Data(m).write(to: URL(fileURLWithPath: many))
        let more = Self.message { try TraceReader(path: many).forEachRecord { _, _ in } }
        #expect(more.contains("frame declares 1 records, its payload holds more"), "\(more)")
    }

    @Test("an index entry that contradicts its frame (offset 2^40) fails verify, checksums notwithstanding")
    func index() throws {
        let path = try Self.write(header, (0..<3000).map { .tokens(role: .generated, ids: Array(0..<UInt32($0 % 7 + 1))) })
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        func u64(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) } }
        func put(_ v: UInt64, _ at: Int, _ width: Int) { for k in 0..<width { bytes[at + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) } }
        let trailer = bytes.count - 32, indexAt = Int(u64(trailer))
        #expect(bytes[indexAt + 5] == 0, "stored index frame")
        let payload = indexAt + 36
        put(1 << 40, payload + 4, 8) // frame 0's offset
        TraceLayout.resealChecksums(&bytes)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let problem = try TraceReader(path: path).verify().problem.map { "\($0)" } ?? "no problem"
        #expect(problem.contains("index entry 0 says frame at 1099511627776"), "\(problem)")
    }
}
