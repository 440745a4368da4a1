import DequeModule
import Hardware
import Policies

/// What a scheduler sees and changes when it forms a step: the queues, the block pool, the
/// footprint of the policy in force and the replica's limits. The simulation owns it; it passes
/// it to the scheduler once per step and, after the step, advances the sequences it holds.
public struct SchedulerState {
    var waiting = Deque<Sequence>()
    var running = ContiguousArray<Sequence>()
    public internal(set) var blocks: BlockManager {
        didSet { if prefixCache != nil, !cacheSynced { syncPrefixCache(from: oldValue.free) } }
    }
    /// vLLM V1's prefix cache: the free blocks in reuse order, with the prefixes they still hold,
    /// and the prefix blocks running requests share (prefix caching on, and a cache whose blocks
    /// stay prefixes: `PolicyKind.keepsPrefixBlocks`); nil otherwise.
    var prefixCache: PrefixCache?
    /// Set while a change of `blocks` has been applied to `prefixCache` by hand.
    private var cacheSynced = false
    /// The policy at its budget; nil is the full cache.
    public let compression: CompressionSpec?
    public let serving: ServingConfig
    public let model: ModelSpec
    let footprint: FootprintFunction
    let cost: any LatencyModel
    /// The step's token budget (`max_num_batched_tokens` in force).
    public let tokenBudget: Int
    /// Whether the policy updates eviction metrics at every decode step (resolved once).
    let tracksDecodeMetrics: Bool
    /// The kernel decodes attend with (`PolicyKind.decodeAttention`; resolved once).
    let decodeKernel: DecodeAttention
    public internal(set) var preemptions = 0
    public internal(set) var compressions = 0
    /// Compression passes run so far (the clock of vllm-kvcompress's pass order).
    var compressionPasses = 0
    /// Requests dropped because they can never be served (counted by the simulation's metrics).
    public internal(set) var rejected = 0
    /// Prompt tokens of first admissions, and those of them found in the prefix cache.
    var prefixQueried = 0, prefixHits = 0
    /// The prefix blocks each running request shares, by request id, from its prompt's first.
    var sharing: [Int: [SharedBlock]] = [:]
    /// The simulated time of the step being formed, µs.
    var now: Int64 = 0
    /// A decode replica's link its KV arrives over (nil: colocated or prefill).
    var kvLink: KVLink?
    /// Prefilled requests handed to this decode replica, waiting for blocks (FCFS).
    var remote = Deque<Sequence>()
    /// When the KV of sequences admitted from `remote` in this step will have arrived (the
    /// simulation wakes the engine then).
    var kvArrivals: [Int64] = []
    /// KV bytes received over `kvLink`, and transfers.
    public internal(set) var transferredBytes = 0.0
    public internal(set) var transfers = 0
    let phbBytes: Double

    init(plan: MemoryPlan, cost: any LatencyModel, compression: CompressionSpec?) {
        blocks = BlockManager(capacity: plan.phbCapacity)
        phbBytes = plan.phbBytes
        self.compression = compression
        serving = plan.serving
        model = plan.model
        footprint = FootprintFunction(compression.footprint, plan: plan)
        self.cost = cost
        tokenBudget = plan.serving.batchedTokens(for: plan.model)
        tracksDecodeMetrics = compression?.policy.scoring.decodeMetrics ?? false
        decodeKernel = compression?.policy.decodeAttention ?? .engine
        if plan.serving.prefixCaching, compression?.policy.keepsPrefixBlocks ?? true { prefixCache = PrefixCache(free: plan.phbCapacity) }
    }

    /// Follows an allocation (from the front) or a release (to the back) in the free queue.
    private mutating func syncPrefixCache(from oldFree: Int) {
        let d = blocks.free - oldFree
        if d < 0 { prefixCache!.take(-d) } else if d > 0 { prefixCache!.append(d) }
    }

    /// Changes `blocks` without the free queue following (the caller updates it).
    private mutating func unsynced(_ change: (inout BlockManager) -> Void) {
        cacheSynced = true
        change(&blocks)
        cacheSynced = false
    }

    /// What an admission of `s` finds in the prefix cache: its computed tokens, their blocks, and
    /// of those the blocks that sit in the free queue (the rest are held by running requests).
    struct CachedPrefix: Equatable {
        var tokens = 0, blocks = 0, fromFree = 0
        /// Prefix blocks (hashes) found, from the prompt's first.
        var hashes = 0
    }

