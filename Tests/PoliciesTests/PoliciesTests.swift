import Testing
@testable import Policies

/// A layer of `keys` keys where each query head's window sums are `base` everywhere except the
/// listed spikes; accumulated attention likewise.
private func layer(keys: Int, queryHeads: Int, kvHeads: Int, window: Int, spikes: [Int: [Int]], base: Float = 0.01) -> LayerStatistics {
    let rows = (0..<queryHeads).map { h in
        (0..<keys).map { j in spikes[h]?.contains(j) == true ? Float(1) : base }
    }
    return LayerStatistics(keys: keys, queryHeads: queryHeads, kvHeads: kvHeads, windowSums: [window: rows], accumulated: rows)
}

@Suite("token-selection policies")
struct PoliciesTests {
    @Test("GQA: a KV head is scored by its own query heads only (h / group, not reshape(n_rep, n_kv))")
    func gqaGrouping() throws {
        // 4 query heads over 2 KV heads: heads 0, 1 → KV 0 attend to key 3; heads 2, 3 → KV 1 to key 7.
        // The mistaken reshape pairs heads (0, 2) and (1, 3), which would give both KV heads 3 and 7.
        let l = layer(keys: 40, queryHeads: 4, kvHeads: 2, window: 4, spikes: [0: [3], 1: [3], 2: [7], 3: [7]])
        let kept = try Policy.snapKV(window: 4, kernel: 1).select([l], budget: 5).kept[0]
        #expect(kept[0] == [3, 36, 37, 38, 39])
        #expect(kept[1] == [7, 36, 37, 38, 39])
    }

    @Test("a budget of at least the prompt keeps everything; one below the window is an error")
    func budgetEdges() throws {
        let l = layer(keys: 20, queryHeads: 2, kvHeads: 1, window: 8, spikes: [:])
        for p in [Policy.streamingLLM(), .h2o(), .snapKV(window: 8), .pyramidKV(window: 8), .adaKV(window: 8), .chunkKV(window: 8)] {
            #expect(try p.select([l], budget: 20).kept[0][0] == Array(0..<20), "\(p.name)")
        }
        #expect(throws: PolicyError.self) { try Policy.snapKV(window: 32).select([l], budget: 16) }
        #expect(throws: PolicyError.self) { try Policy.snapKV(window: 16).select([l], budget: 17) } // no w = 16 sums
    }

    @Test("StreamingLLM keeps the sinks and the most recent tokens; sliding-window layers are left alone")
    func streaming() throws {
        var local = layer(keys: 50, queryHeads: 1, kvHeads: 1, window: 8, spikes: [:])
        local.isGlobal = false
        let global = layer(keys: 50, queryHeads: 1, kvHeads: 1, window: 8, spikes: [:])
        let kept = try Policy.streamingLLM(sinks: 4).select([local, global], budget: 10).kept
        #expect(kept[0][0].count == 50)
        #expect(kept[1][0] == [0, 1, 2, 3, 44, 45, 46, 47, 48, 49])
    }

    @Test("H2O keeps the heavy hitters of the accumulated attention and the recent half")
    func h2o() throws {
        let l = layer(keys: 30, queryHeads: 2, kvHeads: 1, window: 8, spikes: [0: [2, 9], 1: [5]])
        let kept = try Policy.h2o().select([l], budget: 6).kept[0][0]
        #expect(kept == [2, 5, 9, 27, 28, 29])
    }

    @Test("pooling as PyTorch: max ignores padding, average counts padded zeros")
    func pooling() {
        #expect(Pooling.max.apply([0, 5, 0, 0, 0, 1], kernel: 3) == [5, 5, 5, 0, 1, 1])
        #expect(Pooling.average.apply([3, 0, 0, 6], kernel: 3) == [1, 1, 2, 2])
    }

    @Test("PyramidKV's budgets fall linearly from layer 0 and average to about the budget")
    func pyramid() {
        let b = pyramidBudgets(layers: 32, keys: 4000, budget: 128, window: 8, beta: 20)
        // base 120, min 6, max 234, step ⌊228/31⌋ = 7.
        #expect(b.first == 242 && b.last == 234 - 31 * 7 + 8)
        #expect(zip(b, b.dropFirst()).allSatisfy { $0 > $1 })
        #expect(abs(Double(b.reduce(0, +)) / 32 - 128) < 8)
        #expect(pyramidBudgets(layers: 32, keys: 200, budget: 128, window: 8, beta: 20) == Array(repeating: 128, count: 32))
    }

    @Test("Ada-KV gives the head with the concentrated attention more slots, each head at least its floor")
    func adaKV() throws {
        // KV head 0's query head attends to many keys, KV head 1's to none: head 0 gets the slots.
        let l = layer(keys: 100, queryHeads: 2, kvHeads: 2, window: 4, spikes: [0: Array(10..<30)])
        let counts = try Policy.adaKV(window: 4, kernel: 1).select([l], budget: 14).counts[0]
        // base 10: global top 20 all in head 0 → c = (20, 0); keep round(0.8·c + 2) → 18 and 2, + window 4.
        #expect(counts == [22, 6])
    }

