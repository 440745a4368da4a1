import Foundation
import Policies
import Recorder
import Testing
import TestSupport
import TraceFormat
@testable import Engine
@testable import Replay

/// Replay against real runs of SmolLM2: a trace recorded by the recorder, replayed, keeps exactly
/// what the engine's own compressed run keeps, for every policy.
@Suite("replay on real SmolLM2 traces", .serialized)
struct ReplayTests {
    static let modelPath = TestSupport.repositoryRoot.appendingPathComponent("Models/SmolLM2-135M-Instruct.Q4_1.gguf").path

    static func model() throws -> LanguageModel {
        try #require(FileManager.default.fileExists(atPath: modelPath), "run scripts/setup.sh to install the reference models")
        return try LanguageModel(path: modelPath)
    }

    /// A profile for CompressKV's index test: per layer, heads ranked by a fixed arithmetic
    /// pattern (which heads lead does not matter here, only that engine and replay agree).
    static func profile(_ m: LanguageModel, name: String) -> HeadProfile {
        HeadProfile(model: name, scores: (0..<m.config.layers).map { l in (0..<m.config.heads).map { Double(($0 * 7 + l * 3) % m.config.heads) } },
                    layerErrors: (0..<m.config.layers).map { Double(1 + ($0 * 5) % 11) })
    }

    /// Records a 420-token passkey trace (with compressed runs at budget 64 for every policy).
    static func record(_ m: LanguageModel, to path: String, profile: HeadProfile? = nil) throws -> (RetrievalTask, [Int32], RecordingResult, Recorder) {
        let task = try Tasks.passkey(tokens: 420, depth: 0.4, seed: 7, tokenizer: m.tokenizer)
        let tokens = m.tokenizer.encode(task.prompt)
        var options = RecordingOptions()
        options.maxTokens = 8
        let recorder = Recorder(model: m, options: options)
        let p = profile ?? Self.profile(m, name: recorder.identity.name)
        let result = try recorder.record(task: task, tokens: tokens, to: path,
                                         evaluation: Evaluation(policies: PolicyKind.allCases, budgets: [.tokens(64)], profile: p))
        return (task, tokens, result, recorder)
    }

    @Test("replay keeps exactly the positions the engine's compressed run kept, for every policy; the recorded compressed runs match the engine's")
    func replayMatchesEngine() throws {
        let m = try Self.model()
        let path = try TestSupport.scratchDirectory().appendingPathComponent("replay.ckvt").path
        let (_, tokens, recorded, recorder) = try Self.record(m, to: path)
        let profile = Self.profile(m, name: recorder.identity.name)
        let trace = try ReplayTrace(path: path)
        #expect(trace.promptLength == tokens.count)
        #expect(trace.generated.map { Int32(bitPattern: $0) } == recorded.generated)
        #expect(trace.decodeSteps == recorded.generated.count)
        let replayer = Replayer(trace)
        for kind in PolicyKind.allCases {
            // Every policy at 64; the budget-allocating ones also at 160 (each is a real run, ~5 s).
            for budget in [.pyramidKV, .kvCompress, .compressKV].contains(kind) ? [64, 160] : [64] {
                let engine = try m.generateCompressed(prompt: tokens, maxTokens: 8) { try kind.compress($0, budget: budget, profile: profile) }
                let replayed = try replayer.selection(kind, budget: budget, profile: profile)
                #expect(replayed == engine.selection, "\(kind.rawValue)@\(budget)")
                if budget == 64 {
                    // The recorder's continuation from the shared prefill is the engine's own compressed run.
                    #expect(trace.outcomes["\(kind.rawValue)@64"]?.tokens == engine.tokens, "\(kind.rawValue)")
                }
            }
        }
        // Keeping everything loses nothing.
        let all = try replayer.replay(.snapKV, budget: tokens.count + 8)
        #expect(all.keptFraction == 1)
        #expect(abs(all.attentionMass - 1) < 1e-3)
        #expect(all.outputError < 1e-3)
        // Continual policies go on evicting during the decode steps: StreamingLLM's rolling
        // window holds a subset of what compressing once holds, so it keeps no more mass.
        let rolling = try replayer.replay(.streamingLLM, budget: 64), once = try replayer.replay(.streamingLLM, budget: 64, continual: false)
        #expect(rolling.decodeEviction && !once.decodeEviction)
        #expect(rolling.attentionMass < once.attentionMass)
        #expect(try !replayer.replay(.snapKV, budget: 64).decodeEviction)
        // Less budget keeps less mass, on every policy.
        for kind in PolicyKind.allCases where kind != .compressKV {
            let small = try replayer.replay(kind, budget: 64), large = try replayer.replay(kind, budget: 256)
            #expect(small.keptFraction < large.keptFraction, "\(kind.rawValue)")
            #expect(small.attentionMass <= large.attentionMass + 1e-9, "\(kind.rawValue)")
        }
    }

