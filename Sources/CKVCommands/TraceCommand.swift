import ArgumentParser
import Foundation
import Policies
import Replay
import Reporting
import TraceFormat

/// `ckv-sim trace …`: look inside, check and repair .ckvt files.
struct TraceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Inspect, verify, repair and compare recorded attention traces (.ckvt).",
        subcommands: [Inspect.self, Verify.self, Repair.self, Compare.self]
    )
}

extension TraceCommand {
    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a trace's header, model identity, record counts, sizes and compression ratio (from the header, index and trailer; `trace verify` checks every frame)."
        )

        @Argument(help: "The .ckvt file.")
        var file: String

        @Option(help: "Output format: \(OutputFormat.allCases.map(\.rawValue).joined(separator: ", ")).")
        var format: OutputFormat = .text

        func run() async throws {
            let reader = try TraceReader(path: file)
            guard let index = reader.index else {
                throw TraceCommandError.unfinished(try unreadableEnd(of: reader))
            }
            let info = TraceInfo(reader: reader, index: index)
            switch format {
            case .json: print(try JSONOutput.string(info))
            case .text: print(info.text)
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read every frame and check every checksum; exit 0 if the trace is intact, 1 if not."
        )

        @Argument(help: "The .ckvt file.")
        var file: String

        func run() async throws {
            let reader = try TraceReader(path: file)
            let result = reader.verify()
            if let problem = result.problem {
                throw TraceCommandError.damaged(problem, frames: result.frames, records: result.records)
            }
            print("\(file): ok: \(result.records) records in \(result.frames) frames, every checksum matches")
        }
    }

    struct Repair: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rewrite the readable part of an interrupted or damaged trace as a finished file."
        )

        @Argument(help: "The damaged or unfinished .ckvt file.")
        var file: String

        @Option(name: .shortAndLong, help: "Where to write the repaired trace.")
        var output: String

        func validate() throws {
            guard URL(fileURLWithPath: file).standardized.path != URL(fileURLWithPath: output).standardized.path else {
                throw ValidationError("--output must differ from the input file")
            }
        }

        func run() async throws {
            let outcome = try TraceRepair.repair(source: file, destination: output)
            let s = outcome.summary
            if let stop = outcome.stoppedBy {
                print("\(output): kept \(s.records - 1) records in \(s.frames) frames; reading \(file) stopped: \(stop)")
            } else {
                print("\(output): \(file) was intact; copied \(s.records) records in \(s.frames) frames")
            }
        }
    }
}

extension TraceCommand {
    struct Compare: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compare two traces of the same prompt (two recorders, two engines): their statistics, and the overlap of every policy's selections.",
            discussion: """
            Statistics: the relative L1 distance Σ|a − b| / Σ|a| per (layer, query head), median and maximum.
            Selections: per policy and budget, the share of the positions REFERENCE's selection keeps that
            OTHER's keeps too, per (layer, KV head) of the compressed layers: mean, minimum, and the share of
            pairs at or above --min-overlap. With --min-overlap the command exits 1 when a policy's mean overlap
            falls below it.
            """
        )

        @Argument(help: "The reference trace (.ckvt), e.g. the Swift engine's.")
        var reference: String

        @Argument(help: "The trace to check against it, e.g. the Hugging Face recorder's.")
        var other: String

        @Option(help: "Policies, comma-separated (\(PolicyKind.names.joined(separator: ", "))), or 'all' (compresskv when a committed profile has the model).")
        var policies = "all"

        @Option(help: "Budgets in tokens per layer per KV head, comma-separated.")
        var budgets = "64,256"

        @Option(name: .customLong("min-overlap"), help: "Fail (exit 1) when a policy's mean selection overlap at a budget is below this (0 … 1).")
        var minOverlap: Double?

        @Option(help: "Output format: \(OutputFormat.allCases.map(\.rawValue).joined(separator: ", ")).")
        var format: OutputFormat = .text

        func run() async throws {
            let a = try ReplayTrace(path: reference), b = try ReplayTrace(path: other)
            let profile = try committedProfiles().map { try HeadProfile.load(path: $0) }.first { $0.model == a.model.name }
            let kinds = try parsePolicies(policies, haveProfile: profile != nil)
            let budgetList = try parseBudgets(tokens: budgets, fractions: nil).compactMap { b -> Int? in
                if case let .tokens(n) = b { return n }
                return nil
            }
            if let minOverlap, !(0...1).contains(minOverlap) { throw CLIError("--min-overlap: \(minOverlap) is not in 0 … 1") }
            let c = try TraceComparison.compare(a, b, policies: kinds, budgets: budgetList, profile: profile, threshold: minOverlap ?? 0.9)
            switch format {
            case .json: print(try JSONOutput.string(c))
            case .text:
                print("\(other) against \(reference): \(c.promptTokens) prompt tokens; full-cache continuations agree on \(c.generatedAgreeing) of \(c.generated) tokens")
                var stats = Table(columns: ["statistic", "median distance", "max distance"], rightAligned: [1, 2])
                for s in c.statistics { stats.append([s.name, String(format: "%.4f", s.medianDistance), String(format: "%.4f", s.maxDistance)]) }
                print(stats.text)
                var overlaps = Table(columns: ["policy", "budget", "mean overlap", "min overlap", "pairs ≥ \(String(format: "%.0f %%", c.threshold * 100))"], rightAligned: [1, 2, 3, 4])
                for o in c.overlaps {
                    overlaps.append([o.policy, String(o.budget), String(format: "%.3f", o.mean), String(format: "%.3f", o.minimum), String(format: "%.1f %%", o.shareAtLeast * 100)])
                }
                print(overlaps.text)
            }
            if let minOverlap, let worst = c.overlaps.min(by: { $0.mean < $1.mean }), worst.mean < minOverlap {
                throw CLIError("\(other): \(worst.policy) at budget \(worst.budget) keeps \(String(format: "%.1f", worst.mean * 100)) % of \(reference)'s selection on average, below --min-overlap \(minOverlap)")
            }
        }
    }
}

