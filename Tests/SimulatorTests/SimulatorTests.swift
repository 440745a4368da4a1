import Foundation
import Testing
import TestSupport
@testable import Hardware
import Policies
@testable import Simulator

let root = TestSupport.repositoryRoot
let a100 = GPUCatalog.named("A100-80G")!
let l4 = GPUCatalog.named("L4")!
let llama8b = ModelCatalog.named("Llama-3.1-8B-Instruct")!

func scenarioFile(_ yaml: String) throws -> String { try TestSupport.temporaryFile("scenario.yaml", yaml) }

func run(_ source: any RequestSource, gpu: GPU = a100, model: ModelSpec = llama8b, serving: ServingConfig = ServingConfig(),
         compression: CompressionSpec? = nil) throws -> SimulationResult {
    try Simulation.run(gpu: gpu, model: model, serving: serving, compression: compression, source: source)
}

/// vLLM 0.6 throughput-benchmark settings.
var benchmarkServing: ServingConfig {
    var s = ServingConfig()
    s.chunkedPrefill = false
    s.maxModelLen = 19000
    return s
}

@Suite("simulator invariants")
struct InvariantTests {
    @Test("every request completes, latencies are ordered, and the same inputs give the same result", arguments: [true, false])
    func conservationAndDeterminism(chunked: Bool) throws {
        var serving = ServingConfig()
        serving.chunkedPrefill = chunked
        func source() -> SyntheticSource {
            SyntheticSource(arrivals: .gamma(rate: 4, cv: 2), prompt: .lognormal(median: 2000, sigma: 1, min: 16, max: 30000),
                            output: .lognormal(median: 200, sigma: 0.8, min: 1, max: 2000), count: 3000, seed: 11)
        }
        let a = try run(source(), serving: serving)
        let b = try run(source(), serving: serving)
        #expect(a == b)
        #expect(a.completed + a.rejected == 3000)
        #expect(a.rejected == 0)
        for p in [a.ttftMs, a.tpotMs, a.e2eMs] {
            #expect(p.p50 <= p.p90 && p.p90 <= p.p99 && p.p99 <= p.max && p.p50 >= 0)
        }
        #expect(a.ttftMs.p50 <= a.e2eMs.p50)
        #expect(a.peakKVUtilisation <= 1 && a.meanKVUtilisation > 0)
        #expect(a.maxBatch <= serving.maxNumSeqs)
    }

    @Test("a light load is served at its arrival rate with no queueing")
    func lightLoad() throws {
        let source = SyntheticSource(arrivals: .poisson(rate: 0.2), prompt: .fixed(1000), output: .fixed(100), count: 400, seed: 3)
        let r = try run(source)
        #expect(abs(r.requestsPerSecond - 0.2) / 0.2 < 0.15)
        // TTFT ≈ one prefill step; TPOT ≈ one small decode step (weights read at 80 % of 2 TB/s ≈ 9 ms).
        #expect(r.ttftMs.p50 < 150)
        #expect(r.tpotMs.p50 > 5 && r.tpotMs.p50 < 20)
        #expect(r.preemptions == 0)
    }

    @Test("too little memory preempts (recompute) and still completes everything")
    func preemption() throws {
        // Full cache on an L4: 6,000-token prompts growing by 2,000 tokens each outgrow the pool.
        let source = SyntheticSource(arrivals: .batch, prompt: .fixed(6000), output: .fixed(2000), count: 12, seed: 1)
        var serving = benchmarkServing
        serving.maxModelLen = 8192
        let r = try run(source, gpu: l4, serving: serving)
        #expect(r.preemptions > 0)
        #expect(r.completed == 12)
    }

    @Test("a request that can never fit is refused with the reason")
    func neverFits() throws {
        let plan = try MemoryPlan(gpu: l4, model: llama8b, serving: ServingConfig())
        let sim = Simulation(plan: plan, cost: CostModel(gpu: l4, model: llama8b, serving: ServingConfig()),
                             source: SyntheticSource(arrivals: .batch, prompt: .fixed(100_000), output: .fixed(10), count: 1, seed: 1))
        #expect(throws: CapacityError.self) { try sim.checkFits(prompt: 100_000, output: 10) }
        do {
            try sim.checkFits(prompt: 100_000, output: 10)
        } catch {
            #expect("\(error)".contains("GiB of KV during prefill"))
        }
        // At run time such a request is rejected, not run.
        let r = try run(SyntheticSource(arrivals: .batch, prompt: .fixed(100_000), output: .fixed(10), count: 3, seed: 1), gpu: l4)
        #expect(r.rejected == 3 && r.completed == 0)
    }
}

