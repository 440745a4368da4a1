import Foundation
import Testing
import TestSupport
@testable import Hardware
import Policies
@testable import Simulator

@Suite("prefix caching")
struct PrefixCacheTests {
    func setup(gpu: GPU = l4, caching: Bool = true, maxModelLen: Int = 32768) throws -> (MemoryPlan, CostModel) {
        var settings = ServingSettings()
        settings.engine = .vllmV1
        settings.prefixCaching = caching
        settings.maxModelLen = maxModelLen
        let config = try settings.resolve(gpu: gpu, model: llama8b)
        return (try MemoryPlan(gpu: gpu, model: llama8b, serving: config), CostModel(gpu: gpu, model: llama8b, serving: config))
    }

    func simulate(_ source: any RequestSource, plan: MemoryPlan, cost: CostModel, compression: CompressionSpec? = nil,
                  inspect: (Simulation) -> Void = { _ in }) -> SimulationResult {
        var sim = Simulation(plan: plan, cost: cost, compression: compression, scheduler: scheduler(for: plan.serving), source: source)
        sim.recordsTimeSeries = false
        return sim.run(inspecting: inspect)
    }

    static func shared(rate: Double, count: Int, tokens: Int, variants: Int, seed: UInt64 = 3) -> SyntheticSource {
        SyntheticSource(arrivals: .poisson(rate: rate), prompt: .lognormal(median: 600, sigma: 0.8, min: 16, max: 6000),
                        output: .lognormal(median: 200, sigma: 0.6, min: 1, max: 1500), count: count, seed: seed,
                        sharedPrefix: SharedPrefix(tokens: tokens, variants: variants))
    }

    @Test("the free queue: allocations take from the front and evict what they reach, a preempted prefix loses its tail first, shared prefix blocks join the back when the last holder lets go")
    func queueOrder() {
        var q = PrefixCache(free: 10)
        q.take(4)                                        // 6 plain left
        q.appendPreempted(id: 7, prefix: 3, tail: 1)    // [7 plain, 3 of #7]
        #expect(q.segments == [.init(content: .nothing, blocks: 7), .init(content: .preempted(id: 7), blocks: 3)])
        #expect(q.count == 10 && q.cachedFree == 3)
        q.append(2)
        q.take(8)                                        // past the plain blocks: #7's last block evicted
        #expect(q.cached(id: 7) == 2 && q.count == 4 && q.cachedFree == 2)
        q.claim(id: 7, used: 1)                          // readmitted with one block of its prefix
        #expect(q.count == 3 && q.cachedFree == 0 && q.cached(id: 7) == 0)
        q.take(3)
        #expect(q.count == 0 && q.segments.isEmpty)

        // Shared prefix blocks: a request computes two (published), another takes both.
        var c = PrefixCache(free: 0)
        c.publish(100, blocks: 4)
        c.publish(101, blocks: 4)
        #expect(c.sharedBlocks == 8 && c.acquire(100) == 0 && c.acquire(101) == 0)
        #expect(c.release(101) == 0 && c.release(100) == 0, "still held by the second request")
        #expect(c.release(101) == 4 && c.release(100) == 4, "the last holder lets go: both join the free queue")
        #expect(c.count == 8 && c.cachedFree == 8 && c.sharedBlocks == 0 && c.contains(100) && c.contains(101))
        c.append(2)
        #expect(c.lookup(100)! == (blocks: 4, free: true))
        #expect(c.acquire(100) == 4 && c.count == 6 && c.sharedBlocks == 4, "found again in the free queue")
        c.take(3)                                        // reaches into 101: all of it is evicted
        #expect(!c.contains(101) && c.cachedFree == 0 && c.count == 3)
    }

    @Test("prefix caching conserves blocks: own + shared + cached + empty = capacity after every event, and the free queue is the pool's free blocks (seeded, full cache and StreamingLLM, under pressure)")
    func conservation() throws {
        let (plan, cost) = try setup()
        for (seed, spec) in [(1, nil), (2, nil), (3, CompressionSpec(policy: .streamingLLM, budget: .tokens(1024)))] as [(UInt64, CompressionSpec?)] {
            var events = 0, sawShared = false, sawCached = false
            let r = simulate(Self.shared(rate: 6, count: 300, tokens: 4096, variants: 6, seed: seed), plan: plan, cost: cost, compression: spec) { sim in
                let b = sim.prefixCacheBlocks!
                #expect(b.own + b.shared + b.cached + b.empty == plan.phbCapacity)
                #expect(b.queued == sim.blocks.free && b.own + b.shared == sim.blocks.used)
                sawShared = sawShared || b.shared > 0
                sawCached = sawCached || b.cached > 0
                events += 1
            }
            #expect(r.completed == 300 && events > 1000)
            #expect(r.preemptions > 0 || spec != nil, "the full cache runs under pressure")
            #expect(sawShared && sawCached)
        }
    }

