import DequeModule

/// The KV pool of one replica in per-head blocks (`MemoryPlan`): check, then act. Every
/// allocation is checked against the free blocks first (`canAllocate`); `used + free = capacity`
/// holds after every operation (tested over seeded runs).
public struct BlockManager: Sendable, Equatable {
    public let capacity: Int
    public private(set) var free: Int
    /// Blocks kept free for running sequences to grow into when admitting new ones (vLLM's 1 %
    /// watermark).
    public let watermark: Int

    public init(capacity: Int, watermarkPercent: Int = 1) {
        self.capacity = capacity
        free = capacity
        watermark = capacity * watermarkPercent / 100
    }

    public var used: Int { capacity - free }

    /// The share of the pool in use.
    public var utilisation: Double { Double(used) / Double(capacity) }

    /// Whether `blocks` can be allocated now.
    public func canAllocate(_ blocks: Int) -> Bool { blocks <= free }

    /// Whether a new sequence of `blocks` may be admitted: within the watermark, or alone.
    public func canAdmit(_ blocks: Int, nothingRunning: Bool) -> Bool {
        blocks <= free - watermark || (nothingRunning && blocks <= free)
    }

    /// Whether `blocks` could ever be held at once (a sequence needing more can never run).
    public func couldEverHold(_ blocks: Int) -> Bool { blocks <= capacity }

    /// Takes `blocks` (checked first with `canAllocate`).
    public mutating func allocate(_ blocks: Int) {
        precondition(blocks >= 0 && blocks <= free, "allocating \(blocks) blocks with \(free) free")
        free -= blocks
    }

    /// Returns `blocks` to the pool.
    public mutating func release(_ blocks: Int) {
        precondition(blocks >= 0 && free + blocks <= capacity, "releasing \(blocks) blocks with \(free) of \(capacity) free")
        free += blocks
    }
}

/// vLLM V1's prefix cache over one replica's pool (`BlockPool` in vllm/v1/core/block_pool.py and
/// `FreeKVCacheBlockQueue` in vllm/v1/core/kv_cache_utils.py), at the granularity the simulator
/// follows:
///
/// - **The free queue.** Free blocks in reuse order: an allocation takes blocks from the front,
///   evicting whatever they still held; freed blocks join the back, a request's in reverse order
///   so that its last blocks are evicted first. The queue holds exactly the pool's free blocks.
/// - **Prefix blocks.** A prompt's prefix blocks are named by the workload's hashes
///   (`Request.blockHashes`, one per `Request.hashBlockTokens` tokens). A computed block is
///   published under its hash; requests that reach the same hash share it (one copy in the pool,
///   reference-counted); when the last one lets go it joins the free queue still holding its
///   prefix, and a later request with that prefix takes it back from there until an allocation
///   evicts it. An eviction that reaches part of a prefix block evicts all of it (vLLM would keep
///   the first 16-token blocks of a 512-token hash block).
/// - **Preempted prefixes.** A preempted request without hashes leaves its computed full blocks
///   in the free queue under its id, found again when it is readmitted (its first blocks last).
struct PrefixCache: Sendable {
    /// What a run of free blocks still holds.
    enum Content: Hashable, Sendable {
        case nothing
        /// The first blocks of preempted request `id`'s computed tokens.
        case preempted(id: Int)
        /// One prefix block (`Request.blockHashes`).
        case prefix(hash: Int)
    }

    struct Segment: Equatable, Sendable {
        var content: Content
        var blocks: Int
    }

    /// A prefix block running requests share.
    private struct Shared: Sendable {
        var references: Int
        var blocks: Int
    }

    private(set) var segments = Deque<Segment>()
    /// The position of `segments.first` in the queue's history (a segment's position never
    /// changes, so `index` can point at it while the front moves).
    private var base = 0
    /// Where each free run still holding something sits.
    private var index: [Content: Int] = [:]
    private var shared: [Int: Shared] = [:]
    /// Free blocks.
    private(set) var count = 0
    /// Free blocks still holding a prefix or a preempted request's tokens (evictable).
    private(set) var cachedFree = 0
    /// Blocks of prefix blocks running requests hold (each counted once however many share it).
    private(set) var sharedBlocks = 0

    init(free: Int) { append(free) }

    /// Takes `n` blocks from the front (an allocation), evicting what they held.
    mutating func take(_ n: Int) {
        precondition(n <= count, "took \(n) blocks from a free queue of \(count)")
        var left = n
        count -= n
        while left > 0 {
            let first = segments[0]
            let k = min(left, first.blocks)
            left -= k
            if first.content != .nothing { cachedFree -= k }
            if k == first.blocks {
                if first.content != .nothing { index[first.content] = nil }
                segments.removeFirst()
                base += 1
            } else if case .prefix = first.content {
                // Part of a prefix block is gone: the rest holds nothing anyone can find.
                index[first.content] = nil
                cachedFree -= first.blocks - k
                segments[0] = Segment(content: .nothing, blocks: first.blocks - k)
            } else {
                // A preempted request's run loses its last blocks; its first ones stay findable.
                segments[0].blocks -= k
            }
        }
        dropEmptyFront()
    }