    @Test("recording the same task twice writes byte-identical traces (no clock or run-dependent field)")
    func recordingIsDeterministic() throws {
        let m = try Self.model()
        let dir = try TestSupport.scratchDirectory()
        let task = try Tasks.passkey(tokens: 300, depth: 0.5, seed: 11, tokenizer: m.tokenizer)
        var options = RecordingOptions()
        options.maxTokens = 4
        let recorder = Recorder(model: m, options: options)
        let paths = ["a.ckvt", "b.ckvt"].map { dir.appendingPathComponent($0).path }
        for path in paths { _ = try recorder.record(task: task, tokens: m.tokenizer.encode(task.prompt), to: path) }
        let (a, b) = (try Data(contentsOf: URL(fileURLWithPath: paths[0])), try Data(contentsOf: URL(fileURLWithPath: paths[1])))
        #expect(a.count > 0)
        #expect(a == b)
    }

    @Test("GQA grouping on a real trace: KV head g ranks by its own query heads g·3 … g·3+2, not reshape(n_rep, n_kv)'s")
    func gqaGroupingOnRealTrace() throws {
        let m = try Self.model()
        let path = try TestSupport.scratchDirectory().appendingPathComponent("gqa.ckvt").path
        _ = try Self.record(m, to: path)
        let trace = try ReplayTrace(path: path)
        let kept = try Policy.snapKV(kernel: 1).select(trace.statistics, budget: 64).kept
        let n = trace.promptLength, w = 32, heads = m.config.heads, kv = m.config.kvHeads, group = heads / kv
        var differs = 0
        for (l, layer) in trace.statistics.enumerated() {
            let sums = layer.windowSums[w]!
            for g in 0..<kv {
                // Written out here: the group's own heads (right) and the pitfall's heads g, g + kv, … (wrong).
                func top(_ members: [Int]) -> [Int] {
                    let score = (0..<(n - w)).map { j in members.reduce(Float(0)) { $0 + sums[$1][j] } }
                    let order = score.indices.sorted { score[$0] > score[$1] || (score[$0] == score[$1] && $0 < $1) }
                    return Array(order.prefix(64 - w)).sorted() + Array((n - w)..<n)
                }
                let right = top(Array((g * group)..<((g + 1) * group)))
                let wrong = top(Array(stride(from: g, to: heads, by: kv)))
                #expect(kept[l][g] == right, "layer \(l) KV head \(g)")
                if wrong != right { differs += 1 }
            }
        }
        // The pitfall would change what real heads keep: the test can tell the two apart.
        #expect(differs > trace.statistics.count)
    }

    @Test("bad traces and profiles give one clear line")
    func badInput() throws {
        let m = try Self.model()
        let dir = try TestSupport.scratchDirectory()
        let path = dir.appendingPathComponent("bad.ckvt").path
        _ = try Self.record(m, to: path)
        let trace = try ReplayTrace(path: path)
        let other = HeadProfile(model: "Gemma 3 270m", scores: Array(repeating: [1, 2, 3, 4], count: 30))
        #expect(throws: ReplayError.self) { try Replayer(trace).replay(.compressKV, budget: 64, profile: other) }
        #expect(throws: PolicyError.self) { try Replayer(trace).replay(.snapKV, budget: 16) }
        // A trace cut short is refused with its name, not crashed on.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let cut = dir.appendingPathComponent("cut.ckvt").path
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: cut))
        do {
            _ = try ReplayTrace(path: cut)
            Issue.record("a truncated trace was accepted")
        } catch {
            #expect("\(error)".contains("cut.ckvt"))
        }
    }
}
