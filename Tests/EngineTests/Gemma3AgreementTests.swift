import Foundation
import Testing
import TestSupport
@testable import Engine

let repositoryRoot = TestSupport.repositoryRoot

/// One prompt's reference outputs, as `llamacpp-oracle outputs` (llama-cpp-python 0.3.36) wrote them.
struct OracleOutput: Decodable {
    var prompt: String
    var tokens: [Int32]
    var argmax: [Int]
    var last_top10: [[Double]]
    var greedy: [Int32]
}

func loadFixture(_ name: String) throws -> [OracleOutput] {
    let url = try #require(Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: "json"))
    return try JSONDecoder().decode([OracleOutput].self, from: Data(contentsOf: url))
}

/// The engine's outputs against a fixture, with the figures of the agreement protocol: tokens,
/// per-position argmax, last-position top-1 and top-10 logits, 24-token greedy continuation.
struct Agreement: CustomStringConvertible {
    var prompts = 0, tokensIdentical = 0, agree = 0, positions = 0, topOne = 0, greedySame = 0
    var worstTop10 = 0.0
    var argmaxRate: Double { Double(agree) / Double(max(positions, 1)) }

    init(model m: LanguageModel, fixture: [OracleOutput]) throws {
        for reference in fixture {
            prompts += 1
            if m.tokenizer.encode(reference.prompt) == reference.tokens { tokensIdentical += 1 }
            var cache = m.makeCache(tokens: reference.tokens.count + reference.greedy.count)
            let all = m.prefill(reference.tokens, cache: &cache, chunk: 256, logitsFor: .all)
            for (p, logits) in all.enumerated() {
                positions += 1
                if argmax(logits) == reference.argmax[p] { agree += 1 }
            }
            let last = all.last!
            if argmax(last) == Int(reference.last_top10[0][0]) { topOne += 1 }
            for pair in reference.last_top10 { worstTop10 = max(worstTop10, abs(Double(last[Int(pair[0])]) - pair[1])) }
            var generated: [Int32] = []
            var logits = last
            for _ in reference.greedy.indices {
                let t = Int32(argmax(logits))
                generated.append(t)
                logits = m.forward([t], cache: &cache, logitsFor: .last)[0]
            }
            if generated == reference.greedy { greedySame += 1 }
        }
    }

    var description: String {
        "tokens \(tokensIdentical)/\(prompts); argmax \(agree)/\(positions) = \(argmaxRate); last top-1 \(topOne)/\(prompts); " +
            "max top-10 logit difference \(worstTop10); greedy identical \(greedySame)/\(prompts)"
    }
}

/// Gemma 3 270M against llama.cpp on the same GGUF (Tests/EngineTests/Fixtures, recorded with
/// `llamacpp-oracle outputs Models/gemma-3-270m-q4_k_m.gguf gemma3-prompts.json gemma3-llamacpp.json`).
@Suite("Gemma 3 270M agrees with llama.cpp", .serialized)
struct Gemma3AgreementTests {
    static let modelPath = repositoryRoot.appendingPathComponent("Models/gemma-3-270m-q4_k_m.gguf").path

    static func model() throws -> LanguageModel {
        try #require(FileManager.default.fileExists(atPath: modelPath), "run scripts/setup.sh to install the reference models")
        return try LanguageModel(path: modelPath)
    }

    @Test("tokens identical on every prompt")
    func tokens() throws {
        let m = try Self.model()
        for case let reference in try loadFixture("gemma3-llamacpp") {
            #expect(m.tokenizer.encode(reference.prompt) == reference.tokens, "\(reference.prompt.prefix(40))")
        }
    }

    /// Issue #4's protocol: argmax at ≥ 97 % of positions, the last-position top-1 on every
    /// prompt, top-10 logits within 0.5, identical 24-token greedy continuations on ≥ 80 % of
    /// prompts. Gemma's Q4_K/Q6_K products take Q8_K activations as ggml's repacked and tiled
    /// kernels do (Docs/engine.md), which makes it bit-identical; the figures are printed.
    @Test("argmax at ≥ 97 % of positions, last top-1 on every prompt, top-10 within 0.5, greedy continuation on ≥ 80 %")
    func logits() throws {
        let fixture = try loadFixture("gemma3-llamacpp")
        let a = try Agreement(model: try Self.model(), fixture: fixture)
        print("gemma3 vs llama.cpp: \(a)")
        #expect(a.argmaxRate >= 0.97)
        #expect(a.topOne == fixture.count)
        #expect(a.worstTop10 <= 0.5)
        #expect(Double(a.greedySame) >= 0.8 * Double(fixture.count))
    }

    @Test("generation streams tokens, stops at the limit, and refuses a prompt beyond the context")
    func generation() throws {
        let m = try Self.model()
        var seen: [Int32] = []
        let out = try m.generate(prompt: m.tokenizer.encode("The capital of France is"), maxTokens: 8, onToken: { seen.append($0) })
        #expect(out == seen && out.count <= 8 && !out.isEmpty)
        let sampledA = try m.generate(prompt: m.tokenizer.encode("Once upon a time"), maxTokens: 6, sampler: .temperature(0.8, seed: 3))
        let sampledB = try m.generate(prompt: m.tokenizer.encode("Once upon a time"), maxTokens: 6, sampler: .temperature(0.8, seed: 3))
        #expect(sampledA == sampledB)
        #expect(throws: GenerationError.self) { try m.generate(prompt: [2, 3], maxTokens: m.config.contextLength) }
    }

    @Test("not a GGUF: one clear error")
    func badModels() throws {
        #expect(throws: (any Error).self) { try LanguageModel(path: repositoryRoot.appendingPathComponent("Package.swift").path) }
    }
}
