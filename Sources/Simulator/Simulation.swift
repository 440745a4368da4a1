import Hardware

/// A discrete-event simulation of one serving replica (one GPU, or one TP group).
///
/// Deterministic and single-threaded. Time is integer microseconds. Two kinds of event drive
/// it (`EventQueue`): an arrival (the workload's next request) and the end of an engine step.
/// At each step end the `Scheduler` forms the next batch over the `SchedulerState` (queues and
/// the `BlockManager`), the `LatencyModel` times it, and when the step ends the simulation
/// advances every sequence in it: prefill chunks land, a prompt whose prefill completes emits its
/// first token and, under a compressing policy, is compressed to the policy's budget (whole
/// freed blocks return to the pool; a continual policy then holds it there), decodes add a token,
/// finished requests free their blocks.
///
/// Invariants (tested): used + free blocks = capacity; the clock never goes back;
/// arrival ≤ first token ≤ finish for every request; every request completes or is rejected;
/// the same inputs give the same result.
public struct Simulation {
    public let plan: MemoryPlan
    public let cost: any LatencyModel
    /// The policy at its budget; nil is the full cache.
    public let compression: CompressionSpec?

    private var source: any RequestSource
    private var scheduler: any Scheduler
    private var state: SchedulerState
    private var events = EventQueue()
    private var clock: Int64 = 0
    private var engineBusy = false
    private var metrics = MetricsRecorder()
    private var arrived = 0
    /// Requests a cluster's router handed this replica.
    private var injected = 0
    /// Requests that completed or were rejected.
    private var settled = 0
    /// A request the client holds back until one of its outstanding ones finishes.
    private var clientHeld = false
    /// When the API server's front-end is free for the next request, µs.
    private var frontendFree: Int64 = 0
    private let frontendPerRequest: Double
    private let maxModelLen: Int

    /// What this replica does in disaggregated serving (`ClusterSimulation(prefill:decode:…)`).
    public enum Role: Sendable, Equatable {
        /// Prefill and decode (colocated serving).
        case both
        /// Prefill only: a request ends with its first token and is handed to a decode replica.
        case prefill
        /// Decode only: requests arrive prefilled and their KV comes over `link`.
        case decode(link: KVLink)
    }

    /// Colocated unless a disaggregated cluster says otherwise.
    var role = Role.both {
        didSet { if case let .decode(link) = role { state.kvLink = link } }
    }
    /// Requests a prefill replica has finished and hands over (drained by the cluster).
    var handoffs: [Handoff] = []

    /// The benchmark client's concurrency limit (`vllm bench serve --max-concurrency`, GuideLLM's
    /// concurrent and synchronous profiles): at most this many requests are outstanding, and a
    /// request held back is sent when one finishes, its clock (TTFT, latency) starting then, as
    /// the clients measure it. nil: every request is sent at its arrival time.
    public var clientConcurrency: Int?

    /// Count goodput against these objectives (nil: not counted).
    public var goodputSLO: GoodputSLO? {
        get { metrics.slo }
        set { metrics.slo = newValue }
    }

    /// Keep the batch-size and KV-utilisation time series (default); off, the result's series are empty.
    public var recordsTimeSeries: Bool {
        get { metrics.recordsSeries }
        set { metrics.recordsSeries = newValue }
    }

    /// Builds a simulation of `source` on the memory plan's GPU and model, batched by `scheduler`.
    public init(plan: MemoryPlan, cost: any LatencyModel, compression: CompressionSpec? = nil, scheduler: any Scheduler = VLLMScheduler(),
                source: any RequestSource) {
        self.plan = plan
        self.cost = cost
        self.compression = compression
        self.source = source
        self.scheduler = scheduler
        state = SchedulerState(plan: plan, cost: cost, compression: compression)
        maxModelLen = plan.serving.modelLen(for: plan.model)
        frontendPerRequest = cost.frontendSecondsPerRequest
    }

    /// The block pool as it stands (for tests of its invariant).
    public var blocks: BlockManager { state.blocks }

    /// The prefix cache's books (nil with prefix caching off): blocks running requests hold on
    /// their own, shared prefix blocks they hold, free blocks still holding something, empty
    /// blocks. They add up to the pool's capacity, and the free queue holds `blocks.free`.
    var prefixCacheBlocks: (own: Int, shared: Int, cached: Int, empty: Int, queued: Int)? {
        guard let cache = state.prefixCache else { return nil }
        let own = state.running.reduce(0) { $0 + $1.phb - $1.sharedPHB }
        return (own, cache.sharedBlocks, cache.cachedFree, cache.count - cache.cachedFree, cache.count)
    }