    /// The prefix of `s` an admission to compute `target` tokens finds cached: whole blocks, and
    /// never the last token, which is computed again for its logits (`get_computed_blocks`). A
    /// request with prefix hashes finds its leading prefix blocks that are cached (its own from
    /// before a preemption, or another request's); one without finds what is left of its own
    /// computed blocks from before a preemption.
    func cachedPrefix(of s: Sequence, target: Int) -> CachedPrefix {
        guard let cache = prefixCache else { return CachedPrefix() }
        let r = s.request
        if !r.blockHashes.isEmpty {
            var found = CachedPrefix()
            let limit = min(r.fullPrefixBlocks, (target - 1) / r.hashBlockTokens)
            while found.hashes < limit, let hit = cache.lookup(r.blockHashes[found.hashes]) {
                found.hashes += 1
                found.blocks += hit.blocks
                if hit.free { found.fromFree += hit.blocks }
            }
            found.tokens = found.hashes * r.hashBlockTokens
            return found
        }
        guard s.cachedPrefix else { return CachedPrefix() }
        let bs = serving.blockSize, perBlock = phb(tokens: bs, kept: bs)
        let tokens = min(cache.cached(id: r.id) / perBlock * bs, (target - 1) / bs * bs)
        guard tokens > 0 else { return CachedPrefix() }
        let b = phb(tokens: tokens, kept: tokens)
        return CachedPrefix(tokens: tokens, blocks: b, fromFree: b)
    }

    /// PHBs a sequence of `tokens` tokens keeping `kept` holds.
    @inline(__always)
    func phb(tokens: Int, kept: Int) -> Int { footprint.phb(tokens: tokens, kept: kept) }

    /// Frees every block `s` holds: its shared prefix blocks go back to the cache (to the free
    /// queue when no other request holds them), last block first, after its own blocks.
    mutating func releaseAll(_ s: inout Sequence) {
        blocks.release(s.phb - s.sharedPHB)
        s.phb = s.sharedPHB
        releaseShared(&s)
    }

    /// Lets go of the shared prefix blocks of `s` whose index `drop` picks, last first: they leave
    /// its footprint, and join the free queue when no other request holds them.
    mutating func releaseShared(_ s: inout Sequence, where drop: (Int) -> Bool = { _ in true }) {
        guard s.sharedPHB > 0, var held = sharing.removeValue(forKey: s.request.id) else { return }
        for j in held.indices.reversed() where drop(j) {
            let block = held.remove(at: j)
            let freed = prefixCache!.release(block.hash)
            unsynced { $0.release(freed) }
            s.sharedPHB -= block.blocks
            s.phb -= block.blocks
        }
        if !held.isEmpty { sharing[s.request.id] = held }
    }

    /// Compresses `s` to `kept` tokens in place, freeing the blocks it no longer needs. A policy
    /// whose cache stays a prefix (`PolicyKind.keepsPrefixBlocks`: StreamingLLM's sinks and latest
    /// tokens) keeps sharing the prefix blocks that hold its latest `kept` tokens and lets go of
    /// the older ones (the sinks are counted with its own blocks).
    mutating func compress(_ s: inout Sequence, kept: Int) {
        var held = phb(tokens: s.tokens, kept: kept)
        if s.sharedPHB > 0 {
            let h = s.request.hashBlockTokens, windowStart = s.tokens - kept
            releaseShared(&s) { ($0 + 1) * h <= windowStart }
            held = max(held, s.sharedPHB)
        }
        let own = max(0, s.phb - held)
        blocks.release(own)
        s.phb -= own
        s.kept = kept
    }

    /// Publishes the prefix blocks `s` has computed since the last call (its prompt's full hashed
    /// blocks); one another request computed meanwhile stays `s`'s own.
    mutating func publishPrefix(_ s: inout Sequence) {
        guard prefixCache != nil, !s.request.blockHashes.isEmpty else { return }
        let r = s.request, full = min(r.fullPrefixBlocks, s.prefilled / r.hashBlockTokens)
        while s.hashesSeen < full {
            let j = s.hashesSeen, hash = r.blockHashes[j]
            s.hashesSeen += 1
            // Only a run from the prompt's first block is shared (what a later prompt can match).
            guard !prefixCache!.contains(hash), sharing[r.id, default: []].count == j else { continue }
            let h = r.hashBlockTokens
            let b = phb(tokens: (j + 1) * h, kept: (j + 1) * h) - phb(tokens: j * h, kept: j * h)
            prefixCache!.publish(hash, blocks: b)
            sharing[r.id, default: []].append(SharedBlock(hash: hash, blocks: b))
            s.sharedPHB += b
        }
    }