@Suite("compression in the simulator")
struct CompressionTests {
    let source = { SyntheticSource(arrivals: .batch, prompt: .fixed(6000), output: .fixed(500), count: 64, seed: 1) }

    @Test("compression raises memory-bound throughput and batch size", arguments: [PolicyKind.snapKV, .kvCompress, .h2o, .streamingLLM, .pyramidKV])
    func throughput(policy: PolicyKind) throws {
        let full = try run(source(), gpu: l4, serving: benchmarkServing)
        let compressed = try run(source(), gpu: l4, serving: benchmarkServing, compression: CompressionSpec(policy: policy, budget: .tokens(256)))
        #expect(compressed.outputTokensPerSecond > 2 * full.outputTokensPerSecond, "\(policy)")
        #expect(compressed.meanBatch > 2 * full.meanBatch)
        #expect(compressed.compressions >= 64)
        #expect(compressed.completed == 64)
    }

    @Test("continual policies hold the cache at the budget; prefill-time ones let it grow")
    func continual() throws {
        let long = { SyntheticSource(arrivals: .batch, prompt: .fixed(2000), output: .fixed(3000), count: 200, seed: 2) }
        var serving = ServingConfig()
        serving.maxModelLen = 8192
        let snap = try run(long(), gpu: l4, serving: serving, compression: CompressionSpec(policy: .snapKV, budget: .tokens(256)))
        let streaming = try run(long(), gpu: l4, serving: serving, compression: CompressionSpec(policy: .streamingLLM, budget: .tokens(256)))
        #expect(streaming.meanBatch > snap.meanBatch)
        #expect(streaming.preemptions <= snap.preemptions)
    }

    @Test("budgets: tokens are capped by the prompt, fractions round to the nearest token and never below the window, KV-Compress rounds to blocks")
    func budgets() {
        #expect(Budget.tokens(1024).tokens(prompt: 500, window: 32) == 500)
        #expect(Budget.fraction(0.1).tokens(prompt: 1001, window: 32) == 100)
        #expect(Budget.fraction(0.1).tokens(prompt: 1006, window: 32) == 101)
        #expect(Budget.fraction(0.01).tokens(prompt: 1000, window: 32) == 32)
        #expect(Budget.fraction(0.01).tokens(prompt: 20, window: 32) == 20)
        #expect(CompressionSpec(policy: .kvCompress, budget: .tokens(100)).kept(prompt: 6000, blockSize: 16) == 112)
        #expect(CompressionSpec(policy: .snapKV, budget: .tokens(100)).kept(prompt: 6000, blockSize: 16) == 100)
        #expect(CompressionSpec?.none.kept(prompt: 6000, blockSize: 16) == 6000)
    }

    @Test("per-head blocks pack tokens; per-sequence blocks round each head up")
    func footprints() throws {
        let plan = try MemoryPlan(gpu: a100, model: llama8b, serving: ServingConfig())
        let perSeq = NominalFootprint(layout: .perSequence).phb(tokens: 6000, kept: 100, plan: plan)
        let perHead = NominalFootprint(layout: .perHead).phb(tokens: 6000, kept: 100, plan: plan)
        #expect(perSeq == 32 * 8 * 7) // ⌈100/16⌉ = 7 blocks per layer-head
        #expect(perHead == (32 * 8 * 100 + 15) / 16)
        #expect(perHead < perSeq)
    }
}

@Suite("workloads and scenarios")
struct WorkloadTests {
    @Test("the Azure log: arrival times from its timestamps, CRLF lines, time scale")
    func azure() throws {
        let path = root.appendingPathComponent("Scenarios/data/azure_llm_2023_conv.csv").path
        let log = try LogSource(path: path, format: .azure, limit: 3)
        #expect(log.requests.map(\.promptTokens) == [374, 396, 879])
        #expect(log.requests[0].arrival == 0)
        #expect(abs(Double(log.requests[1].arrival) - 4_314_579) < 2) // 18:15:50.9951690 − 18:15:46.6805900
        let fast = try LogSource(path: path, format: .azure, timeScale: 0.5, limit: 3)
        #expect(abs(fast.requests[1].arrival - log.requests[1].arrival / 2) <= 1)
        let all = try LogSource(path: path, format: .azure)
        #expect(all.requests.count == 19_366)
    }

