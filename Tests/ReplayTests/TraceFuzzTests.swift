import Foundation
import Policies
import Replay
import SeededRandom
import Testing
import TestSupport
import TraceFormat
import ZstdModule

// Crafted traces with valid checksums, as an adversarial user would make them: every reader of a
// trace (open, verify, stream, repair, replay's loader and the replay itself) must either give a
// correct result or refuse in one line naming the file — never trap, hang or allocate gigabytes.

/// The suite's seeded draws.
private typealias Rng = SplitMix64

extension SplitMix64 {
    init(state: UInt64) { self.init(seed: state) }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func unit() -> Float { Float(nextUnit()) }
    mutating func pick<T>(_ xs: [T]) -> T { xs[below(xs.count)] }
}

/// A small trace replay accepts: every statistic the policies read, decode rows of every layer
/// (both global), cache values, a recorded outcome. Random values: a unit fixture.
private enum ReplayableFixture {
    static let model = ModelIdentity(name: "fuzz-model", architecture: "llama", ggufSHA256: String(repeating: "cd", count: 32),
                                     layers: 2, queryHeads: 4, kvHeads: 2, headDim: 8, contextLength: 4096)
    static let budget = PolicyKind.allCases.map(\.window).max()! + 8
    static let prompt = 2 * budget
    static let steps = 3

    static var header: TraceHeader {
        TraceHeader(model: model, task: TaskDescription(kind: "passkey", seed: 7, promptTokens: prompt, parameters: ["answer": "4711"]),
                    producer: "ckv-sim fuzz tests", notes: [:])
    }

    static func records() -> [TraceRecord] {
        var rng = Rng(state: 99)
        let n = prompt, m = model
        var out: [TraceRecord] = [.tokens(role: .prompt, ids: (0..<n).map { _ in UInt32(rng.below(40_000)) }),
                                  .span(role: .needle, start: 10, end: 14), .span(role: .answer, start: 11, end: 13)]
        func row(_ count: Int) -> [Float] {
            let raw = (0..<count).map { _ in rng.unit() + 0.01 }
            let total = raw.reduce(0, +)
            return raw.map { TraceRecord.quantized($0 / total, .f16) }
        }
        let windows = PolicyKind.statisticWindows()
        for l in 0..<m.layers {
            for h in 0..<m.queryHeads {
                for w in windows.sums {
                    out.append(.headStatistic(HeadStatistic(kind: .windowSum, layer: UInt16(l), head: UInt16(h), window: UInt16(w), encoding: .f16, values: row(n))))
                }
                for w in windows.squared {
                    out.append(.headStatistic(HeadStatistic(kind: .windowSquaredSum, layer: UInt16(l), head: UInt16(h), window: UInt16(w), encoding: .f16, values: row(n))))
                }
                out.append(.headStatistic(HeadStatistic(kind: .accumulated, layer: UInt16(l), head: UInt16(h), window: 0, encoding: .f32, values: row(n))))
            }
        }
        for step in 0..<steps {
            for l in 0..<m.layers {
                for h in 0..<m.queryHeads {
                    out.append(.decodeAttention(DecodeAttention(layer: UInt16(l), head: UInt16(h), step: UInt32(step), encoding: .f16, values: row(n + step))))
                }
            }
        }
        for l in 0..<m.layers {
            for g in 0..<m.kvHeads {
                let values = (0..<((n + steps) * m.headDim)).map { _ in TraceRecord.quantized(rng.unit() - 0.5, .f16) }
                out.append(.cacheVectors(CacheVectors(kind: .value, layer: UInt16(l), kvHead: UInt16(g), encoding: .f16, dimension: m.headDim, values: values)))
            }
        }
        out.append(.tokens(role: .generated, ids: [1, 2, 3]))
        out.append(.annotation(key: RunOutcome.key("snapkv@\(budget)"), value: RunOutcome(correct: true, tokens: [1, 2, 3], text: "4711").annotationValue))
        return out
    }

    static func write(_ path: String, header: TraceHeader = header, level: Int32?, frameSize: Int = 2048) throws {
        let w = try TraceWriter(path: path, header: header, level: level, frameSize: frameSize)
        for r in records() { try w.append(r) }
        _ = try w.finish()
    }
}

