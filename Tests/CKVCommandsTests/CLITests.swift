import Foundation
import Testing
import TestSupport
@testable import CKVCommands
import TraceFormat

/// Runs the built `ckv-sim` (it sits beside the test bundle) and captures its output.
func runCLI(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ckv-sim")
    let process = Process()
    process.executableURL = binary
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// Expects `ckv-sim arguments` to fail with exactly one line on stderr containing `expected`.
func expectOneLineError(_ arguments: [String], _ expected: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let r = try runCLI(arguments)
    #expect(r.status != 0, "\(arguments)", sourceLocation: sourceLocation)
    #expect(r.stderr.split(separator: "\n").count == 1, "\(arguments): \(r.stderr)", sourceLocation: sourceLocation)
    #expect(r.stderr.contains(expected), "\(arguments): \(r.stderr)", sourceLocation: sourceLocation)
}

/// Writes the first `keep` bytes of `source` (or all but `drop`) to a new file beside it.
func cutCopy(of source: String, named name: String, dropping drop: Int) throws -> String {
    let bytes = try Data(contentsOf: URL(fileURLWithPath: source))
    let path = URL(fileURLWithPath: source).deletingLastPathComponent().appendingPathComponent(name).path
    try bytes.prefix(bytes.count - drop).write(to: URL(fileURLWithPath: path))
    return path
}

func scratch() throws -> URL { try TestSupport.scratchDirectory("ckv-cli") }

private func smallTrace(at path: String) throws -> TraceWriteSummary {
    let header = TraceHeader(
        model: ModelIdentity(name: "cli-fixture", architecture: "gemma3", ggufSHA256: String(repeating: "0", count: 64),
                             layers: 2, queryHeads: 4, kvHeads: 1, headDim: 8, contextLength: 512, slidingWindow: 128, globalLayers: [1]),
        task: TaskDescription(kind: "needle", seed: 3, promptTokens: 64), producer: "ckv-sim tests")
    let writer = try TraceWriter(path: path, header: header, frameSize: 4096)
    try writer.append(.tokens(role: .prompt, ids: Array(0..<64)))
    for layer in 0..<2 {
        for head in 0..<4 {
            try writer.append(.headStatistic(HeadStatistic(kind: .windowSum, layer: UInt16(layer), head: UInt16(head), window: 8, encoding: .f16,
                                                           values: (0..<64).map { Float(($0 * 7 + head) % 13) / 13 })))
        }
    }
    return try writer.finish()
}

@Suite("ckv-sim command line")
struct CLITests {
    @Test("commands parse into their types")
    func parsing() throws {
        #expect(try CKVSim.parseAsRoot(["trace", "inspect", "a.ckvt", "--format", "json"]) is TraceCommand.Inspect)
        #expect(try CKVSim.parseAsRoot(["trace", "verify", "a.ckvt"]) is TraceCommand.Verify)
        #expect(try CKVSim.parseAsRoot(["bench", "trace", "--level", "5"]) is BenchTrace)
        #expect(throws: (any Error).self) { try CKVSim.parseAsRoot(["bench", "trace", "--level", "99"]) }
    }

    @Test("--help lists every subcommand with a summary")
    func help() throws {
        let r = try runCLI(["--help"])
        #expect(r.status == 0)
        for name in ["simulate", "memory", "gpus", "models", "validate", "trace", "bench"] { #expect(r.stdout.contains("  \(name) ")) }
    }

    @Test("progress ETA: counted in steps, or weighed by each step's cost")
    func progressETA() {
        // 2 of 4 equal steps in 10 s: 10 s left.
        #expect(ProgressBar.eta(elapsed: 10, done: 2, total: 4, costs: nil) == 10)
        // Two short probes done, two eight times longer left: 80 s, not 10 s.
        #expect(ProgressBar.eta(elapsed: 10, done: 2, total: 4, costs: [1, 1, 8, 8]) == 80)
        // Costs that do not cover every step fall back to counting steps; nothing done, no ETA.
        #expect(ProgressBar.eta(elapsed: 10, done: 2, total: 4, costs: [1, 1, 8]) == 10)
        #expect(ProgressBar.eta(elapsed: 10, done: 0, total: 4, costs: [1, 1, 8, 8]) == 0)
        #expect(ProgressBar.eta(elapsed: 10, done: 4, total: 4, costs: [1, 1, 8, 8]) == 0)
        // The heads/layers cost grows faster than the prompt: 8k costs ~10× a 1k probe.
        #expect((9...11).contains(probeCost(tokens: 8192) / probeCost(tokens: 1024)))
    }

    @Test("trace inspect reports counts, sizes and ratio as text and JSON")
    func inspect() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("t.ckvt").path
        let summary = try smallTrace(at: path)
        let text = try runCLI(["trace", "inspect", path])
        #expect(text.status == 0)
        #expect(text.stdout.contains("cli-fixture (gemma3)"))
        #expect(text.stdout.contains("head_statistic"))
        let json = try runCLI(["trace", "inspect", path, "--format", "json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["records"] as? Int == 9)
        #expect((object["records_by_type"] as? [String: Int])?["head_statistic"] == 8)
        #expect(object["raw_payload_bytes"] as? Int == Int(summary.rawPayloadBytes))
        #expect(object["file_bytes"] as? Int == Int(summary.fileBytes))
        let verify = try runCLI(["trace", "verify", path])
        #expect(verify.status == 0)
        #expect(verify.stdout.contains("ok: 9 records"))
    }

    @Test("bad input: one line naming the file and offset, non-zero exit")
    func badInput() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("t.ckvt").path
        _ = try smallTrace(at: path)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))

        let cut = try cutCopy(of: path, named: "cut.ckvt", dropping: 40)
        let flipped = dir.appendingPathComponent("flipped.ckvt").path
        var copy = bytes
        copy[copy.count / 2] ^= 0x5A
        try copy.write(to: URL(fileURLWithPath: flipped))
        let missing = dir.appendingPathComponent("missing.ckvt").path

        let cases: [([String], String)] = [
            (["trace", "inspect", missing], "No such file"),
            (["trace", "verify", missing], "No such file"),
            (["trace", "inspect", cut], "truncated at offset"),
            (["trace", "verify", cut], "truncated at offset"),
            (["trace", "verify", flipped], "corrupt at offset"),
            (["trace", "inspect", "/etc/hostname"], "not a .ckvt trace"),
        ]
        for (arguments, expected) in cases {
            try expectOneLineError(arguments, expected)
            try expectOneLineError(arguments, arguments[2]) // names the file
        }
    }

    @Test("repair turns a cut trace into a finished one")
    func repair() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("t.ckvt").path
        _ = try smallTrace(at: path)
        let cut = try cutCopy(of: path, named: "cut.ckvt", dropping: 10)
        let fixed = dir.appendingPathComponent("fixed.ckvt").path
        let r = try runCLI(["trace", "repair", cut, "--output", fixed])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try runCLI(["trace", "verify", fixed]).status == 0)
    }
}