    /// Returns the running sequence at `index` to the front of the queue, freeing all its blocks
    /// (vLLM's recompute preemption: it will prefill its prompt and generated tokens again).
    mutating func preempt(_ index: Int) {
        var s = running.remove(at: index)
        if prefixCache != nil, s.request.blockHashes.isEmpty, compression == nil {
            // Its computed full blocks stay cached until allocations reach them.
            let bs = serving.blockSize, full = (s.prefilling ? s.prefilled : s.tokens) / bs * bs
            let prefix = min(s.phb, full > 0 ? phb(tokens: full, kept: full) : 0)
            unsynced { $0.release(s.phb) }
            prefixCache!.appendPreempted(id: s.request.id, prefix: prefix, tail: s.phb - prefix)
            s.cachedPrefix = prefix > 0
        } else {
            releaseAll(&s)
        }
        s.resetForRecompute()
        preemptions += 1
        waiting.prepend(s)
    }

    /// One compression pass of a continual policy with the on-pressure trigger (after every step
    /// that finished a prefill, and when blocks run out): decoding sequences above their budget are
    /// compressed back to it, in vllm-kvcompress's order (`CompressionScheduler._schedule_compression`
    /// in vllm/kvcompress/scheduler.py): most passes since the sequence was last compressed
    /// first (one never compressed counts 0), newest request first among equals. With
    /// `CompressionSpec.maxKVPerPass` the pass stops before the sequence whose whole current
    /// cache (per-head blocks × block size) would take the pass's total over the cap; the rest
    /// wait for a later pass. Returns whether any block was freed.
    mutating func compressionPass() -> Bool {
        guard let compression else { return false }
        compressionPasses += 1
        var candidates: [(key: Int, id: Int, index: Int, target: Int)] = []
        for i in running.indices where !running[i].prefilling {
            let target = compression.kept(prompt: running[i].tokens, blockSize: serving.blockSize)
            guard running[i].kept > target else { continue }
            let since = running[i].lastCompressionPass.map { compressionPasses - $0 } ?? 0
            candidates.append((since, running[i].request.id, i, target))
        }
        if compression.maxKVPerPass != nil {
            candidates.sort { ($0.key, $0.id) > ($1.key, $1.id) }
        }
        var freed = false, passKVs = 0
        for c in candidates {
            let i = c.index
            if let cap = compression.maxKVPerPass {
                passKVs += running[i].phb * serving.blockSize
                if passKVs > cap { break }
            }
            let held = phb(tokens: running[i].tokens, kept: c.target)
            running[i].lastCompressionPass = compressionPasses
            if held < running[i].phb {
                var s = running[i]
                compress(&s, kept: c.target)
                running[i] = s
                compressions += 1
                freed = true
            }
        }
        return freed
    }
}

/// A serving engine's batching rule: given the state after the last step, it decides the next
/// step's batch — admissions, prefill chunks, decodes, preemptions — allocating through the
/// state's block manager, and describes the work for the latency model. An empty `StepWork`
/// leaves the engine idle until the next arrival.
public protocol Scheduler {
    mutating func formBatch(_ state: inout SchedulerState) -> StepWork
}

/// vLLM's scheduler (0.6 – V1 semantics as ckv-sim models them):
///
/// - **Without chunked prefill** (vLLM 0.6 default): if waiting requests can be admitted (FCFS,
///   within `max_num_seqs`, the step token budget and the free blocks, keeping a 1 % watermark),
///   the step prefills them alone; otherwise every running sequence decodes one token.
/// - **With chunked prefill**: running decodes first (one token each), then the running
///   prefills' next chunks, then new admissions, all within `max_num_batched_tokens`.
///
/// A request's blocks for its whole prompt are allocated when it is admitted (the peak KV during
/// prefill). During decode a sequence needs a new block each time its kept tokens cross a block
/// boundary; a continual policy holds the cache at its budget, or (on-pressure trigger)
/// compresses running sequences again when a block is missing, before the scheduler preempts.
/// Preemption is recompute: the latest-admitted running sequence frees all its blocks. A request
/// that could not fit even in the empty pool is dropped (vLLM's `AllocStatus.NEVER`).
public struct VLLMScheduler: Scheduler {
    public init() {}

    public mutating func formBatch(_ state: inout SchedulerState) -> StepWork {
        var work = StepWork()
        if state.serving.chunkedPrefill {
            scheduleDecodes(&state, &work)
            scheduleChunks(&state, &work)
        } else {
            scheduleChunks(&state, &work)
            if work.prefillTokens == 0 { scheduleDecodes(&state, &work) }
            // Decodes that preempted every running sequence leave an empty step: admit instead
            // (vLLM schedules again on its next iteration; an empty step here would idle forever).
            if work.prefillTokens + work.decodeSequences == 0, !state.waiting.isEmpty { scheduleChunks(&state, &work) }
        }
        return work
    }