    /// Checks that at least one request of `prompt` + `output` tokens can be served at all.
    /// - Throws: `CapacityError` saying what does not fit and by how much.
    public func checkFits(prompt: Int, output: Int) throws {
        guard prompt + output <= maxModelLen else {
            throw CapacityError("a request of \(prompt) + \(output) tokens exceeds max_model_len \(maxModelLen) of \(plan.model.name)")
        }
        let peak = state.phb(tokens: prompt, kept: prompt)
        guard peak <= plan.phbCapacity else {
            let need = Double(peak) * plan.phbBytes / 1_073_741_824
            let have = plan.kvBytes / 1_073_741_824
            throw CapacityError("one \(prompt)-token prompt needs \(String(format: "%.2f", need)) GiB of KV during prefill, but \(plan.model.name) on \(plan.gpu.name) leaves \(String(format: "%.2f", have)) GiB for the KV cache")
        }
    }

    /// Runs until every request has completed or been rejected.
    public mutating func run() -> SimulationResult {
        // The hot loop, without the tests' observer.
        pullArrival()
        while processNextEvent() {}
        return result()
    }

    /// Runs, handing `observe` the block pool after every event (tests of the block invariant).
    public mutating func run(observing observe: (BlockManager) -> Void) -> SimulationResult {
        runEvents { observe($0.blocks) }
    }

    /// Runs, handing `inspect` the simulation after every event (tests of the prefix cache's books).
    mutating func run(inspecting inspect: (Simulation) -> Void) -> SimulationResult {
        runEvents { inspect($0) }
    }

    private mutating func runEvents(_ observe: (borrowing Simulation) -> Void) -> SimulationResult {
        pullArrival()
        while processNextEvent() { observe(self) }
        return result()
    }

    /// The output tokens `r` can generate: what it asks for, within max_model_len (vLLM stops
    /// generation at it).
    private func outputLimit(_ r: Request) -> Int { min(r.outputTokens, maxModelLen - r.promptTokens) }

    // MARK: Driven by a cluster

    /// When this replica's next event happens (nil: nothing pending).
    var nextEventTime: Int64? { events.nextTime }

    /// Requests routed here that have not completed or been rejected yet.
    var outstanding: Int { injected - settled }

    /// Prompt tokens of `r` this replica's prefix cache holds now (a router's view; 0 without it).
    func cachedTokens(of r: Request) -> Int {
        state.cachedPrefix(of: Sequence(request: r), target: r.promptTokens).tokens
    }

    /// Prefix blocks this replica's cache holds, shared or free (a router's measure of its size).
    var cachedPrefixBlocks: Int { state.prefixCache.map { $0.sharedBlocks + $0.cachedFree } ?? 0 }

    /// Hands this replica a request at its arrival time (a router's choice); its own source is
    /// not read in this mode.
    mutating func inject(_ r: Request) {
        injected += 1
        schedule(r)
    }

    /// Hands this decode replica a prefilled request at the time its prefill finished.
    mutating func inject(_ h: Handoff) {
        events.push(max(h.sequence.lastToken, clock), .handoff(h))
    }

    /// Processes the earliest pending event; false when there is none.
    mutating func processNextEvent() -> Bool {
        guard let event = events.pop() else { return false }
        precondition(event.time >= clock, "the clock went back")
        clock = event.time
        switch event.kind {
        case let .arrival(request):
            admitArrival(request)
            pullArrival()
            if !engineBusy { formStep() }
        case let .handoff(h):
            injected += 1
            if metrics.firstArrival == nil { metrics.firstArrival = h.sequence.request.arrival }
            state.remote.append(h.sequence)
            if !engineBusy { formStep() }
        case .kvLoaded:
            if !engineBusy { formStep() }
        case .stepEnd:
            finishStep()
            formStep()
        }
        return true
    }

    /// The recorder of a run whose events are all processed (a cluster merges them).
    var recorder: MetricsRecorder {
        var m = metrics
        m.preemptions = state.preemptions
        m.compressions = state.compressions
        m.rejected += state.rejected
        m.transferredBytes = state.transferredBytes
        m.transfers = state.transfers
        if state.prefixCache != nil { m.prefix = PrefixCacheStats(promptTokens: state.prefixQueried, hitTokens: state.prefixHits) }
        return m
    }

    /// The result once every event is processed.
    func result() -> SimulationResult {
        // fatalError, not precondition: its message survives -O, and names what was left.
        if !(state.running.isEmpty && state.waiting.isEmpty && state.remote.isEmpty) {
            fatalError("requests left behind: \(state.running.count) running, \(state.waiting.count) waiting, \(state.blocks.free) of \(state.blocks.capacity) blocks free")
        }
        precondition(state.blocks.free == plan.phbCapacity, "blocks leaked")
        return SimulationResult(recorder, requests: arrived)
    }

    // MARK: Events

    private mutating func pullArrival() {
        if let limit = clientConcurrency, arrived - settled >= limit {
            clientHeld = true
            return
        }
        clientHeld = false
        guard var r = source.next() else { return }
        if clientConcurrency != nil { r.arrival = max(r.arrival, clock) }
        schedule(r)
    }

