import Foundation
import Hardware
import Policies
import Simulator
import Replay
@testable import Accuracy
import Engine
import Testing
import TestSupport
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

@Suite("fleet sizing")
struct FleetTests {
    @Test("the replica search returns the fewest that meet, from any estimate, and nil past the limit")
    func replicaSearch() {
        for needed in 1...12 {
            for estimate in [0, 1, needed - 1, needed, needed + 3, 40] {
                var calls = 0
                let n = Fleet.replicasNeeded(estimate: estimate, maxReplicas: 20) { calls += 1; return $0 >= needed }
                #expect(n == needed, "needed \(needed), estimate \(estimate)")
                #expect(calls <= abs(estimate - needed) + 2)
            }
        }
        #expect(Fleet.replicasNeeded(estimate: 3, maxReplicas: 5) { $0 >= 6 } == nil)
        #expect(Fleet.replicasNeeded(estimate: 3, maxReplicas: 0) { _ in true } == nil)
    }

    @Test("cost arithmetic by hand: 3 replicas × TP 2 at $2.50 per GPU-hour serving 1,000 output tokens/s")
    func costByHand() {
        let s = FleetSizing(targetRate: 4, replicas: 3, tp: 2, usdPerGPUHour: 2.5, priceSource: "test", outputTokensPerSecond: 1000,
                            totalTokensPerSecond: 5000, ttftP90Ms: 900, tpotP99Ms: 80, good: 270, requests: 300)
        #expect(s.gpus == 6)
        #expect(s.usdPerHour == 15)                                      // 6 GPUs × $2.50
        #expect(s.gpuHoursPerDay == 144)                                 // 6 × 24
        #expect(abs(s.usdPerMillionOutputTokens - 15 / 3.6) < 1e-12)     // $15 per 3.6 M output tokens an hour
        #expect(abs(s.usdPerMillionTokens - 15 / 18) < 1e-12)            // $15 per 18 M tokens an hour
        #expect(abs(s.goodput - 3.6) < 1e-12)                            // 90 % of 4 req/s meet the SLOs
    }

    static func inputs(rate: Double, maxGPUs: Int = 256) throws -> PlanInputs {
        let gpu = GPUCatalog.named("A100-80G")!, model = ModelCatalog.named("Llama-3.1-8B-Instruct")!
        var settings = ServingSettings()
        settings.maxModelLen = 16384
        let scenario = try Scenario.load(path: TestSupport.repositoryRoot.appendingPathComponent("Scenarios/plan-default.yaml").path)
        var inputs = PlanInputs(gpu: gpu, model: model, serving: try settings.resolve(gpu: gpu, model: model), scenario: scenario, context: 16384,
                                outputTokens: nil, sloTTFT: 2, sloTPOT: 0.2, policies: [.snapKV], budgets: [.tokens(512)], maxAccuracyLoss: 0.03, requests: 200)
        inputs.fleet = FleetSettings(targetRate: rate, usdPerGPUHour: 2, priceSource: "test", maxGPUs: maxGPUs)
        return inputs
    }

    static func library() throws -> TraceLibrary {
        try TraceLibrary(directory: TestSupport.repositoryRoot.appendingPathComponent("Traces").path, profiles: TestSupport.repositoryRoot.appendingPathComponent("Profiles").path)
    }

    @Test("replicas grow monotonically with the target rate, each fleet meets the SLOs at its rate, and the cost follows the GPUs")
    func monotone() async throws {
        let library = try Self.library()
        var last = 0
        for rate in [1.0, 4, 10, 20, 40] {
            let report = try await Planner.plan(try Self.inputs(rate: rate), library: library)
            for row in report.rows {
                let f = try #require(row.fleet, "\(row.policy) at \(rate) req/s: \(row.fleetShortfall?.failing ?? "no fleet")")
                #expect(f.ttftP90Ms <= 2000 && f.tpotP99Ms <= 200)
                #expect(f.usdPerHour == Double(f.gpus) * 2)
                // The GPUs-against-rate curve: ¼, ½ and all of the target, never more GPUs at less load.
                #expect(row.gpusByRate.map(\.rate) == [rate / 4, rate / 2, rate] && row.gpusByRate.last?.gpus == f.gpus)
                #expect(zip(row.gpusByRate, row.gpusByRate.dropFirst()).allSatisfy { $0.gpus <= $1.gpus })
            }
            let full = try #require(report.rows.first?.fleet)
            #expect(full.replicas >= last, "\(rate) req/s: \(full.replicas) replicas after \(last)")
            last = full.replicas
        }
        #expect(last > 1)
    }

