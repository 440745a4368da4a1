import Foundation
import Testing
import TestSupport
@testable import Accuracy
@testable import Engine
import Policies
import Recorder

private let smolPath = TestSupport.repositoryRoot.appendingPathComponent("Models/SmolLM2-135M-Instruct.Q4_1.gguf").path

/// The real SmolLM2 model, loaded once, and its identity (the GGUF hashed once).
private let smol: LanguageModel = try! LanguageModel(path: smolPath)
private let smolIdentity = Recorder(model: smol).identity

@Suite("task kinds")
struct TaskKindTests {
    @Test("every kind fills its length, holds every expected item where the question can find it, and is the same for the same seed", arguments: [1024, 4096])
    func kinds(length: Int) throws {
        let tokenizer = smol.tokenizer
        for kind in TaskKind.allCases {
            let task = try kind.generate(tokens: length, depth: 0.3, seed: 11, tokenizer: tokenizer)
            let n = tokenizer.encode(task.prompt).count
            #expect(n <= length && n >= length * 9 / 10, "\(kind): \(n) tokens for \(length)")
            #expect(task.expected.allSatisfy { task.prompt.contains($0) }, "\(kind)")
            #expect(try kind.generate(tokens: length, depth: 0.3, seed: 11, tokenizer: tokenizer) == task, "\(kind) is seeded")
            #expect(try kind.generate(tokens: length, depth: 0.3, seed: 12, tokenizer: tokenizer).prompt != task.prompt, "\(kind) varies with the seed")
            if task.needle.isEmpty {
                #expect(kind == .commonWords)
            } else {
                let spans = try #require(task.spans(in: tokenizer.encode(task.prompt), tokenizer: tokenizer), "\(kind)")
                #expect(spans.answer.clamped(to: spans.needle) == spans.answer, "\(kind)")
            }
        }
    }

    @Test("the needle sits at the asked depth; distractor keys differ from the asked one; the chain is in order; common words are the ten most frequent")
    func structure() throws {
        let tokenizer = smol.tokenizer
        for depth in [0.0, 0.5, 1.0] {
            let t = try TaskKind.singleNeedle.generate(tokens: 2048, depth: depth, seed: 3, tokenizer: tokenizer)
            let at = Double(t.prompt.range(of: t.needle)!.lowerBound.utf16Offset(in: t.prompt)) / Double(t.prompt.utf16.count)
            #expect(abs(at - depth) < 0.08, "needle at \(at) for depth \(depth)")
        }
        for seed in UInt64(0)..<20 {
            let t = try TaskKind.multiKey.generate(tokens: 1024, depth: 0.5, seed: seed, tokenizer: tokenizer)
            let keys = t.prompt.matches(of: /special magic numbers for (\w+) is/).map { String($0.1) }
            #expect((3...5).contains(keys.count) && Set(keys).count == keys.count, "\(keys)")
            #expect(t.expected.count == 1)
        }
        let mv = try TaskKind.multiValue.generate(tokens: 1024, depth: 0.5, seed: 5, tokenizer: tokenizer)
        #expect(mv.expected.count == 4 && Set(mv.expected).count == 4 && mv.prompt.hasSuffix("mentioned in the provided text are"))

        let vt = try TaskKind.variableTracking.generate(tokens: 2048, depth: 0.2, seed: 9, tokenizer: tokenizer)
        let positions = vt.expected.map { vt.prompt.range(of: "VAR \($0) =")!.lowerBound }
        #expect(vt.expected.count == 5 && positions == positions.sorted())

        let cw = try TaskKind.commonWords.generate(tokens: 2048, depth: 0, seed: 4, tokenizer: tokenizer)
        let list = cw.prompt.matches(of: /\d+\. ([a-z-]+)/).map { String($0.1) }
        let counts = Dictionary(list.map { ($0, 1) }, uniquingKeysWith: +)
        let top = counts.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(10).map(\.key)
        #expect(Set(top) == Set(cw.expected) && counts[cw.expected[0]] == 20 && counts.values.filter { $0 != 20 }.allSatisfy { $0 == 3 })
    }

    @Test("a length too short for the task is refused, naming the kind and the tokens it needs")
    func tooShort() {
        for kind in TaskKind.allCases {
            #expect(throws: GenerationError.self) { try kind.generate(tokens: 40, depth: 0.5, seed: 1, tokenizer: smol.tokenizer) }
        }
        #expect(throws: GenerationError.self) { try TaskKind(parsing: "haystack") }
    }

    @Test("scores: one item begins the answer; several count as whole words in any order")
    func scores() {
        var one = RetrievalTask(kind: "passkey", prompt: "", answer: "12345", depth: 0, seed: 0, needle: "")
        #expect(one.score(" 12345.") == 1 && one.score("It is 12345") == 0 && one.score("1234") == 0)
        one.answerAnywhere = true
        #expect(one.score("It is 12345") == 1)
        let many = RetrievalTask(kind: "multi-value", prompt: "", expected: ["111", "222", "333", "444"], depth: 0, seed: 0, needle: "")
        #expect(many.score(" 222, 111 and 4444") == 0.5)
        #expect(many.score("111 222 333 444") == 1 && many.isCorrect("444, 333, 222, 111.") && !many.isCorrect("111 222 333"))
    }
}

