import Policies

// The one footprint model (DESIGN.md "Freed memory is physical", "Trace-driven memory"): how many
// per-head blocks (PHB, `MemoryPlan`) a sequence holds, nominally (every layer-head keeps the
// same count) or driven by a trace's per-(layer, KV head) kept counts; and the one
// max-concurrency rule that `memory`, `simulate` and `plan` all use.

/// Physical KV footprint of a sequence in per-head blocks.
public protocol KVFootprint: Sendable {
    /// PHBs a sequence holds with `tokens` tokens in total, keeping `kept` per global layer and
    /// KV head on average (local, sliding-window layers hold at most their window).
    func phb(tokens: Int, kept: Int, plan: MemoryPlan) -> Int
    /// The same function with the plan's constants unpacked once, for the simulator's hot loop.
    func calculator(plan: MemoryPlan) -> @Sendable (_ tokens: Int, _ kept: Int) -> Int
}

extension KVFootprint {
    public func calculator(plan: MemoryPlan) -> @Sendable (_ tokens: Int, _ kept: Int) -> Int {
        { [self] tokens, kept in phb(tokens: tokens, kept: kept, plan: plan) }
    }
}

/// Every (layer, KV head) keeps the same count, in `layout`'s blocks (`BlockLayout.blocks`).
public struct NominalFootprint: KVFootprint {
    public var layout: BlockLayout
    public init(layout: BlockLayout) { self.layout = layout }

    public func phb(tokens: Int, kept: Int, plan: MemoryPlan) -> Int {
        NominalFootprintCalculator(plan: plan, layout: layout).phb(tokens: tokens, kept: kept)
    }
}

/// The nominal footprint with the plan's constants unpacked.
package struct NominalFootprintCalculator: Sendable {
    let blockSize: Int
    let heads: Int
    let globalLayerHeads: Int
    let localLayerHeads: Int
    let window: Int
    let layout: BlockLayout

    package init(plan: MemoryPlan, layout: BlockLayout) {
        blockSize = plan.serving.blockSize
        heads = plan.model.kvHeadsPerGPU(tp: plan.serving.tensorParallel)
        globalLayerHeads = plan.model.globalLayers * heads
        localLayerHeads = plan.model.localLayers * heads
        window = plan.model.slidingWindow ?? Int.max
        self.layout = layout
    }

    /// PHBs of the local (sliding-window) layers for a sequence of `tokens` tokens.
    @inline(__always)
    package func localPHB(tokens: Int) -> Int {
        localLayerHeads == 0 ? 0 : localLayerHeads * ((min(tokens, window) + blockSize - 1) / blockSize)
    }

    @inline(__always)
    package func phb(tokens: Int, kept: Int) -> Int {
        layout.blocks(kept: kept, layerHeads: globalLayerHeads, blockSize: blockSize) + localPHB(tokens: tokens)
    }
}

/// A footprint unpacked for a hot loop: the nominal case inline, any other through its closure.
package enum FootprintFunction: Sendable {
    case nominal(NominalFootprintCalculator)
    case custom(@Sendable (Int, Int) -> Int)

    package init(_ footprint: any KVFootprint, plan: MemoryPlan) {
        if let n = footprint as? NominalFootprint {
            self = .nominal(NominalFootprintCalculator(plan: plan, layout: n.layout))
        } else {
            self = .custom(footprint.calculator(plan: plan))
        }
    }

    @inline(__always)
    package func phb(tokens: Int, kept: Int) -> Int {
        switch self {
        case let .nominal(calc): calc.phb(tokens: tokens, kept: kept)
        case let .custom(f): f(tokens, kept)
        }
    }
}

/// The physical footprint from a trace's shape: each (global layer, KV head) keeps
/// ⌈kept × s⌉ of the sequence (at most all of it), s drawn from the shape's quantiles (each
/// standing for an equal share of the layer-heads). Per-sequence blocks (vLLM) give every layer
/// and head the largest count; per-head blocks (KV-Compress) pay each head's own partly filled last block.
public struct TraceFootprint: KVFootprint {
    public var shape: [Double]
    public var layout: BlockLayout

