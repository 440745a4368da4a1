import ArgumentParser
import Foundation
import Reporting
import SeededRandom
import TraceFormat
import ZstdModule

/// `ckv-sim bench trace`: write/read throughput and compression ratio of .ckvt, next to the
/// `zstd` command-line tool on the same bytes at the same level, measured in one run.
struct BenchTrace: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Trace write/read throughput and compression ratio, next to the zstd CLI on the same bytes.",
        discussion: """
        The payload is either the records of a real trace (--trace) or, by default, attention \
        statistics shaped like a SmolLM2-135M recording (30 layers × 9 query heads; window sums for \
        w = 8, 16, 32, 64, squared sums, accumulated attention over a --prompt-tokens prompt; then \
        --decode-steps decode attention rows), generated from a seed with attention-like value \
        distributions and stored as f16, as the recorder stores them.
        """
    )

    @Option(help: "Take the records of this .ckvt file as the payload.")
    var trace: String?

    @Option(help: "Prompt length of the generated payload.")
    var promptTokens = 4096

    @Option(help: "Decode steps of the generated payload.")
    var decodeSteps = 16

    @Option(help: "zstd level for both ckv-sim and the zstd CLI.")
    var level: Int32 = Zstd.defaultLevel

    @Option(help: "Raw bytes per frame.")
    var frameSize = 1 << 20

    @Option(help: "Seed of the generated payload.")
    var seed: UInt64 = 1

    @Option(help: "Output format: text, json.")
    var format: OutputFormat = .text

    func validate() throws {
        guard Zstd.levels.contains(level) else {
            throw ValidationError("--level \(level) is outside zstd's \(Zstd.levels.lowerBound)...\(Zstd.levels.upperBound)")
        }
        guard promptTokens > 0, promptTokens <= 1 << 20 else { throw ValidationError("--prompt-tokens must be in 1...1048576") }
        guard decodeSteps >= 0, decodeSteps <= 4096 else { throw ValidationError("--decode-steps must be in 0...4096") }
        guard frameSize >= 4096, frameSize <= 256 << 20 else { throw ValidationError("--frame-size must be in 4096...268435456") }
    }

    func run() async throws {
        let (header, records, source) = try payload()
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("ckv-bench-\(getpid())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let tracePath = scratch.appendingPathComponent("bench.ckvt").path

        printError("writing \(records.count) records…")
        let clock = ContinuousClock()
        var summary: TraceWriteSummary!
        let writeTime = try clock.measure {
            let writer = try TraceWriter(path: tracePath, header: header, level: level, frameSize: frameSize)
            for r in records { try writer.append(r) }
            summary = try writer.finish()
        }
        var readCount = 0
        let readTime = try clock.measure {
            let reader = try TraceReader(path: tracePath)
            var it = reader.makeRecordIterator()
            while try it.next() != nil { readCount += 1 }
        }
        precondition(readCount == records.count, "read back \(readCount) of \(records.count) records")

        let raw = Double(summary.rawPayloadBytes)
        var result = BenchTraceResult(
            payload: source, records: records.count, rawPayloadBytes: summary.rawPayloadBytes,
            level: level, frameSize: frameSize, zstdLibrary: Zstd.version,
            ckvt: .init(writeMBps: raw / 1e6 / writeTime.seconds, readMBps: raw / 1e6 / readTime.seconds,
                        ratio: raw / Double(summary.storedPayloadBytes), fileBytes: summary.fileBytes),
            zstdCLI: nil, zstdCLIProblem: nil)

        // The same raw bytes through the zstd command-line tool, one thread, same level.
        let rawPath = scratch.appendingPathComponent("payload.raw").path
        var bytes = [UInt8]()
        bytes.reserveCapacity(Int(summary.rawPayloadBytes))
        for r in records { bytes += r.encodedBytes() }
        try Data(bytes).write(to: URL(fileURLWithPath: rawPath))
        bytes = []
        do {
            result.zstdCLI = try measureZstdCLI(rawPath: rawPath, rawBytes: raw, scratch: scratch)
        } catch {
            result.zstdCLIProblem = "\(error)"
        }

        switch format {
        case .json: print(try JSONOutput.string(result))
        case .text: print(result.text)
        }
    }

    private func measureZstdCLI(rawPath: String, rawBytes: Double, scratch: URL) throws -> BenchTraceResult.Figures {
        let packed = scratch.appendingPathComponent("payload.zst").path
        let back = scratch.appendingPathComponent("payload.back").path
        let compress = try runTimed(["zstd", "-\(level)", "-T1", "-q", "-f", rawPath, "-o", packed])
        let decompress = try runTimed(["zstd", "-d", "-q", "-f", packed, "-o", back])
        let packedSize = try FileManager.default.attributesOfItem(atPath: packed)[.size] as! UInt64
        return .init(writeMBps: rawBytes / 1e6 / compress, readMBps: rawBytes / 1e6 / decompress,
                     ratio: rawBytes / Double(packedSize), fileBytes: packedSize)
    }

    private func runTimed(_ arguments: [String]) throws -> Double {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let start = ContinuousClock.now
        do {
            try process.run()
        } catch {
            throw BenchError("cannot run `\(arguments[0])` (install it with `apt-get install zstd`): \(error.localizedDescription)")
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw BenchError("`\(arguments.joined(separator: " "))` exited with status \(process.terminationStatus) (is the zstd CLI installed? `apt-get install zstd`)")
        }
        return (ContinuousClock.now - start).seconds
    }

    private func payload() throws -> (TraceHeader, [TraceRecord], String) {
        if let trace {
            let reader = try TraceReader(path: trace)
            var records: [TraceRecord] = []
            try reader.forEachRecord { _, r in records.append(r) }
            return (reader.header, records, "records of \(trace)")
        }
        let model = ModelIdentity(name: "SmolLM2-135M-Instruct (shape only)", architecture: "llama", ggufSHA256: String(repeating: "0", count: 64),
                                  layers: 30, queryHeads: 9, kvHeads: 3, headDim: 64, contextLength: 8192)
        let header = TraceHeader(model: model, task: TaskDescription(kind: "bench", seed: seed, promptTokens: promptTokens),
                                 producer: "ckv-sim \(CKVSim.version) bench")
        let records = AttentionLikePayload(layers: model.layers, heads: model.queryHeads, promptTokens: promptTokens,
                                           decodeSteps: decodeSteps, seed: seed).records()
        return (header, records, "generated attention statistics, \(model.layers) layers × \(model.queryHeads) heads, \(promptTokens)-token prompt, \(decodeSteps) decode steps, f16, seed \(seed)")
    }
}

