import Foundation
import Hardware
import Policies
import Reporting
import Simulator

// The simulator against published measurements: each case runs the paper's own configuration
// and sets the prediction beside the published figure; `Validation.markdown` is
// Docs/validation.md, `calibrate` the grid search of the cost constants.

/// One published figure and what the simulator predicts for its configuration.
public struct ValidationCase: Sendable {
    public var claim: String
    public var source: String
    public var published: Double
    public var predicted: Double
    public var unit: String
    public var errorPercent: Double { 100 * (predicted - published) / published }
}

/// The validation runs, deterministic: the same build gives the same report.
public struct Validation: Sendable {
    public var scenarioDirectory: String
    public var constants: CostConstants

    public init(scenarioDirectory: String, constants: CostConstants = CostConstants()) {
        self.scenarioDirectory = scenarioDirectory
        self.constants = constants
    }

    func scenario(_ name: String) throws -> Scenario { try Scenario.load(path: "\(scenarioDirectory)/\(name).yaml") }

    func throughput(_ gpu: String, _ model: String, _ scenarioName: String, weights: WeightFormat = .bf16, tp: Int = 1,
                    compression: CompressionSpec? = nil, serving tweak: (inout ServingConfig) -> Void = { _ in }) throws -> SimulationResult {
        let s = try scenario(scenarioName)
        let g = GPUCatalog.named(gpu)!, m = ModelCatalog.named(model)!
        var given = ServingSettings()
        given.weightFormat = weights
        given.tensorParallel = tp
        var serving = try s.serving(gpu: g, model: m, overrides: given)
        tweak(&serving)
        return try Simulation.run(gpu: g, model: m, serving: serving,
                                  compression: compression, coefficients: Coefficients(cost: constants), source: try s.source())
    }

    /// The four KV-Compress L4 rows: the calibration set.
    public func l4Cases() throws -> [ValidationCase] {
        var cases: [ValidationCase] = []
        let l4 = "KV-Compress (arXiv 2410.00161), Llama-3.1-8B-Instruct, one L4, vLLM benchmark_throughput, 256 prompts, 500 out"
        for (prompt, rate, published) in [(500, 2, 2.00), (500, 4, 2.54), (6000, 32, 4.93), (6000, 64, 5.18)] {
            let name = "throughput-\(prompt)-500"
            let full = try throughput("L4", "Llama-3.1-8B-Instruct", name)
            let spec = CompressionSpec(policy: .kvCompress, budget: .tokens(KVCompress.budget(prompt: prompt, rate: rate)), window: 32, decodeTrigger: .onPressure)
            let compressed = try throughput("L4", "Llama-3.1-8B-Instruct", name, compression: spec)
            cases.append(ValidationCase(claim: "throughput × at r = \(rate), \(prompt)-token prompts", source: l4, published: published,
                                        predicted: compressed.outputTokensPerSecond / full.outputTokensPerSecond, unit: "×"))
        }
        return cases
    }

    /// The Llama-3.1-70B-FP8 rows: held out of calibration.
    public func h100Cases() throws -> [ValidationCase] {
        var cases: [ValidationCase] = []
        // The 70B runs' prompt length is not stated with the result. A 70B FP8 model does not fit
        // one H100 with a 19,000-token profiling run (weights 67.7 GiB + its activations exceed
        // 0.9 × 79 GiB), so 500-token prompts and chunked prefill in 512-token chunks (vLLM 0.6's
        // default chunk when chunked prefill is on) are assumed.
        let h100 = "KV-Compress, Llama-3.1-70B-Instruct-FP8, one H100 (assumed: 500-token prompts, chunked prefill, 512-token chunks)"
        for (rate, published) in [(8, 1.8), (64, 2.14)] {
            let chunked: (inout ServingConfig) -> Void = { $0.chunkedPrefill = true; $0.maxNumBatchedTokens = 512 }
            let full = try throughput("H100-80G-SXM", "Llama-3.1-70B-Instruct", "throughput-500-500", weights: .fp8, serving: chunked)
            // benchmarks/scripts/benchmark_llama3_70b.sh raises the per-pass cap to 50,000,000 KVs.
            let spec = CompressionSpec(policy: .kvCompress, budget: .tokens(KVCompress.budget(prompt: 500, rate: rate)), window: 32, decodeTrigger: .onPressure,
                                       maxKVPerPass: 50_000_000)
            let compressed = try throughput("H100-80G-SXM", "Llama-3.1-70B-Instruct", "throughput-500-500", weights: .fp8,
                                            compression: spec, serving: chunked)
            cases.append(ValidationCase(claim: "throughput × at r = \(rate)", source: h100, published: published,
                                        predicted: compressed.outputTokensPerSecond / full.outputTokensPerSecond, unit: "×"))
        }
        return cases
    }