    /// Marks every running sequence past its prefill to decode one token, allocating the block
    /// it needs; frees blocks by compression or preemption when none is free.
    func scheduleDecodes(_ state: inout SchedulerState, _ work: inout StepWork) {
        var i = 0
        let onPressure = state.compression?.compressesOnPressure == true
        while i < state.running.count {
            if state.running[i].prefilling {
                i += 1
                continue
            }
            let need = state.decodeNeed(i)
            if !state.blocks.canAllocate(need) {
                if onPressure, state.compressionPass(), state.blocks.canAllocate(state.decodeNeed(i)) {
                    continue // retry this sequence with the freed blocks
                }
                // Preempt the most recently admitted running sequence (possibly this one).
                let victim = state.running.count - 1
                state.preempt(victim)
                if victim == i { break }
                continue
            }
            state.blocks.allocate(need)
            state.running[i].phb += need
            state.addDecode(i, &work)
            i += 1
        }
    }

    /// Continues running prefills and admits waiting requests, within the step's token budget.
    private func scheduleChunks(_ state: inout SchedulerState, _ work: inout StepWork) {
        var budget = state.tokenBudget - work.decodeSequences
        let chunked = state.serving.chunkedPrefill
        if chunked {
            for i in state.running.indices where state.running[i].prefilling && budget > 0 {
                var s = state.running[i]
                let chunk = min(budget, s.prefillTarget - s.prefilled)
                state.addChunk(&s, chunk, &work)
                state.running[i] = s
                budget -= chunk
            }
        }
        while budget > 0, let head = state.waiting.first, state.running.count < state.serving.maxNumSeqs {
            let target = head.request.promptTokens + head.generated
            let chunk = chunked ? min(budget, target) : target
            // Without chunked prefill the whole prompt must fit the step's budget.
            if !chunked, target > budget { break }
            let blocks = state.phb(tokens: target, kept: target)
            guard state.blocks.canAdmit(blocks, nothingRunning: state.running.isEmpty) else {
                if state.running.isEmpty, !state.blocks.couldEverHold(blocks) {
                    state.rejectHead()
                    continue
                }
                break
            }
            state.admitHead(target: target, blocks: blocks, chunk: chunk, &work)
            budget -= chunk
        }
    }
}

extension SchedulerState {
    /// Moves the head of the waiting queue into the running batch: its prefill of `target`
    /// tokens starts with `chunk` of them in this step, holding `blocks` PHBs for them (allocated
    /// here). `cached` is the prefix it finds in the prefix cache (`cachedPrefix`), computed
    /// already, whose blocks it takes back first. A first admission counts its prompt tokens and
    /// its cached ones for the cache's hit rate.
    mutating func admitHead(target: Int, blocks: Int, chunk: Int, cached: CachedPrefix = CachedPrefix(), _ work: inout StepWork) {
        var s = waiting.removeFirst()
        let r = s.request
        if prefixCache != nil, !s.admitted {
            prefixQueried += r.promptTokens
            prefixHits += cached.tokens
        }
        s.admitted = true
        if cached.hashes > 0 {
            for j in 0..<cached.hashes {
                let hash = r.blockHashes[j], taken = prefixCache!.acquire(hash)
                unsynced { $0.allocate(taken) }
                sharing[r.id, default: []].append(SharedBlock(hash: hash, blocks: prefixCache!.lookup(hash)!.blocks))
            }
            s.sharedPHB = cached.blocks
            s.hashesSeen = cached.hashes
        } else if s.cachedPrefix {
            prefixCache?.claim(id: r.id, used: cached.blocks)
            unsynced { $0.allocate(cached.blocks) }
        }
        s.cachedPrefix = false
        s.prefillTarget = target
        s.prefilled = cached.tokens
        s.phb = cached.blocks + blocks
        self.blocks.allocate(blocks)
        addChunk(&s, chunk, &work)
        running.append(s)
    }

    /// Admits prefilled requests handed over by prefill replicas, first come first served, while
    /// their blocks are free and fewer than `max_num_seqs` run (vLLM V1 allocates a remote-KV
    /// request's blocks before it pulls the KV, `WAITING_FOR_REMOTE_KVS`): each holds the blocks
    /// of its kept cache at once and decodes when the KV has come over the link, its bytes ÷ the
    /// link's bandwidth later.
    mutating func admitRemote() {
        guard let link = kvLink else { return }
        while var s = remote.first, running.count < serving.maxNumSeqs {
            let need = phb(tokens: s.tokens, kept: s.kept)
            guard blocks.canAllocate(need) else {
                if running.isEmpty, !blocks.couldEverHold(need) {
                    remote.removeFirst()
                    rejected += 1
                    continue
                }
                break
            }
            remote.removeFirst()
            blocks.allocate(need)
            s.phb = need
            let bytes = Double(need) * phbBytes
            s.kvArrival = now + max(1, Int64((link.seconds(bytes: bytes) * 1e6).rounded()))
            transferredBytes += bytes
            transfers += 1
            kvArrivals.append(s.kvArrival)
            running.append(s)
        }
    }

