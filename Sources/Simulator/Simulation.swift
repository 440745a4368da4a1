import DequeModule
import Hardware
import HeapModule
import Policies

/// A discrete-event simulation of one vLLM-style serving replica (one GPU, or one TP group).
///
/// Deterministic and single-threaded. Time is integer microseconds. Two kinds of event drive
/// it through a `Heap`: an arrival (the workload's next request) and the end of an engine step.
/// At each step end the scheduler forms the next batch the way vLLM's does:
///
/// - **Without chunked prefill** (vLLM 0.6 default): if waiting requests can be admitted (FCFS,
///   within `max_num_seqs`, the step token budget and the free blocks, keeping a 1 % watermark),
///   the step prefills them alone; otherwise every running sequence decodes one token.
/// - **With chunked prefill**: running decodes first (one token each), then the running
///   prefills' next chunks, then new admissions, all within `max_num_batched_tokens`.
///
/// A request's blocks for its whole prompt are allocated when it is admitted (the peak KV during
/// prefill). When its prefill completes it emits its first token and, under a compressing
/// policy, is compressed to the policy's budget: whole freed blocks return to the pool, and the
/// scoring and compaction time is added to that step. During decode a sequence needs a new block
/// each time its kept tokens cross a block boundary; continual policies (StreamingLLM, H2O) hold
/// the cache at the budget; KV-Compress compresses running sequences again when a block is
/// missing, before the scheduler preempts. Preemption is vLLM's recompute: the latest-admitted
/// running sequence frees all its blocks and goes back to the front of the queue, to prefill its
/// prompt and the tokens it had generated again.
///
/// Invariants (tested): used + free blocks = capacity; the clock never goes back;
/// arrival ≤ first token ≤ finish for every request; every request completes or is rejected;
/// the same inputs give the same result.
public struct Simulation {
    public let plan: MemoryPlan
    public let cost: CostModel
    /// The policy at its budget; nil is the full cache.
    public let compression: CompressionSpec?

    private var source: any RequestSource
    private var events = Heap<Event>()
    private var eventCounter: UInt64 = 0
    private var clock: Int64 = 0
    private var waiting = Deque<Sequence>()
    private var running = ContiguousArray<Sequence>()
    private var freePHB: Int
    private var engineBusy = false
    private var stepStart: Int64 = 0
    private var metrics = MetricsRecorder()
    private var arrived = 0
    private let maxModelLen: Int
    private let tokenBudget: Int
    private let watermark: Int
    private let blocks: FootprintFunction

    /// Keep the batch-size and KV-utilisation time series (default); off, the result's series are empty.
    public var recordsTimeSeries: Bool {
        get { metrics.recordsSeries }
        set { metrics.recordsSeries = newValue }
    }

    /// Builds a simulation of `source` on the memory plan's GPU and model.
    public init(plan: MemoryPlan, cost: CostModel, compression: CompressionSpec? = nil, source: any RequestSource) {
        self.plan = plan
        self.cost = cost
        self.compression = compression
        self.source = source
        freePHB = plan.phbCapacity
        maxModelLen = plan.serving.modelLen(for: plan.model)
        tokenBudget = plan.serving.batchedTokens(for: plan.model)
        watermark = plan.phbCapacity / 100
        blocks = FootprintFunction(compression?.footprint ?? NominalFootprint(layout: .perSequence), plan: plan)
    }

    /// PHBs a sequence of `tokens` tokens keeping `kept` holds.
    @inline(__always)
    private func footprint(tokens: Int, kept: Int) -> Int {
        blocks.phb(tokens: tokens, kept: kept)
    }

    /// Checks that at least one request of `prompt` + `output` tokens can be served at all.
    /// - Throws: `CapacityError` saying what does not fit and by how much.
    public func checkFits(prompt: Int, output: Int) throws {
        guard prompt + output <= maxModelLen else {
            throw CapacityError("a request of \(prompt) + \(output) tokens exceeds max_model_len \(maxModelLen) of \(plan.model.name)")
        }
        let peak = footprint(tokens: prompt, kept: prompt)
        guard peak <= plan.phbCapacity else {
            let need = Double(peak) * plan.phbBytes / 1_073_741_824
            let have = plan.kvBytes / 1_073_741_824
            throw CapacityError("one \(prompt)-token prompt needs \(String(format: "%.2f", need)) GiB of KV during prefill, but \(plan.model.name) on \(plan.gpu.name) leaves \(String(format: "%.2f", have)) GiB for the KV cache")
        }
    }

    /// Runs until every request has completed or been rejected.
    public mutating func run() -> SimulationResult {
        pullArrival()
        while let event = events.popMin() {
            precondition(event.time >= clock, "the clock went back")
            clock = event.time
            switch event.kind {
            case let .arrival(request):
                admitArrival(request)
                pullArrival()
                if !engineBusy { formStep() }
            case .stepEnd:
                finishStep()
                formStep()
            }
        }
        precondition(running.isEmpty && waiting.isEmpty, "requests left behind")
        precondition(freePHB == plan.phbCapacity, "blocks leaked")
        return SimulationResult(metrics, requests: arrived)
    }

