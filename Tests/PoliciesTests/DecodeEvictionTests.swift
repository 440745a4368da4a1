import Testing
@testable import Policies

/// One layer whose query heads' window sums, squared sums and accumulated attention are `rows`.
private func statistics(_ rows: [[Float]], kvHeads: Int, window: Int, global: Bool = true) -> LayerStatistics {
    LayerStatistics(keys: rows[0].count, queryHeads: rows.count, kvHeads: kvHeads, windowSums: [window: rows],
                    windowSquaredSums: [window: rows.map { $0.map { $0 * $0 } }], accumulated: rows, isGlobal: global)
}

/// One decode step: the new token enters, every query head of every layer attends with
/// `weights(layer, head, slots)`, then the policy evicts.
private func step(_ e: inout DecodeEviction, position: Int, heads: Int, weights: (Int, Int, Int) -> [Float]) {
    e.append(position: position)
    for l in e.held.indices {
        for h in 0..<heads {
            let w = weights(l, h, e.held[l][h / (heads / e.held[l].count)].count)
            w.withUnsafeBufferPointer { e.observe(layer: l, queryHead: h, firstSlot: 0, weights: $0) }
        }
    }
    _ = e.evict()
}

@Suite("eviction during decode")
struct DecodeEvictionTests {
    @Test("StreamingLLM rolls its window: sinks stay, the oldest others go, one per step")
    func streaming() throws {
        let layers = [statistics([[Float](repeating: 0.1, count: 20)], kvHeads: 1, window: 8)]
        let c = try PolicyKind.streamingLLM.compress(layers, budget: 10)
        var e = try #require(c.decode)
        #expect(e.held[0][0] == [0, 1, 2, 3, 14, 15, 16, 17, 18, 19])
        for p in 20..<23 { step(&e, position: p, heads: 1) { _, _, n in [Float](repeating: 1 / Float(n), count: n) } }
        #expect(e.held[0][0] == [0, 1, 2, 3, 17, 18, 19, 20, 21, 22])
    }

    @Test("H2O adds each step's attention to the scores and evicts the lightest outside the recent half")
    func heavyHitters() throws {
        // 12 keys, budget 6: recent 3, heavy 3 by accumulated attention (keys 1, 4, 7 lead).
        var row = [Float](repeating: 0.01, count: 12)
        row[1] = 0.5; row[4] = 0.4; row[7] = 0.3
        let layers = [statistics([row], kvHeads: 1, window: 8)]
        let c = try PolicyKind.h2o.compress(layers, budget: 6)
        var e = try #require(c.decode)
        #expect(c.selection.kept[0][0] == [1, 4, 7, 9, 10, 11])
        // Step 1 (position 12) attends only to key 9 (slot 3): 9 leaves the recent window with a
        // score of 1.01 and displaces key 7 (0.3), the lightest heavy hitter.
        step(&e, position: 12, heads: 1) { _, _, n in (0..<n).map { $0 == 3 ? 1 : 0 } }
        #expect(e.held[0][0] == [1, 4, 9, 10, 11, 12])
        // Step 2 attends nowhere new: key 10 leaves the window with 0.01 and is the one evicted.
        step(&e, position: 13, heads: 1) { _, _, n in (0..<n).map { $0 == 0 ? 1 : 0 } }
        #expect(e.held[0][0] == [1, 4, 9, 11, 12, 13])
        // Without decode eviction the cache only grows.
        #expect(try PolicyKind.h2o.compress(layers, budget: 6, continual: false).decode == nil)
        #expect(try PolicyKind.snapKV.compress(layers, budget: 40).decode == nil)
    }

    @Test("KV-Compress evicts a whole block when decode grows the sequence past its blocks, from the head whose block is cheapest")
    func kvCompressBlocks() throws {
        // One layer, 2 KV heads (one query head each), 32 keys: budget 32 allows 4 blocks, held now.
        let hot = [Float](repeating: 0.5, count: 32), cold = (0..<32).map { Float($0 + 1) / 1000 }
        let layers = [statistics([hot, cold], kvHeads: 2, window: 8)]
        #expect(KVCompress().allowedBlocks(budget: 32, heads: 2) == 4)
        let c = try PolicyKind.kvCompress.compress(layers, budget: 32)
        var e = try #require(c.decode)
        #expect(e.held[0].map(\.count) == [32, 32])
        // Position 32 opens a third block on each head: 6 blocks, 2 too many. The cold head is
        // cheapest twice: first its new 1-token block's worth (its lowest metric), then 16 more.
        // This step attends only to the new token (protected), so no held score changes.
        step(&e, position: 32, heads: 2) { _, _, n in (0..<n).map { $0 == n - 1 ? 1 : 0 } }
        let blocks = e.held[0].map { ($0.count + 15) / 16 }.reduce(0, +)
        #expect(blocks <= 4)
        #expect(e.held[0][0].count == 33, "the hot head keeps everything")
        #expect(e.held[0][1].count == 16)
        // The cold head keeps its highest metrics and its protected newest 8.
        #expect(Array(e.held[0][1].suffix(8)) == Array(25...32))
        #expect(Array(e.held[0][1].prefix(8)) == Array(17...24))
    }

    @Test("sliding-window layers are never evicted during decode")
    func slidingLayers() throws {
        let local = statistics([[Float](repeating: 0.1, count: 20)], kvHeads: 1, window: 8, global: false)
        let global = statistics([[Float](repeating: 0.1, count: 20)], kvHeads: 1, window: 8)
        let c = try PolicyKind.h2o.compress([local, global], budget: 8)
        var e = try #require(c.decode)
        for p in 20..<25 { step(&e, position: p, heads: 1) { _, _, n in [Float](repeating: 1 / Float(n), count: n) } }
        #expect(e.held[0][0] == Array(0..<25))
        #expect(e.held[1][0].count == 8)
    }
}
