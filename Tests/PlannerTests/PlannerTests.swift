import Foundation
import Hardware
import Policies
import Simulator
import Testing
@testable import Planner

@Suite("planner: trace-driven memory and published figures")
struct PlannerTests {
    static let llama = ModelCatalog.named("Llama-3.1-8B-Instruct")!

    @Test("reference counts map to the target by relative layer depth and head quantile, relative to their mean")
    func mapping() {
        // Reference: 3 global layers × 2 KV heads (and one sliding layer that must be ignored).
        let counts = [[10, 30], [999, 999], [20, 20], [40, 0]]
        let global = [true, false, true, true]
        var target = Self.llama
        target.layers = 5
        target.kvHeads = 4
        let shape = relativeShape(counts: counts, global: global, target: target)
        // Target layers 0…4 take reference global layers round(i·2/4) = 0, 1(→0.5 rounds to 1), 1, 2(1.5→2), 2.
        // Heads: quantiles (h + ½)/4 of the sorted pair → indices 0, 0, 1, 1.
        let raw: [Double] = [10, 10, 30, 30, 20, 20, 20, 20, 20, 20, 20, 20, 0, 0, 40, 40, 0, 0, 40, 40]
        let mean = raw.reduce(0, +) / Double(raw.count)
        #expect(shape == raw.map { $0 / mean })
        #expect(abs(shape.reduce(0, +) / Double(shape.count) - 1) < 1e-12)
    }

    @Test("a flat shape costs what the nominal footprint costs; an uneven one costs its largest head in vLLM blocks and its own blocks per head")
    func footprint() throws {
        var serving = ServingConfig()
        serving.maxModelLen = 32768
        let plan = try MemoryPlan(gpu: GPUCatalog.named("A100-80G")!, model: Self.llama, serving: serving)
        let flat = TraceFootprint(shape: Array(repeating: 1, count: 32), layout: .perSequence)
        #expect(flat.phb(tokens: 10_000, kept: 1000, plan: plan) == NominalFootprint(layout: .perSequence).phb(tokens: 10_000, kept: 1000, plan: plan))
        // Prefill (nothing evicted yet) is the full footprint whatever the shape.
        let uneven = (0..<32).map { $0 < 16 ? 0.5 : 1.5 }
        #expect(TraceFootprint(shape: uneven, layout: .perSequence).phb(tokens: 4000, kept: 4000, plan: plan) == NominalFootprint(layout: .perSequence).phb(tokens: 4000, kept: 4000, plan: plan))
        // Per-sequence blocks: every layer-head pays the largest count, 1500 → 94 blocks.
        let layerHeads = 32 * 8
        #expect(TraceFootprint(shape: uneven, layout: .perSequence).phb(tokens: 10_000, kept: 1000, plan: plan) == layerHeads * 94)
        // Per-head blocks: half the heads hold 500 (32 blocks), half 1500 (94 blocks).
        #expect(TraceFootprint(shape: uneven, layout: .perHead).phb(tokens: 10_000, kept: 1000, plan: plan) == layerHeads / 2 * 32 + layerHeads / 2 * 94)
    }

    @Test("published figures match only their own model, policy and budget")
    func published() {
        let hit = Published.matching(model: "Llama-3.1-8B-Instruct", policy: "snapkv", budget: .tokens(128))
        #expect(hit.map(\.score) == [42.58])
        #expect(abs(hit[0].loss - (49.08 - 42.58) / 49.08) < 1e-12)
        #expect(Published.matching(model: "Qwen2.5-7B-Instruct", policy: "snapkv", budget: .tokens(128)).isEmpty)
        #expect(Published.matching(model: "Llama-3.1-8B-Instruct", policy: "snapkv", budget: .tokens(100)).isEmpty)
        #expect(Published.matching(model: "Llama-3.1-8B-Instruct", policy: "chunkkv", budget: .fraction(0.10)).map(\.score) == [65.7])
    }
}