    @Test("ChunkKV keeps whole chunks (one index set per layer) and reuses a layer's indices in its group")
    func chunkKV() throws {
        let a = layer(keys: 64, queryHeads: 2, kvHeads: 2, window: 4, spikes: [0: [23], 1: [41]])
        let b = layer(keys: 64, queryHeads: 2, kvHeads: 2, window: 4, spikes: [0: [5]])
        let kept = try Policy.chunkKV(window: 4, kernel: 1, chunk: 10, reuse: 2).select([a, b, b], budget: 24).kept
        #expect(kept[0][0] == Array(20..<30) + Array(40..<50) + [60, 61, 62, 63])
        #expect(kept[0][0] == kept[0][1])
        #expect(kept[1] == kept[0]) // reused
        #expect(kept[2][0].starts(with: Array(0..<10))) // a new group scores again
    }
}

@Suite("head-aware policies")
struct HeadAwarePoliciesTests {
    /// Squared window sums from per-head rows.
    private func squaredLayer(keys: Int, rows: [[Float]], kvHeads: Int, window: Int) -> LayerStatistics {
        LayerStatistics(keys: keys, queryHeads: rows.count, kvHeads: kvHeads, windowSums: [window: rows],
                        windowSquaredSums: [window: rows.map { $0.map { $0 * $0 } }], accumulated: rows)
    }

    @Test("KV-Compress frees whole blocks, cheapest first across heads and layers, and keeps its window")
    func kvCompress() throws {
        // Two layers × 2 KV heads, 64 keys each (4 blocks of 16). Head (0, 0) has high metric
        // everywhere, the others low: eviction takes the low heads' blocks and spares head (0, 0).
        let hot = [Float](repeating: 1, count: 64)
        let cold: [Float] = (0..<64).map { Float($0 % 7 + 1) / 1000 }
        let l0 = squaredLayer(keys: 64, rows: [hot, cold], kvHeads: 2, window: 8)
        let l1 = squaredLayer(keys: 64, rows: [cold, cold], kvHeads: 2, window: 8)
        let policy = KVCompress(window: 8, kernel: 1, blockSize: 16)
        let s = try policy.select([l0, l1], budget: 32)
        let counts = s.counts
        // 16 blocks held, ⌈32·4/16⌉ = 8 allowed: 8 blocks evicted, all from the cold heads.
        #expect(counts[0][0] == 64)
        let blocks: Int = counts.flatMap { $0 }.map { ($0 + 15) / 16 }.reduce(0, +)
        #expect(blocks == 8)
        for (l, layer) in s.kept.enumerated() {
            for kept in layer { #expect(Array(kept.suffix(8)) == Array(56..<64), "layer \(l) keeps its window") }
        }
        #expect(throws: PolicyError.self) { try policy.select([l0], budget: 4) }
    }

    @Test("CompressKV scores with the profile's retrieval heads only and shares one index set per layer")
    func compressKV() throws {
        // Query head 1 (the retrieval head) attends to key 20; head 0 to key 5.
        var rows = [[Float]](repeating: [Float](repeating: 0, count: 48), count: 2)
        rows[0][5] = 1
        rows[1][20] = 1
        let layer = LayerStatistics(keys: 48, queryHeads: 2, kvHeads: 1, windowSums: [8: rows], accumulated: rows)
        let profile = HeadProfile(model: "test", scores: [[0.1, 0.9]])
        let kept = try CompressKV(profile: profile, window: 8, kernel: 1, heads: 1).select([layer], budget: 9).kept[0][0]
        let expected: [Int] = [20] + Array(40..<48)
        #expect(kept == expected)
        #expect(throws: PolicyError.self) { try CompressKV(profile: HeadProfile(model: "other", scores: [[1], [1]])).select([layer], budget: 16) }
    }

    @Test("error-aware layer budgets sum to B·L, stay within [m, 3B] and follow the errors")
    func layerAllocation() {
        let errors = [0.05, 0.30, 0.10, 0.40, 0.15]
        let b = layerBudgets(errors: errors, budget: 128, minimum: 32)
        #expect(b.reduce(0, +) == 128 * 5)
        #expect(b.allSatisfy { (32...384).contains($0) })
        #expect(b[3] > b[1] && b[1] > b[4] && b[4] > b[2] && b[2] > b[0])
        // One dominant layer hits the 3B cap; the residue goes to the others.
        // m = 16, R = 192: layer 0 wants 16 + 186 and is capped at 192; the others get 18 each,
        // and the residue of 10 goes round them one token at a time in descending error order.
        let capped = layerBudgets(errors: [0.97, 0.01, 0.01, 0.01], budget: 64, minimum: 16)
        #expect(capped == [192, 22, 21, 21])
    }
}