/// Finds why an unfinished trace cannot be read to its end (for the one-line error).
private func unreadableEnd(of reader: TraceReader) throws -> (TraceError, frames: Int, records: UInt64) {
    let result = reader.verify()
    let problem = reader.indexProblem ?? result.problem
        ?? .corrupt(path: reader.path, offset: reader.fileSize, reason: "no valid trailer")
    return (problem, result.frames, result.records)
}

enum TraceCommandError: LocalizedError, CustomStringConvertible {
    case unfinished((TraceError, frames: Int, records: UInt64))
    case damaged(TraceError, frames: Int, records: UInt64)

    var description: String {
        switch self {
        case let .unfinished((error, frames, records)), let .damaged(error, frames, records):
            return "\(error) (\(records) records in \(frames) complete frames before it are readable; `ckv-sim trace repair` keeps them)"
        }
    }
}

/// What `trace inspect` reports, one value rendered as text or JSON.
struct TraceInfo: Encodable {
    var path: String
    var formatVersion: String
    var header: TraceHeader
    var frames: Int
    var records: UInt64
    var recordsByType: [String: UInt64]
    var rawPayloadBytes: UInt64
    var storedPayloadBytes: UInt64
    var fileBytes: UInt64
    var compressionRatio: Double

    init(reader: TraceReader, index: TraceIndex) {
        path = reader.path
        formatVersion = "\(reader.majorVersion).\(reader.minorVersion)"
        header = reader.header
        frames = index.frames.count
        records = index.recordCount
        recordsByType = Dictionary(uniqueKeysWithValues: index.recordsByType.map { (TraceRecord.name(ofType: $0.type), $0.count) })
        rawPayloadBytes = index.rawPayloadBytes
        storedPayloadBytes = index.storedPayloadBytes
        fileBytes = reader.fileSize
        compressionRatio = storedPayloadBytes == 0 ? 1 : Double(rawPayloadBytes) / Double(storedPayloadBytes)
    }

    enum CodingKeys: String, CodingKey {
        case path, header, frames, records
        case formatVersion = "format_version"
        case recordsByType = "records_by_type"
        case rawPayloadBytes = "raw_payload_bytes"
        case storedPayloadBytes = "stored_payload_bytes"
        case fileBytes = "file_bytes"
        case compressionRatio = "compression_ratio"
        case checked
    }

    /// What `inspect` read, so an exit status of 0 is not taken for a verified file.
    var checked = "header, index and trailer only (their checksums); `ckv-sim trace verify` reads and checks every frame"

    var text: String {
        let m = header.model
        var shape = "\(m.layers) layers, \(m.queryHeads) query heads / \(m.kvHeads) KV heads, head_dim \(m.headDim), context \(m.contextLength)"
        if let w = m.slidingWindow { shape += ", sliding window \(w)" }
        let params = header.task.parameters.keys.sorted().map { "\($0)=\(header.task.parameters[$0]!)" }.joined(separator: " ")
        var rows: [(String, String)] = [
            ("file", path),
            ("format", "ckvt \(formatVersion), finished"),
            ("model", "\(m.name) (\(m.architecture))"),
            ("shape", shape),
            ("weights", [m.hfID.map { "Hugging Face \($0)" + (m.hfRevision.map { " @ \($0)" } ?? "") }, m.ggufSHA256.map { "GGUF sha256 \($0)" }]
                .compactMap { $0 }.joined(separator: "; ")),
            ("task", "\(header.task.kind), seed \(header.task.seed), \(header.task.promptTokens) prompt tokens" + (params.isEmpty ? "" : "; \(params)")),
            ("producer", header.producer),
            ("records", "\(records) in \(frames) frames"),
        ]
        for name in recordsByType.keys.sorted() {
            rows.append(("  \(name)", "\(recordsByType[name]!)"))
        }
        rows += [
            ("payload", "\(Format.bytes(rawPayloadBytes)) raw, \(Format.bytes(storedPayloadBytes)) stored"),
            ("compression", Format.fixed(compressionRatio, 2) + "×"),
            ("file size", Format.bytes(fileBytes)),
            ("checked", checked),
        ]
        return Table(pairs: rows).text
    }
}

extension TraceCommandError {
    var errorDescription: String? { description }
}
