import Hardware
import Reporting
import HeapModule

/// How a cluster's router picks the replica for each arriving request.
public enum RouterPolicy: String, Codable, Sendable, CaseIterable {
    /// Replicas in turn, whatever their load.
    case roundRobin = "round-robin"
    /// The replica with the fewest requests routed to it and not yet finished (the lowest index
    /// among equals): what llm-d's and most gateways' load-aware pickers approximate.
    case leastOutstanding = "least-outstanding"
    /// SGLang router's cache-aware policy (sgl-router/src/policies/cache_aware.rs, its Rust
    /// defaults): when the load is out of balance (the most outstanding requests exceed the fewest
    /// by more than 32 and by more than 10 %) the least loaded replica; otherwise the replica
    /// whose prefix cache holds the longest part of the prompt, if that is more than half of it,
    /// else the replica with the smallest cache. ckv-sim matches against each replica's actual
    /// cache (as llm-d's precise prefix-cache scorer reads vLLM's KV events) where SGLang's router
    /// keeps its own record of the text it sent; ties go to the least loaded, then the lowest index.
    case prefixAffinity = "prefix-affinity"

    /// SGLang router's `balance_abs_threshold`, `balance_rel_threshold` and `cache_threshold`.
    static let balanceAbsolute = 32, balanceRelative = 1.1, cacheThreshold = 0.5
}

/// N identical replicas behind a router: one request stream, each replica with its own
/// scheduler, KV pool and API front-end (`Simulation`), one clock. Arrivals are routed at their
/// arrival time, after every replica event before it, so a load-aware router sees each
/// replica's outstanding requests as they stand then. Deterministic: the same inputs give the
/// same result, and one replica gives exactly the single-replica simulation's result.
public struct ClusterSimulation {
    public let router: RouterPolicy
    private var replicas: [Simulation]
    private var source: any RequestSource
    private var nextReplica = 0
    /// The replicas arrivals are routed to: all of them, or the prefill pool.
    private var entry: Range<Int>
    /// Disaggregated serving: the decode pool, which prefill replicas hand requests to.
    private var decodePool: Range<Int>?

    /// `replicas` copies of the replica `plan`, `cost` and `compression` describe, batched by
    /// `scheduler(for:)` of the plan's engine, fed by `source` through `router`.
    public init(replicas: Int, plan: MemoryPlan, cost: any LatencyModel, compression: CompressionSpec? = nil,
                router: RouterPolicy = .leastOutstanding, source: any RequestSource, recordsTimeSeries: Bool = false,
                goodput: GoodputSLO? = nil) {
        precondition(replicas >= 1, "a cluster needs a replica")
        self.router = router
        self.source = source
        var one = Simulation(plan: plan, cost: cost, compression: compression, scheduler: scheduler(for: plan.serving), source: EmptySource())
        one.recordsTimeSeries = recordsTimeSeries
        one.goodputSLO = goodput
        self.replicas = Array(repeating: one, count: replicas)
        entry = 0..<replicas
    }

    /// Disaggregated prefill and decode (xPyD, as vLLM's NIXL connector and llm-d run it):
    /// arrivals go through `router` to `prefill` replicas, which compute each prompt (compressed
    /// there by the policy, at the end of its prefill) and emit its first token; a decode replica
    /// (the least loaded of `decode`) takes the request over, allocates the blocks of its kept
    /// cache, receives the KV over `link` and decodes the rest. Both pools run the replica of
    /// `plan`, which must be vLLM V1's (the engine whose disaggregation is modelled). A
    /// request whose output is one token ends on its prefill replica. The prefill replica frees
    /// its blocks at once (vLLM holds them until the decode side has read them).
    public init(prefill: Int, decode: Int, plan: MemoryPlan, cost: any LatencyModel, compression: CompressionSpec? = nil,
                router: RouterPolicy = .leastOutstanding, link: KVLink, source: any RequestSource, recordsTimeSeries: Bool = false,
                goodput: GoodputSLO? = nil) {
        precondition(prefill >= 1 && decode >= 1, "disaggregated serving needs a prefill and a decode replica")
        precondition(plan.serving.engine == .vllmV1, "disaggregated serving is modelled for vLLM V1")
        self.init(replicas: prefill + decode, plan: plan, cost: cost, compression: compression, router: router, source: source,
                  recordsTimeSeries: recordsTimeSeries, goodput: goodput)
        for i in 0..<prefill { replicas[i].role = .prefill }
        for i in prefill..<(prefill + decode) { replicas[i].role = .decode(link: link) }
        entry = 0..<prefill
        decodePool = prefill..<(prefill + decode)
    }

