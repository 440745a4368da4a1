import Foundation
@testable import Hardware
import Testing

@Suite("measured kernel tables")
struct KernelTablesTests {
    /// A small table: GEMM on a 2 × 2 × 2 grid (one point left out), attention for 8/2 and 16/2
    /// heads, an all-reduce for 2 GPUs.
    static let text = """
    # test fixture
    meta\tgpu\tTest-GPU
    meta\tsource\tfixture 1
    meta\tframework\tvllm 0.0.1
    meta\tdevice\tTest Device
    meta\tkernels\tnone in particular
    gemm\tbf16\t1\t256\t256\t0.01
    gemm\tbf16\t1\t256\t512\t0.02
    gemm\tbf16\t1\t512\t256\t0.02
    gemm\tbf16\t1\t512\t512\t0.04
    gemm\tbf16\t64\t256\t256\t0.02
    gemm\tbf16\t64\t256\t512\t0.04
    gemm\tbf16\t64\t512\t256\t0.04
    context\t1\t128\t8\t2\t0.1
    context\t1\t256\t8\t2\t0.3
    context\t2\t128\t8\t2\t0.2
    context\t1\t128\t16\t2\t0.2
    context\t1\t256\t16\t2\t0.6
    context\t2\t128\t16\t2\t0.4
    generation\t1\t128\t8\t2\t0.01
    generation\t1\t1024\t8\t2\t0.05
    generation\t4\t128\t8\t2\t0.02
    generation\t1\t128\t16\t2\t0.02
    generation\t1\t1024\t16\t2\t0.1
    generation\t4\t128\t16\t2\t0.04
    allreduce\t2\t1024\t0.005
    allreduce\t2\t1048576\t0.05
    moe\tbf16\t2\t2048\t768\t8\t128\t1\t0.03
    moe\tbf16\t2\t2048\t768\t8\t128\t64\t0.09
    moe\tbf16\t2\t2048\t768\t8\t128\t1024\t0.5
    """

    static func tables() throws -> KernelTables { try KernelTables(parsing: text, file: "fixture.tsv") }

    @Test("exact at every measured point, milliseconds read as seconds")
    func exactAtPoints() throws {
        let t = try Self.tables()
        #expect(t.gemm("bf16", m: 64, n: 256, k: 512) == 0.04 / 1000)
        #expect(t.gemm("bf16", m: 1, n: 512, k: 512) == 0.04 / 1000)
        #expect(t.contextAttention(batch: 2, length: 128, heads: 16, kvHeads: 2) == 0.4 / 1000)
        #expect(t.generationAttention(batch: 1, length: 1024, heads: 8, kvHeads: 2) == 0.05 / 1000)
        #expect(t.allReduce(gpus: 2, elements: 1024) == 0.005 / 1000)
        #expect(t.moe("bf16", tp: 2, hidden: 2048, intermediate: 768, activeExperts: 8, experts: 128, tokens: 64) == 0.09 / 1000)
        // The one point the fixture leaves out is filled from the smaller m, scaled by m.
        #expect(abs(t.gemm("bf16", m: 64, n: 512, k: 512)! - 0.04 * 64 / 1000) < 1e-12)
    }

