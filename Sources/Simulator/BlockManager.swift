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

/// The order vLLM V1 reuses free blocks in when prefix caching is on (`FreeKVCacheBlockQueue`,
/// vllm/v1/core/kv_cache_utils.py, and `BlockPool` in vllm/v1/core/block_pool.py): an allocation
/// takes blocks from the front, evicting whatever they held; freed blocks join the back, a
/// request's in reverse order so that its last blocks are evicted first. The simulator follows
/// the contents of one kind of free block only: a preempted request's computed prefix, which it
/// finds again when it is readmitted. Other free blocks are interchangeable. The queue holds
/// exactly the pool's free blocks.
struct FreeBlockQueue: Sendable {
    enum Segment: Sendable, Equatable {
        case plain(Int)
        /// Free blocks still holding the prefix of preempted request `id` (its first blocks).
        case cached(id: Int, blocks: Int)
        var blocks: Int {
            switch self {
            case let .plain(n), let .cached(_, n): n
            }
        }
    }
    private(set) var segments = Deque<Segment>()

    init(free: Int) { append(free) }

    /// Free blocks in the queue.
    var count: Int { segments.reduce(0) { $0 + $1.blocks } }

    /// Takes `n` blocks from the front (an allocation), evicting cached prefixes' tails.
    mutating func take(_ n: Int) {
        var left = n
        while left > 0, let first = segments.first {
            let k = min(left, first.blocks)
            left -= k
            switch first {
            case let .plain(m): if m == k { segments.removeFirst() } else { segments[0] = .plain(m - k) }
            case let .cached(id, m): if m == k { segments.removeFirst() } else { segments[0] = .cached(id: id, blocks: m - k) }
            }
        }
        precondition(left == 0, "took \(n) blocks from a free queue of fewer")
    }

    /// Puts `n` freed blocks holding nothing anyone will look for at the back.
    mutating func append(_ n: Int) {
        guard n > 0 else { return }
        if case let .plain(m) = segments.last { segments[segments.count - 1] = .plain(m + n) } else { segments.append(.plain(n)) }
    }

    /// Puts preempted request `id`'s blocks at the back: `tail` blocks past its last full block
    /// first, then the `prefix` blocks of its computed full blocks.
    mutating func appendPreempted(id: Int, prefix: Int, tail: Int) {
        append(tail)
        if prefix > 0 { segments.append(.cached(id: id, blocks: prefix)) }
    }

    /// Blocks of request `id`'s prefix still cached (0 if all were evicted).
    func cached(id: Int) -> Int {
        for s in segments { if case let .cached(i, n) = s, i == id { return n } }
        return 0
    }

    /// Removes `used` of request `id`'s cached blocks from the queue (readmitted, it holds them
    /// again); the rest of its segment stays where it was as plain free blocks.
    mutating func claim(id: Int, used: Int) {
        guard let k = segments.firstIndex(where: { if case let .cached(i, _) = $0 { i == id } else { false } }) else {
            precondition(used == 0, "claimed \(used) blocks of an evicted prefix")
            return
        }
        let n = segments[k].blocks
        precondition(used <= n, "claimed \(used) of \(n) cached blocks")
        if used == n { segments.remove(at: k) } else { segments[k] = .plain(n - used) }
    }
}
