import Foundation
import Testing
import TestSupport

/// `ckv-sim tasks export` (the tasks the Hugging Face recorder reads) and `ckv-sim trace compare`
/// (how its traces are checked against the engine's).
@Suite struct TasksExportTests {
    static let smol = TestSupport.repositoryRoot.appendingPathComponent("Models/SmolLM2-135M-Instruct.Q4_1.gguf").path
    static let traces = TestSupport.repositoryRoot.appendingPathComponent("Traces").path

    func lines(_ path: String) throws -> [[String: Any]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
    }

    @Test func exportedTasksAreTheCorpusSamplesWithTheirTokens() throws {
        let dir = try scratch()
        let out = dir.appendingPathComponent("tasks.jsonl").path
        let r = try runCLI(["tasks", "export", "--kinds", "passkey", "--lengths", "1k", "--samples", "30", "--seed", "1", "--tokenizer-of", Self.smol, "--out", out])
        #expect(r.status == 0, "\(r.stderr)")
        let all = try lines(out)
        let header = all[0], tasks = Array(all.dropFirst())
        #expect(header["format"] as? String == "ckv-tasks" && header["version"] as? Int == 1 && header["tokens_included"] as? Bool == true)
        #expect(header["windows"] as? [Int] == [8, 32] && header["squared_windows"] as? [Int] == [8])
        #expect(tasks.count == 30)
        // The committed corpus ran the same plan (seed 1, 30 samples at 1024): the same seeds, depths and prompt lengths.
        let corpus = try lines(TestSupport.repositoryRoot.appendingPathComponent("Accuracy/smollm2-135m.jsonl").path).dropFirst()
            .filter { ($0["key"] as! [String: Any])["kind"] as? String == "passkey" && ($0["key"] as! [String: Any])["length"] as? Int == 1024 }
        #expect(corpus.count == 30)
        for (task, sample) in zip(tasks, corpus) {
            #expect(task["index"] as? Int == (sample["key"] as! [String: Any])["index"] as? Int)
            #expect(task["depth"] as? Double == sample["depth"] as? Double)
            #expect((task["tokens"] as! [Int]).count == sample["prompt_tokens"] as? Int)
            #expect(task["expected"] as? [String] == sample["expected"] as? [String])
            let span = task["answer_span"] as! [Int], needle = task["needle_span"] as! [Int]
            #expect(needle[0] <= span[0] && span[1] <= needle[1] && needle[1] <= (task["tokens"] as! [Int]).count)
        }
        // Deterministic: the same command writes the same bytes.
        let again = dir.appendingPathComponent("again.jsonl").path
        _ = try runCLI(["tasks", "export", "--kinds", "passkey", "--lengths", "1k", "--samples", "30", "--seed", "1", "--tokenizer-of", Self.smol, "--out", again])
        #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == Data(contentsOf: URL(fileURLWithPath: again)))
    }

    @Test func textOnlyExportsScoreByKindAndCarryNoTokens() throws {
        let out = try scratch().appendingPathComponent("text.jsonl").path
        #expect(try runCLI(["tasks", "export", "--kinds", "multi-value,qa", "--lengths", "1k", "--chat", "--out", out]).status == 0)
        let all = try lines(out)
        #expect(all[0]["tokens_included"] as? Bool == false && all[0]["chat"] as? Bool == true)
        #expect(all.dropFirst().map { $0["scoring"] as? String } == ["items", "anywhere"])
        #expect(all.dropFirst().allSatisfy { $0["tokens"] == nil && $0["needle_span"] == nil })
    }

    @Test func badExportsAreOneLine() throws {
        let out = try scratch().appendingPathComponent("x.jsonl").path
        try expectOneLineError(["tasks", "export", "--kinds", "passkey,riddles", "--lengths", "1k", "--out", out], "unknown task kind 'riddles'")
        try expectOneLineError(["tasks", "export", "--lengths", "9000", "--tokenizer-of", Self.smol, "--out", out], "context of 8192")
        try expectOneLineError(["tasks", "export", "--lengths", "1k", "--samples", "2,3", "--out", out], "2 counts for 1 lengths")
    }

    @Test func aTraceComparedWithItselfAgreesExactly() throws {
        let t = "\(Self.traces)/smollm2-qa-1k.ckvt"
        let r = try runCLI(["trace", "compare", t, t, "--budgets", "64,256", "--min-overlap", "1", "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        let c = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let statistics = c["statistics"] as! [[String: Any]], overlaps = c["overlaps"] as! [[String: Any]]
        #expect(statistics.count == 5 && statistics.allSatisfy { $0["max_distance"] as? Double == 0 })
        #expect(overlaps.count >= 14 && overlaps.allSatisfy { $0["minimum"] as? Double == 1 })
    }

    @Test func tracesOfOtherPromptsAreRefused() throws {
        try expectOneLineError(["trace", "compare", "\(Self.traces)/smollm2-qa-1k.ckvt", "\(Self.traces)/smollm2-passkey-1k.ckvt"], "its prompt differs")
        try expectOneLineError(["trace", "compare", "\(Self.traces)/smollm2-qa-1k.ckvt", "\(Self.traces)/gemma3-qa-2k.ckvt"], "a model of 18 layers")
    }
}
