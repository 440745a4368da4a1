import Foundation
import Policies
import SeededRandom

/// How the next token is chosen from the logits.
public enum Sampler: Sendable {
    /// The highest logit (the lowest id on a tie).
    case greedy
    /// Softmax at `temperature`, drawn with a seeded SplitMix64.
    case temperature(Float, seed: UInt64)
}

/// Why generation cannot run.
public struct GenerationError: LocalizedError, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
    public var errorDescription: String? { description }
}

/// A prompt run through the model: its cache and the logits of its last position.
public struct PrefilledPrompt: Sendable {
    public let prompt: [Int32]
    /// Tokens the cache has room to generate.
    public let maxTokens: Int
    let cache: KVCache
    let logits: [Float]
}

/// Index of the largest value (first on ties).
public func argmax(_ v: [Float]) -> Int {
    var best = 0
    for i in 1..<v.count where v[i] > v[best] { best = i }
    return best
}

extension LanguageModel {
    /// Prefills `prompt` in chunks of `batch`, then generates up to `maxTokens` tokens, stopping
    /// at an end-of-generation token (`Tokenizer.endOfGeneration`); `onToken` sees each new token as it is produced.
    /// - Throws: `GenerationError` when the prompt and the tokens to generate exceed the context.
    @discardableResult
    public func generate(prompt: [Int32], maxTokens: Int, sampler: Sampler = .greedy, batch: Int = 256,
                         probe: AttentionProbe? = nil, onToken: (Int32) -> Void = { _ in }) throws -> [Int32] {
        try checkFits(prompt: prompt, maxTokens: maxTokens)
        var cache = makeCache(tokens: prompt.count + maxTokens)
        let logits = prefill(prompt, cache: &cache, chunk: batch, probe: probe)[0]
        return try decode(from: logits, cache: &cache, maxTokens: maxTokens, sampler: sampler, probe: probe, onToken: onToken)
    }

    /// Prefills `prompt` into a cache sized for `maxTokens` more tokens, in chunks of `batch`
    /// (`afterChunk` sees the prompt tokens done), with `probe` attached; the result can be
    /// continued several times (`generate(from:)`), with the full cache or a compressed copy.
    /// - Throws: `GenerationError` when the prompt and the tokens to generate exceed the context.
    ///
    /// With `headLocalProbe`, the probe promises that a call touches only its own (layer, head)'s
    /// state: the attention then keeps its threads, each running the probe for its own heads in
    /// position order (otherwise an attached probe runs single-threaded, in one fixed order).
    public func prefill(prompt: [Int32], maxTokens: Int, batch: Int = 256, probe: AttentionProbe? = nil, headLocalProbe: Bool = false,
                        afterChunk: (Int) -> Void = { _ in }) throws -> PrefilledPrompt {
        try checkFits(prompt: prompt, maxTokens: maxTokens)
        var cache = makeCache(tokens: prompt.count + maxTokens)
        probesAreHeadLocal = headLocalProbe && probe != nil
        defer { probesAreHeadLocal = false }
        let logits = prefill(prompt, cache: &cache, chunk: batch, probe: probe, afterChunk: afterChunk)[0]
        return PrefilledPrompt(prompt: prompt, maxTokens: maxTokens, cache: cache, logits: logits)
    }

    /// Generates greedily from a prefilled prompt, keeping only `selection`'s prompt positions
    /// (nil: the full cache); `probe` sees the decode queries.
    /// - Returns: the generated tokens and the cache at the end.
    /// - Throws: `KVCacheError` for a selection that does not fit the cache.
    public func generate(from prefilled: PrefilledPrompt, keeping selection: Selection? = nil, probe: AttentionProbe? = nil,
                         onToken: (Int32) -> Void = { _ in }) throws -> (tokens: [Int32], cache: KVCache) {
        try generate(from: prefilled, compression: selection.map { Compression(selection: $0) }, probe: probe, onToken: onToken)
    }

    /// Generates greedily from a prefilled prompt compressed by `compression` (nil: the full
    /// cache): its selection is applied after prefill and, for a continual policy, its decode
    /// eviction after every step (it sees each step's attention over the slots held).
    /// - Returns: the generated tokens and the cache at the end.
    /// - Throws: `KVCacheError` for a selection that does not fit the cache.
    public func generate(from prefilled: PrefilledPrompt, compression: Compression?, probe: AttentionProbe? = nil,
                         onToken: (Int32) -> Void = { _ in }) throws -> (tokens: [Int32], cache: KVCache) {
        var cache = prefilled.cache
        if let compression { try cache.compact(compression.selection.kept) }
        let out = try decode(from: prefilled.logits, cache: &cache, maxTokens: prefilled.maxTokens, sampler: .greedy, probe: probe,
                             eviction: compression?.decode, onToken: onToken)
        return (out, cache)
    }

    /// - Throws: `GenerationError` for an empty prompt or one that, with the tokens to
    ///   generate, exceeds the context.
    func checkFits(prompt: [Int32], maxTokens: Int) throws {
        guard !prompt.isEmpty else { throw GenerationError("the prompt is empty") }
        guard prompt.count + maxTokens <= config.contextLength else {
            throw GenerationError("the prompt (\(prompt.count) tokens) and \(maxTokens) tokens to generate exceed the model's context of \(config.contextLength) tokens")
        }
    }

    /// Generates from the prompt's last `logits` up to `maxTokens` tokens, one forward pass each,
    /// stopping after an end-of-generation token; `eviction` (continual compression) sees each
    /// step's attention and evicts from the cache after it.
    func decode(from logits: [Float], cache: inout KVCache, maxTokens: Int, sampler: Sampler, probe: AttentionProbe? = nil,
                eviction: DecodeEviction? = nil, onToken: (Int32) -> Void) throws -> [Int32] {
        var eviction = eviction
        var logits = logits
        var rng: SplitMix64?
        if case let .temperature(_, seed) = sampler { rng = SplitMix64(seed: seed) }
        let stops = tokenizer.endOfGeneration
        var out: [Int32] = []
        while out.count < maxTokens {
            let next: Int32
            switch sampler {
            case .greedy:
                next = Int32(argmax(logits))
            case let .temperature(t, _):
                next = Int32(sample(logits, temperature: t, rng: &rng!))
            }
            out.append(next)
            onToken(next)
            if stops.contains(next) || out.count == maxTokens { break }
            guard var continual = eviction else {
                logits = forward([next], cache: &cache, logitsFor: .last, probe: probe)[0]
                continue
            }
            continual.append(position: cache.count)
            let observe: AttentionProbe = { layer, head, position, first, weights in
                continual.observe(layer: layer, queryHead: head, firstSlot: first, weights: weights)
                probe?(layer, head, position, first, weights)
            }
            logits = forward([next], cache: &cache, logitsFor: .last, probe: observe)[0]
            if continual.evict() { try cache.compact(continual.held) }
            eviction = continual
        }
        return out
    }

    private func sample(_ logits: [Float], temperature: Float, rng: inout SplitMix64) -> Int {
        guard temperature > 0 else { return argmax(logits) }
        let m = logits.max()!
        var weights = logits.map { Double(expf(($0 - m) / temperature)) }
        let total = weights.reduce(0, +)
        var r = rng.nextUnit() * total
        for i in weights.indices {
            r -= weights[i]
            if r <= 0 { return i }
        }
        weights.removeAll()
        return logits.count - 1
    }
}