/// The byte layout the mutations need (Docs/trace-format.md), read from a file written above.
private struct Layout {
    var bytes: [UInt8]
    var dataOffset: Int
    /// Offsets of every frame header, the index frame last.
    var frames: [Int]

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        let metaLength = Int(Self.u32(bytes, 12))
        dataOffset = 16 + metaLength + 4
        frames = []
        var at = dataOffset
        while at + 36 <= bytes.count - 32 {
            frames.append(at)
            at += 36 + Int(Self.u32(bytes, at + 20))
        }
    }

    static func u32(_ b: [UInt8], _ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[at + $1]) << (8 * UInt32($1)) } }

    mutating func put(_ value: UInt64, at: Int, width: Int) {
        for k in 0..<width { bytes[at + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k))) }
    }

    /// Recomputes every checksum after the bytes changed.
    mutating func seal() { TraceLayout.resealChecksums(&bytes) }

    /// Record envelopes in a stored frame's payload: (offset of the envelope, body length).
    func records(inFrame at: Int) -> [(Int, Int)] {
        let stored = Int(Self.u32(bytes, at + 20))
        var out: [(Int, Int)] = [], p = at + 36
        while p + 8 <= at + 36 + stored {
            let length = Int(Self.u32(bytes, p + 4))
            out.append((p, length))
            p += 8 + length
        }
        return out
    }
}

/// Values that break careless arithmetic, by width.
private func nasty(_ width: Int, _ rng: inout Rng) -> UInt64 {
    let top = width == 8 ? UInt64.max : (UInt64(1) << (8 * UInt64(width))) - 1
    let candidates: [UInt64] = [0, 1, 2, 3, top, top - 1, top >> 1, (top >> 1) + 1, 255, 256, 65_535, 65_536, 1 << 20, 1 << 30]
    return rng.pick(candidates) & top
}

/// How far a crafted file got.
private typealias Reached = TraceCheck.Stage

/// Runs every reader over `path` (`TraceCheck`, the fuzz target's check); returns what went wrong (nil when all is well).
private func exercise(_ path: String, scratch: URL) -> String? {
    var reached = Reached.refusedAtOpen
    return exercise(path, scratch: scratch, reached: &reached)
}

private func exercise(_ path: String, scratch: URL, reached: inout Reached) -> String? {
    let (finding, stage) = TraceCheck.run(path, scratch: scratch) { _, _ in [ReplayableFixture.budget] }
    reached = stage
    return finding
}

@Suite("fuzzed traces")
struct TraceFuzzTests {
    @Test("the fixture itself replays under every policy (so the mutations below reach replay)")
    func fixtureReplays() throws {
        let dir = try TestSupport.scratchDirectory("trace-fuzz")
        let path = dir.appendingPathComponent("base.ckvt").path
        try ReplayableFixture.write(path, level: nil)
        #expect(try TraceReader(path: path).verify().isValid)
        let trace = try ReplayTrace(path: path)
        #expect(trace.decodeSteps == ReplayableFixture.steps && trace.outcomes.count == 1)
        for policy in PolicyKind.allCases where !policy.needsProfile {
            let result = try Replayer(trace).replay(policy, budget: ReplayableFixture.budget)
            #expect(result.attentionMass > 0 && result.attentionMass <= 1.0001, "\(policy)")
        }
    }