    // MARK: Events

    private mutating func push(_ time: Int64, _ kind: Event.Kind) {
        eventCounter += 1
        events.insert(Event(time: time, seq: eventCounter, kind: kind))
    }

    private mutating func pullArrival() {
        if let r = source.next() { push(max(r.arrival, clock), .arrival(r)) }
    }

    private mutating func admitArrival(_ r: Request) {
        arrived += 1
        if metrics.firstArrival == nil { metrics.firstArrival = r.arrival }
        // vLLM rejects a prompt longer than max_model_len and stops generation at it; a prompt
        // whose blocks exceed the whole pool can never run and is dropped with a warning.
        guard r.promptTokens < maxModelLen, footprint(tokens: r.promptTokens, kept: r.promptTokens) <= plan.phbCapacity else {
            metrics.rejected += 1
            return
        }
        var s = Sequence(request: r)
        s.outputTarget = min(r.outputTokens, maxModelLen - r.promptTokens)
        waiting.append(s)
    }

    // MARK: Scheduling

    private mutating func formStep() {
        var work = StepWork()
        if plan.serving.chunkedPrefill {
            scheduleDecodes(&work)
            scheduleChunks(&work)
        } else {
            scheduleChunks(&work)
            if work.prefillTokens == 0 { scheduleDecodes(&work) }
        }
        let tokens = work.prefillTokens + work.decodeSequences
        guard tokens > 0 else {
            engineBusy = false
            return
        }
        let dt = max(1, Int64((cost.stepTime(work).total * 1e6).rounded()))
        engineBusy = true
        stepStart = clock
        metrics.step(start: clock, end: clock + dt, batchSize: work.decodeSequences + work.prefillSequences,
                     kvUtilisation: Double(plan.phbCapacity - freePHB) / Double(plan.phbCapacity))
        push(clock + dt, .stepEnd)
    }

    /// Marks every running sequence past its prefill to decode one token, allocating the block
    /// it needs; frees blocks by compression or preemption when none is free.
    private mutating func scheduleDecodes(_ work: inout StepWork) {
        var i = 0
        let window = plan.model.slidingWindow ?? Int.max
        let g = Double(plan.model.globalLayers), l = Double(plan.model.localLayers)
        while i < running.count {
            if running[i].prefilling {
                i += 1
                continue
            }
            let nextKept = keptAfterDecode(running[i])
            let need = footprint(tokens: running[i].tokens + 1, kept: nextKept) - running[i].phb
            if need > freePHB {
                if compression?.compressesOnPressure == true, compressRunningForPressure(), need <= freePHB {
                    continue // retry this sequence with the freed blocks
                }
                // Preempt the most recently admitted running sequence (possibly this one).
                let victim = running.count - 1
                preempt(victim)
                if victim == i { break }
                continue
            }
            freePHB -= max(0, need)
            running[i].phb += max(0, need)
            running[i].decoding = true
            work.decodeSequences += 1
            work.logitRows += 1
            let kept = Double(running[i].kept), tokens = running[i].tokens
            work.decodeTokenLayers += g * kept + l * Double(min(tokens, window))
            i += 1
        }
    }

    /// Continues running prefills and admits waiting requests, within the step's token budget.
    private mutating func scheduleChunks(_ work: inout StepWork) {
        var budget = tokenBudget - work.decodeSequences
        let window = Double(plan.model.slidingWindow ?? Int.max)
        let spec = compression, cost = self.cost, blockSize = plan.serving.blockSize
        func addChunk(_ s: inout Sequence, _ chunk: Int, _ work: inout StepWork) {
            let before = Double(s.prefilled), c = Double(chunk)
            work.prefillTokens += chunk
            work.prefillSequences += 1
            work.prefillAttentionArea += c * (before + c / 2)
            work.prefillLocalArea += c * min(before + c / 2, window)
            s.chunk = chunk
            budget -= chunk
            if s.prefilled + chunk == s.prefillTarget {
                work.logitRows += 1
                if let spec {
                    let kept = spec.kept(prompt: s.prefillTarget, blockSize: blockSize)
                    work.compressionSeconds += spec.compressionSeconds(prompt: s.prefillTarget, kept: kept, cost: cost)
                }
            }
        }
        if plan.serving.chunkedPrefill {
            for i in running.indices where running[i].prefilling && budget > 0 {
                addChunk(&running[i], min(budget, running[i].prefillTarget - running[i].prefilled), &work)
            }
        }
        while budget > 0, let head = waiting.first, running.count < plan.serving.maxNumSeqs {
            let target = head.request.promptTokens + head.generated
            let chunk = plan.serving.chunkedPrefill ? min(budget, target) : target
            // Without chunked prefill the whole prompt must fit the step's budget.
            if !plan.serving.chunkedPrefill, target > budget { break }
            let blocks = footprint(tokens: target, kept: target)
            guard blocks <= freePHB - watermark || (running.isEmpty && blocks <= freePHB) else { break }
            var s = waiting.removeFirst()
            s.prefillTarget = target
            s.prefilled = 0
            s.phb = blocks
            freePHB -= blocks
            addChunk(&s, chunk, &work)
            running.append(s)
        }
    }