    @Test("seeded: monotone between measured points in every dimension, and continuous at them")
    func monotone() throws {
        let t = try Self.tables()
        var state: UInt64 = 7
        func next() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) / Double(1 << 53)
        }
        for _ in 0..<300 {
            let m1 = 1 + Int(next() * 62), m2 = m1 + 1 + Int(next() * 10)
            let n = 256 + Int(next() * 256), k = 256 + Int(next() * 256)
            #expect(t.gemm("bf16", m: m1, n: n, k: k)! <= t.gemm("bf16", m: m2, n: n, k: k)!)
            #expect(t.gemm("bf16", m: m1, n: n, k: k)! <= t.gemm("bf16", m: m1, n: n + 1, k: k + 1)!)
            let l1 = 128 + next() * 128, l2 = l1 + next() * 128
            #expect(t.contextAttention(batch: 1, length: l1, heads: 8, kvHeads: 2)! <= t.contextAttention(batch: 1, length: l2, heads: 8, kvHeads: 2)!)
            let x1 = 1 + next() * 1000, x2 = x1 + next() * 200
            func moe(_ x: Double) -> Double { t.moe("bf16", tp: 2, hidden: 2048, intermediate: 768, activeExperts: 8, experts: 128, tokens: x)! }
            #expect(moe(x1) <= moe(x2))
            let b1 = 1 + next(), b2 = b1 + next() * 3
            #expect(t.generationAttention(batch: b1, length: 512, heads: 8, kvHeads: 2)! <= t.generationAttention(batch: b2, length: 512, heads: 8, kvHeads: 2)!)
        }
    }

    @Test("beyond the measured range: GEMM and all-reduce linear, prefill quadratic in length, decode linear; below it the smallest value")
    func extrapolation() throws {
        let t = try Self.tables()
        #expect(abs(t.gemm("bf16", m: 128, n: 256, k: 256)! - 0.04 / 1000) < 1e-12)
        #expect(abs(t.gemm("bf16", m: 1, n: 1024, k: 256)! - 0.04 / 1000) < 1e-12)
        #expect(abs(t.contextAttention(batch: 1, length: 512, heads: 8, kvHeads: 2)! - 1.2 / 1000) < 1e-12)
        #expect(abs(t.contextAttention(batch: 4, length: 128, heads: 8, kvHeads: 2)! - 0.4 / 1000) < 1e-12)
        #expect(abs(t.generationAttention(batch: 1, length: 2048, heads: 8, kvHeads: 2)! - 0.1 / 1000) < 1e-12)
        #expect(abs(t.allReduce(gpus: 2, elements: 2_097_152)! - 0.1 / 1000) < 1e-12)
        #expect(t.gemm("bf16", m: 1, n: 64, k: 64) == 0.01 / 1000)
        #expect(t.generationAttention(batch: 1, length: 16, heads: 8, kvHeads: 2) == 0.01 / 1000)
    }

    @Test("a head count between two measured ones (same KV heads) is interpolated; one outside, or other KV heads, is not covered")
    func headLayouts() throws {
        let t = try Self.tables()
        #expect(abs(t.contextAttention(batch: 1, length: 128, heads: 12, kvHeads: 2)! - 0.15 / 1000) < 1e-12)
        #expect(t.contextAttention(batch: 1, length: 128, heads: 32, kvHeads: 2) == nil)
        #expect(t.generationAttention(batch: 1, length: 128, heads: 8, kvHeads: 4) == nil)
        #expect(!t.coversAttention(heads: 8, kvHeads: 1) && t.coversAttention(heads: 8, kvHeads: 2))
        #expect(t.gemm("fp8", m: 1, n: 256, k: 256) == nil)
        #expect(t.allReduce(gpus: 4, elements: 1024) == nil)
        // A MoE layer at another TP, dtype or shape has no table; past the largest token count it scales linearly.
        #expect(t.moe("bf16", tp: 4, hidden: 2048, intermediate: 768, activeExperts: 8, experts: 128, tokens: 1) == nil)
        #expect(t.moe("fp8", tp: 2, hidden: 2048, intermediate: 768, activeExperts: 8, experts: 128, tokens: 1) == nil)
        #expect(t.moe("bf16", tp: 2, hidden: 4096, intermediate: 768, activeExperts: 8, experts: 128, tokens: 1) == nil)
        #expect(abs(t.moe("bf16", tp: 2, hidden: 2048, intermediate: 768, activeExperts: 8, experts: 128, tokens: 2048)! - 1.0 / 1000) < 1e-12)
    }

    @Test("a malformed file is refused with its name and line")
    func malformed() {
        #expect(throws: KernelTableError("t.tsv:2: 'x' is not a positive number")) {
            try KernelTables(parsing: "meta\tgpu\tG\ngemm\tbf16\t1\t2\tx\t0.1\n", file: "t.tsv")
        }
        #expect(throws: KernelTableError("t.tsv:1: unknown row kind 'mla' (known: meta, gemm, context, generation, moe, allreduce)")) {
            try KernelTables(parsing: "mla\t1\n", file: "t.tsv")
        }
        #expect(throws: KernelTableError("t.tsv:1: expected moe DTYPE TP HIDDEN INTERMEDIATE TOPK EXPERTS TOKENS MS")) {
            try KernelTables(parsing: "moe\tbf16\t1\t2\n", file: "t.tsv")
        }
        #expect(throws: KernelTableError("t.tsv: no 'meta source' line")) { try KernelTables(parsing: "meta\tgpu\tG\n", file: "t.tsv") }
    }

    @Test("the committed tables load for A100, H100, H200, B200 and L40S and cover Llama-3.1-8B at TP 1 and 2; the cost model says what it used")
    func committed() throws {
        #expect(KernelTables.available == ["A100-80G", "B200", "H100-80G-SXM", "H200", "L40S"])
        let model = ModelCatalog.named("Llama-3.1-8B-Instruct")!
        for name in KernelTables.available {
            let gpu = GPUCatalog.named(name)!
            let one = CostModel(gpu: gpu, model: model, serving: ServingConfig())
            #expect(one.source.linear == "measured" && one.source.attention == "measured" && one.source.communication == "none", "\(name)")
            var two = ServingConfig()
            two.tensorParallel = 2
            #expect(CostModel(gpu: gpu, model: model, serving: two).source.communication == "measured", "\(name)")
        }
        let l4 = CostModel(gpu: GPUCatalog.named("L4")!, model: model, serving: ServingConfig())
        #expect(l4.source.linear == "roofline" && l4.source.tables == nil)
        #expect(l4.source.description.hasPrefix("roofline for GEMM, attention (no measured kernel tables for L4"))
        var roofline = CostConstants()
        roofline.kernelTables = false
        #expect(CostModel(gpu: GPUCatalog.named("A100-80G")!, model: model, serving: ServingConfig(), constants: roofline).source.attention == "roofline")
        // The A100 has no fp8 tensor cores: fp8 weights run weight-only, timed by the bf16 tables.
        var fp8 = ServingConfig()
        fp8.weightFormat = .fp8
        let a100 = GPUCatalog.named("A100-80G")!, h100 = GPUCatalog.named("H100-80G-SXM")!
        let a100fp8 = CostModel(gpu: a100, model: model, serving: fp8)
        #expect(a100fp8.source.linear == "measured" && a100fp8.source.reasons.isEmpty)
        let bf16 = CostModel(gpu: a100, model: model, serving: ServingConfig())
        var prefill = StepWork()
        prefill.prefillTokens = 4096
        prefill.prefillSequences = 1
        #expect(a100fp8.stepTime(prefill).linear == bf16.stepTime(prefill).linear)
        // Mixture-of-experts layers: measured where the shape and TP have a table, else the roofline, said so.
        let qwen235 = ModelCatalog.named("Qwen3-235B-A22B")!
        var tp8 = ServingConfig()
        tp8.tensorParallel = 8
        #expect(CostModel(gpu: a100, model: qwen235, serving: tp8).source.reasons.isEmpty)
        var fp8tp8 = tp8
        fp8tp8.weightFormat = .fp8
        // H100's block-scaled fp8 MoE table stops at TP 4; the per-tensor one goes to TP 32.
        #expect(CostModel(gpu: h100, model: qwen235, serving: fp8tp8).source.reasons.isEmpty)
        // A100's Qwen3-30B-A3B table stops at TP 4.
        let uncovered = CostModel(gpu: a100, model: ModelCatalog.named("Qwen3-30B-A3B")!, serving: tp8).source
        #expect(uncovered.reasons == ["roofline for the 128 experts (no bf16 MoE table for this shape at TP 8)"])
    }

    @Test("measured decode steps of Llama-3.1-8B on an A100 grow with the batch and the context, and a prefill step with its length")
    func stepTimes() throws {
        let cost = CostModel(gpu: GPUCatalog.named("A100-80G")!, model: ModelCatalog.named("Llama-3.1-8B-Instruct")!, serving: ServingConfig())
        func decode(_ b: Int, _ context: Double) -> Double {
            var w = StepWork()
            w.decodeSequences = b
            w.decodeTokenLayers = Double(b) * context * 32
            w.logitRows = b
            let t = cost.stepTime(w)
            return t.total - t.overhead
        }
        #expect(decode(1, 1000) < decode(8, 1000) && decode(8, 1000) < decode(64, 1000) && decode(64, 1000) < decode(64, 8000))
        // One decode step of an 8B bf16 model reads 15 GiB of weights: 7–12 ms on a 2 TB/s A100
        // (the kernels; the scheduler's overhead comes on top).
        #expect(decode(1, 1000) > 0.007 && decode(1, 1000) < 0.012)
        func prefill(_ n: Int) -> Double {
            var w = StepWork()
            w.prefillTokens = n
            w.prefillSequences = 1
            w.prefillAttentionArea = Double(n) * Double(n) / 2
            w.logitRows = 1
            return cost.stepTime(w).total
        }
        #expect(prefill(512) < prefill(2048) && prefill(2048) < prefill(8192))
    }
}

