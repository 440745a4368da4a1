import Foundation
import Policies
import Testing
@testable import Engine

/// Real compressed runs on SmolLM2: prefill with the full cache and the statistics probe, select,
/// compact, decode from the compressed cache.
@Suite("compressed runs on SmolLM2", .serialized)
struct CompressedRunTests {
    static let prompt = "The secret pass key is 71432. Remember it. " +
        String(repeating: "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. ", count: 12) +
        "What is the pass key? The pass key is"

    static let policies: [Policy] = [.streamingLLM(), .h2o(), .snapKV(), .pyramidKV(), .adaKV(), .chunkKV()]

    @Test("a budget of at least the prompt reproduces the full-cache output token for token, for every policy")
    func budgetAbovePrompt() throws {
        let m = try SmolLM2AgreementTests.model()
        let tokens = m.tokenizer.encode(Self.prompt)
        let full = try m.generate(prompt: tokens, maxTokens: 12)
        for policy in Self.policies {
            let run = try m.generateCompressed(prompt: tokens, maxTokens: 12) { try policy.select($0, budget: tokens.count + 10) }
            #expect(run.tokens == full, "\(policy.name)")
        }
        let kvc = KVCompress()
        #expect(try m.generateCompressed(prompt: tokens, maxTokens: 12) { try kvc.select($0, budget: tokens.count + 16) }.tokens == full)
    }

    @Test("a small budget holds exactly the selected positions and still decodes")
    func smallBudget() throws {
        let m = try SmolLM2AgreementTests.model()
        let tokens = m.tokenizer.encode(Self.prompt)
        var statistics: [LayerStatistics] = []
        let run = try m.generateCompressed(prompt: tokens, maxTokens: 6) { stats in
            statistics = stats
            return try Policy.snapKV().select(stats, budget: 64)
        }
        #expect(run.tokens.count == 6)
        #expect(run.selection.counts.allSatisfy { $0.allSatisfy { $0 == 64 } })
        // The statistics are what the policy saw: recomputing the selection gives the same indices.
        #expect(try Policy.snapKV().select(statistics, budget: 64) == run.selection)
        // Window sums over the last w queries: each query's weights sum to 1.
        let last8 = statistics[0].windowSums[8]!
        for head in 0..<m.config.heads {
            #expect(abs(last8[head].reduce(0, +) - 8) < 1e-3)
        }
    }

    @Test("compaction moves the kept slots and refuses positions it does not hold")
    func compaction() throws {
        var cache = KVCache(layers: 1, kvHeads: 2, headDim: 8, capacity: 10)
        let k = (0..<(4 * 16)).map { Float($0) }
        cache.append(layer: 0, keys: k, values: k, tokens: 4, firstPosition: 0)
        cache.count = 4
        try cache.compact([[[1, 3], [0, 2, 3]]])
        #expect(cache.lengths == [[2, 3]])
        #expect(cache.positions! == [[[1, 3], [0, 2, 3]]])
        // Head 0's slot 0 now holds position 1's key: token 1, head 0 → values 16…23 rounded to f16.
        #expect(Array(cache.keys[0][0..<8]) == (16..<24).map { Float($0) })
        #expect(throws: KVCacheError.self) { try cache.compact([[[0], [2]]]) } // position 0 was evicted from head 0
        cache.append(layer: 0, keys: Array(k[0..<16]), values: Array(k[0..<16]), tokens: 1, firstPosition: 4)
        #expect(cache.positions![0][0] == [1, 3, 4] && cache.lengths == [[3, 4]])
    }
}