    /// Drops the head of the waiting queue: a (preempted) sequence whose prompt and output outgrew
    /// the whole pool, which can never run (vLLM's `AllocStatus.NEVER`).
    mutating func rejectHead() {
        waiting.removeFirst()
        rejected += 1
    }

    /// PHBs every decoding sequence needs for its next token.
    func decodeNeedOfBatch() -> Int {
        var need = 0
        for i in running.indices where !running[i].prefilling { need += decodeNeed(i) }
        return need
    }

    /// Puts `chunk` more prompt tokens of `s` into the step: its attention area, and, when the
    /// chunk completes the prompt, its row of logits and the policy's compression time.
    mutating func addChunk(_ s: inout Sequence, _ chunk: Int, _ work: inout StepWork) {
        let window = Double(model.slidingWindow ?? Int.max)
        let before = Double(s.prefilled), c = Double(chunk)
        work.prefillTokens += chunk
        work.prefillSequences += 1
        work.prefillAttentionArea += c * (before + c / 2)
        work.prefillLocalArea += c * min(before + c / 2, window)
        s.chunk = chunk
        if s.prefilled + chunk == s.prefillTarget {
            work.logitRows += 1
            if let compression {
                let kept = compression.kept(prompt: s.prefillTarget, blockSize: serving.blockSize)
                work.compressionSeconds += compression.compressionSeconds(prompt: s.prefillTarget, kept: kept, cost: cost)
            }
        }
    }

    /// Adds one decode of the running sequence at `i` to the step (its block already allocated).
    mutating func addDecode(_ i: Int, _ work: inout StepWork) {
        let s = running[i]
        let window = model.slidingWindow ?? Int.max
        running[i].decoding = true
        if tracksDecodeMetrics {
            work.metricSequences += 1
            work.metricPoolSlots = Double(blocks.capacity * serving.blockSize)
        }
        work.decodeAttention = decodeKernel
        work.decodeSequences += 1
        work.logitRows += 1
        work.decodeTokenLayers += Double(model.globalLayers) * Double(s.kept) + Double(model.localLayers) * Double(min(s.tokens, window))
    }

    /// PHBs the running sequence at `i` needs for its next decode token.
    func decodeNeed(_ i: Int) -> Int {
        let s = running[i]
        return max(0, phb(tokens: s.tokens + 1, kept: s.keptAfterDecode) - s.phb)
    }
}

/// vLLM V1's scheduler (vllm/v1/core/sched/scheduler.py, `Scheduler.schedule`, 0.9 – 0.11):
///
/// - One token budget (`max_num_batched_tokens`) per step. Running requests first, in the order
///   they were admitted: each gets what it still needs (one token for a decode, the rest of its
///   prompt for a partial prefill), within the budget.
/// - Blocks are allocated for the tokens a step computes (`KVCacheManager.allocate_slots`), not for
///   the whole prompt at admission: a long prompt holds only the chunks it has prefilled. With no
///   block free, the last running request is preempted (recompute; back to the front of the
///   waiting queue), until the current one fits or is itself preempted.
/// - Then, only if nothing was preempted in this step, waiting requests are admitted FCFS within
///   `max_num_seqs`, each with as many prompt tokens as the budget leaves (chunked prefill), or
///   only whole (chunked prefill off). There is no watermark.
///
/// A continual policy's on-pressure compression runs before a preemption, as in `VLLMScheduler`.
public struct VLLMV1Scheduler: Scheduler {
    public init() {}

