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
