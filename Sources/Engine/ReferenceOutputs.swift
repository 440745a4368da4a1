/// What the engine computes for one prompt, in llamacpp-oracle's shape, to compare with
/// llama.cpp: the tokens, the argmax at every position, the last position's ten largest logits
/// and a greedy continuation.
public struct ReferenceOutputs: Encodable, Sendable {
    public struct Logit: Encodable, Sendable {
        public var token: Int
        public var value: Float
        /// `[token, logit]`, as the oracle writes it.
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.unkeyedContainer()
            try c.encode(token)
            try c.encode(Double(value))
        }
    }

    public var prompt: String
    public var tokens: [Int]
    public var argmax: [Int]
    public var lastTop10: [Logit]
    public var greedy: [Int]
    public var greedyText: String

    enum CodingKeys: String, CodingKey {
        case prompt, tokens, argmax, greedy
        case lastTop10 = "last_top10"
        case greedyText = "greedy_text"
    }
}

extension LanguageModel {
    /// The reference outputs of `prompt` with `greedy` greedy tokens after it (prefill in chunks of 256).
    /// - Throws: `GenerationError` when the prompt and the greedy tokens exceed the context.
    public func referenceOutputs(prompt: String, greedy: Int) throws -> ReferenceOutputs {
        let tokens = tokenizer.encode(prompt)
        guard !tokens.isEmpty, tokens.count + greedy <= config.contextLength else {
            throw GenerationError("the prompt has \(tokens.count) tokens; with \(greedy) more it exceeds the context of \(config.contextLength)")
        }
        var cache = makeCache(tokens: tokens.count + greedy)
        let all = prefill(tokens, cache: &cache, chunk: 256, logitsFor: .all)
        let last = all[all.count - 1]
        let top = last.indices.sorted { last[$0] > last[$1] || (last[$0] == last[$1] && $0 < $1) }.prefix(10)
        var generated: [Int32] = []
        var logits = last
        for _ in 0..<greedy {
            let t = Int32(Engine.argmax(logits))
            generated.append(t)
            logits = forward([t], cache: &cache, logitsFor: .last)[0]
        }
        return ReferenceOutputs(prompt: prompt, tokens: tokens.map(Int.init), argmax: all.map { Engine.argmax($0) },
                                lastTop10: top.map { ReferenceOutputs.Logit(token: $0, value: last[$0]) },
                                greedy: generated.map(Int.init), greedyText: tokenizer.decode(generated))
    }
}