@Suite("Wilson intervals")
struct WilsonTests {
    @Test("known values, and the interval holds the estimate and narrows with n")
    func known() {
        let zero = Proportion(successes: 0, n: 10), half = Proportion(successes: 5, n: 10), all = Proportion(successes: 30, n: 30)
        #expect(zero.low == 0 && abs(zero.high - 0.2775) < 1e-3)
        #expect(abs(half.low - 0.2366) < 1e-3 && abs(half.high - 0.7634) < 1e-3)
        #expect(abs(all.low - 0.8865) < 1e-3 && all.high == 1)
        for n in [5, 30, 300] {
            for k in stride(from: 0, through: n, by: max(1, n / 5)) {
                let p = Proportion(successes: Double(k), n: n)
                #expect(p.low <= p.value && p.value <= p.high)
            }
        }
        #expect(Proportion(successes: 15, n: 30).high - Proportion(successes: 15, n: 30).low
            > Proportion(successes: 150, n: 300).high - Proportion(successes: 150, n: 300).low)
        #expect(Proportion(successes: 0, n: 0).text == "—")
    }
}

@Suite("accuracy corpus")
struct CorpusTests {
    static func settings(samples: Int = 2, seed: UInt64 = 1) -> CorpusSettings {
        CorpusRunner.settings(model: smolIdentity, kinds: [.passkey, .singleNeedle], lengths: [192], samples: [samples],
                              policies: [.streamingLLM, .snapKV], fractions: [0.5], seed: seed, chat: false, continual: true)
    }

    @Test("a run writes a settings line and one line per sample; an interrupted run resumes to the same bytes; other settings are refused")
    func runAndResume() throws {
        let dir = try TestSupport.scratchDirectory("corpus")
        let whole = dir.appendingPathComponent("whole.jsonl").path
        let runner = try CorpusRunner(recorder: Recorder(model: smol), settings: Self.settings(), profile: nil)
        let ran = try runner.run(into: whole, scratch: dir)
        #expect(ran.count == 4 && ran.allSatisfy { $0.promptTokens <= 192 } && ran.contains { $0.fullScore == 1 })
        #expect(ran.allSatisfy { s in s.runs.allSatisfy { (0...1).contains($0.score) && $0.attentionMass > 0 && $0.attentionMass <= 1.0001 } })
        let bytes = try Data(contentsOf: URL(fileURLWithPath: whole))
        #expect(bytes.split(separator: UInt8(ascii: "\n")).count == 5)

        // Killed while writing the third sample: two whole lines and part of a third survive.
        let cut = dir.appendingPathComponent("cut.jsonl").path
        let lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        let kept = lines[0..<3].map { Data($0) + Data("\n".utf8) }.reduce(Data(), +) + Data(lines[3].prefix(40))
        try kept.write(to: URL(fileURLWithPath: cut))
        let resumed = try runner.run(into: cut, scratch: dir)
        #expect(resumed.count == 2)
        #expect(try Data(contentsOf: URL(fileURLWithPath: cut)) == bytes, "a resumed run gives the uninterrupted run's bytes")
        #expect(try runner.run(into: cut, scratch: dir).isEmpty, "nothing left to do")

        // A line removed from the middle is run again at the end, and the finished file is put back in plan order.
        let holed = dir.appendingPathComponent("holed.jsonl").path
        try Data((lines[0..<2] + lines[3...]).map { Data($0) }.joined(separator: Data("\n".utf8))).write(to: URL(fileURLWithPath: holed))
        #expect(try runner.run(into: holed, scratch: dir).count == 1)
        #expect(try Data(contentsOf: URL(fileURLWithPath: holed)) == bytes, "back in plan order")

        // Samples the full cache fails carry no compressed runs; those it solves carry every one.
        #expect(ran.allSatisfy { $0.fullScore == 1 ? $0.runs.count == 2 : $0.runs.isEmpty })

        let other = try CorpusRunner(recorder: Recorder(model: smol), settings: Self.settings(seed: 2), profile: nil)
        let text = "\(try #require(throws: CorpusError.self) { try other.run(into: cut, scratch: dir) })"
        #expect(text.contains("cut.jsonl was run with other settings (seed is 1 in the file, 2 now)"), "\(text)")

        let file = try CorpusFile.read(whole).file
        let cells = file.cells
        #expect(cells.count == 2 && cells.allSatisfy { $0.full.n == 2 && $0.points.count == 2 })
    }

    @Test("damaged, foreign and future results files: one line naming the file and line")
    func badFiles() throws {
        let header = String(decoding: try CorpusFile.encodeLine(CorpusFile.Header(format: CorpusFile.format, version: 1, settings: Self.settings())), as: UTF8.self)
        let cases: [(String, String)] = [
            ("", "line 1: expected the corpus settings line"),
            (header.replacingOccurrences(of: "\"format\":\"ckv-sim accuracy corpus\"", with: "\"format\":\"other\""), "format is 'other'"),
            (header.replacingOccurrences(of: "\"version\":1}", with: "\"version\":9}"), "version 9 is not supported"),
            (header + "{\"key\":1}\n", "line 2: not a corpus sample"),
            ("[1,2]\n", "line 1: not a corpus settings line"),
        ]
        for (i, (text, expected)) in cases.enumerated() {
            let path = try TestSupport.temporaryFile("bad-\(i).jsonl", text)
            let message = "\(try #require(throws: CorpusError.self) { _ = try CorpusFile.read(path) })"
            #expect(message.contains(expected) && message.contains("bad-\(i).jsonl") && !message.contains("\n"), "\(message)")
        }
        var long = Self.settings()
        long.lengths = [9000]
        #expect(throws: CorpusError.self) { _ = try CorpusRunner(recorder: Recorder(model: smol), settings: long, profile: nil) }
    }
}