    @Test("a workload with no shared prefixes has a 0 % hit rate: unique hashes, or none")
    func noSharing() throws {
        let (plan, cost) = try setup()
        struct Unique: RequestSource {
            var base = SyntheticSource(arrivals: .poisson(rate: 3), prompt: .uniform(min: 600, max: 5000), output: .fixed(100), count: 200, seed: 9)
            mutating func next() -> Request? {
                guard var r = base.next() else { return nil }
                r.blockHashes = (0..<(r.promptTokens / 512 + 1)).map { r.id << 20 | $0 }
                return r
            }
        }
        let unique = simulate(Unique(), plan: plan, cost: cost)
        let plain = simulate(Unique().base, plan: plan, cost: cost)
        #expect(unique.prefixCache!.hitTokens == 0 && unique.prefixCache!.promptTokens == plain.prefixCache!.promptTokens)
        #expect(plain.prefixCache!.hitRate == 0 && plain.prefixCache!.promptTokens > 0)
        #expect(unique.completed == 200)
    }

    @Test("a shared system prompt is computed once: at a light load every later request finds all of it, and TTFT falls")
    func sharedSystemPrompt() throws {
        let (plan, cost) = try setup()
        let source = { SyntheticSource(arrivals: .constant(rate: 0.5), prompt: .fixed(512), output: .fixed(20), count: 40, seed: 1,
                                       sharedPrefix: SharedPrefix(tokens: 4096, variants: 1)) }
        let on = simulate(source(), plan: plan, cost: cost)
        #expect(on.prefixCache == PrefixCacheStats(promptTokens: 40 * 4608, hitTokens: 39 * 4096))
        let (offPlan, offCost) = try setup(caching: false)
        let off = simulate(source(), plan: offPlan, cost: offCost)
        #expect(off.prefixCache == nil)
        #expect(on.ttftMs.p50 < off.ttftMs.p50 * 0.4, "\(on.ttftMs.p50) vs \(off.ttftMs.p50)")
    }

    @Test("a policy scoring with the prompt's own queries keeps a cache specific to the request (no prefix cache); StreamingLLM's positional one stays shareable")
    func compressionAndReuse() throws {
        #expect(PolicyKind.allCases.filter(\.keepsPrefixBlocks) == [.streamingLLM])
        let (plan, cost) = try setup()
        let snap = simulate(Self.shared(rate: 2, count: 150, tokens: 4096, variants: 2), plan: plan, cost: cost,
                            compression: CompressionSpec(policy: .snapKV, budget: .tokens(512)))
        let streaming = simulate(Self.shared(rate: 2, count: 150, tokens: 4096, variants: 2), plan: plan, cost: cost,
                                 compression: CompressionSpec(policy: .streamingLLM, budget: .tokens(512)))
        let full = simulate(Self.shared(rate: 2, count: 150, tokens: 4096, variants: 2), plan: plan, cost: cost)
        #expect(snap.prefixCache == nil && snap.completed == 150)
        #expect(streaming.prefixCache!.hitRate > 0.6 && full.prefixCache!.hitRate > 0.6)
        #expect(streaming.ttftMs.p50 < snap.ttftMs.p50)
    }

    @Test("the Mooncake conversation log on one H100: the hit rate is an LRU's over the hash blocks the pool holds")
    func mooncakeLRU() throws {
        let h100 = GPUCatalog.named("H100")!
        let (plan, cost) = try setup(gpu: h100, maxModelLen: 131072)
        let path = root.appendingPathComponent("Scenarios/data/mooncake_fast25_conversation.jsonl").path
        let log = try LogSource(path: path, format: .mooncake, timeScale: 16)
        let r = simulate(log, plan: plan, cost: cost)
        // The oracle: an LRU of whole 512-token blocks, as many as the pool holds, touched in arrival order.
        let perBlock = NominalFootprint(layout: .perSequence).phb(tokens: 512, kept: 512, plan: plan)
        let capacity = plan.phbCapacity / perBlock
        var lastUse: [Int: Int] = [:], order = [Int: Int](), clock = 0, hits = 0, tokens = 0
        for q in log.requests {
            let full = min(q.blockHashes.count, q.promptTokens / 512), limit = min(full, (q.promptTokens - 1) / 512)
            var k = 0
            while k < limit, lastUse[q.blockHashes[k]] != nil { k += 1 }
            hits += k * 512
            tokens += q.promptTokens
            for h in q.blockHashes.prefix(full) {
                if let t = lastUse[h] { order[t] = nil }
                clock += 1
                lastUse[h] = clock
                order[clock] = h
            }
            while lastUse.count > capacity, let oldest = order.keys.min() {
                lastUse[order[oldest]!] = nil
                order[oldest] = nil
            }
        }
        let lru = Double(hits) / Double(tokens)
        #expect(r.completed == 12031 && r.prefixCache!.promptTokens == tokens)
        let rate = r.prefixCache!.hitRate
        #expect(abs(rate - lru) < 0.01, "\(rate) vs LRU \(lru)")
        #expect(r.prefixCache!.hitRate > 0.02)
    }