struct BenchError: LocalizedError, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
    var errorDescription: String? { description }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}

/// The figures `bench trace` prints, one value rendered as text or JSON.
struct BenchTraceResult: Encodable {
    struct Figures: Encodable {
        var writeMBps: Double
        var readMBps: Double
        var ratio: Double
        var fileBytes: UInt64

        enum CodingKeys: String, CodingKey {
            case ratio
            case writeMBps = "write_mb_per_s"
            case readMBps = "read_mb_per_s"
            case fileBytes = "file_bytes"
        }
    }

    var payload: String
    var records: Int
    var rawPayloadBytes: UInt64
    var level: Int32
    var frameSize: Int
    var zstdLibrary: String
    var ckvt: Figures
    var zstdCLI: Figures?
    var zstdCLIProblem: String?

    enum CodingKeys: String, CodingKey {
        case payload, records, level, ckvt
        case rawPayloadBytes = "raw_payload_bytes"
        case frameSize = "frame_size"
        case zstdLibrary = "zstd_library"
        case zstdCLI = "zstd_cli"
        case zstdCLIProblem = "zstd_cli_problem"
    }

    var text: String {
        var lines = [
            "payload: \(payload)",
            "\(records) records, \(Format.bytes(rawPayloadBytes)) raw; zstd level \(level), libzstd \(zstdLibrary), frames of \(Format.bytes(UInt64(frameSize)))",
            "MB/s are of uncompressed payload (10^6 bytes/s), wall clock, one thread.",
            "",
        ]
        var table = Table(columns: ["", "write MB/s", "read MB/s", "ratio"], rightAligned: [1, 2, 3])
        table.append(["ckv-sim .ckvt", Format.fixed(ckvt.writeMBps, 1), Format.fixed(ckvt.readMBps, 1), Format.fixed(ckvt.ratio, 3) + "×"])
        if let z = zstdCLI {
            table.append(["zstd CLI (-T1)", Format.fixed(z.writeMBps, 1), Format.fixed(z.readMBps, 1), Format.fixed(z.ratio, 3) + "×"])
            table.append(["ckvt / zstd CLI", Format.fixed(ckvt.writeMBps / z.writeMBps, 2) + "×",
                          Format.fixed(ckvt.readMBps / z.readMBps, 2) + "×", Format.fixed(ckvt.ratio / z.ratio, 3) + "×"])
        }
        lines.append(table.text)
        if zstdCLI == nil, let p = zstdCLIProblem {
            lines.append("zstd CLI: not measured: \(p)")
        }
        return lines.joined(separator: "\n")
    }
}

