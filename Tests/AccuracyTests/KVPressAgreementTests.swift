import Engine
import Foundation
import Policies
import Testing
import TestSupport

/// The engine's real compressed runs against NVIDIA kvpress on the same GGUF (issue #19): 40 tasks
/// × 5 presses × 2 budgets, with the window, kernel, pooling, sinks, chunk size and Ada-KV's
/// safeguard matched to this project's where kvpress lets them be set
/// (Tests/AccuracyTests/Fixtures/kvpress-smollm2.json, from `bash scripts/kvpress-fixture.sh`).
/// kvpress compresses once after the prompt, so the engine does too here. Docs/accuracy.md
/// ("Checked against kvpress") explains every disagreement.
@Suite struct KVPressAgreementTests {
    struct Fixture: Decodable {
        struct Plan: Decodable { var kinds: [String]; var lengths: [Int]; var samples: Int; var seed: UInt64 }
        struct Run: Decodable { var found: Bool; var text: String }
        struct Task: Decodable { var name: String; var n: Int; var answer: String; var full: Run; var runs: [String: Run] }
        var plan: Plan
        var budgets: [Int]
        var max_new: Int
        var tasks: [Task]
    }

    /// Whether the engine's run finds the answer, per task name and "press@budget" (and "full").
    static func engineRuns(_ fixture: Fixture) throws -> [String: [String: Bool]] {
        let model = try LanguageModel(path: TestSupport.repositoryRoot.appendingPathComponent("Models/SmolLM2-135M-Instruct.Q4_1.gguf").path)
        let kinds = try fixture.plan.kinds.map { try TaskKind(parsing: $0) }
        let plan = SamplePlan(kinds: kinds, lengths: fixture.plan.lengths, samples: Array(repeating: fixture.plan.samples, count: fixture.plan.lengths.count),
                              seed: fixture.plan.seed)
        let policies = try ["streamingllm", "snapkv", "pyramidkv", "adakv", "chunkkv"].map { try PolicyKind(parsing: $0) }
        var out: [String: [String: Bool]] = [:]
        for key in plan.keys {
            var task = try plan.task(key, tokenizer: model.tokenizer)
            let tokens = try model.promptTokens(for: &task, chat: false)
            let name = "\(key.kind.rawValue)-\(key.length)-\(key.index)"
            let collector = StatisticsCollector(config: model.config, promptLength: tokens.count)
            let prefilled = try model.prefill(prompt: tokens, maxTokens: fixture.max_new, probe: collector.probe, headLocalProbe: true)
            let statistics = collector.statistics
            var found = ["full": task.isCorrect(model.tokenizer.decode(try model.generate(from: prefilled, compression: nil).tokens))]
            for policy in policies {
                for budget in fixture.budgets where budget < tokens.count {
                    let compression = try policy.compress(statistics, budget: budget, continual: false)
                    let text = model.tokenizer.decode(try model.generate(from: prefilled, compression: compression).tokens)
                    found["\(policy.rawValue)@\(budget)"] = task.isCorrect(text)
                }
            }
            out[name] = found
        }
        return out
    }

    @Test("the engine's compressed runs find the answer where kvpress's do, on at least 90 % of 400 runs")
    func agreesWithKVPress() throws {
        let path = TestSupport.repositoryRoot.appendingPathComponent("Tests/AccuracyTests/Fixtures/kvpress-smollm2.json").path
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(fixture.tasks.count == 40)
        let engine = try Self.engineRuns(fixture)
        var agree = 0, total = 0, disagreements: [String] = []
        for task in fixture.tasks {
            let ours = try #require(engine[task.name], "the fixture's \(task.name) is not in the plan")
            #expect(ours["full"] == task.full.found, "\(task.name): full cache")
            for (label, run) in task.runs {
                let mine: Bool = try #require(ours[label] as Bool?, "\(task.name) \(label)")
                total += 1
                if mine == run.found { agree += 1 } else { disagreements.append("\(task.name) \(label): engine \(mine), kvpress \(run.found)") }
            }
        }
        #expect(total == 400)
        let share = Double(agree) / Double(total)
        print("kvpress agreement: \(agree)/\(total); disagreements: \(disagreements.joined(separator: "; "))")
        #expect(share >= 0.9, "\(agree)/\(total) agree: \(disagreements.joined(separator: "; "))")
    }
}