    public mutating func formBatch(_ state: inout SchedulerState) -> StepWork {
        var work = StepWork()
        var budget = state.tokenBudget
        var preempted = false
        let onPressure = state.compression?.compressesOnPressure == true
        var i = 0
        while i < state.running.count, budget > 0 {
            if state.running[i].kvArrival > state.now {
                i += 1 // its KV is still on the way from the prefill replica
                continue
            }
            let prefilling = state.running[i].prefilling
            let chunk = prefilling ? min(budget, state.running[i].prefillTarget - state.running[i].prefilled) : 1
            let need = prefilling ? chunkNeed(state, i, chunk) : state.decodeNeed(i)
            if !state.blocks.canAllocate(need) {
                if onPressure, state.compressionPass(), state.blocks.canAllocate(prefilling ? chunkNeed(state, i, chunk) : state.decodeNeed(i)) {
                    continue
                }
                let victim = state.running.count - 1
                state.preempt(victim)
                preempted = true
                if victim == i { break }
                continue
            }
            state.blocks.allocate(need)
            state.running[i].phb += need
            if prefilling {
                var s = state.running[i]
                state.addChunk(&s, chunk, &work)
                state.running[i] = s
            } else {
                state.addDecode(i, &work)
            }
            budget -= chunk
            i += 1
        }
        guard !preempted else { return work }
        state.admitRemote()
        let chunked = state.serving.chunkedPrefill
        while budget > 0, let head = state.waiting.first, state.running.count < state.serving.maxNumSeqs {
            let target = head.request.promptTokens + head.generated
            if !chunked, target > budget { break }
            guard state.blocks.couldEverHold(state.phb(tokens: target, kept: target)) else {
                state.rejectHead()
                continue
            }
            // With prefix caching, what is left of its prefix from before a preemption is not computed again.
            let cached = state.cachedPrefix(of: head, target: target)
            let chunk = min(budget, target - cached.tokens)
            let blocks = max(0, state.phb(tokens: cached.tokens + chunk, kept: cached.tokens + chunk) - cached.blocks)
            guard state.blocks.canAllocate(cached.fromFree + blocks) else { break }
            state.admitHead(target: target, blocks: blocks, chunk: chunk, cached: cached, &work)
            budget -= chunk
        }
        return work
    }

    /// PHBs the running sequence at `i` needs for its next `chunk` prompt tokens.
    private func chunkNeed(_ state: SchedulerState, _ i: Int, _ chunk: Int) -> Int {
        let s = state.running[i], upTo = s.prefilled + chunk
        return max(0, state.phb(tokens: upTo, kept: upTo) - s.phb)
    }
}

/// SGLang's scheduler (python/sglang/srt/managers/scheduler.py `get_next_batch_to_run` and
/// schedule_policy.py `PrefillAdder`, 0.4.x), with page size 1 (token-granular KV):
///
/// - Prefill first: if any prompt can be admitted, the step is a prefill batch alone (prefill and
///   decode are not mixed by default); else every running request decodes one token.
/// - A prefill batch takes the request being chunked first, then waiting requests FCFS, while the
///   step's `chunked_prefill_size` tokens last and fewer than `max_running_requests` run; a prompt
///   longer than what is left is chunked, and no other request joins after it.
/// - Admission is conservative: a new request needs room for its prompt and its output (at most
///   4096 tokens), while every running request keeps a reservation for its remaining output ×
///   `new_token_ratio`. The ratio starts at 0.7 and decays by 0.001 per decode step to 0.1.
/// - When a decode step lacks room, requests are retracted (the one with the fewest generated
///   tokens, then the longest prompt, first) back to the waiting queue, and the ratio is reset to
///   (tokens decoded + 20 per running request) ÷ their output limits.
/// - `max_running_requests` defaults to half the pool's tokens, at most 4096.
public struct SGLangScheduler: Scheduler {
    /// `new_token_ratio` in force.
    public private(set) var newTokenRatio = 0.7
    static let minRatio = 0.1, decay = 0.001, clip = 4096, retractSteps = 20

    public init() {}

    public mutating func formBatch(_ state: inout SchedulerState) -> StepWork {
        var work = StepWork()
        prefill(&state, &work)
        if work.prefillTokens > 0 { return work }
        decode(&state, &work)
        if work.decodeSequences > 0 { newTokenRatio = max(Self.minRatio, newTokenRatio - Self.decay) }
        // Retraction that emptied the batch: admit instead.
        if work.decodeSequences == 0, !state.waiting.isEmpty { prefill(&state, &work) }
        return work
    }

    private func tokensPHB(_ state: SchedulerState, _ tokens: Int) -> Int { tokens <= 0 ? 0 : state.phb(tokens: tokens, kept: tokens) }