    /// Puts request `r`'s arrival at the engine in the queue: the front-end takes requests one at
    /// a time, and the engine sees each when it is done with it.
    private mutating func schedule(_ r: Request) {
        var ready = max(r.arrival, clock)
        if frontendPerRequest > 0 {
            frontendFree = max(ready, frontendFree) + Int64((frontendPerRequest * 1e6).rounded())
            ready = frontendFree
        }
        events.push(ready, .arrival(r))
    }

    /// A request completed or was rejected: a client holding one back sends it now.
    private mutating func settle() {
        settled += 1
        if clientHeld { pullArrival() }
    }

    private mutating func admitArrival(_ r: Request) {
        arrived += 1
        if metrics.firstArrival == nil { metrics.firstArrival = r.arrival }
        // vLLM rejects a prompt longer than max_model_len and stops generation at it; a prompt
        // whose blocks exceed the whole pool can never run and is dropped with a warning.
        guard r.promptTokens < maxModelLen, state.blocks.couldEverHold(state.phb(tokens: r.promptTokens, kept: r.promptTokens)) else {
            metrics.rejected += 1
            settle()
            return
        }
        var s = Sequence(request: r)
        s.outputTarget = role == .prefill ? 1 : outputLimit(r)
        state.waiting.append(s)
    }

    private mutating func formStep() {
        let rejectedBefore = state.rejected
        state.now = clock
        let work = scheduler.formBatch(&state)
        for _ in rejectedBefore..<state.rejected { settle() }
        for t in state.kvArrivals { events.push(t, .kvLoaded) }
        state.kvArrivals.removeAll(keepingCapacity: true)
        guard work.prefillTokens + work.decodeSequences > 0 else {
            engineBusy = false
            return
        }
        let dt = max(1, Int64((cost.stepTime(work).total * 1e6).rounded()))
        engineBusy = true
        metrics.step(start: clock, end: clock + dt, batchSize: work.decodeSequences + work.prefillSequences,
                     kvUtilisation: state.blocks.utilisation)
        events.push(clock + dt, .stepEnd)
    }

    // MARK: Step completion

    private mutating func finishStep() {
        let now = clock, blockSize = plan.serving.blockSize
        var pendingGap: Int64 = -1, pendingCount: UInt64 = 0, prefillPass = false
        defer { if pendingCount > 0 { metrics.token(gap: pendingGap, count: pendingCount) } }
        var i = 0
        while i < state.running.count {
            var done = false
            if state.running[i].chunk > 0 {
                var s = state.running[i]
                s.prefilled += s.chunk
                s.tokens = s.prefilled
                s.kept = s.prefilled
                s.chunk = 0
                state.publishPrefix(&s)
                if s.prefilled == s.prefillTarget {
                    if s.firstToken < 0 { s.firstToken = now }
                    s.lastToken = now
                    s.generated += 1
                    if let compression, compression.compressesOnPressure, role != .prefill {
                        // Compressed by the pass after this step, with the others (the cap decides).
                        prefillPass = true
                    } else if let compression {
                        let kept = compression.kept(prompt: s.tokens, blockSize: blockSize)
                        if kept < s.kept { state.compressions += 1 }
                        state.compress(&s, kept: kept)
                        if compression.holdsDuringDecode { s.cap = kept }
                    }
                    done = s.generated >= s.outputTarget
                }
                state.running[i] = s
            } else if state.running[i].decoding {
                state.running[i].decoding = false
                state.running[i].tokens += 1
                state.running[i].kept = state.running[i].keptAfterDecode
                state.running[i].generated += 1
                if state.running[i].lastToken >= 0 {
                    // Sequences that decoded in the same steps share a gap: record runs of it at once.
                    let gap = now - state.running[i].lastToken
                    if gap == pendingGap { pendingCount += 1 } else {
                        if pendingCount > 0 { metrics.token(gap: pendingGap, count: pendingCount) }
                        pendingGap = gap
                        pendingCount = 1
                    }
                }
                state.running[i].lastToken = now
                done = state.running[i].generated >= state.running[i].outputTarget
            }
            if done {
                var s = state.running.remove(at: i)
                let handed = role == .prefill && outputLimit(s.request) > 1
                if handed {
                    handoffs.append(Handoff(prefilled: s, outputTarget: outputLimit(s.request)))
                    metrics.lastFinish = max(metrics.lastFinish, now)
                }
                state.releaseAll(&s)
                if !handed {
                    metrics.finish(arrival: s.request.arrival, firstToken: s.firstToken, end: now,
                                   prompt: s.request.promptTokens, output: s.generated)
                }
                settle()
            } else {
                i += 1
            }
        }
        if prefillPass { _ = state.compressionPass() }
    }
}