    @Test("the Mooncake log and its malformed lines")
    func mooncake() throws {
        let path = root.appendingPathComponent("Scenarios/data/mooncake_fast25_conversation.jsonl").path
        let log = try LogSource(path: path, format: .mooncake, limit: 3)
        #expect(log.requests.map(\.promptTokens) == [6758, 7322, 7236])
        #expect(log.requests.map(\.outputTokens) == [500, 490, 794])
        let bad = try scenarioFile("{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 5}\n{\"timestamp\": 1, \"input_length\": \"x\"}\n")
        #expect(throws: WorkloadError.self) { try LogSource(path: bad, format: .mooncake) }
        do { _ = try LogSource(path: bad, format: .mooncake) } catch { #expect("\(error)".contains(":2:")) }
    }

    @Test("synthetic arrivals have the asked mean rate, seeded")
    func synthetic() {
        for process in [ArrivalProcess.poisson(rate: 5), .gamma(rate: 5, cv: 3)] {
            var s = SyntheticSource(arrivals: process, prompt: .uniform(min: 10, max: 20), output: .fixed(5), count: 20000, seed: 9)
            var last: Request?
            var n = 0
            while let r = s.next() { last = r; n += 1; #expect((10...20).contains(r.promptTokens)) }
            let rate = Double(n) / (Double(last!.arrival) / 1e6)
            #expect(abs(rate - 5) / 5 < 0.05, "\(process): \(rate)")
        }
    }

    @Test("every bundled scenario loads and runs a few requests")
    func bundled() throws {
        let dir = root.appendingPathComponent("Scenarios").path
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(files.count >= 6)
        for file in files {
            let s = try Scenario.load(path: "\(dir)/\(file)")
            let serving = try s.serving(gpu: a100, model: llama8b)
            try s.validate(model: llama8b, serving: serving)
            let r = try run(try s.source(requests: 20), serving: serving)
            #expect(r.completed + r.rejected == 20, "\(file)")
        }
    }

    @Test("bad scenarios: one line naming the file and the key or line")
    func badScenarios() throws {
        let cases: [(String, String)] = [
            ("name: x\narrivals: {process: poisson, rate: -2}\nprompt: {distribution: fixed, tokens: 10}\noutput: {distribution: fixed, tokens: 5}\n", "key arrivals.rate"),
            ("name: x\narrivals: {process: teleport}\n", "key arrivals.process"),
            ("name: x\narrivals: {process: batch}\nprompt: {distribution: fixed, tokens: -4}\noutput: {distribution: fixed, tokens: 5}\n", "key prompt.tokens"),
            ("name: x\narrivals: {process: batch}\nprompt: {distribution: fixed, tokens: 10}\n", "key output"),
            ("name: x\narrivals: [unclosed\n", "line"),
            ("arrivals: {process: batch}\n", "key name: missing"),
        ]
        for (yaml, expected) in cases {
            let path = try scenarioFile(yaml)
            do {
                _ = try Scenario.load(path: path)
                Issue.record("accepted: \(yaml)")
            } catch {
                #expect("\(error)".hasPrefix(path), "\(error)")
                #expect("\(error)".contains(expected), "\(error)")
                #expect(!"\(error)".contains("\n"))
            }
        }
        let tooLong = try Scenario.load(path: try scenarioFile("name: x\narrivals: {process: batch}\nprompt: {distribution: fixed, tokens: 9000}\noutput: {distribution: fixed, tokens: 500}\n"))
        #expect(throws: WorkloadError.self) { try tooLong.validate(model: ModelCatalog.named("SmolLM2-135M-Instruct")!, serving: ServingConfig()) }
    }

    @Test("the time series stays bounded however long the run")
    func timeSeries() {
        var t = TimeSeries(capacity: 16, initialWidth: 10)
        t.add(1, from: 0, to: 1_000_000)
        t.add(3, from: 1_000_000, to: 2_000_000)
        #expect(t.values.count <= 16)
        #expect(abs(t.values.first! - 1) < 1e-9 && abs(t.values.last! - 3) < 1e-9)
    }
}

@Suite("scheduler and block manager properties")
struct SchedulerPropertyTests {
    /// Seeded runs that preempt, compress on pressure and meet requests that can never fit.
    static func harsh(seed: UInt64) -> SyntheticSource {
        SyntheticSource(arrivals: .gamma(rate: 6, cv: 3), prompt: .lognormal(median: 3000, sigma: 1.2, min: 16, max: 30000),
                        output: .lognormal(median: 400, sigma: 1, min: 1, max: 2700), count: 300, seed: seed)
    }

    static let settings: [(String, CompressionSpec?)] = [
        ("full", nil),
        ("snapkv", CompressionSpec(policy: .snapKV, budget: .tokens(256))),
        ("h2o", CompressionSpec(policy: .h2o, budget: .fraction(0.1))),
        ("kvcompress on pressure", CompressionSpec(policy: .kvCompress, budget: .tokens(128), decodeTrigger: .onPressure)),
        ("pyramidkv", CompressionSpec(policy: .pyramidKV, budget: .tokens(512))),
    ]

    @Test("used + free = capacity after every event, and every request completes or is rejected (single- and multi-step scheduling)",
          arguments: [(true, 1), (false, 1), (true, 8), (false, 8)])
    func invariants(chunked: Bool, steps: Int) throws {
        var serving = ServingConfig()
        serving.chunkedPrefill = chunked
        serving.maxModelLen = 32768
        let plan = try MemoryPlan(gpu: l4, model: llama8b, serving: serving)
        var preempted = 0, rejected = 0
        for seed in UInt64(1)...6 {
            for (name, spec) in Self.settings {
                let scheduler: any Scheduler = steps > 1 ? VLLMMultiStepScheduler(steps: steps) : VLLMScheduler()
                var sim = Simulation(plan: plan, cost: CostModel(gpu: l4, model: llama8b, serving: serving), compression: spec, scheduler: scheduler,
                                     source: Self.harsh(seed: seed))
                sim.recordsTimeSeries = false
                var events = 0, broken = 0
                let r = sim.run { blocks in
                    events += 1
                    if blocks.used + blocks.free != blocks.capacity || blocks.free < 0 || blocks.free > blocks.capacity { broken += 1 }
                }
                #expect(broken == 0, "seed \(seed) \(name)")
                #expect(events > 300)
                #expect(r.completed + r.rejected == r.requests && r.requests == 300, "seed \(seed) \(name): \(r.completed) + \(r.rejected)")
                #expect(r.completed > 0)
                preempted += r.preemptions
                rejected += r.rejected
            }
        }
        // The runs exercise what the invariants guard: preemption and requests that never fit.
        #expect(preempted > 0 && rejected > 0)
    }

    @Test("KV-Compress's per-pass cap: no cap and an unreachable one run alike; a cap below one sequence compresses nothing; a binding one compresses less")
    func compressionPassCap() throws {
        var serving = ServingConfig()
        serving.chunkedPrefill = false
        serving.maxModelLen = 8192
        let plan = try MemoryPlan(gpu: l4, model: llama8b, serving: serving)
        func run(_ cap: Int?) -> SimulationResult {
            // Set after init: a nil argument means the fork's default cap.
            var s = CompressionSpec(policy: .kvCompress, budget: .tokens(128), window: 32, decodeTrigger: .onPressure)
            s.maxKVPerPass = cap
            let source = SyntheticSource(arrivals: .batch, prompt: .fixed(6000), output: .fixed(300), count: 64, seed: 2)
            var sim = Simulation(plan: plan, cost: CostModel(gpu: l4, model: llama8b, serving: serving), compression: s, source: source)
            sim.recordsTimeSeries = false
            return sim.run()
        }
        let none = run(nil), unreachable = run(Int.max)
        #expect(none == unreachable)
        // One 6,000-token Llama-3.1-8B sequence holds 6,000 × 32 layers × 8 KV heads ≈ 1.5 M KVs.
        let below = run(1_000_000)
        #expect(below.compressions == 0 && below.completed == 64)
        let binding = run(2_000_000)
        #expect(binding.completed == 64)
        #expect(below.compressions < binding.compressions && binding.compressions <= none.compressions)
        #expect(below.outputTokensPerSecond < none.outputTokensPerSecond)
    }

    @Test("multi-step scheduling: one step is the single-step scheduler exactly; more steps delay admissions, so TTFT grows and throughput stays")
    func multiStep() throws {
        var serving = ServingConfig()
        serving.chunkedPrefill = false
        serving.maxModelLen = 8192
        let plan = try MemoryPlan(gpu: a100, model: llama8b, serving: serving)
        func run(_ scheduler: any Scheduler) -> SimulationResult {
            let source = SyntheticSource(arrivals: .poisson(rate: 4), prompt: .fixed(1000), output: .fixed(200), count: 400, seed: 3)
            var sim = Simulation(plan: plan, cost: CostModel(gpu: a100, model: llama8b, serving: serving), scheduler: scheduler, source: source)
            sim.recordsTimeSeries = false
            return sim.run()
        }
        let single = run(VLLMScheduler()), one = run(VLLMMultiStepScheduler(steps: 1))
        #expect(single == one)
        let eight = run(VLLMMultiStepScheduler(steps: 8)), sixteen = run(VLLMMultiStepScheduler(steps: 16))
        #expect(single.ttftMs.p50 < eight.ttftMs.p50 && eight.ttftMs.p50 < sixteen.ttftMs.p50)
        #expect(abs(sixteen.outputTokensPerSecond / single.outputTokensPerSecond - 1) < 0.05)
        #expect(eight.completed == 400 && sixteen.completed == 400)
    }

    @Test("a sequence that outgrows the whole pool while decoding is dropped, not left waiting")
    func outgrowsPool() throws {
        var serving = ServingConfig()
        serving.maxModelLen = 131072
        let plan = try MemoryPlan(gpu: l4, model: llama8b, serving: serving)
        // The prompt fits the pool; prompt + output does not (L4 holds ~29k tokens of Llama-3.1-8B).
        let source = SyntheticSource(arrivals: .batch, prompt: .fixed(20000), output: .fixed(60000), count: 2, seed: 1)
        var sim = Simulation(plan: plan, cost: CostModel(gpu: l4, model: llama8b, serving: serving), source: source)
        let r = sim.run()
        #expect(r.requests == 2 && r.rejected >= 1 && r.completed + r.rejected == 2)
        #expect(sim.blocks.free == sim.blocks.capacity)
    }

    @Test("the block manager checks before it acts")
    func blockManager() {
        var b = BlockManager(capacity: 1000)
        #expect(b.watermark == 10)
        #expect(b.canAllocate(1000) && !b.canAllocate(1001))
        #expect(b.canAdmit(990, nothingRunning: false) && !b.canAdmit(991, nothingRunning: false) && b.canAdmit(1000, nothingRunning: true))
        b.allocate(600)
        #expect(b.used == 600 && b.free == 400 && !b.canAllocate(401))
        b.release(600)
        #expect(b.free == b.capacity && !b.couldEverHold(1001))
    }
}

@Suite("a GPU described by the user")
struct GPUSpecTests {
    func write(_ text: String, _ name: String = "gpu.yaml") throws -> String {
        try TestSupport.temporaryFile(name, text)
    }

    @Test("a YAML or JSON description loads with its figures; it has no kernel tables, so the cost model says roofline")
    func loads() throws {
        let yaml = try write("name: RTX-4090\nmemory_gb: 24\ncuda_visible_gib: 23.53\nbandwidth_gbps: 1008\ndense_tflops: {bf16: 165.2, fp8: 330.3}\n")
        let g = try GPUSpec.load(path: yaml)
        #expect(g.name == "RTX-4090" && g.cudaVisibleGiB == 23.53 && g.flops(.bf16) == 165.2e12 && g.flops(.fp8) == 330.3e12)
        let json = try write(#"{"name": "X", "memory_gb": 48, "cuda_visible_gib": 44.4, "bandwidth_gbps": 864, "dense_tflops": {"fp16": 181}, "interconnect": {"kind": "PCIe Gen4 x16", "gb_per_second": 32}}"#, "gpu.json")
        let x = try GPUSpec.load(path: json)
        #expect(x.flops(.bf16) == 181e12 && x.interconnect.gbPerSecond == 32)
        let cost = CostModel(gpu: g, model: ModelCatalog.named("Llama-3.1-8B-Instruct")!, serving: ServingConfig())
        #expect(cost.source.linear == "roofline" && cost.source.description.contains("no measured kernel tables for RTX-4090"))
    }

    @Test("a bad description is one line naming the file and the key")
    func bad() throws {
        let cases: [(String, String)] = [
            ("name: X\nmemory_gb: 24\nbandwidth_gbps: 1\ndense_tflops: {bf16: 1}\n", "key cuda_visible_gib: missing"),
            ("name: X\nmemory_gb: 24\ncuda_visible_gib: 40\nbandwidth_gbps: 1\ndense_tflops: {bf16: 1}\n", "key cuda_visible_gib: 40.0 GiB is more than"),
            ("name: X\nmemory_gb: 24\ncuda_visible_gib: 20\nbandwidth_gbps: -3\ndense_tflops: {bf16: 1}\n", "key bandwidth_gbps: must be a positive number"),
            ("name: X\nmemory_gb: 24\ncuda_visible_gib: 20\nbandwidth_gbps: 3\ndense_tflops: {tf32: 1}\n", "key dense_tflops.tf32: unknown format"),
            ("name: X\nmemory_gb: 24\ncuda_visible_gib: 20\nbandwidth_gbps: 3\ndense_tflops: {int8: 1}\n", "key dense_tflops: needs bf16 or fp16"),
            ("name: X\nmemory_gb: [1]\n", "key memory_gb: expected a single value"),
        ]
        for (text, expected) in cases {
            let path = try write(text)
            #expect(throws: GPUSpecError.self) { try GPUSpec.load(path: path) }
            do { _ = try GPUSpec.load(path: path) } catch {
                #expect("\(error)".contains(expected) && "\(error)".hasPrefix(path) && !"\(error)".contains("\n"), "\(error)")
            }
        }
    }
}

@Suite("engine schedulers")
struct EngineSchedulerTests {
    func serving(_ engine: ServingEngine, _ tweak: (inout ServingSettings) -> Void = { _ in }) throws -> ServingConfig {
        var s = ServingSettings()
        s.engine = engine
        s.maxModelLen = 16384
        tweak(&s)
        return try s.resolve(gpu: l4, model: llama8b)
    }

    @Test("under memory pressure every engine's scheduler completes every request and keeps the pool whole (seeded)", arguments: [ServingEngine.vllmV0, .vllmV1, .sglang])
    func pressure(engine: ServingEngine) throws {
        for seed in 1...3 as ClosedRange<UInt64> {
            let source = SyntheticSource(arrivals: .poisson(rate: 4), prompt: .uniform(min: 500, max: 6000), output: .uniform(min: 10, max: 600), count: 120, seed: seed)
            let config = try serving(engine)
            let plan = try MemoryPlan(gpu: l4, model: llama8b, serving: config)
            var sim = Simulation(plan: plan, cost: CostModel(gpu: l4, model: llama8b, serving: config), scheduler: scheduler(for: config), source: source)
            let r = sim.run { blocks in #expect(blocks.used + blocks.free == blocks.capacity) }
            #expect(r.completed + r.rejected == 120)
            #expect(r.completed > 100)
            #expect(sim.prefixCacheBlocks?.queued == (engine == .vllmV1 ? plan.phbCapacity : nil), "prefix caching: the free queue holds every free block")
        }
    }

    @Test("vLLM V1's prefix caching: without preemption it changes nothing; with it, a preempted long prompt is not computed again from the start")
    func prefixCachingOnPreemption() throws {
        func run(_ caching: Bool, prompt: Int, count: Int) throws -> SimulationResult {
            var settings = ServingSettings()
            settings.engine = .vllmV1
            settings.prefixCaching = caching
            settings.maxModelLen = 32768
            settings.engineVersion = EngineVersion(0, 16, 0) // PyTorch's sampler: the pool the prompts below are sized for
            let config = try settings.resolve(gpu: l4, model: llama8b)
            let plan = try MemoryPlan(gpu: l4, model: llama8b, serving: config)
            let source = SyntheticSource(arrivals: .batch, prompt: .fixed(prompt), output: .fixed(200), count: count, seed: 4)
            var sim = Simulation(plan: plan, cost: CostModel(gpu: l4, model: llama8b, serving: config), scheduler: scheduler(for: config), source: source)
            sim.recordsTimeSeries = false
            return sim.run()
        }
        let light = (try run(false, prompt: 1000, count: 8), try run(true, prompt: 1000, count: 8))
        var cachedRun = light.1
        #expect(cachedRun.prefixCache == PrefixCacheStats(promptTokens: 8000, hitTokens: 0))
        cachedRun.prefixCache = nil
        #expect(light.0.preemptions == 0 && light.0 == cachedRun)
        // Prompts that fill most of the L4's pool (~29k tokens of Llama-3.1-8B): two at once preempt.
        let off = try run(false, prompt: 16000, count: 6), on = try run(true, prompt: 16000, count: 6)
        #expect(off.preemptions > 0 && on.completed == 6 && off.completed == 6)
        #expect(on.outputTokensPerSecond > off.outputTokensPerSecond * 1.1)
        #expect(throws: ServingError.self) {
            var s = ServingSettings()
            s.engine = .sglang
            s.prefixCaching = true
            _ = try s.resolve(gpu: l4, model: llama8b)
        }
    }

    @Test("vLLM V1 allocates blocks as prompts are computed, so a burst of long prompts starts more of them at once than V0")
    func incrementalAllocation() throws {
        let source = { SyntheticSource(arrivals: .batch, prompt: .fixed(6000), output: .fixed(200), count: 40, seed: 1) }
        let v0 = try run(source(), gpu: l4, serving: try serving(.vllmV0) { $0.chunkedPrefill = true; $0.maxNumBatchedTokens = 2048 })
        let v1 = try run(source(), gpu: l4, serving: try serving(.vllmV1))
        #expect(v1.maxBatch > v0.maxBatch)
        #expect(v1.completed == 40 && v0.completed == 40)
    }

    @Test("SGLang runs prefill batches alone: with prompts waiting no step mixes them with decodes")
    func sglangSeparates() throws {
        let config = try serving(.sglang)
        let plan = try MemoryPlan(gpu: l4, model: llama8b, serving: config)
        var state = SchedulerState(plan: plan, cost: CostModel(gpu: l4, model: llama8b, serving: config), compression: nil)
        var scheduler = SGLangScheduler()
        var s = Sequence(request: Request(id: 0, arrival: 0, promptTokens: 1000, outputTokens: 100))
        s.outputTarget = 100
        state.waiting.append(s)
        let first = scheduler.formBatch(&state)
        #expect(first.prefillTokens == 1000 && first.decodeSequences == 0)
    }

    @Test("goodput counts the requests meeting every objective given: all under loose ones, none under impossible ones, fewer as they tighten")
    func goodput() throws {
        func source() -> SyntheticSource {
            SyntheticSource(arrivals: .poisson(rate: 6), prompt: .lognormal(median: 2000, sigma: 1, min: 16, max: 16000),
                            output: .lognormal(median: 200, sigma: 0.8, min: 2, max: 1000), count: 600, seed: 5)
        }
        func goodput(_ slo: GoodputSLO) throws -> Goodput {
            try #require(try Simulation.run(gpu: a100, model: llama8b, serving: ServingConfig(), source: source(), goodput: slo).goodput)
        }
        let plain = try run(source())
        #expect(plain.goodput == nil)
        let loose = try goodput(GoodputSLO(ttftMs: 1e9, tpotMs: 1e9, e2eMs: 1e9))
        #expect(loose.requests == plain.completed && abs(loose.requestsPerSecond - plain.requestsPerSecond) < 1e-9)
        #expect(try goodput(GoodputSLO(ttftMs: 0.001)).requests == 0)
        // Each objective alone admits at least the requests that meet it together with the others.
        let ttft = try goodput(GoodputSLO(ttftMs: plain.ttftMs.p50)), tpot = try goodput(GoodputSLO(tpotMs: plain.tpotMs.p90))
        let both = try goodput(GoodputSLO(ttftMs: plain.ttftMs.p50, tpotMs: plain.tpotMs.p90))
        #expect(both.requests <= min(ttft.requests, tpot.requests) && both.requests > 0)
        // The median and the 90th percentile split the requests as they should (HdrHistogram rounds to 3 digits).
        #expect(abs(Double(ttft.requests) / Double(plain.completed) - 0.5) < 0.02)
        #expect(abs(Double(tpot.requests) / Double(plain.completed) - 0.9) < 0.02)
    }

    @Test("a benchmark client's concurrency limit: never more requests outstanding, TTFT from the moment each is sent")
    func clientConcurrency() throws {
        func result(_ limit: Int?) throws -> SimulationResult {
            try Simulation.run(gpu: a100, model: llama8b, serving: ServingConfig(), source: SyntheticSource(arrivals: .batch, prompt: .fixed(1000), output: .fixed(100), count: 64, seed: 1),
                               timeSeries: false, clientConcurrency: limit)
        }
        let one = try result(1), eight = try result(8), open = try result(nil)
        #expect(one.completed == 64 && eight.completed == 64 && open.completed == 64)
        #expect(one.batchPercentiles.max == 1 && eight.batchPercentiles.max <= 8 && open.batchPercentiles.max > 8)
        // One at a time: every request starts on an idle engine, so TTFT is one prefill, far below the burst's.
        #expect(one.ttftMs.p99 < open.ttftMs.p50 && one.ttftMs.max - one.ttftMs.p50 < 0.2 * one.ttftMs.p50)
        #expect(one.durationSeconds > eight.durationSeconds && eight.durationSeconds > open.durationSeconds)
    }

    @Test("ITL: one request's gaps between tokens, as many as its tokens after the first")
    func interTokenLatency() throws {
        let r = try run(SyntheticSource(arrivals: .batch, prompt: .fixed(1000), output: .fixed(50), count: 1, seed: 1))
        #expect(r.itlMs.p50 > 0 && abs(r.itlMs.mean - r.tpotMs.mean) / r.tpotMs.mean < 0.02)
        #expect(r.batchPercentiles.max == 1)
    }
}

@Suite("a cluster of replicas behind a router")
struct ClusterTests {
    static func setup(_ engine: ServingEngine = .vllmV1) throws -> (MemoryPlan, CostModel) {
        var settings = ServingSettings()
        settings.engine = engine
        settings.maxModelLen = 16384
        let config = try settings.resolve(gpu: a100, model: llama8b)
        return (try MemoryPlan(gpu: a100, model: llama8b, serving: config), CostModel(gpu: a100, model: llama8b, serving: config))
    }

    static func source(rate: Double, count: Int, seed: UInt64 = 5) -> SyntheticSource {
        SyntheticSource(arrivals: .poisson(rate: rate), prompt: .lognormal(median: 2000, sigma: 1, min: 16, max: 12000),
                        output: .lognormal(median: 300, sigma: 0.8, min: 1, max: 2000), count: count, seed: seed)
    }

    @Test("one replica is the single-replica simulation exactly, for every engine, with and without compression",
          arguments: [ServingEngine.vllmV0, .vllmV1, .sglang])
    func oneReplica(engine: ServingEngine) throws {
        let (plan, cost) = try Self.setup(engine)
        for spec in [nil, CompressionSpec(policy: .snapKV, budget: .tokens(512))] as [CompressionSpec?] {
            var single = Simulation(plan: plan, cost: cost, compression: spec, scheduler: scheduler(for: plan.serving), source: Self.source(rate: 12, count: 600))
            single.recordsTimeSeries = false
            let alone = single.run()
            for router in RouterPolicy.allCases {
                var cluster = ClusterSimulation(replicas: 1, plan: plan, cost: cost, compression: spec, router: router, source: Self.source(rate: 12, count: 600))
                let r = cluster.run()
                #expect(r.fleet == alone && r.replicas == [alone], "\(engine) \(router)")
            }
        }
    }

    @Test("N replicas carry N times the load: every request completes, the replicas share it, and the fleet's figures are theirs merged")
    func scaling() throws {
        let (plan, cost) = try Self.setup()
        var single = Simulation(plan: plan, cost: cost, scheduler: scheduler(for: plan.serving), source: Self.source(rate: 6, count: 1000))
        single.recordsTimeSeries = false
        let one = single.run()
        for router in RouterPolicy.allCases {
            var cluster = ClusterSimulation(replicas: 4, plan: plan, cost: cost, router: router, source: Self.source(rate: 24, count: 4000))
            let r = cluster.run()
            #expect(r.fleet.requests == 4000 && r.fleet.completed == 4000)
            #expect(r.replicas.map(\.completed).reduce(0, +) == 4000)
            #expect(r.replicas.allSatisfy { $0.completed > 800 }, "\(router): \(r.replicas.map(\.completed))")
            // Four replicas at four times the rate serve about four times the tokens, at about the same latency.
            #expect(abs(r.fleet.outputTokensPerSecond / (4 * one.outputTokensPerSecond) - 1) < 0.1, "\(router)")
            #expect(r.fleet.ttftMs.p50 < one.ttftMs.p50 * 2, "\(router)")
        }
        var rr = ClusterSimulation(replicas: 4, plan: plan, cost: cost, router: .roundRobin, source: Self.source(rate: 24, count: 4000))
        #expect(rr.run().replicas.map(\.requests) == [1000, 1000, 1000, 1000])
    }
}