    private func prefill(_ state: inout SchedulerState, _ work: inout StepWork) {
        var chunkLeft = state.serving.chunkedPrefill ? state.tokenBudget : max(state.tokenBudget, 16384)
        let block = state.serving.blockSize
        let poolTokens = state.blocks.capacity / max(1, tokensPHB(state, block)) * block
        let maxRunning = min(state.serving.maxNumSeqs, max(1, poolTokens / 2))
        // Room left after the running requests' reservations.
        var reserved = 0.0
        for s in state.running where !s.prefilling {
            reserved += Double(min(s.outputTarget - s.generated, Self.clip)) * newTokenRatio
        }
        var room = state.blocks.free - tokensPHB(state, Int(reserved.rounded(.up)))
        // The request being chunked continues first.
        if let i = state.running.firstIndex(where: { $0.prefilling }) {
            var s = state.running[i]
            let chunk = min(chunkLeft, s.prefillTarget - s.prefilled)
            let need = max(0, tokensPHB(state, s.prefilled + chunk) - s.phb)
            guard state.blocks.canAllocate(need) else { return }
            state.blocks.allocate(need)
            s.phb += need
            state.addChunk(&s, chunk, &work)
            state.running[i] = s
            chunkLeft -= chunk
            room -= need
            if s.prefilled + chunk < s.prefillTarget { return }
        }
        while chunkLeft > 0, let head = state.waiting.first, state.running.count < maxRunning {
            let target = head.request.promptTokens + head.generated
            guard state.blocks.couldEverHold(tokensPHB(state, target)) else {
                state.rejectHead()
                continue
            }
            let total = tokensPHB(state, target + min(head.outputTarget - head.generated, Self.clip))
            // Nothing running: admit what fits now (SGLang would otherwise never start it).
            guard total < room || (state.running.isEmpty && work.prefillSequences == 0) else { break }
            let chunk = min(chunkLeft, target)
            if !state.serving.chunkedPrefill, chunk < target, work.prefillSequences > 0 { break }
            let blocks = tokensPHB(state, chunk)
            guard state.blocks.canAllocate(blocks) else { break }
            state.admitHead(target: target, blocks: blocks, chunk: chunk, &work)
            chunkLeft -= chunk
            room -= total
            if chunk < target { break }
        }
    }

    private mutating func decode(_ state: inout SchedulerState, _ work: inout StepWork) {
        let onPressure = state.compression?.compressesOnPressure == true
        if state.decodeNeedOfBatch() > state.blocks.free {
            if onPressure { _ = state.compressionPass() }
            var retracted = false
            // Retract until 20 more steps of the remaining batch fit (`retract_decode_steps`).
            while state.decodeNeedOfBatch() * Self.retractSteps > state.blocks.free {
                // Fewest generated tokens first, then the longest prompt.
                guard let victim = state.running.indices.filter({ !state.running[$0].prefilling }).min(by: {
                    let a = state.running[$0], b = state.running[$1]
                    return a.generated != b.generated ? a.generated < b.generated : a.request.promptTokens > b.request.promptTokens
                }) else { break }
                state.preempt(victim)
                retracted = true
            }
            if retracted {
                var decoded = 0, limit = 0, n = 0
                for s in state.running where !s.prefilling {
                    decoded += s.generated
                    limit += s.outputTarget
                    n += 1
                }
                newTokenRatio = limit > 0 ? min(1, Double(decoded + Self.retractSteps * n) / Double(limit)) : newTokenRatio
            }
        }
        for i in state.running.indices where !state.running[i].prefilling {
            let need = state.decodeNeed(i)
            guard state.blocks.canAllocate(need) else { continue }
            state.blocks.allocate(need)
            state.running[i].phb += need
            state.addDecode(i, &work)
        }
    }
}

/// The scheduler of `serving`'s engine: vLLM V1's, vLLM V0's (multi-step with
/// `num_scheduler_steps` > 1) or SGLang's.
public func scheduler(for serving: ServingConfig) -> any Scheduler {
    switch serving.engine {
    case .vllmV0: serving.numSchedulerSteps > 1 ? VLLMMultiStepScheduler(steps: serving.numSchedulerSteps) : VLLMScheduler()
    case .vllmV1: VLLMV1Scheduler()
    case .sglang: SGLangScheduler()
    }
}

/// vLLM V0's multi-step scheduling (`--num-scheduler-steps N`, vLLM 0.5.5 – 0.10;
/// `LLMEngine.step` in vllm/engine/llm_engine.py, `_has_remaining_steps`): the scheduler runs only
/// when the cached batch has no steps left. A decode batch runs N engine steps, so a request that
/// arrives meanwhile waits for the N-th before it can be admitted — what makes vLLM 0.6's online
/// TTFT with multi-step long. A batch with prompts runs one step without chunked prefill (then the
/// scheduler runs again); with chunked prefill its prompts are not chunked and the batch runs N
/// steps, the prompts decoding from the second. The N − 1 lookahead KV slots vLLM reserves per
/// running sequence are not modelled (at most N − 1 tokens of blocks per sequence). With N = 1 it
/// is `VLLMScheduler`.
public struct VLLMMultiStepScheduler: Scheduler {
    public let steps: Int
    private var inner = VLLMScheduler()
    /// Steps the cached batch still runs.
    private var remaining = 0