    /// Kept tokens after one more decode step: continual policies hold the cache at their cap.
    private func keptAfterDecode(_ s: Sequence) -> Int {
        min(s.kept + 1, s.cap)
    }

    /// KV-Compress under memory pressure: every decoding sequence above its budget is
    /// compressed back to it. Returns whether anything was freed.
    private mutating func compressRunningForPressure() -> Bool {
        var freed = false
        for i in running.indices where !running[i].prefilling {
            let target = compression.kept(prompt: running[i].tokens, blockSize: plan.serving.blockSize)
            guard running[i].kept > target else { continue }
            let blocks = footprint(tokens: running[i].tokens, kept: target)
            if blocks < running[i].phb {
                freePHB += running[i].phb - blocks
                running[i].phb = blocks
                running[i].kept = target
                metrics.compressions += 1
                freed = true
            }
        }
        return freed
    }

    private mutating func preempt(_ index: Int) {
        var s = running.remove(at: index)
        freePHB += s.phb
        s.phb = 0
        s.kept = 0
        s.tokens = 0
        s.prefilled = 0
        s.chunk = 0
        s.decoding = false
        s.prefillTarget = 0
        s.cap = Int.max
        metrics.preemptions += 1
        waiting.prepend(s)
    }

    // MARK: Step completion

    private mutating func finishStep() {
        let now = clock
        var i = 0
        while i < running.count {
            var done = false
            if running[i].chunk > 0 {
                running[i].prefilled += running[i].chunk
                running[i].tokens = running[i].prefilled
                running[i].kept = running[i].prefilled
                running[i].chunk = 0
                if running[i].prefilled == running[i].prefillTarget {
                    if running[i].firstToken < 0 { running[i].firstToken = now }
                    running[i].generated += 1
                    if let compression {
                        let kept = compression.kept(prompt: running[i].tokens, blockSize: plan.serving.blockSize)
                        let blocks = footprint(tokens: running[i].tokens, kept: kept)
                        if kept < running[i].kept { metrics.compressions += 1 }
                        freePHB += running[i].phb - blocks
                        running[i].phb = blocks
                        running[i].kept = kept
                        if compression.holdsDuringDecode { running[i].cap = kept }
                    }
                    done = running[i].generated >= running[i].outputTarget
                }
            } else if running[i].decoding {
                running[i].decoding = false
                running[i].tokens += 1
                running[i].kept = keptAfterDecode(running[i])
                running[i].generated += 1
                done = running[i].generated >= running[i].outputTarget
            }
            if done {
                let s = running.remove(at: i)
                freePHB += s.phb
                metrics.finish(arrival: s.request.arrival, firstToken: s.firstToken, end: now,
                               prompt: s.request.promptTokens, output: s.generated)
            } else {
                i += 1
            }
        }
    }
}

/// A request inside the engine.
struct Sequence {
    var request: Request
    var outputTarget: Int = 0
    /// Tokens whose KV exists (prompt prefilled so far, then + generated).
    var tokens = 0
    /// Tokens kept per global layer and KV head.
    var kept = 0
    /// Per-head blocks held.
    var phb = 0
    var prefilled = 0
    var prefillTarget = 0
    /// Prefill tokens scheduled in the current step.
    var chunk = 0
    /// Decoding one token in the current step.
    var decoding = false
    var generated = 0
    var firstToken: Int64 = -1
    /// The most tokens a continual policy keeps (its budget for this prompt); unbounded otherwise.
    var cap = Int.max

    init(request: Request) { self.request = request }

    var prefilling: Bool { prefillTarget == 0 || prefilled < prefillTarget }
}

/// An event: `(time, priority, seq)` orders the heap; arrivals before step ends at the same
/// instant, then creation order.
struct Event: Comparable {
    enum Kind {
        case arrival(Request)
        case stepEnd

        var priority: Int {
            switch self {
            case .arrival: 0
            case .stepEnd: 1
            }
        }
    }

    var time: Int64
    var seq: UInt64
    var kind: Kind

    static func < (a: Event, b: Event) -> Bool {
        (a.time, a.kind.priority, a.seq) < (b.time, b.kind.priority, b.seq)
    }

    static func == (a: Event, b: Event) -> Bool { a.time == b.time && a.seq == b.seq }
}