    public func chunkKVCases() throws -> [ValidationCase] {
        // ChunkKV's efficiency table: 8,192 in / 1,024 out, index reuse against no reuse. The paper
        // does not give the GPU or the reuse depth here; A100-80G and groups of 2 layers are assumed.
        let source = "ChunkKV (arXiv 2502.00299), 8192 in / 1024 out, layer-wise index reuse (assumed: A100-80G, Llama-3.1-8B, reuse groups of 2, budget 10 %)"
        let base = CompressionSpec(policy: .chunkKV, budget: .fraction(0.1), reuseGroup: 1)
        let reuse = CompressionSpec(policy: .chunkKV, budget: .fraction(0.1), reuseGroup: 2)
        let single: (inout ServingConfig) -> Void = { $0.maxNumSeqs = 1 }
        let latencyBase = try throughput("A100-80G", "Llama-3.1-8B-Instruct", "throughput-8192-1024", compression: base, serving: single)
        let latencyReuse = try throughput("A100-80G", "Llama-3.1-8B-Instruct", "throughput-8192-1024", compression: reuse, serving: single)
        let tputBase = try throughput("A100-80G", "Llama-3.1-8B-Instruct", "throughput-8192-1024", compression: base)
        let tputReuse = try throughput("A100-80G", "Llama-3.1-8B-Instruct", "throughput-8192-1024", compression: reuse)
        return [
            ValidationCase(claim: "latency change with index reuse (one request at a time)", source: source, published: -20.7,
                           predicted: 100 * (latencyReuse.e2eMs.mean / latencyBase.e2eMs.mean - 1), unit: "%"),
            ValidationCase(claim: "throughput change with index reuse (64 requests at t = 0)", source: source, published: 26.5,
                           predicted: 100 * (tputReuse.outputTokensPerSecond / tputBase.outputTokensPerSecond - 1), unit: "%"),
        ]
    }

    /// The full-cache baseline's sensitivity: the published multipliers hinge on how many
    /// 6,000-token sequences vLLM's full cache held.
    public func sensitivity() throws -> [(String, Int, Double)] {
        var rows: [(String, Int, Double)] = []
        for util in [0.90, 0.92, 0.94, 0.96] {
            let set: (inout ServingConfig) -> Void = { $0.gpuMemoryUtilization = util }
            let s = try scenario("throughput-6000-500")
            let g = GPUCatalog.named("L4")!, m = ModelCatalog.named("Llama-3.1-8B-Instruct")!
            var serving = try s.serving(gpu: g, model: m)
            set(&serving)
            let plan = try MemoryPlan(gpu: g, model: m, serving: serving)
            let full = try throughput("L4", "Llama-3.1-8B-Instruct", "throughput-6000-500", serving: set)
            let spec = CompressionSpec(policy: .kvCompress, budget: .tokens(128), window: 32, decodeTrigger: .onPressure)
            let comp = try throughput("L4", "Llama-3.1-8B-Instruct", "throughput-6000-500", compression: spec, serving: set)
            rows.append((String(format: "%.2f", util), plan.kvTokens, comp.outputTokensPerSecond / full.outputTokensPerSecond))
        }
        return rows
    }

    /// Grid search over KV-Compress's per-sequence metric cost, the step overhead and the GEMM
    /// efficiency (the L4 has no measured kernel tables), minimising the median absolute error of
    /// the four L4 rows.
    public func calibrate() throws -> String {
        let search = try calibrationSearch()
        let c = search.best
        return (search.lines + [String(format: "best: decodeMetricPerSequence %.4f s, stepOverhead %.3f s, gemmEfficiency %.2f: median error %.1f %%",
                                       c.decodeMetricPerSequence, c.stepOverhead, c.gemmEfficiency, search.median)]).joined(separator: "\n")
    }