@Suite("vLLM's start-up profiling peak")
struct ProfilingPeakTests {
    let gpu = GPUCatalog.named("H100-80G-SXM")!
    let model = ModelCatalog.named("Llama-3.1-8B-Instruct")!

    func plan(seqs: Int, tokens: Int, sampler: SamplerKind = .pytorch, constants: MemoryConstants = .fitted) throws -> MemoryPlan {
        var s = ServingConfig()
        s.maxNumSeqs = seqs
        s.maxNumBatchedTokens = tokens
        s.sampler = sampler
        return try MemoryPlan(gpu: gpu, model: model, serving: s, constants: constants)
    }

    @Test("the peak is the sampler's with many sequences and the forward pass's with few; FlashInfer's and the Triton sampler hold less; the estimate added both")
    func peak() throws {
        let gib = 1_073_741_824.0
        let many = try plan(seqs: 1024, tokens: 8192), few = try plan(seqs: 16, tokens: 8192)
        #expect(abs(many.activationBytes - 1024 * 128_256 * 38.8) < 1)
        #expect(abs(few.activationBytes - 8192 * (2 * 4096 + 3 * 14336) * 2 * 1.11) < 1)
        #expect(try plan(seqs: 1024, tokens: 8192, sampler: .flashinfer).activationBytes < many.activationBytes / 3)
        // vLLM ≥ 0.17's in-place Triton top-k/top-p: the 15.5 bytes vLLM 0.19's logs show.
        #expect(abs(try plan(seqs: 1024, tokens: 8192, sampler: .triton).activationBytes - 1024 * 128_256 * 15.5) < 1)
        let estimated = try plan(seqs: 1024, tokens: 8192, constants: .estimated)
        #expect(abs(estimated.activationBytes - (8192 * (2 * 4096 + 3 * 14336) * 2 + 1024 * 128_256 * 8)) < 1)
        // A configuration without a release is the default one's (vLLM 0.19: 0.25 GiB); before 0.19, 0.13 GiB.
        #expect(abs(many.nonTorchBytes / gib - 0.25) < 1e-9)
        var older = ServingConfig()
        older.engineVersion = EngineVersion(0, 11, 0)
        #expect(abs(try MemoryPlan(gpu: gpu, model: model, serving: older).nonTorchBytes / gib - 0.13) < 1e-9)
    }
}

