import Foundation
import Testing
@testable import Engine

/// SmolLM2-135M-Instruct (Llama graph, GQA 9/3, byte-level BPE) against llama.cpp on the same
/// GGUF: fixture recorded with `llamacpp-oracle outputs Models/SmolLM2-135M-Instruct.Q4_1.gguf
/// smollm2-prompts.json smollm2-llamacpp.json` (32 prompts: code, six scripts, emoji with ZWJ
/// and flags, whitespace runs, ChatML conversations, contractions, a 3,000-token text).
@Suite("SmolLM2-135M-Instruct agrees with llama.cpp", .serialized)
struct SmolLM2AgreementTests {
    static let modelPath = repositoryRoot.appendingPathComponent("Models/SmolLM2-135M-Instruct.Q4_1.gguf").path

    static func model() throws -> LanguageModel {
        try #require(FileManager.default.fileExists(atPath: modelPath), "run scripts/setup.sh to install the reference models")
        return try LanguageModel(path: modelPath)
    }

    @Test("the GGUF reads as a Llama graph with 3 query heads per KV head")
    func config() throws {
        let c = try Self.model().config
        #expect(c.architecture == .llama && c.layers == 30 && c.hidden == 576 && c.heads == 9 && c.kvHeads == 3 && c.groupSize == 3)
        #expect(c.headDim == 64 && c.ffn == 1536 && c.vocab == 49152 && c.contextLength == 8192 && c.ropeBase == 100_000)
        #expect((0..<30).allSatisfy { c.isGlobal($0) && c.window($0) == nil })
    }

    @Test("tokens identical to llama.cpp on every prompt, and decode inverts encode")
    func tokens() throws {
        let m = try Self.model()
        let fixture = try loadFixture("smollm2-llamacpp")
        #expect(fixture.count >= 20 && fixture.contains { $0.tokens.count >= 1500 })
        for reference in fixture {
            #expect(m.tokenizer.encode(reference.prompt) == reference.tokens, "\(reference.prompt.prefix(40))")
            // Special tokens in the text are parsed as specials; plain text round-trips exactly.
            if !reference.prompt.contains("<|") {
                #expect(m.tokenizer.decode(reference.tokens) == reference.prompt)
            }
        }
        #expect(m.tokenizer.addBOS == false && m.tokenizer.endOfGeneration.contains(2))
    }

    @Test("the full agreement protocol: argmax ≥ 97 %, top-1 on every prompt, top-10 within 0.5, greedy ≥ 80 %")
    func logits() throws {
        let fixture = try loadFixture("smollm2-llamacpp")
        let a = try Agreement(model: try Self.model(), fixture: fixture)
        print("smollm2 vs llama.cpp: \(a)")
        #expect(a.tokensIdentical == fixture.count)
        #expect(a.argmaxRate >= 0.97)
        #expect(a.topOne == fixture.count)
        #expect(a.worstTop10 <= 0.5)
        #expect(Double(a.greedySame) >= 0.8 * Double(fixture.count))
    }

    @Test("a chat turn in ChatML (with SmolLM2's default system turn) is answered and ends at <|im_end|>")
    func chat() throws {
        let m = try Self.model()
        let template = try ChatTemplate(model: m)
        let prompt = template.render([.init(role: .user, content: "What is the capital of France?")])
        // SmolLM2's template injects its default system turn; with an explicit one it does not.
        #expect(prompt == "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n" +
            "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
        #expect(template.render([.init(role: .system, content: "Be brief."), .init(role: .user, content: "Hi")]) ==
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        let question = template.render([.init(role: .user, content: "What is the tallest mountain on Earth?")])
        let out = try m.generate(prompt: m.tokenizer.encode(question), maxTokens: 96)
        #expect(m.tokenizer.decode(out).contains("Everest"))
        #expect(out.last == 2, "the answer ends with <|im_end|>")
    }
}