    @Test("2,000 seeded crafted traces (record fields, frame headers, the index and trailer, all with valid checksums): read correctly or refused in one line")
    func crafted() throws {
        let dir = try TestSupport.scratchDirectory("trace-fuzz")
        let base = dir.appendingPathComponent("base.ckvt").path
        try ReplayableFixture.write(base, level: nil)
        let original = Layout([UInt8](try Data(contentsOf: URL(fileURLWithPath: base))))
        var rng = Rng(state: 2026)
        var failures: [String] = []
        var tally: [Reached: Int] = [:]
        for i in 0..<2000 {
            var file = original
            var what: String
            let dataFrames = Array(file.frames.dropLast()), indexFrame = file.frames.last!
            switch i % 10 {
            case 0..<6:
                // A field of a record: an envelope's type or length, or one of the first 24 body bytes
                // (layer, head, step, window, encoding, counts, dimensions).
                let frame = rng.pick(dataFrames)
                let (at, length) = rng.pick(file.records(inFrame: frame))
                let width = rng.pick([1, 2, 4])
                let offset = rng.pick([0, 2, 4] + Array(stride(from: 8, to: 8 + min(24, max(length, 1)), by: 1)))
                guard at + offset + width <= frame + 36 + Int(Layout.u32(file.bytes, frame + 20)) else { continue }
                let value = nasty(width, &rng)
                file.put(value, at: at + offset, width: width)
                file.seal()
                what = "record at \(at) byte \(offset) ← \(value) (\(width) bytes)"
            case 6, 7:
                // A frame header field.
                let frame = rng.pick(file.frames)
                let (offset, width) = rng.pick([(4, 1), (5, 1), (6, 2), (8, 8), (16, 4), (20, 4), (24, 4)])
                let value = nasty(width, &rng)
                file.put(value, at: frame + offset, width: width)
                file.seal()
                what = "frame at \(frame) byte \(offset) ← \(value)"
            case 8:
                // An index entry or count.
                let payload = indexFrame + 36
                let entries = Int(Layout.u32(file.bytes, payload))
                let (offset, width) = rng.pick([(0, 4), (4 + 28 * rng.below(entries), 8), (12 + 28 * rng.below(entries), 8),
                                                (20 + 28 * rng.below(entries), 4), (24 + 28 * rng.below(entries), 4),
                                                (28 + 28 * rng.below(entries), 4), (4 + 28 * entries, 4), (8 + 28 * entries + 4, 8)])
                let value = nasty(width, &rng)
                file.put(value, at: payload + offset, width: width)
                file.seal()
                what = "index byte \(offset) ← \(value)"
            case 9 where i % 20 == 9:
                // A header metadata value (the frames move with the header; the index and trailer follow them).
                let metaLength = Int(Layout.u32(file.bytes, 12))
                var json = try JSONSerialization.jsonObject(with: Data(file.bytes[16..<(16 + metaLength)])) as! [String: Any]
                let section = rng.pick(["model", "model", "model", "task"])
                var object = json[section] as! [String: Any]
                let key = rng.pick(section == "model"
                    ? ["layers", "query_heads", "kv_heads", "head_dim", "context_length", "sliding_window", "global_layers", "name", "gguf_sha256"]
                    : ["prompt_tokens", "seed", "kind", "parameters"])
                let value: Any = rng.pick([-1, 0, 1, 3, 1 << 31, Int.max, 1e300, 2.5, "x", NSNull(), [Any](), [-1, 2], [1 << 40], true, ["a": 1]] as [Any])
                object[key] = value
                json[section] = object
                let encoded = [UInt8](try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]))
                let delta = encoded.count - metaLength
                var h = Layout(Array(file.bytes[0..<12]) + [UInt8](repeating: 0, count: 4) + encoded + [0, 0, 0, 0])
                h.put(UInt64(encoded.count), at: 12, width: 4)
                let head = h.bytes
                var moved = Layout(head + file.bytes[file.dataOffset...])
                let index = indexFrame + delta, payload = index + 36
                for e in 0..<Int(Layout.u32(moved.bytes, payload)) {
                    let at = payload + 4 + 28 * e
                    let old = (0..<8).reduce(UInt64(0)) { $0 | UInt64(moved.bytes[at + $1]) << (8 * UInt64($1)) }
                    moved.put(UInt64(Int(old) + delta), at: at, width: 8)
                }
                moved.put(UInt64(index), at: moved.bytes.count - 32, width: 8)
                moved.seal()
                file = moved
                what = "header \(section).\(key) ← \(value)"
            default:
                // A trailer field.
                let t = file.bytes.count - 32
                let (offset, width) = rng.pick([(0, 8), (8, 8), (16, 4)])
                let value = nasty(width, &rng)
                file.put(value, at: t + offset, width: width)
                file.seal()
                what = "trailer byte \(offset) ← \(value)"
            }
            let path = dir.appendingPathComponent("crafted-\(i).ckvt").path
            try Data(file.bytes).write(to: URL(fileURLWithPath: path))
            var reached = Reached.refusedAtOpen
            if let problem = exercise(path, scratch: dir, reached: &reached) { failures.append("\(what): \(problem)") }
            tally[reached, default: 0] += 1
            try? FileManager.default.removeItem(atPath: path)
        }
        #expect(failures.isEmpty, "\(failures.count) failures, first: \(failures.prefix(5).joined(separator: " | "))")
        // The mutations must reach every stage, replay included, or the suite tests little.
        #expect(Reached.allCases.allSatisfy { tally[$0, default: 0] >= 20 }, "\(tally.map { "\($0.key.rawValue) \($0.value)" }.sorted())")
    }

    @Test("headers whose shape is valid but contradicts the records: refused by replay in one line")
    func contradictingHeaders() throws {
        let dir = try TestSupport.scratchDirectory("trace-fuzz")
        let changes: [(String, (inout ModelIdentity) -> Void)] = [
            ("layers 1", { $0.layers = 1 }), ("layers 3", { $0.layers = 3 }), ("layers 64", { $0.layers = 64 }),
            ("query heads 2", { $0.queryHeads = 2; $0.kvHeads = 2 }), ("query heads 8", { $0.queryHeads = 8 }),
            ("KV heads 1", { $0.kvHeads = 1 }), ("KV heads 4", { $0.kvHeads = 4 }),
            ("head_dim 4", { $0.headDim = 4 }), ("head_dim 16", { $0.headDim = 16 }),
            ("global layers [1]", { $0.globalLayers = [1]; $0.slidingWindow = 16 }), ("global layers []", { $0.globalLayers = []; $0.slidingWindow = 16 }),
            ("context 8", { $0.contextLength = 8 }),
        ]
        for (label, change) in changes {
            var header = ReplayableFixture.header
            change(&header.model)
            let path = dir.appendingPathComponent("header-\(label.replacingOccurrences(of: " ", with: "-")).ckvt").path
            try ReplayableFixture.write(path, header: header, level: 3)
            #expect(exercise(path, scratch: dir) == nil, "\(label): \(exercise(path, scratch: dir) ?? "")")
        }
    }

    @Test("a decode step of 2^32 − 1 (the issue's 20 s / 5 GB replay) is refused at its record")
    func hugeStep() throws {
        let dir = try TestSupport.scratchDirectory("trace-fuzz")
        let path = dir.appendingPathComponent("step.ckvt").path
        let w = try TraceWriter(path: path, header: ReplayableFixture.header, level: 3)
        for r in ReplayableFixture.records() {
            if case var .decodeAttention(a) = r, a.step == 1, a.layer == 0, a.head == 0 {
                a.step = .max
                try w.append(.decodeAttention(a))
            } else {
                try w.append(r)
            }
        }
        _ = try w.finish()
        let text = "\(try #require(throws: ReplayError.self) { try ReplayTrace(path: path) })"
        #expect(text.contains("attention row of decode step 4294967295 holds only"), "\(text)")
    }

    @Test("decompression bombs: a 1 GiB frame in a few KB, and many frames that each expand 8 MiB, are refused by the budget before allocation")
    func bombs() throws {
        let dir = try TestSupport.scratchDirectory("trace-fuzz")
        let base = dir.appendingPathComponent("bomb-base.ckvt").path
        let w = try TraceWriter(path: base, header: ReplayableFixture.header, level: 3, frameSize: 1 << 20)
        try w.append(.tokens(role: .prompt, ids: [1, 2, 3]))
        _ = try w.finish()
        let layout = Layout([UInt8](try Data(contentsOf: URL(fileURLWithPath: base))))
        let prefix = Array(layout.bytes[..<layout.dataOffset])

        /// A file of `header` then frames of `copies` × `unit` records (one zstd frame each), unfinished.
        func bomb(_ name: String, unit: [UInt8], perFrame: Int, frames: Int, declaredRaw: UInt32? = nil) throws -> String {
            let raw = Array([[UInt8]](repeating: unit, count: perFrame).joined())
            let compressed = try Zstd.compress(raw, level: 3)
            var bytes = prefix
            let recordSize = max(unit.count, 1)
            for f in 0..<frames {
                var h = Layout(bytes + [UInt8](repeating: 0, count: 36 + compressed.count))
                let at = bytes.count
                h.bytes.replaceSubrange((at + 36)..<(at + 36 + compressed.count), with: compressed)
                h.bytes.replaceSubrange(at..<(at + 4), with: Array("CKVF".utf8))
                h.put(1, at: at + 4, width: 1); h.put(1, at: at + 5, width: 1)
                h.put(UInt64(f * raw.count / recordSize), at: at + 8, width: 8)
                h.put(UInt64(raw.count / recordSize), at: at + 16, width: 4)
                h.put(UInt64(compressed.count), at: at + 20, width: 4)
                h.put(UInt64(declaredRaw ?? UInt32(raw.count)), at: at + 24, width: 4)
                h.seal()
                bytes = h.bytes
            }
            let path = dir.appendingPathComponent(name).path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            return path
        }
        // One tokens record (type 1; body: role generated, 3 zeros, count 1, id 7): 8 + 12 bytes.
        var record = [UInt8](repeating: 0, count: 20)
        record[0] = 1; record[4] = 12; record[8] = 1; record[12] = 1; record[16] = 7
        let many = try bomb("bomb-many.ckvt", unit: record, perFrame: (8 << 20) / 20, frames: 40)
        let size = try FileManager.default.attributesOfItem(atPath: many)[.size] as! Int
        #expect(size < 400_000, "\(size) bytes")
        let verdict = try TraceReader(path: many).verify()
        let text = verdict.problem.map { "\($0)" } ?? "no problem"
        #expect(text.contains("decompression budget") && verdict.records < 40 * 419_430 && verdict.frames > 20, "\(text)")
        #expect(exercise(many, scratch: dir) == nil)

        // A frame that declares 1 GiB: its zeros would decode as reserved records, but the budget stops it first.
        let giant = try bomb("bomb-1gib.ckvt", unit: [0], perFrame: 1 << 16, frames: 1, declaredRaw: 1 << 30)
        let g = try TraceReader(path: giant).verify().problem.map { "\($0)" } ?? "no problem"
        #expect(g.contains("declares 1073741824 raw bytes, past the decompression budget"), "\(g)")
        #expect(exercise(giant, scratch: dir) == nil)
    }
}