@Suite("engine defaults")
struct ServingEngineTests {
    @Test("vLLM V1 starts large GPUs that are not A100s with 1024 sequences and 8192 tokens, others with 256 and 2048; V0 chunks only past 32k")
    func defaults() {
        let h100 = GPUCatalog.named("H100")!, a100 = GPUCatalog.named("A100-80G")!, l4 = GPUCatalog.named("L4")!
        #expect(ServingEngine.vllmV1.defaults(gpu: h100, maxModelLen: 16000) == (1024, 8192, true))
        #expect(ServingEngine.vllmV1.defaults(gpu: a100, maxModelLen: 16000) == (256, 2048, true))
        #expect(ServingEngine.vllmV1.defaults(gpu: l4, maxModelLen: 4096) == (256, 2048, true))
        #expect(ServingEngine.vllmV0.defaults(gpu: h100, maxModelLen: 8192) == (256, 8192, false))
        #expect(ServingEngine.vllmV0.defaults(gpu: h100, maxModelLen: 32768) == (256, 32768, false))
        #expect(ServingEngine.vllmV0.defaults(gpu: h100, maxModelLen: 65536) == (256, 2048, true))
        #expect(ServingEngine.sglang.memFractionStatic(tensorParallel: 1) == 0.88 && ServingEngine.sglang.memFractionStatic(tensorParallel: 4) == 0.85)
        #expect(ServingEngine.vllmV1.memFractionStatic(tensorParallel: 1) == nil)
    }

    @Test("SGLang's rule: KV = (total − CUDA context) × mem_fraction_static − weights, no profiling peak")
    func sglang() throws {
        var s = ServingConfig()
        s.memFractionStatic = 0.88
        let gpu = GPUCatalog.named("H100")!, model = ModelCatalog.named("Llama-3.1-8B-Instruct")!
        let p = try MemoryPlan(gpu: gpu, model: model, serving: s)
        let gib = 1_073_741_824.0
        #expect(abs(p.kvBytes - ((gpu.cudaVisibleGiB - MemoryConstants.fitted.sglangContextGiB) * 0.88 * gib - p.weightBytes)) < 1)
        #expect(p.activationBytes == 0)
    }
}