    @Test("--disaggregate proposes prefill and decode pools that carry the load within one node: fewest prefill replicas meeting TTFT, then fewest decode replicas; ranked beside the colocated fleets, with the NIXL serve command")
    func disaggregatedSplit() async throws {
        var inputs = try Self.inputs(rate: 4)
        inputs.fleet!.disaggregate = true
        let report = try await Planner.plan(inputs, library: try Self.library())
        for row in report.rows {
            let d = try #require(row.disaggregatedFleet, "\(row.policy)")
            let split = try #require(d.split)
            #expect(d.replicas == split.prefill + split.decode && d.gpus <= DisaggregationSplit.gpusPerNode)
            #expect(d.ttftP90Ms <= 2000 && d.tpotP99Ms <= 200 && d.kvLink?.kind.contains("NVLink") == true)
            #expect((d.kvBytesPerRequest ?? 0) > 0 && d.usdPerHour == Double(d.gpus) * 2)
        }
        // SnapKV at 512 sends less KV per request (these prompts, scaled to 16k, are mostly shorter than 512).
        let full = report.rows[0].disaggregatedFleet!, snap = report.rows[1].disaggregatedFleet!
        #expect(snap.kvBytesPerRequest! < full.kvBytesPerRequest! * 0.7)
        let ranked = try FleetReport.rank([report], skipped: [], targetRate: 4, router: .leastOutstanding, maxGPUs: 256, prices: "test", maxLoss: 1,
                                          models: ["Llama-3.1-8B-Instruct": ModelCatalog.named("Llama-3.1-8B-Instruct")!])
        #expect(ranked.options.count == 4 && ranked.options.filter { $0.sizing.split != nil }.count == 2)
        let chosen = ranked.options[ranked.recommended!]
        #expect(ranked.serveCommand!.contains("NixlConnector") == (chosen.sizing.split != nil))
    }

