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

    @Test("a budget of at least the prompt (and, for the policies that evict during decode, its continuation) reproduces the full-cache output token for token")
    func budgetAbovePrompt() throws {
        let m = try SmolLM2AgreementTests.model()
        let tokens = m.tokenizer.encode(Self.prompt)
        let full = try m.generate(prompt: tokens, maxTokens: 12)
        for policy in Self.policies {
            let run = try m.generateCompressed(prompt: tokens, maxTokens: 12) { Compression(selection: try policy.select($0, budget: tokens.count + 10)) }
            #expect(run.tokens == full, "\(policy.name)")
        }
        for kind in PolicyKind.allCases where kind.isContinual {
            let run = try m.generateCompressed(prompt: tokens, maxTokens: 12) { try kind.compress($0, budget: tokens.count + 16) }
            #expect(run.tokens == full, "\(kind.rawValue)")
        }
    }

    @Test("continual policies hold the cache at the budget through decode, and the engine evicts exactly what the policy's decode eviction decides from the attention it saw")
    func continualEviction() throws {
        let m = try SmolLM2AgreementTests.model()
        let tokens = m.tokenizer.encode(Self.prompt)
        let c = m.config, steps = 16
        for kind in PolicyKind.allCases where kind.isContinual {
            var statistics: [LayerStatistics] = []
            let prefilled: PrefilledPrompt
            do {
                let collector = StatisticsCollector(config: c, promptLength: tokens.count)
                prefilled = try m.prefill(prompt: tokens, maxTokens: steps, probe: collector.probe)
                statistics = collector.statistics
            }
            let compression = try kind.compress(statistics, budget: 64)
            // Every decode step's attention rows as the engine computed them, over the slots held.
            var rows: [[(layer: Int, head: Int, first: Int, weights: [Float])]] = []
            let run = try m.generate(from: prefilled, compression: compression, probe: { layer, head, position, first, weights in
                let step = position - tokens.count
                while rows.count <= step { rows.append([]) }
                rows[step].append((layer, head, first, Array(weights)))
            })
            // One forward pass per generated token but the last (a run may stop early at end of text).
            #expect(run.tokens.count >= 4 && rows.count == run.tokens.count - 1)
            let last = tokens.count + rows.count - 1 // the newest position in the cache
            // The policy's own state machine, fed the same rows, ends holding what the cache holds.
            var eviction = try #require(compression.decode)
            for (step, stepRows) in rows.enumerated() {
                eviction.append(position: tokens.count + step)
                for r in stepRows { r.weights.withUnsafeBufferPointer { eviction.observe(layer: r.layer, queryHead: r.head, firstSlot: r.first, weights: $0) } }
                _ = eviction.evict()
            }
            let positions = try #require(run.cache.positions)
            #expect(positions == eviction.held, "\(kind.rawValue)")
            // Held at the budget: exactly (StreamingLLM, H2O) or in whole blocks (KV-Compress).
            if kind == .kvCompress {
                let blocks = run.cache.lengths.joined().reduce(0) { $0 + ($1 + 15) / 16 }
                #expect(blocks <= KVCompress().allowedBlocks(budget: 64, heads: c.layers * c.kvHeads))
                #expect(Set(run.cache.lengths.joined()).count > 1, "rates vary per head")
            } else {
                #expect(run.cache.lengths.allSatisfy { $0.allSatisfy { $0 == 64 } }, "\(kind.rawValue)")
            }
            // The newest token is always held, and StreamingLLM's sinks.
            #expect(positions.allSatisfy { $0.allSatisfy { $0.last == last } })
            if kind == .streamingLLM { #expect(positions[0][0] == Array(0..<4) + Array((last - 59)...last)) }
        }
    }

    @Test("a small budget holds exactly the selected positions and still decodes")
    func smallBudget() throws {
        let m = try SmolLM2AgreementTests.model()
        let tokens = m.tokenizer.encode(Self.prompt)
        var statistics: [LayerStatistics] = []
        let run = try m.generateCompressed(prompt: tokens, maxTokens: 6) { stats in
            statistics = stats
            return Compression(selection: try Policy.snapKV().select(stats, budget: 64))
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
        #expect(Array(cache.keys(layer: 0, kvHead: 0)[0..<8]) == (16..<24).map { Float($0) })
        #expect(Array(cache.values(layer: 0, kvHead: 0)[8..<16]) == (48..<56).map { Float($0) }) // slot 1: position 3
        #expect(throws: KVCacheError.self) { try cache.compact([[[0], [2]]]) } // position 0 was evicted from head 0
        cache.append(layer: 0, keys: Array(k[0..<16]), values: Array(k[0..<16]), tokens: 1, firstPosition: 4)
        #expect(cache.positions![0][0] == [1, 3, 4] && cache.lengths == [[3, 4]])
    }
}