    /// The grid search `calibrate` prints: the best constants, their median absolute error over
    /// the four L4 rows, and one line per grid point.
    public func calibrationSearch() throws -> (best: CostConstants, median: Double, lines: [String]) {
        var best: (Double, CostConstants)?
        var lines = ["metric ms/seq  step ms  gemm eff  median |error| of the 4 L4 rows"]
        for perSeq in [0.0, 0.2, 0.4, 0.8, 1.2, 1.6, 2.4] {
            for step in [0.002, 0.004, 0.008] {
                for gemm in [0.25, 0.3, 0.4, 0.5, 0.7] {
                    var c = constants
                    c.decodeMetricPerSequence = perSeq / 1000
                    c.stepOverhead = step
                    c.gemmEfficiency = gemm
                    let errors = try Validation(scenarioDirectory: scenarioDirectory, constants: c).l4Cases().map { abs($0.errorPercent) }
                    let median = ErrorStatistics.median(errors)!
                    if best == nil || median < best!.0 { best = (median, c) }
                    lines.append(String(format: "%13.2f  %7.0f  %8.2f  %.1f %%", perSeq, step * 1000, gemm, median))
                }
            }
        }
        return (best!.1, best!.0, lines)
    }

    public func markdown() throws -> String {
        let defaults = try l4Cases() + h100Cases() + chunkKVCases()
        var rooflineConstants = CostConstants()
        rooflineConstants.kernelTables = false
        let rooflineRun = Validation(scenarioDirectory: scenarioDirectory, constants: rooflineConstants)
        let roofline = try rooflineRun.l4Cases() + rooflineRun.h100Cases() + rooflineRun.chunkKVCases()
        let calibratedRun = Validation(scenarioDirectory: scenarioDirectory, constants: .calibratedKVCompressL4)
        let calibrated = try calibratedRun.l4Cases() + calibratedRun.h100Cases() + calibratedRun.chunkKVCases()
        func p90(_ cases: [ValidationCase]) -> Double { ErrorStatistics.percentile90(cases.map { abs($0.errorPercent) })! }
        func median(_ cases: ArraySlice<ValidationCase>) -> Double { ErrorStatistics.median(cases.map { abs($0.errorPercent) })! }
        let c = CostConstants.calibratedKVCompressL4, d = CostConstants()
        let serving = Table(columns: ["claim", "published", "roofline", "error", "defaults", "error", "calibrated", "error", "configuration and source"],
                            rows: defaults.indices.map { i in
                                let r = roofline[i], a = defaults[i], b = calibrated[i]
                                return [a.claim, fmt(a.published) + a.unit, fmt(r.predicted) + r.unit, pct(r.errorPercent), fmt(a.predicted) + a.unit,
                                        pct(a.errorPercent), fmt(b.predicted) + b.unit, pct(b.errorPercent), a.source]
                            }, rightAligned: Set(1...7))
        func all(_ label: String, _ range: Range<Int>) -> [String] {
            [label] + [roofline, defaults, calibrated].map { String(format: "%.0f %%", median($0[range])) }
        }
        let medians = Table(columns: ["median absolute error", "roofline", "defaults", "calibrated"],
                            rows: [all("KV-Compress, L4 (4 rows; calibration set)", 0..<4), all("KV-Compress, H100 70B-FP8 (2 rows; held out)", 4..<6),
                                   all("ChunkKV index reuse (2 rows; held out)", 6..<8), all("all 8 rows", 0..<defaults.count),
                                   ["all 8 rows, 90th percentile"] + [roofline, defaults, calibrated].map { String(format: "%.0f %%", p90($0)) }],
                            rightAligned: [1, 2, 3])
        let sensitivityTable = Table(columns: ["gpu_memory_utilization", "KV tokens (full cache)", "predicted r = 64 multiplier"],
                                     rows: try sensitivity().map { [$0.0, "\($0.1)", fmt($0.2) + "×"] }, rightAligned: [0, 1, 2])
        let capacity = try capacitySection()
        let md = """
        # Validation: the simulator against published measurements

        Generated by `ckv-sim validate --out Docs/validation.md` (deterministic: the same build
        writes the same file). Each row runs the simulator with the paper's own configuration as
        far as the paper states it (assumptions are named in the last column) and compares the
        predicted figure with the published one. Error = (predicted − published) / published.

        Three cost models. **Roofline**: the efficiency constants alone everywhere (GEMM efficiency
        \(d.gemmEfficiency), its compute rates slowed × \(d.sustainedComputeScale) to the clocks a serving GPU sustains; vLLM V0's step overhead \(fmtMs(d.stepOverhead)) and per-sequence overhead \(fmtMs(d.perSequenceOverhead)); V1's and SGLang's
        \(fmtMs(d.overhead(for: .vllmV1).step)) and \(fmtMs(d.overhead(for: .vllmV1).perSequence)), and their API servers' \(fmtMs(d.overhead(for: .vllmV1).perRequest)) and \(fmtMs(d.overhead(for: .sglang).perRequest)) per request, fitted to the serving runs below; KV-Compress's host work
        \(fmtMs(d.decodeMetricPerSequence)) per sequence per step; and per GPU a factor on its kernel times, fitted with them: \(d.gpuTimeScales.isEmpty ? "none" : d.gpuTimeScales.sorted { $0.key < $1.key }.map { "\($0.key) × \($0.value)" }.joined(separator: ", "))). **Defaults**: the same constants, with GEMM, attention and
        all-reduce times taken from the measured kernel tables where the GPU has them, their compute-bound share slowed the same × \(d.sustainedComputeScale) (fitted with the overheads; `Docs/simulator.md`,
        "Measured kernel times": A100-80G, H100-80G-SXM, H200, B200 and L40S; the L4 rows stay on the
        roofline). **Calibrated**: the set that `ckv-sim validate --calibrate` fits to the four L4 rows by
        grid search (GEMM efficiency \(c.gemmEfficiency), V0 step overhead \(fmtMs(c.stepOverhead)), KV-Compress host work
        \(fmtMs(c.decodeMetricPerSequence)) per sequence), with the measured tables where they exist. The calibrated column is
        in-sample for the L4 rows and out-of-sample for the others.

        The KV-Compress runs are modelled as vllm-kvcompress runs them (its `benchmark_throughput.py`):
        vLLM 0.6 (V0) in eager mode, no chunked prefill, compression in passes after every step that
        prefilled and when blocks run out, each pass capped at 5 M KVs (50 M in the 70B script), and at every decode step the fork's metric bookkeeping — a clear and an
        accumulate over the whole pool (76 bytes per KV slot) and host work per running sequence — and
        its decode attention kernel (`DecodeAttention.perHeadPaged`): a thread block per query head that
        re-reads its KV head's blocks, timed as the engine's FlashAttention decode × \(fmt(d.pagedAttentionSlowdown)) × (1 +
        \(fmt(d.pagedAttentionReread)) × (query heads per KV head − 1)) (× \(fmt(d.pagedAttentionSlowdown * (1 + d.pagedAttentionReread * 3))) for Llama-3.1-8B, × \(fmt(d.pagedAttentionSlowdown * (1 + d.pagedAttentionReread * 7))) for the 70B; vLLM
        PRs #3010 and #2744 measured the paged kernel against FlashAttention), plus each key's attention
        written for the metrics (\(Int(d.pagedAttentionMetricBytes)) bytes per key per query head). The full-cache baselines run
        the fork with compression off, which is stock FlashAttention.

        ## Serving results

        \(serving.markdown)

        \(medians.markdown)

        The goal is a median error ≤ 15 % on the compression multipliers. With the defaults it is
        \(median(defaults[0..<6]) <= 15 ? "met" : "**not met**") on the six KV-Compress rows (\(String(format: "%.0f", median(defaults[0..<6]))) %): the 500-token rows are within \(String(format: "%.0f", defaults[0..<2].map { abs($0.errorPercent) }.max() ?? 0)) %,
        the 6,000-token rows over-predict by \(String(format: "%.0f", defaults[2..<4].map { abs($0.errorPercent) }.min() ?? 0))–\(String(format: "%.0f", defaults[2..<4].map { abs($0.errorPercent) }.max() ?? 0)) % and the 70B-FP8 rows by \(String(format: "%.0f", defaults[4..<6].map { abs($0.errorPercent) }.min() ?? 0))–\(String(format: "%.0f", defaults[4..<6].map { abs($0.errorPercent) }.max() ?? 0)) %. The calibrated
        constants meet it on the four L4 rows they were fitted to; on the held-out 70B-FP8 rows they
        give \(String(format: "%.0f", median(calibrated[4..<6]))) % (defaults \(String(format: "%.0f", median(defaults[4..<6]))) %). The fork's pool is modelled
        (`PoolMetadata.kvCompress`: per-KV metadata makes a Llama-3.1-8B block 8,917 bytes instead of 8,192, and its
        preallocated block table comes out of the pool), and so are its compression passes with their cap on the KVs one pass sorts
        (it binds rarely here: a 6,000-token prompt is 1.5 M KVs of Llama-3.1-8B, and the pass after each prefill holds one), and
        so is its slower decode kernel. The 70B rows' prompt length is assumed.

        ## Serving runs without compression

        \(try Self.servingMarkdown(before: rooflineConstants, after: CostConstants(), beforeLabel: "the roofline", afterLabel: "the defaults"))

        ## Why the KV-Compress multipliers are over-predicted with the defaults

        The multiplier is compressed throughput over full-cache throughput. With the defaults the
        compressed runs reach mean decode batches of 20 to 100 sequences, and a decode step is dominated by
        streaming 15 GiB of weights, so what grows with the batch decides the multiplier: the fork's
        host work per sequence (modelled, \(fmtMs(d.decodeMetricPerSequence)) per sequence per step) and
        its per-query-head paged-attention kernel (modelled, above). The full-cache baseline matters as much: on
        an L4 it runs two or three 6,000-token sequences at once, because the 22 GiB card holds
        15 GiB of weights and the KV cache is what is left after vLLM's profiling run. The paper does
        not give the baseline's `# GPU blocks`, so the simulator's memory arithmetic decides it. How
        the r = 64 multiplier (defaults) moves with the memory left for KV, varied through
        `gpu_memory_utilization`:

        \(sensitivityTable.markdown)

        ChunkKV's layer-wise index reuse saves only the scoring of the reused layers. In this cost
        model scoring is a few milliseconds per request (window attention of a few queries and a
        top-k per layer), so skipping half of it changes latency and throughput by well under 1 %;
        the paper's −20.7 % / +26.5 % come from its own implementation, where selection costs far
        more relative to the forward pass. The simulator does not reproduce them, with either set.

        \(capacity)
        """
        return md + "\n"
    }