    /// Runs until every request has completed or been rejected.
    public mutating func run() -> ClusterResult {
        var pending = source.next()
        // Each replica's next event time, earliest first (the lowest index among equals); an
        // entry is stale once its replica's next event has changed, and is then skipped.
        var next = Heap<NextEvent>()
        func refresh(_ i: Int, _ next: inout Heap<NextEvent>) {
            if let t = replicas[i].nextEventTime { next.insert(NextEvent(time: t, replica: i)) }
        }
        while true {
            while let top = next.min, replicas[top.replica].nextEventTime != top.time { _ = next.removeMin() }
            let earliest = next.min
            // An arrival goes first at a tie: the replicas' own queues order arrivals before step ends.
            if let r = pending, earliest.map({ r.arrival <= $0.time }) ?? true {
                let i = pick(r)
                let before = replicas[i].nextEventTime
                replicas[i].inject(r)
                if replicas[i].nextEventTime != before { refresh(i, &next) }
                pending = source.next()
            } else if let e = earliest {
                _ = next.removeMin()
                _ = replicas[e.replica].processNextEvent()
                refresh(e.replica, &next)
                if let pool = decodePool, !replicas[e.replica].handoffs.isEmpty {
                    for h in replicas[e.replica].handoffs {
                        let d = leastLoaded(pool)
                        let before = replicas[d].nextEventTime
                        replicas[d].inject(h)
                        if replicas[d].nextEventTime != before { refresh(d, &next) }
                    }
                    replicas[e.replica].handoffs.removeAll(keepingCapacity: true)
                }
            } else {
                break
            }
        }
        var merged = MetricsRecorder()
        var perReplica: [SimulationResult] = []
        var requests = 0
        for i in replicas.indices {
            let r = replicas[i].result()
            perReplica.append(r)
            requests += r.requests
            merged.add(replicas[i].recorder)
        }
        return ClusterResult(fleet: SimulationResult(merged, requests: requests), replicas: perReplica)
    }

    private mutating func pick(_ request: Request) -> Int {
        switch router {
        case .roundRobin:
            defer { nextReplica = (nextReplica + 1) % entry.count }
            return entry.lowerBound + nextReplica
        case .leastOutstanding:
            return leastLoaded(entry)
        case .prefixAffinity:
            let loads = entry.map { replicas[$0].outstanding }
            let low = loads.min()!, high = loads.max()!
            if high - low > RouterPolicy.balanceAbsolute, Double(high) > Double(low) * RouterPolicy.balanceRelative {
                return leastLoaded(entry)
            }
            let matched = entry.map { replicas[$0].cachedTokens(of: request) }
            let best = matched.max()!
            if best > 0, Double(best) / Double(request.promptTokens) > RouterPolicy.cacheThreshold {
                return leastLoaded(entry.filter { matched[$0 - entry.lowerBound] == best })
            }
            let smallest = entry.map { replicas[$0].cachedPrefixBlocks }.min()!
            return leastLoaded(entry.filter { replicas[$0].cachedPrefixBlocks == smallest })
        }
    }

    /// The replica among `candidates` with the fewest outstanding requests (the first among equals).
    private func leastLoaded<C: Collection<Int>>(_ candidates: C) -> Int {
        var best = candidates.first!
        for i in candidates.dropFirst() where replicas[i].outstanding < replicas[best].outstanding { best = i }
        return best
    }
}

/// A cluster run: the fleet's figures over every request, and each replica's own.
public struct ClusterResult: Codable, Equatable, Sendable {
    /// Throughput over the whole fleet; latency percentiles over every request; batch and KV
    /// figures per replica, averaged over the replicas' busy time.
    public var fleet: SimulationResult
    public var replicas: [SimulationResult]
}

/// A replica's next event in the cluster's queue.
struct NextEvent: Comparable {
    var time: Int64
    var replica: Int
    static func < (a: NextEvent, b: NextEvent) -> Bool { (a.time, a.replica) < (b.time, b.replica) }
}