    public init(shape: [Double], layout: BlockLayout) {
        self.shape = shape
        self.layout = layout
    }

    public func phb(tokens: Int, kept: Int, plan: MemoryPlan) -> Int {
        calculator(plan: plan)(tokens, kept)
    }

    public func calculator(plan: MemoryPlan) -> @Sendable (Int, Int) -> Int {
        let nominal = NominalFootprintCalculator(plan: plan, layout: .perSequence)
        let b = plan.serving.blockSize, layerHeads = nominal.globalLayerHeads
        let shape = shape, perHead = layout == .perHead, largest = shape.max() ?? 1
        // Equal quantiles counted once, with their multiplicity; block size is a power of two (16).
        let distinct = Dictionary(shape.map { ($0, 1) }, uniquingKeysWith: +).sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        let shift = b.trailingZeroBitCount, powerOfTwo = b == 1 << shift
        // Per-head sums depend only on `kept` while no count reaches `tokens`: remembered per kept
        // (each simulation builds its own calculator, so the memo is never shared between threads).
        let memo = Memo()
        return { tokens, kept in
            let local = nominal.localPHB(tokens: tokens)
            if perHead, kept < tokens, !shape.isEmpty, Double(kept) * largest <= Double(tokens), let known = memo.value(kept) {
                return known + local
            }
            guard kept < tokens, !shape.isEmpty else { return nominal.phb(tokens: tokens, kept: kept) }
            let k = Double(kept)
            @inline(__always) func count(_ s: Double) -> Int {
                let x = k * s, i = Int(x) // ceil without a libm call (x ≥ 0)
                return min(tokens, Double(i) < x ? i + 1 : i)
            }
            if perHead {
                var blocks = 0
                for (s, weight) in distinct { blocks += weight * (powerOfTwo ? (count(s) + b - 1) >> shift : (count(s) + b - 1) / b) }
                let global = (blocks * layerHeads + shape.count - 1) / shape.count
                if k * largest <= Double(tokens) { memo.store(kept, global) }
                return global + local
            }
            return BlockLayout.perSequence.blocks(kept: count(largest), layerHeads: layerHeads, blockSize: b) + local
        }
    }
}

/// Per-kept footprints remembered by one simulation's calculator.
private final class Memo: @unchecked Sendable {
    private var values: [Int] = []
    func value(_ kept: Int) -> Int? { kept < values.count && values[kept] >= 0 ? values[kept] : nil }
    func store(_ kept: Int, _ value: Int) {
        if kept >= values.count { values += Array(repeating: -1, count: kept + 1 - values.count) }
        values[kept] = value
    }
}

extension MemoryPlan {
    /// How many requests of `prompt` prompt tokens fit at once when each ends holding
    /// `endPHB` blocks: one request holds its full prompt KV while it prefills (`peakPHB`), the
    /// others their end footprint; capped by `max_num_seqs`; 0 when even the peak does not fit.
    public func maxConcurrency(peakPHB: Int, endPHB: Int) -> Int {
        guard peakPHB <= phbCapacity else { return 0 }
        return min(serving.maxNumSeqs, 1 + (phbCapacity - peakPHB) / max(1, endPHB))
    }

    /// `maxConcurrency(peakPHB:endPHB:)` for requests of `prompt` + `output` tokens under
    /// `footprint`, keeping `keptAtEnd` per global layer and head when they finish.
    public func maxConcurrency(footprint: any KVFootprint, prompt: Int, output: Int, keptAtEnd: Int) -> Int {
        maxConcurrency(peakPHB: footprint.phb(tokens: prompt, kept: prompt, plan: self),
                       endPHB: footprint.phb(tokens: prompt + output, kept: keptAtEnd, plan: self))
    }
}