    /// Puts `n` freed blocks holding nothing anyone will look for at the back.
    mutating func append(_ n: Int) {
        guard n > 0 else { return }
        count += n
        if let last = segments.last, last.content == .nothing {
            segments[segments.count - 1].blocks += n
        } else {
            segments.append(Segment(content: .nothing, blocks: n))
        }
    }

    /// Puts `blocks` freed blocks that still hold `content` at the back.
    private mutating func append(_ content: Content, blocks: Int) {
        guard blocks > 0 else { return }
        precondition(index[content] == nil, "\(content) is in the free queue twice")
        count += blocks
        cachedFree += blocks
        index[content] = base + segments.count
        segments.append(Segment(content: content, blocks: blocks))
    }

    /// Puts preempted request `id`'s blocks at the back: `tail` blocks past its last full block
    /// first, then the `prefix` blocks of its computed full blocks.
    mutating func appendPreempted(id: Int, prefix: Int, tail: Int) {
        append(tail)
        append(.preempted(id: id), blocks: prefix)
    }

    /// Blocks of preempted request `id`'s prefix still cached (0 if all were evicted).
    func cached(id: Int) -> Int {
        index[.preempted(id: id)].map { segments[$0 - base].blocks } ?? 0
    }

    /// Removes `used` of preempted request `id`'s cached blocks from the queue (readmitted, it
    /// holds them again); the rest of its run stays where it was, holding nothing.
    mutating func claim(id: Int, used: Int) {
        guard let at = index[.preempted(id: id)] else {
            precondition(used == 0, "claimed \(used) blocks of an evicted prefix")
            return
        }
        let n = segments[at - base].blocks
        precondition(used <= n, "claimed \(used) of \(n) cached blocks")
        index[.preempted(id: id)] = nil
        segments[at - base].content = .nothing
        segments[at - base].blocks = n - used
        count -= used
        cachedFree -= n
        dropEmptyFront()
    }

    private mutating func dropEmptyFront() {
        while let first = segments.first, first.blocks == 0 {
            segments.removeFirst()
            base += 1
        }
    }

    // MARK: Prefix blocks

    /// Whether prefix block `hash` is cached: held by a running request, or free and not evicted.
    func contains(_ hash: Int) -> Bool { shared[hash] != nil || index[.prefix(hash: hash)] != nil }

    /// The blocks of cached prefix block `hash`, and whether they sit in the free queue (a request
    /// taking them must find them in the pool) rather than with running requests.
    func lookup(_ hash: Int) -> (blocks: Int, free: Bool)? {
        if let s = shared[hash] { return (s.blocks, false) }
        if let at = index[.prefix(hash: hash)] { return (segments[at - base].blocks, true) }
        return nil
    }

    /// A request takes a reference to cached prefix block `hash`; returns the blocks it took out
    /// of the free queue (0 when running requests hold it already).
    mutating func acquire(_ hash: Int) -> Int {
        if shared[hash] != nil {
            shared[hash]!.references += 1
            return 0
        }
        guard let at = index[.prefix(hash: hash)] else { preconditionFailure("prefix block \(hash) is not cached") }
        let n = segments[at - base].blocks
        index[.prefix(hash: hash)] = nil
        segments[at - base] = Segment(content: .nothing, blocks: 0)
        count -= n
        cachedFree -= n
        dropEmptyFront()
        shared[hash] = Shared(references: 1, blocks: n)
        sharedBlocks += n
        return n
    }

    /// Publishes the `blocks` a running request computed as prefix block `hash` (not cached yet);
    /// the request holds its first reference.
    mutating func publish(_ hash: Int, blocks: Int) {
        precondition(!contains(hash), "prefix block \(hash) published twice")
        shared[hash] = Shared(references: 1, blocks: blocks)
        sharedBlocks += blocks
    }

    /// A request lets go of prefix block `hash`; returns the blocks that joined the free queue
    /// (0 while other requests still hold it).
    mutating func release(_ hash: Int) -> Int {
        guard let s = shared[hash] else { preconditionFailure("released prefix block \(hash), which no request holds") }
        if s.references > 1 {
            shared[hash]!.references -= 1
            return 0
        }
        shared[hash] = nil
        sharedBlocks -= s.blocks
        append(.prefix(hash: hash), blocks: s.blocks)
        return s.blocks
    }
}