/// Attention statistics with the shape and value distribution of a real recording: per
/// (layer, head) a softmax over keys with an attention sink at position 0, a recency bias,
/// and log-normal heavy hitters; window sums scale with the window, squared sums square it,
/// decode rows drift from the prompt distribution step by step.
struct AttentionLikePayload {
    var layers: Int
    var heads: Int
    var promptTokens: Int
    var decodeSteps: Int
    var seed: UInt64

    func records() -> [TraceRecord] {
        var rng = SplitMix64(seed: seed)
        var out: [TraceRecord] = []
        out.append(.tokens(role: .prompt, ids: (0..<promptTokens).map { _ in UInt32(rng.next() % 49152) }))
        var bases: [[Float]] = []
        for layer in 0..<layers {
            for head in 0..<heads {
                let base = distribution(keys: promptTokens, rng: &rng)
                bases.append(base)
                for w in [8, 16, 32, 64] {
                    let window = noisy(base.map { $0 * Float(w) }, rng: &rng)
                    out.append(.headStatistic(HeadStatistic(kind: .windowSum, layer: UInt16(layer), head: UInt16(head), window: UInt16(w), encoding: .f16, values: window)))
                    out.append(.headStatistic(HeadStatistic(kind: .windowSquaredSum, layer: UInt16(layer), head: UInt16(head), window: UInt16(w), encoding: .f16,
                                                            values: window.map { $0 * $0 / Float(w) })))
                }
                let accumulated = noisy((0..<promptTokens).map { j in base[j] * Float(promptTokens - j) }, rng: &rng)
                out.append(.headStatistic(HeadStatistic(kind: .accumulated, layer: UInt16(layer), head: UInt16(head), window: 0, encoding: .f16, values: accumulated)))
            }
        }
        for step in 0..<decodeSteps {
            for layer in 0..<layers {
                for head in 0..<heads {
                    var row = noisy(bases[layer * heads + head], rng: &rng)
                    row += Array(repeating: 0.02, count: step + 1)
                    let sum = row.reduce(0, +)
                    out.append(.decodeAttention(DecodeAttention(layer: UInt16(layer), head: UInt16(head), step: UInt32(step), encoding: .f16,
                                                                values: row.map { $0 / sum })))
                }
            }
        }
        return out
    }

    private func distribution(keys n: Int, rng: inout SplitMix64) -> [Float] {
        let sharpness = 1.0 + 3.0 * rng.nextUnit()
        var logits = [Double](repeating: 0, count: n)
        for j in 0..<n {
            let gaussian = (rng.nextUnit() + rng.nextUnit() + rng.nextUnit() - 1.5) * 2
            let recency = -Double(n - 1 - j) / Double(max(n / 8, 1))
            let hitter = rng.nextUnit() < 0.01 ? 4 + 2 * rng.nextUnit() : 0
            logits[j] = sharpness * gaussian + recency + hitter
        }
        logits[0] += 8 // attention sink
        let m = logits.max()!
        let e = logits.map { Foundation.exp($0 - m) }
        let s = e.reduce(0, +)
        return e.map { Float($0 / s) }
    }

    private func noisy(_ v: [Float], rng: inout SplitMix64) -> [Float] {
        v.map { $0 * Float(0.9 + 0.2 * rng.nextUnit()) }
    }
}