/// A trace with no decode rows gives no perfect score from no data (issue #21).
@Suite("replay evidence")
struct ReplayEvidenceTests {
    @Test("replay refuses a trace without decode attention rows instead of reporting mass 1 and error 0")
    func noRows() throws {
        let path = try scratch().appendingPathComponent("no-rows.ckvt").path
        _ = try smallTraceForTests(at: path)
        try expectOneLineError(["replay", path, "--policies", "snapkv", "--budgets", "16"], "has no decode attention rows, so replay has nothing to measure")
    }
}

func smallTraceForTests(at path: String) throws -> TraceWriteSummary { try smallTrace(at: path) }

/// A real recording killed at several moments keeps every unit it finished (issue #21): the
/// recorder flushes the prompt at once, the statistics when the prompt is in, each decode step's
/// rows and each compressed run's outcome as they finish.
@Suite("killed recordings")
struct KilledRecordingTests {
    static let model = TestSupport.repositoryRoot.appendingPathComponent("Models/SmolLM2-135M-Instruct.Q4_1.gguf").path

    @Test("SIGKILL once the file holds 700 bytes (its header and the prompt, mid-prefill), 2 MB, 8 MB and 14 MB: repair keeps the prompt and all but the last frame of what was written")
    func kills() throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ckv-sim")
        for threshold in [700, 2 << 20, 8 << 20, 14 << 20] {
            let dir = try scratch()
            let path = dir.appendingPathComponent("killed.ckvt").path, repaired = dir.appendingPathComponent("repaired.ckvt").path
            let process = Process()
            process.executableURL = binary
            process.arguments = ["record", "--model", Self.model, "--task", "passkey", "--lengths", "1k", "--depths", "0.5",
                                 "--evaluate", "snapkv,kvcompress,streamingllm", "--budgets", "64,128", "--out", path]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            var size = 0
            let deadline = Date().addingTimeInterval(120)
            while process.isRunning, Date() < deadline {
                size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
                if size >= threshold { break }
                usleep(2000)
            }
            #expect(process.isRunning, "the recording finished before it reached \(threshold) bytes")
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let written = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
            let repair = try runCLI(["trace", "repair", path, "--output", repaired])
            #expect(repair.status == 0, "\(threshold): \(repair.stderr)")
            let inspect = try runCLI(["trace", "inspect", repaired, "--format", "json"])
            let object = try #require(try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any])
            let byType = try #require(object["records_by_type"] as? [String: Int])
            #expect(byType["tokens", default: 0] >= 1 && byType["span", default: 0] == 2, "\(threshold): \(byType)")
            // Everything but the frame being filled (at most 1 MiB and its header) survives.
            let kept = try #require(object["file_bytes"] as? Int)
            #expect(kept >= written - (1 << 20) - 4096, "\(threshold): kept \(kept) of \(written) bytes")
            if threshold >= 8 << 20 { #expect(byType["head_statistic", default: 0] == 1080, "\(threshold): \(byType)") }
            // The prompt is on disk before its prefill ends (the statistics come only then).
            if threshold == 700 { #expect(byType["head_statistic", default: 0] == 0, "\(threshold): \(byType)") }
        }
    }
}

@Suite("accuracy report command")
struct AccuracyReportCLITests {
    @Test("chart links are relative to the document's directory")
    func links() {
        #expect(relativePath(from: "Docs", to: "Docs/accuracy-charts") == "accuracy-charts")
        #expect(relativePath(from: ".", to: "out/charts") == "out/charts")
        #expect(relativePath(from: "a/b", to: "c") == "../../c")
    }

    @Test("--format report on the committed corpus writes a chart per informative cell and links it; --charts needs --format report")
    func report() throws {
        let corpus = TestSupport.repositoryRoot.appendingPathComponent("Accuracy/smollm2-135m.jsonl").path
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ckv-charts-\(ProcessInfo.processInfo.processIdentifier)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try runCLI(["accuracy", corpus, "--format", "report", "--charts", dir, "--links-from", dir + "/.."])
        #expect(r.status == 0, "\(r.stderr)")
        let charts = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".svg") }
        #expect(!charts.isEmpty)
        let name = URL(fileURLWithPath: dir).lastPathComponent
        for c in charts { #expect(r.stdout.contains("](\(name)/\(c))")) }
        #expect(r.stdout.contains("samples recorded:") && r.stdout.contains("### The papers' ordering on retrieval"))
        let bad = try runCLI(["accuracy", corpus, "--charts", dir])
        #expect(bad.status != 0 && bad.stderr.contains("--charts needs --format report"))
    }
}
