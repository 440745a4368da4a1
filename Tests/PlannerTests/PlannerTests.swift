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

@Suite("the planner's own logic")
struct PlannerLogicTests {
    static func row(_ policy: String, budget: Int?, rate: Double, loss: Double?) -> PlanRow {
        PlanRow(policy: policy, budget: budget, budgetAsGiven: budget.map(String.init), window: nil, layout: nil, kvFraction: 0.01,
                requestWeightedFraction: 0.1, peakBytes: 0, nominalBytes: 0, physicalBytes: 0, maxConcurrent: 1,
                saturation: .init(requestsPerSecond: 1, outputTokensPerSecond: 1, meanBatch: 1, preemptions: 0),
                sloRate: rate, latency: nil, curve: [],
                accuracy: AccuracyEstimate(traces: nil, published: [], loss: loss, lossSource: loss == nil ? "none" : "test"))
    }

    @Test("row resolution: the full cache first, then policy × budget in order, skipping budgets that keep the whole prompt")
    func configurations() throws {
        let configs = try Planner.configurations(policies: [.snapKV, .streamingLLM], budgets: [.tokens(256), .tokens(8192), .fraction(0.05)],
                                                 longestPrompt: 4096)
        #expect(configs.count == 5)
        #expect(configs[0].0 == nil && configs[0].1 == nil)
        #expect(configs.dropFirst().map { "\($0.0!.rawValue)@\($0.1!)" } == ["snapkv@256", "snapkv@5%", "streamingllm@256", "streamingllm@5%"])
        #expect(throws: PlanError.self) { try Planner.configurations(policies: [.snapKV], budgets: [.tokens(16)], longestPrompt: 4096) }
        // A fraction never falls below the window: 1 % of 1000 is SnapKV's 32, StreamingLLM's 10.
        let small = try Planner.configurations(policies: [.snapKV], budgets: [.fraction(0.01)], longestPrompt: 20)
        #expect(small.count == 1) // 32 ≥ 20: keeps the whole prompt, no row
    }

    @Test("rate bisection finds the highest rate meeting the SLOs within top/128, over seeded thresholds")
    func bisection() {
        for seed in 0..<50 {
            let top = 1 + Double(seed) * 0.37
            let threshold = top * Double((seed * 7919) % 997) / 997 // in [0, top)
            var probes: [Double] = []
            let result = Planner.highestRate(below: top, probe: { rate -> Double in probes.append(rate); return rate }, meets: { $0 <= threshold })
            switch result {
            case let .met(rate, at):
                #expect(rate == at)
                #expect(rate <= threshold, "seed \(seed)")
                #expect(threshold - rate <= top / 128 + 1e-12 || rate == top / 1000, "seed \(seed): \(rate) vs \(threshold)")
            case .unmet:
                #expect(threshold < top / 1000, "seed \(seed)")
            }
            #expect(probes.count <= 8)
        }
        // Nothing meets: the near-zero rate is probed last and reported.
        guard case let .unmet(atLowest) = Planner.highestRate(below: 10, probe: { $0 }, meets: { _ in false }) else {
            Issue.record("expected no rate")
            return
        }
        #expect(atLowest == 0.01)
    }

    @Test("recommendation: highest SLO rate within the loss; ties within 2 % go to the least loss, then the largest budget")
    func recommendation() {
        let full = Self.row("full", budget: nil, rate: 1.0, loss: 0)
        // Within 2 % of the full cache: the SLOs, not memory, are the limit.
        #expect(Planner.recommend([full, Self.row("snapkv", budget: 256, rate: 1.01, loss: 0.01)], maxLoss: 0.03).hasPrefix("Full cache: no policy"))
        // Too lossy rows are not eligible.
        #expect(Planner.recommend([full, Self.row("snapkv", budget: 256, rate: 3, loss: 0.2)], maxLoss: 0.03).hasPrefix("Full cache"))
        #expect(Planner.recommend([full, Self.row("snapkv", budget: 256, rate: 3, loss: nil)], maxLoss: 0.03) == "Full cache: no policy meets the SLOs within 3% accuracy loss.")
        // The fastest eligible row is 3 % faster but lossier; the least-loss row near it is not 2 %
        // faster than the full cache: the SLOs are the limit (not "no policy meets the SLOs").
        let near = [full, Self.row("snapkv", budget: 256, rate: 1.03, loss: 0.02), Self.row("snapkv", budget: 4096, rate: 1.015, loss: 0.001)]
        #expect(Planner.recommend(near, maxLoss: 0.03).hasPrefix("Full cache: no policy within 3% accuracy loss raises the highest SLO-meeting rate by more than 2 %"))
        let rows = [full, Self.row("snapkv", budget: 256, rate: 3.0, loss: 0.02), Self.row("h2o", budget: 256, rate: 2.97, loss: 0.01),
                    Self.row("adakv", budget: 1024, rate: 2.99, loss: 0.01), Self.row("streamingllm", budget: 256, rate: 2.0, loss: 0)]
        let text = Planner.recommend(rows, maxLoss: 0.03)
        #expect(text.hasPrefix("adakv at budget 1024"), "\(text)")
        #expect(text.contains("3.0× more GPUs"), "\(text)")
    }
}