    /// KV capacity against vLLM's start-up logs: every committed measurement with the estimated
    /// (before) and the fitted (after) memory constants, and the error per split.
    func capacitySection() throws -> String {
        let all = try CapacityMeasurement.committed()
        let refit = try Self.fitMemoryConstants(all)
        func abs90(_ e: [Double]) -> (Double, Double) {
            let a = e.map(abs)
            return (ErrorStatistics.median(a) ?? 0, ErrorStatistics.percentile90(a) ?? 0)
        }
        var rows: [[String]] = []
        var before: [Split: [Double]] = [:], after: [Split: [Double]] = [:]
        for m in all {
            let b = try m.predictedGiB(.estimated), a = try m.predictedGiB(.fitted)
            let eb = m.errorPercent(predicted: b), ea = m.errorPercent(predicted: a)
            before[m.split, default: []].append(eb)
            after[m.split, default: []].append(ea)
            rows.append([m.id, m.split.rawValue, m.gpu + (m.serving.tensorParallel > 1 ? " × \(m.serving.tensorParallel)" : ""), m.model,
                         String(format: "%.2f", m.kvGiB), String(format: "%.2f (%+.1f %%)", b, eb), String(format: "%.2f (%+.1f %%)", a, ea)])
        }
        let points = Table(columns: ["measurement", "split", "GPU", "model", "logged KV GiB", "before", "after"], rows: rows, rightAligned: [4, 5, 6])
        let summary = Table(columns: ["split", "points", "median |error| before", "after", "90th percentile before", "after"],
                            rows: [Split.fit, .check].map { split in
                                let (mb, pb) = abs90(before[split] ?? []), (ma, pa) = abs90(after[split] ?? [])
                                return [split.rawValue, "\(before[split]?.count ?? 0)", String(format: "%.1f %%", mb), String(format: "%.1f %%", ma),
                                        String(format: "%.1f %%", pb), String(format: "%.1f %%", pa)]
                            }, rightAligned: [1, 2, 3, 4, 5])
        let f = MemoryConstants.fitted
        let agrees = refit == f ? "they are the constants in use" : "**they differ from the constants in use** (`MemoryConstants.fitted`): update them"
        return """
        ## KV capacity against vLLM's start-up logs

        vLLM sizes its KV cache at start-up: `total × gpu_memory_utilization − (weights + the
        profiling run's activation peak + non-torch memory)`, then blocks of 16 tokens
        (`Docs/simulator.md`, "Memory"). \(all.count) public start-up logs with their configuration
        (`Sources/Validation/Data/kv-capacity.json`, each with its source, the log line and how
        the unstated settings follow from vLLM's defaults) check it. **Before**: the constants
        estimated without the logs (the sampler's logits and probabilities on top of the forward
        pass, 0.6 GiB of non-torch memory, 0.85 GiB with TP). **After**: the constants the `fit`
        split gives, each the median of what its logs imply (`Validation.fitMemoryConstants`): the
        sampler holds \(f.samplerBytesPerLogit[.pytorch]!) bytes per row × vocabulary entry with PyTorch's
        top-k/top-p, \(gib(f.samplerBytes(.triton))) with the Triton kernel vLLM 0.17 and later mask top-k/top-p with in place
        (PyTorch's less the \(Int(SamplerKind.tritonSaving)) bytes of copies that code does not make would be \(gib(f.samplerBytesPerLogit[.pytorch]! - SamplerKind.tritonSaving))),
        and \(f.samplerBytesPerLogit[.flashinfer]!) with FlashInfer's; the peak is the larger of the
        sampler's and the forward pass's (× \(f.forwardScale)), and from vLLM 0.14 a mixture of experts' fused-MoE
        workspace stays allocated beside the sampler (`MemoryPlan.persistentMoEWorkspaceBytes`; 512 MiB for Qwen3-30B-A3B
        at 8192 tokens). Non-torch memory is \(f.nonTorchGiB) GiB
        (\(f.nonTorchTensorParallelGiB) GiB per GPU with TP), and from vLLM \(MemoryConstants.recentNonTorchFrom) (the first release whose logs show it; the set has
        none of 0.12–0.18) \(f.recentNonTorchGiB.map(gib) ?? "the same") GiB (\(f.recentNonTorchTensorParallelGiB.map(gib) ?? "the same") GiB with TP). SGLang sizes its pool its own way — the memory free
        at start-up × `mem_fraction_static` − weights — from the total less the CUDA context, \(f.sglangContextGiB) GiB.
        Refitted now, the fit split gives \(refit.samplerBytesPerLogit[.pytorch]!) / \(gib(refit.samplerBytes(.triton))) / \(refit.samplerBytesPerLogit[.flashinfer]!) bytes,
        × \(refit.forwardScale), \(refit.nonTorchGiB) / \(refit.nonTorchTensorParallelGiB) GiB, \(refit.recentNonTorchGiB.map(gib) ?? "–") / \(refit.recentNonTorchTensorParallelGiB.map(gib) ?? "–") GiB and \(refit.sglangContextGiB) GiB:
        \(agrees). The `check` split is used for nothing but this table.

        \(summary.markdown)

        \(points.markdown)

        The GPUs' totals are the ones the runtime reports (`ckv-sim gpus`, with the log each comes
        from). Logs of multimodal models, unified-memory devices, models with sliding-window layers
        (Gemma 2 and 3: vLLM's hybrid allocator) and MoE models in the fit split are not in the set
        yet, nor one of a desktop GPU whose display already held 1.2 GB (SGLang on an RTX 3090).

        """
    }

    private func pct(_ v: Double) -> String { String(format: "%+.0f %%", v) }
    /// A memory constant as the fit rounds it (24.8, not 24.799999999999997).
    private func gib(_ v: Double) -> String { String(format: "%g", (v * 100).rounded() / 100) }
    private func fmtMs(_ s: Double) -> String { String(format: "%g ms", s * 1000) }

    private func fmt(_ v: Double) -> String { String(format: abs(v) >= 10 ? "%.1f" : "%.2f", v) }
}