    @Test("a target no fleet within the GPU limit carries: one line naming the SLO that fails and the rate the best one saturates at")
    func unreachable() async throws {
        let report = try await Planner.plan(try Self.inputs(rate: 200, maxGPUs: 2), library: try Self.library())
        #expect(report.rows.allSatisfy { $0.fleet == nil && $0.fleetShortfall?.maxReplicas == 2 })
        #expect {
            try FleetReport.rank([report], skipped: [], targetRate: 200, router: .leastOutstanding, maxGPUs: 2, prices: "test", maxLoss: 0.03, models: [:])
        } throws: { error in
            let text = "\(error)"
            return text.hasPrefix("no configuration carries 200 req/s within 2 GPUs") && text.contains("all at once drains at") && text.contains("with 2 replicas: ")
                && (text.contains("TTFT p90") || text.contains("TPOT p99") || text.contains("could not be served")) && !text.contains("\n")
        }
    }

    @Test("price tables: the bundled one has a price for every catalogue GPU but the RTX 3090; overrides win; bad entries are one line naming the entry")
    func prices() throws {
        var table = try GPUPrices.bundled()
        for gpu in GPUCatalog.all.map(\.name) where gpu != "RTX-3090" { #expect(table.price(gpu) != nil, "\(gpu)") }
        #expect(table.price("RTX-3090") == nil)
        #expect(table.entries.allSatisfy { $0.url.hasPrefix("https://") && !$0.quote.isEmpty && !$0.asOf.isEmpty })
        try table.override("H100=3.10")
        #expect(table.price("H100-80G-SXM")! == (3.10, "--gpu-price"))
        #expect(throws: PlanError.self) { try table.override("H100") }
        #expect(throws: PlanError.self) { try table.override("Z80=1") }
        #expect(throws: PlanError.self) { try table.override("H100=-1") }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ckv-prices-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for (body, expected) in [
            (#"{"entries": [{"gpu": "L4", "provider": "x", "as_of": "2026", "url": "u"}]}"#, "entry 0 (L4): no \"usd_per_gpu_hour\""),
            (#"{"entries": [{"gpu": "L4", "usd_per_gpu_hour": "cheap", "provider": "x", "as_of": "2026", "url": "u"}]}"#, "must be a positive number"),
            (#"{"entries": [{"gpu": "Z80", "usd_per_gpu_hour": 1}]}"#, "entry 0 (Z80): unknown GPU; known: A100-40G"),
            (#"{"entries": [{"gpu": "L4", "usd_per_gpu_hour": 1}]}"#, "no \"provider\""),
            (#"[1, 2]"#, "not a price table"),
        ] {
            let path = dir.appendingPathComponent("p.json").path
            try body.write(toFile: path, atomically: true, encoding: .utf8)
            #expect { try GPUPrices.load(path: path) } throws: { error in
                "\(error)".hasPrefix(path) && "\(error)".contains(expected) && !"\(error)".contains("\n")
            }
        }
    }

    @Test("the serve command carries every setting the plan assumed, per engine")
    func serveCommand() throws {
        let model = ModelCatalog.named("Llama-3.1-8B-Instruct")!, gpu = GPUCatalog.named("H100")!
        var settings = ServingSettings()
        settings.tensorParallel = 2
        let v1 = ServeCommand.line(model: model, serving: try settings.resolve(gpu: gpu, model: model), context: 32768)
        #expect(v1 == "vllm serve meta-llama/Llama-3.1-8B-Instruct --tensor-parallel-size 2 --max-model-len 32768 --max-num-seqs 1024 --gpu-memory-utilization 0.9 --max-num-batched-tokens 8192")
        settings.engine = .sglang
        let sg = ServeCommand.line(model: model, serving: try settings.resolve(gpu: gpu, model: model), context: 32768)
        #expect(sg.hasPrefix("python -m sglang.launch_server --model-path meta-llama/Llama-3.1-8B-Instruct --tp 2 --context-length 32768"))
        #expect(sg.contains("--mem-fraction-static"))
    }
}

@Suite("accuracy curves in the plan")
struct CorpusEvidenceTests {
    static func cell(_ kind: TaskKind, length: Int, fullSolved: Int, of n: Int, points: [(PolicyKind, Double, Double, Int)]) -> AccuracyCell {
        AccuracyCell(model: "m", kind: kind, length: length, promptTokens: Double(length), full: Proportion(successes: Double(fullSolved), n: n),
                     points: points.map { CurvePoint(policy: $0.0, fraction: $0.1, accuracy: Proportion(successes: $0.2, n: $0.3), attentionMass: 1, outputError: 0) })
    }

    @Test("pooled over the informative cells, interpolated between recorded kv-fractions, none below the smallest, the largest above it")
    func curve() throws {
        let corpus = AccuracyCorpus(cells: [
            Self.cell(.passkey, length: 1024, fullSolved: 30, of: 30, points: [(.snapKV, 0.1, 15, 30), (.snapKV, 0.5, 30, 30)]),
            Self.cell(.qa, length: 2048, fullSolved: 20, of: 30, points: [(.snapKV, 0.1, 10, 20), (.snapKV, 0.5, 18, 20)]),
            // The full cache solves 2 of 30: no information, left out.
            Self.cell(.variableTracking, length: 1024, fullSolved: 2, of: 30, points: [(.snapKV, 0.1, 0, 2), (.snapKV, 0.5, 0, 2)]),
        ])
        #expect(corpus.kinds == ["passkey", "qa"] && corpus.lengths == [1024, 2048])
        let at10 = try #require(corpus.evidence(.snapKV, fraction: 0.1))
        #expect(at10.samples == 50 && abs(at10.accuracy - 25.0 / 50) < 1e-12 && at10.recorded == [0.1])
        let p10 = Proportion(successes: 25, n: 50), p50 = Proportion(successes: 48, n: 50)
        let mid = try #require(corpus.evidence(.snapKV, fraction: 0.3))
        #expect(mid.recorded == [0.1, 0.5])
        #expect(abs(mid.accuracy - (p10.value + p50.value) / 2) < 1e-12 && abs(mid.low - (p10.low + p50.low) / 2) < 1e-12)
        #expect(abs(mid.pessimisticLoss - (1 - mid.low)) < 1e-12 && mid.low < mid.accuracy && mid.accuracy < mid.high)
        #expect(corpus.evidence(.snapKV, fraction: 0.05) == nil)
        #expect(corpus.evidence(.snapKV, fraction: 0.9)?.accuracy == p50.value)
        #expect(corpus.evidence(.pyramidKV, fraction: 0.3) == nil)
    }

    @Test("plan reads the bundled corpus: a policy row's loss is the lower end of its interval, and the row says where it was measured")
    func plan() async throws {
        let root = TestSupport.repositoryRoot
        var inputs = try FleetTests.inputs(rate: 1)
        inputs.fleet = nil
        inputs.policies = [.snapKV, .compressKV]
        inputs.budgets = [.fraction(0.1)]
        let corpus: AccuracyCorpus = try #require(try AccuracyCorpus.load(directory: root.appendingPathComponent("Accuracy").path))
        inputs.accuracyCorpus = corpus
        let report = try await Planner.plan(inputs, library: try FleetTests.library())
        for row in report.rows.dropFirst() {
            let c = try #require(row.accuracy.corpus, "\(row.policy)")
            #expect(row.accuracy.loss == c.pessimisticLoss)
            #expect(row.accuracy.lossSource.hasPrefix("accuracy corpus"))
            #expect(abs(c.fraction - row.requestWeightedFraction) < 1e-12)
        }
    }
}

@Suite("the traces that speak for a model")
struct TraceChoiceTests {
    @Test("a model read from the very GGUF a trace was recorded from gets its own traces; any other model gets every trace, mapped")
    func ownTracesFirst() throws {
        let library = try FleetTests.library()
        let smol = try ModelSpec.fromGGUF(path: TestSupport.repositoryRoot.appendingPathComponent("Models/SmolLM2-135M-Instruct.Q4_1.gguf").path)
        let own = library.traces(for: smol)
        #expect(own.exact)
        #expect(own.indices.map { URL(fileURLWithPath: library.replayers[$0].trace.path).lastPathComponent } == ["smollm2-passkey-1k.ckvt", "smollm2-qa-1k.ckvt"])
        let llama = library.traces(for: ModelCatalog.named("Llama-3.1-8B-Instruct")!)
        #expect(!llama.exact && llama.indices.count == library.replayers.count)
        // The catalogue's SmolLM2 names no GGUF or repository, so it cannot claim the traces as its own.
        #expect(!library.traces(for: ModelCatalog.named("SmolLM2-135M-Instruct")!).exact)
        // A repository matches a trace's hf_id, with the shape.
        #expect(ModelCatalog.named("Llama-3.1-8B-Instruct")!.repository == "meta-llama/Llama-3.1-8B-Instruct")
    }

    @Test("the plan says whose traces it used")
    func reportSaysSo() async throws {
        let library = try FleetTests.library()
        var inputs = try FleetTests.inputs(rate: 1)
        inputs.fleet = nil
        let mapped = try await Planner.plan(inputs, library: library)
        #expect(!mapped.tracesExact && mapped.notes[0].contains("mapping"))
        inputs.model = try ModelSpec.fromGGUF(path: TestSupport.repositoryRoot.appendingPathComponent("Models/SmolLM2-135M-Instruct.Q4_1.gguf").path)
        inputs.context = 4096
        inputs.serving.maxModelLen = 4096
        let own = try await Planner.plan(inputs, library: library)
        #expect(own.tracesExact && own.notes[0].contains("itself") && own.traceModels == ["Smollm2 135M 8k Lc100K Mix1 Ep2"])
    }
}