    @Test("prefix-affinity routing keeps each system prompt on a replica: more hits than round-robin when one replica's cache cannot hold them all")
    func affinity() throws {
        let (plan, cost) = try setup()
        var results: [RouterPolicy: ClusterResult] = [:]
        for router in RouterPolicy.allCases {
            var cluster = ClusterSimulation(replicas: 4, plan: plan, cost: cost, router: router,
                                            source: Self.shared(rate: 10, count: 1200, tokens: 8192, variants: 8))
            results[router] = cluster.run()
        }
        let affinity = results[.prefixAffinity]!, roundRobin = results[.roundRobin]!
        #expect(affinity.fleet.completed == 1200 && affinity.replicas.allSatisfy { $0.completed > 100 })
        #expect(affinity.fleet.prefixCache!.hitRate > roundRobin.fleet.prefixCache!.hitRate + 0.1,
                "\(affinity.fleet.prefixCache!.hitRate) vs \(roundRobin.fleet.prefixCache!.hitRate)")
        #expect(affinity.fleet.prefixCache!.promptTokens == roundRobin.fleet.prefixCache!.promptTokens)
    }
}

@Suite("multi-turn sessions")
struct SessionTests {
    @Test("each turn's prompt is its session's history and its own tokens, its hashes extend the last turn's; sessions rotate through their slots")
    func turns() {
        var source = SyntheticSource(arrivals: .poisson(rate: 1), prompt: .uniform(min: 20, max: 300), output: .uniform(min: 5, max: 100), count: 24, seed: 2,
                                     sharedPrefix: SharedPrefix(tokens: 64, variants: 3), sessions: Sessions(turns: 3, concurrent: 4))
        var plain = SyntheticSource(arrivals: .poisson(rate: 1), prompt: .uniform(min: 20, max: 300), output: .uniform(min: 5, max: 100), count: 24, seed: 2)
        var requests: [Request] = [], own: [Request] = []
        while let r = source.next(), let p = plain.next() {
            requests.append(r)
            own.append(p)
        }
        #expect(requests.map(\.arrival) == own.map(\.arrival) && requests.map(\.outputTokens) == own.map(\.outputTokens))
        for (i, r) in requests.enumerated() {
            let turn = (i / 4) % 3
            #expect(r.hashBlockTokens == 16 && r.blockHashes.count == r.promptTokens / 16)
            if turn == 0 {
                #expect(r.promptTokens == 64 + own[i].promptTokens)
            } else {
                let last = requests[i - 4]
                #expect(r.promptTokens == last.promptTokens + last.outputTokens + own[i].promptTokens)
                #expect(Array(r.blockHashes.prefix(last.blockHashes.count)) == last.blockHashes)
            }
            // The system prompt's 4 blocks are one of the 3 variants' hashes.
            #expect((0..<3).contains { Array(r.blockHashes.prefix(4)) == SharedPrefix(tokens: 64, variants: 3).hashes(variant: $0) })
        }
        // Sessions 8 apart never share anything past the system prompt.
        #expect(Set(requests[0].blockHashes.dropFirst(4)).isDisjoint(with: requests[12].blockHashes))
    }

    @Test("a chat's later turns find their history cached: most prompt tokens hit at a light load, none with a request-specific policy")
    func hits() throws {
        let path = TestSupport.repositoryRoot.appendingPathComponent("Scenarios/multi-turn-chat.yaml").path
        let scenario = try Scenario.load(path: path)
        let serving = try scenario.serving(gpu: a100, model: llama8b)
        try scenario.validate(model: llama8b, serving: serving)
        let full = try Simulation.run(gpu: a100, model: llama8b, serving: serving, source: try scenario.source(rateScale: 0.5), timeSeries: false)
        let snap = try Simulation.run(gpu: a100, model: llama8b, serving: serving, compression: CompressionSpec(policy: .snapKV, budget: .tokens(1024)),
                                      source: try scenario.source(rateScale: 0.5), timeSeries: false)
        #expect(full.completed == 600 && full.prefixCache!.hitRate > 0.6, "\(full.prefixCache!.hitRate)")
        #expect(snap.prefixCache == nil && full.ttftMs.p50 < snap.ttftMs.p50)
    }
}