    public init(steps: Int) {
        precondition(steps >= 1, "num_scheduler_steps must be at least 1")
        self.steps = steps
    }

    public mutating func formBatch(_ state: inout SchedulerState) -> StepWork {
        if remaining > 0 {
            remaining -= 1
            var work = StepWork()
            inner.scheduleDecodes(&state, &work)
            if work.decodeSequences > 0 { return work }
            remaining = 0 // every sequence finished or was preempted: schedule afresh
        }
        let work = inner.formBatch(&state)
        let hasPrompts = work.prefillTokens > 0
        remaining = hasPrompts && !state.serving.chunkedPrefill ? 0 : steps - 1
        return work
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
    /// When its latest token came out (for the inter-token latency).
    var lastToken: Int64 = -1
    /// The most tokens a continual policy keeps (its budget for this prompt); unbounded otherwise.
    var cap = Int.max
    /// The compression pass that last compressed it (nil: none since its prefill).
    var lastCompressionPass: Int?
    /// Preempted with its computed prefix left in the prefix cache (`PrefixCache`).
    var cachedPrefix = false
    /// PHBs of the prefix blocks it shares through the prefix cache (part of `phb`; which blocks:
    /// `SchedulerState.sharing`).
    var sharedPHB = 0
    /// Its prompt's prefix hashes looked at so far (found cached at admission, or published).
    var hashesSeen = 0
    /// Admitted at least once (a readmission after preemption does not count for the hit rate).
    var admitted = false
    /// On a decode replica: when its KV has arrived from the prefill replica, µs (0: local).
    var kvArrival: Int64 = 0

    init(request: Request) { self.request = request }

    var prefilling: Bool { prefillTarget == 0 || prefilled < prefillTarget }

    /// Kept tokens after one more decode step: continual policies hold the cache at their cap.
    var keptAfterDecode: Int { min(kept + 1, cap) }

    /// Forgets the KV it held, keeping what it generated (recompute preemption).
    mutating func resetForRecompute() {
        phb = 0
        kept = 0
        tokens = 0
        prefilled = 0
        chunk = 0
        decoding = false
        prefillTarget = 0
        cap = Int.max
        lastCompressionPass = nil
        precondition(sharedPHB == 0, "preempted holding shared prefix blocks")
        hashesSeen = 0
        kvArrival = 0
    }
}

/// A link KV travels over from a prefill replica to a decode replica: the GPUs' interconnect
/// within a node, the network between nodes (`DisaggregationSplit.link`), its bandwidth the TP
/// group's (each GPU sends its shard over its own link).
public typealias KVLink = Interconnect

extension Interconnect {
    /// Seconds `bytes` take at the link's bandwidth.
    public func seconds(bytes: Double) -> Double { bytes / (gbPerSecond * 1e9) }
}

/// A request a prefill replica finished, as a decode replica takes it over: its prompt
/// computed (and compressed, under a policy), its first token out.
struct Handoff {
    var sequence: Sequence

    /// `s` as its prefill replica finished it; `outputTarget`: the tokens it generates in all.
    init(prefilled s: Sequence, outputTarget: Int) {
        var d = Sequence(request: s.request)
        d.outputTarget = outputTarget
        d.tokens = s.tokens
        d.kept = s.kept
        d.cap = s.cap
        d.prefilled = s.prefilled
        d.prefillTarget = s.prefillTarget
        d.generated = s.generated
        d.firstToken = s.firstToken
        d.lastToken = s.lastToken
        d.admitted = true
        sequence = d
    }
}

/// A prefix block a sequence shares, and its PHBs.
struct SharedBlock: Equatable {
    var hash: Int
    var blocks: Int
}

/// The step cost a scheduler's batches are timed with: `CostModel` (roofline) today; measured
/// kernel tables later, behind the same protocol.
public protocol LatencyModel: Sendable {
    var model: ModelSpec { get }
    /// Seconds of one engine step doing `work`.
    func stepTime(_ work: StepWork) -> StepTime
    /// Seconds of one sequence's compression scoring and compaction.
    func compressionTime(promptTokens: Int, keptTokens: Int, window: Int, scoredLayers: Int,
                         fullAttentionScores: Bool, sortsAcrossLayers: Bool) -> Double
    /// Seconds an API server's front-end spends on each request before the engine sees it; one
    /// front-end serves requests one after another (0: none).
    var frontendSecondsPerRequest: Double { get }
}

extension CostModel: LatencyModel {}