/// No requests: a replica fed by a cluster's router reads nothing itself.
struct EmptySource: RequestSource {
    mutating func next() -> Request? { nil }
}

extension MetricsRecorder {
    /// Adds another replica's recordings (histograms, sums and counts; the span from the first
    /// arrival to the last finish over both). The time series are not merged.
    mutating func add(_ o: MetricsRecorder) {
        ttft.add(o.ttft)
        tpot.add(o.tpot)
        e2e.add(o.e2e)
        itl.add(o.itl)
        batch.add(o.batch)
        ttftSum += o.ttftSum
        tpotSum += o.tpotSum
        e2eSum += o.e2eSum
        itlSum += o.itlSum
        batchSum += o.batchSum
        completed += o.completed
        rejected += o.rejected
        preemptions += o.preemptions
        compressions += o.compressions
        promptTokens += o.promptTokens
        outputTokens += o.outputTokens
        steps += o.steps
        busyTime += o.busyTime
        batchTimeSum += o.batchTimeSum
        kvTimeSum += o.kvTimeSum
        kvPeak = max(kvPeak, o.kvPeak)
        if let f = o.firstArrival { firstArrival = min(firstArrival ?? f, f) }
        lastFinish = max(lastFinish, o.lastFinish)
        slo = slo ?? o.slo
        good += o.good
        transferredBytes += o.transferredBytes
        transfers += o.transfers
        if let p = o.prefix { prefix = (prefix ?? PrefixCacheStats(promptTokens: 0, hitTokens: 0)) + p }
        recordsSeries = false
    }
}

/// The pools of a disaggregated deployment: `prefill` and `decode` replicas (xPyD).
public struct DisaggregationSplit: Codable, Sendable, Hashable, CustomStringConvertible {
    public var prefill: Int
    public var decode: Int
    /// GPUs one node holds (an HGX or DGX board): pools within it send KV over the GPUs'
    /// interconnect, larger ones over the network between nodes.
    public static let gpusPerNode = 8

    public init(prefill: Int, decode: Int) {
        self.prefill = prefill
        self.decode = decode
    }

    /// Parses `xPyD` ("1P3D", case-insensitive).
    /// - Throws: `WorkloadError` saying what was expected.
    public init(parsing text: String) throws {
        let t = text.uppercased()
        let parts = t.split(separator: "P", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[1].hasSuffix("D"), let p = Int(parts[0]), let d = Int(parts[1].dropLast()), p >= 1, d >= 1, p + d <= 4096 else {
            throw WorkloadError("disaggregation '\(text)': expected xPyD with at least one prefill and one decode replica, e.g. 1P3D")
        }
        self.init(prefill: p, decode: d)
    }

    public var description: String { "\(prefill)P\(decode)D" }

    public var replicas: Int { prefill + decode }

    /// The link KV crosses from a prefill to a decode replica of `tensorParallel` GPUs each,
    /// times the TP degree (each GPU sends its shard): the GPU's interconnect when both pools fit
    /// one node; between nodes `networkGBps` per GPU when given, else the catalogue's network
    /// figure for the GPU (`GPU.network`: its reference system's NICs). All transfers are charged
    /// at the slower link once the pools span nodes.
    /// - Throws: `WorkloadError` when the pools span nodes and no network bandwidth is known.
    public func link(gpu: GPU, tensorParallel: Int, networkGBps: Double?) throws -> KVLink {
        let gpus = replicas * tensorParallel, tp = Double(tensorParallel)
        if let networkGBps {
            return KVLink(kind: "network \(Format.figure(networkGBps)) GB/s per GPU", gbPerSecond: networkGBps * tp)
        }
        if gpus <= Self.gpusPerNode {
            return KVLink(kind: "\(gpu.interconnect.kind) within a node", gbPerSecond: gpu.interconnect.gbPerSecond * tp)
        }
        guard let network = gpu.network else {
            throw WorkloadError("\(description) × TP \(tensorParallel) is \(gpus) GPUs, more than one \(Self.gpusPerNode)-GPU node, and the catalogue has no network figure for \(gpu.name): give the bandwidth between nodes per GPU (--kv-link-gbps, e.g. 50 for 400 Gb/s NICs)")
        }
        return KVLink(kind: "\(network.kind) between nodes", gbPerSecond: network.gbPerSecond * tp)
    }
}
