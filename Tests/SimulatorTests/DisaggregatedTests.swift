import Foundation
import Testing
import TestSupport
@testable import Hardware
import Policies
@testable import Simulator

@Suite("disaggregated prefill and decode")
struct DisaggregatedTests {
    func setup() throws -> (MemoryPlan, CostModel) {
        var settings = ServingSettings()
        settings.engine = .vllmV1
        settings.maxModelLen = 16384
        let config = try settings.resolve(gpu: a100, model: llama8b)
        return (try MemoryPlan(gpu: a100, model: llama8b, serving: config), CostModel(gpu: a100, model: llama8b, serving: config))
    }

    static func source(rate: Double, count: Int = 600, seed: UInt64 = 8) -> SyntheticSource {
        SyntheticSource(arrivals: .poisson(rate: rate), prompt: .lognormal(median: 6000, sigma: 0.5, min: 500, max: 12000),
                        output: .lognormal(median: 300, sigma: 0.8, min: 1, max: 2000), count: count, seed: seed)
    }

    let nvlink = KVLink(kind: "NVLink 3", gbPerSecond: 300)

    @Test("every request completes; decode replicas receive every request with more than one output token, prefill replicas finish the others; the same inputs give the same result")
    func conservation() throws {
        let (plan, cost) = try setup()
        func run() -> ClusterResult {
            var c = ClusterSimulation(prefill: 2, decode: 2, plan: plan, cost: cost, link: nvlink, source: Self.source(rate: 3))
            return c.run()
        }
        let r = run()
        var src = Self.source(rate: 3), single = 0
        while let q = src.next() { if q.outputTokens == 1 { single += 1 } }
        #expect(r.fleet.requests == 600 && r.fleet.completed == 600)
        #expect(r.replicas[2...].map { $0.kvTransfer?.requests ?? 0 }.reduce(0, +) == 600 - single)
        #expect(r.replicas[..<2].map(\.completed).reduce(0, +) == single && r.replicas[..<2].allSatisfy { $0.kvTransfer == nil })
        #expect(r.replicas[2...].allSatisfy { $0.requests == 0 && $0.completed > 100 }, "arrivals are counted where they enter")
        #expect(r == run())
    }

    @Test("compression after prefill shrinks what is sent: SnapKV at 512 tokens sends a fraction of the full cache's KV")
    func compressedTransfer() throws {
        let (plan, cost) = try setup()
        var full = ClusterSimulation(prefill: 1, decode: 1, plan: plan, cost: cost, link: nvlink, source: Self.source(rate: 1, count: 200))
        var snap = ClusterSimulation(prefill: 1, decode: 1, plan: plan, cost: cost, compression: CompressionSpec(policy: .snapKV, budget: .tokens(512)),
                                     link: nvlink, source: Self.source(rate: 1, count: 200))
        let f = full.run().fleet.kvTransfer!, s = snap.run().fleet.kvTransfer!
        #expect(f.requests == s.requests)
        // About 6,000 tokens of 128 KiB against 512.
        #expect(f.meanBytes > 6.5e8 && s.meanBytes < f.meanBytes / 8, "\(f.meanBytes) vs \(s.meanBytes)")
    }

    @Test("decode replicas never wait for a prefill: TPOT p99 falls below that of the same GPUs colocated, and a slower link lengthens the wait before the second token")
    func interference() throws {
        let (plan, cost) = try setup()
        var colocated = ClusterSimulation(replicas: 2, plan: plan, cost: cost, source: Self.source(rate: 2))
        var split = ClusterSimulation(prefill: 1, decode: 1, plan: plan, cost: cost, link: nvlink, source: Self.source(rate: 2))
        var slow = ClusterSimulation(prefill: 1, decode: 1, plan: plan, cost: cost, link: KVLink(kind: "1 GB/s", gbPerSecond: 1), source: Self.source(rate: 2))
        let c = colocated.run().fleet, d = split.run().fleet, s = slow.run().fleet
        #expect(d.completed == 600 && c.completed == 600)
        #expect(d.tpotMs.p99 < c.tpotMs.p99, "\(d.tpotMs.p99) vs \(c.tpotMs.p99)")
        // ~0.8 GB per request at 1 GB/s: the second token waits most of a second more.
        #expect(s.itlMs.max > d.itlMs.max + 500 && s.ttftMs.p50 == d.ttftMs.p50)
    }
}
