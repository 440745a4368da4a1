import Foundation
import Policies
import Testing
import TestSupport
@testable import Hardware

private func tempFile(_ name: String, _ contents: String) throws -> String { try TestSupport.temporaryFile(name, contents) }

@Suite("model specs")
struct ModelSpecTests {
    /// Parameter counts the model cards state.
    @Test("parameter counts match the published sizes", arguments: [
        ("Llama-3.1-8B-Instruct", 8.03e9), ("Llama-3.1-70B-Instruct", 70.55e9), ("Llama-3.2-1B-Instruct", 1.24e9),
        ("Llama-3.2-3B-Instruct", 3.21e9), ("Mistral-7B-Instruct-v0.3", 7.25e9), ("Qwen2.5-7B-Instruct", 7.62e9),
        ("Qwen2.5-72B-Instruct", 72.7e9), ("SmolLM2-135M-Instruct", 0.135e9), ("Qwen3-14B", 14.8e9),
        ("Qwen3-30B-A3B", 30.5e9), ("Qwen3-235B-A22B", 235.1e9), ("Mixtral-8x7B-Instruct-v0.1", 46.7e9),
        ("Llama-2-7B-Chat", 6.74e9),
    ])
    func parameters(name: String, published: Double) throws {
        let m = try #require(ModelCatalog.named(name))
        #expect(abs(m.totalParameters - published) / published < 0.01, "\(name): \(m.totalParameters)")
    }

    @Test("KV bytes per token: layers × 2 × KV heads × head_dim × dtype, windows capped")
    func kvBytes() throws {
        let llama = try #require(ModelCatalog.named("llama-3.1-8b"))
        #expect(llama.kvBytesPerTokenLayer(.bf16) * Double(llama.layers) == 131_072)
        #expect(llama.kvBytes(tokens: 1000, format: .fp8) == 65_536 * 1000)
        #expect(llama.kvBytesPerTokenLayer(.bf16, tp: 4) * 32 == 32_768) // 2 of 8 KV heads per GPU
        let gemma = try #require(ModelCatalog.named("Gemma-3-27B-it"))
        #expect(gemma.globalLayers == 10 && gemma.localLayers == 52)
        #expect(gemma.isGlobal(layer: 5) && !gemma.isGlobal(layer: 6))
        let perLayer = 2.0 * 16 * 128 * 2
        #expect(gemma.kvBytes(tokens: 32768, format: .bf16) == perLayer * (10 * 32768 + 52 * 1024))
        #expect(gemma.kvBytes(tokens: 32768, kept: 512, format: .bf16) == perLayer * (10 * 512 + 52 * 1024))
        // KV heads are replicated, not split, when there are fewer than ranks.
        let smol = try #require(ModelCatalog.named("SmolLM2-135M-Instruct"))
        #expect(smol.kvHeadsPerGPU(tp: 4) == 1)
    }

    @Test("weight bytes per format: fp8 and int4 keep embeddings in bf16")
    func weights() throws {
        let m = try #require(ModelCatalog.named("Llama-3.1-70B-Instruct"))
        let embed = m.embeddingParameters * 2 * 2
        #expect(abs(m.weightBytes(.fp8) - (m.linearParameters + embed + m.normParameters * 2)) < 1)
        #expect(m.weightBytes(.int4) < m.weightBytes(.fp8))
        #expect(abs(m.weightBytes(.bf16, tp: 4) - (m.weightBytes(.bf16) - m.normParameters * 2) / 4 - m.normParameters * 2) < 1)
    }

    @Test("a Hugging Face config.json is read, and a missing key is named")
    func hfConfig() throws {
        let llama = try tempFile("config.json", """
        {"_name_or_path": "meta-llama/Llama-3.1-8B-Instruct", "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
         "num_hidden_layers": 32, "intermediate_size": 14336, "vocab_size": 128256, "max_position_embeddings": 131072,
         "tie_word_embeddings": false, "model_type": "llama"}
        """)
        let m = try ModelSpec.fromHFConfig(path: llama)
        var expected = ModelCatalog.named("Llama-3.1-8B-Instruct")!
        expected.source = llama
        #expect(m == expected)

        let gemma = try tempFile("config.json", """
        {"model_type": "gemma3", "text_config": {"model_type": "gemma3_text", "hidden_size": 5376, "num_attention_heads": 32,
         "num_key_value_heads": 16, "head_dim": 128, "num_hidden_layers": 62, "intermediate_size": 21504, "vocab_size": 262208,
         "max_position_embeddings": 131072, "sliding_window": 1024, "sliding_window_pattern": 6}}
        """)
        let g = try ModelSpec.fromHFConfig(path: gemma)
        #expect(g.slidingWindow == 1024 && g.globalLayers == 10 && g.tiedEmbeddings)

        let qwen = try tempFile("config.json", """
        {"model_type": "qwen2", "hidden_size": 3584, "num_attention_heads": 28, "num_key_value_heads": 4, "num_hidden_layers": 28,
         "intermediate_size": 18944, "vocab_size": 152064, "max_position_embeddings": 32768, "sliding_window": 131072, "use_sliding_window": false,
         "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}}
        """)
        let q = try ModelSpec.fromHFConfig(path: qwen)
        #expect(q.maxContext == 131072 && q.slidingWindow == nil && q.qkvBias)

        let missing = try tempFile("config.json", #"{"hidden_size": 4096, "num_attention_heads": 32, "intermediate_size": 14336, "vocab_size": 128256, "max_position_embeddings": 8192}"#)
        #expect(throws: ModelSpecError("\(missing): config.json has no integer \"num_hidden_layers\", which is needed")) {
            try ModelSpec.fromHFConfig(path: missing)
        }
        let broken = try tempFile("config.json", "{ not json")
        #expect((try? ModelSpec.fromHFConfig(path: broken)) == nil)
    }
}

@Suite("memory math")
struct MemoryPlanTests {
    /// vLLM's `CacheEngine.get_cache_block_size` and `num_gpu_blocks = available // block_bytes`,
    /// written out independently of `MemoryPlan`.
    static func vllmBlocks(available: Double, model: ModelSpec, tp: Int, dtypeBytes: Int = 2) -> Int {
        let kvHeads = max(1, model.kvHeads / tp)
        let blockBytes = 16 * model.layers * 2 * kvHeads * model.headDim * dtypeBytes
        return Int(available) / blockBytes
    }

    @Test("KV blocks agree with vLLM's arithmetic", arguments: [
        ("Llama-3.1-8B-Instruct", "A100-80G", 1), ("Mistral-7B-Instruct-v0.3", "L4", 1), ("Qwen2.5-72B-Instruct", "H100-80G-SXM", 4),
    ])
    func vllmCapacity(model name: String, gpu: String, tp: Int) throws {
        var serving = ServingConfig()
        serving.tensorParallel = tp
        let model = try #require(ModelCatalog.named(name))
        let plan = try MemoryPlan(gpu: try #require(GPUCatalog.named(gpu)), model: model, serving: serving)
        #expect(plan.vllmBlocks == Self.vllmBlocks(available: plan.kvBytes, model: model, tp: tp))
        #expect(plan.kvTokens == plan.vllmBlocks * 16)
        // The parts add up.
        #expect(abs(plan.budgetBytes - plan.weightBytes - plan.activationBytes - plan.nonTorchBytes - plan.kvBytes) < 1)
    }

    @Test("the activation peak grows with the profiling run's tokens once the forward pass outweighs the sampler")
    func activation() throws {
        let gpu = GPUCatalog.named("A100-80G")!, model = ModelCatalog.named("Llama-3.1-8B-Instruct")!
        var small = ServingConfig(), large = ServingConfig()
        small.maxNumBatchedTokens = 2048
        large.maxNumBatchedTokens = 16384
        // 16 sequences: the dummy sampling step's 16 rows of logits are far below the forward pass.
        small.maxNumSeqs = 16
        large.maxNumSeqs = 16
        let a = try MemoryPlan(gpu: gpu, model: model, serving: small), b = try MemoryPlan(gpu: gpu, model: model, serving: large)
        #expect(b.activationBytes > a.activationBytes * 4)
        #expect(b.kvBytes < a.kvBytes)
        var unchunked = ServingConfig()
        unchunked.chunkedPrefill = false
        unchunked.maxModelLen = 131072
        #expect(unchunked.batchedTokens(for: model) == 131072)
    }

    @Test("a model that cannot fit says why")
    func doesNotFit() {
        do {
            _ = try MemoryPlan(gpu: GPUCatalog.named("L4")!, model: ModelCatalog.named("Llama-3.1-70B-Instruct")!, serving: ServingConfig())
            Issue.record("70B bf16 fitted on an L4")
        } catch let error as CapacityError {
            #expect(error.description.contains("does not fit on L4"))
            #expect(error.description.contains("weights"))
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test("concurrency shrinks with context and grows with compression")
    func concurrency() throws {
        let plan = try MemoryPlan(gpu: GPUCatalog.named("A100-80G")!, model: ModelCatalog.named("Llama-3.1-8B-Instruct")!, serving: ServingConfig())
        let full = NominalFootprint(layout: .perSequence)
        let at32k = plan.maxConcurrency(footprint: full, prompt: 32768, output: 0, keptAtEnd: 32768)
        let at128k = plan.maxConcurrency(footprint: full, prompt: 131072, output: 0, keptAtEnd: 131072)
        #expect(at32k > at128k && at128k >= 2)
        #expect(at128k == plan.phbCapacity / full.phb(tokens: 131072, kept: 131072, plan: plan))
        // One request holds its whole prompt while it prefills; the others their compressed KV.
        let compressed = plan.maxConcurrency(footprint: full, prompt: 131072, output: 0, keptAtEnd: 1024)
        let peak = full.phb(tokens: 131072, kept: 131072, plan: plan), end = full.phb(tokens: 131072, kept: 1024, plan: plan)
        #expect(compressed == min(plan.serving.maxNumSeqs, 1 + (plan.phbCapacity - peak) / end))
        #expect(compressed > 50 * at128k)
    }

    @Test("GPU names are case-insensitive with aliases")
    func names() {
        #expect(GPUCatalog.named("a100-80g")?.name == "A100-80G")
        #expect(GPUCatalog.named("h100")?.name == "H100-80G-SXM")
        #expect(GPUCatalog.named("H100 PCIe")?.name == "H100-80G-PCIe")
        #expect(GPUCatalog.named("V100") == nil)
        #expect(GPUCatalog.all.count >= 10)
        // fp8 on a GPU without it falls back to bf16.
        #expect(GPUCatalog.named("A100-80G")!.flops(.fp8) == 312e12)
    }
}

@Suite("cost model")
struct CostModelTests {
    let gpu = GPUCatalog.named("A100-80G")!
    let model = ModelCatalog.named("Llama-3.1-8B-Instruct")!
    /// These tests check the roofline's own formulas: without the measured kernel tables
    /// (KernelTablesTests check those).
    let roofline = { var c = CostConstants(); c.kernelTables = false; return c }()

    @Test("a small decode step is bound by reading the weights")
    func decodeBound() {
        let cost = CostModel(gpu: gpu, model: model, serving: ServingConfig(), constants: roofline)
        var w = StepWork()
        w.decodeSequences = 1
        w.logitRows = 1
        w.decodeTokenLayers = 1000 * 32
        let t = cost.stepTime(w)
        let weightsRead = model.linearParameters * 2 / (gpu.bandwidthGBps * 1e9 * cost.constants.memoryEfficiency)
        #expect(abs(t.linear - weightsRead) / weightsRead < 1e-9)
        // More sequences cost more, but far less than proportionally.
        w.decodeSequences = 64
        w.logitRows = 64
        w.decodeTokenLayers = 64 * 1000 * 32
        let t64 = cost.stepTime(w)
        #expect(t64.total > t.total && t64.total < 8 * t.total)
    }

    @Test("a long prefill is bound by compute and attention grows quadratically")
    func prefill() {
        let cost = CostModel(gpu: gpu, model: model, serving: ServingConfig(), constants: roofline)
        func prefill(_ n: Double) -> StepTime {
            var w = StepWork()
            w.prefillTokens = Int(n)
            w.prefillSequences = 1
            w.prefillAttentionArea = n * n / 2
            w.logitRows = 1
            return cost.stepTime(w)
        }
        let a = prefill(8192), b = prefill(16384)
        #expect(abs(b.linear / a.linear - 2) < 1e-9)
        #expect(abs(b.attention / a.attention - 4) < 1e-9)
    }

    @Test("KV-Compress's per-query-head paged kernel slows decode attention by its group's re-reads, with tables and without; prefill is untouched", arguments: [false, true])
    func perHeadPagedDecode(tables: Bool) {
        var constants = CostConstants()
        constants.kernelTables = tables
        let cost = CostModel(gpu: gpu, model: model, serving: ServingConfig(), constants: constants)
        var w = StepWork()
        w.decodeSequences = 32
        w.logitRows = 32
        w.decodeTokenLayers = 32 * 2000 * 32
        var paged = w
        paged.decodeAttention = .perHeadPaged
        let engine = cost.stepTime(w).attention, fork = cost.stepTime(paged).attention
        // Llama-3.1-8B: 32 query heads over 8 KV heads, groups of 4.
        let c = cost.constants
        let metrics = w.decodeTokenLayers * 32 * c.pagedAttentionMetricBytes / (gpu.bandwidthGBps * 1e9 * c.attentionMemoryEfficiency)
        let expected = engine * c.pagedAttentionSlowdown * (1 + c.pagedAttentionReread * 3) + metrics
        #expect(abs(fork - expected) / expected < 1e-12)
        #expect(fork > 1.5 * engine)
        #expect(cost.stepTime(paged).linear == cost.stepTime(w).linear)
        var prefill = StepWork()
        prefill.prefillTokens = 4096
        prefill.prefillSequences = 1
        prefill.prefillAttentionArea = 4096 * 2048
        var prefillPaged = prefill
        prefillPaged.decodeAttention = .perHeadPaged
        #expect(cost.stepTime(prefillPaged) == cost.stepTime(prefill))
    }

    @Test("tensor parallelism splits the work and adds all-reduces")
    func tensorParallel() {
        var serving = ServingConfig()
        serving.tensorParallel = 4
        let one = CostModel(gpu: gpu, model: model, serving: ServingConfig(), constants: roofline)
        let four = CostModel(gpu: gpu, model: model, serving: serving, constants: roofline)
        var w = StepWork()
        w.prefillTokens = 4096
        w.prefillSequences = 1
        w.prefillAttentionArea = 4096 * 2048
        #expect(four.stepTime(w).linear < one.stepTime(w).linear / 3.9)
        #expect(four.stepTime(w).communication > 0 && one.stepTime(w).communication == 0)
    }

    @Test("H2O's scoring costs more than SnapKV's at long prompts")
    func scoring() {
        let cost = CostModel(gpu: gpu, model: model, serving: ServingConfig())
        let snap = cost.compressionTime(promptTokens: 32768, keptTokens: 1024, window: 32, scoredLayers: 32, fullAttentionScores: false, sortsAcrossLayers: false)
        let h2o = cost.compressionTime(promptTokens: 32768, keptTokens: 1024, window: 8, scoredLayers: 32, fullAttentionScores: true, sortsAcrossLayers: false)
        #expect(h2o > 10 * snap && snap > 0)
    }
}

@Suite("model specs from the reference GGUFs")
struct GGUFImportTests {
    static let root = TestSupport.repositoryRoot

    @Test("Gemma 3 270M and SmolLM2-135M read as REFERENCES.md describes them")
    func referenceModels() throws {
        let gemmaPath = Self.root.appendingPathComponent("Models/gemma-3-270m-q4_k_m.gguf").path
        let smolPath = Self.root.appendingPathComponent("Models/SmolLM2-135M-Instruct.Q4_1.gguf").path
        try #require(FileManager.default.fileExists(atPath: gemmaPath) && FileManager.default.fileExists(atPath: smolPath),
                     "run scripts/setup.sh to install the reference models")
        let g = try ModelSpec.fromGGUF(path: gemmaPath)
        #expect([g.layers, g.hidden, g.heads, g.kvHeads, g.headDim, g.intermediate, g.vocab, g.maxContext] == [18, 640, 4, 1, 256, 2048, 262_144, 32768] as [Int])
        #expect(g.slidingWindow == 512 && g.globalLayers == 3 && g.tiedEmbeddings)
        let s = try ModelSpec.fromGGUF(path: smolPath)
        #expect([s.layers, s.hidden, s.heads, s.kvHeads, s.headDim, s.intermediate, s.vocab, s.maxContext] == [30, 576, 9, 3, 64, 1536, 49152, 8192] as [Int])
        #expect(s.slidingWindow == nil && s.tiedEmbeddings)
        // The catalogue entries agree with the files.
        let catalogue = ModelCatalog.named("SmolLM2-135M-Instruct")!
        #expect([catalogue.layers, catalogue.heads, catalogue.kvHeads, catalogue.headDim] == [s.layers, s.heads, s.kvHeads, s.headDim] as [Int])
    }
}

@Suite("mixtures of experts")
struct MixtureTests {
    @Test("weights hold every expert, a token computes with its active ones (Qwen3-30B-A3B: 30.5B held, about 3.3B active)")
    func activeParameters() throws {
        let m = try #require(ModelCatalog.named("Qwen3-30B-A3B"))
        #expect(m.isMoE)
        let active = m.activeLinearParameters + m.embeddingParameters * 2 + m.normParameters
        #expect(abs(active - 3.3e9) / 3.3e9 < 0.06, "\(active)")
        #expect(m.linearParameters > 9 * m.activeLinearParameters)
    }

    @Test("experts touched by a step grow with its tokens, from the active ones to all of them")
    func expertsTouched() throws {
        let m = try #require(ModelCatalog.named("Qwen3-30B-A3B"))
        var last = 0.0
        for tokens in [1.0, 2, 8, 64, 512, 8192] {
            let e = m.expertsTouched(tokens: tokens)
            #expect(e > last && e <= Double(m.experts))
            last = e
        }
        #expect(abs(m.expertsTouched(tokens: 1) - 8) < 1e-9)
        #expect(Double(m.experts) - m.expertsTouched(tokens: 8192) < 0.01)
    }

    @Test("a one-sequence decode step of the mixture reads far less than its weights; a dense model of the same size reads them all")
    func decodeCost() throws {
        let moe = try #require(ModelCatalog.named("Qwen3-30B-A3B")), dense = try #require(ModelCatalog.named("Qwen3-32B"))
        let gpu = try #require(GPUCatalog.named("H100-80G-SXM"))
        var work = StepWork()
        work.decodeSequences = 1
        work.logitRows = 1
        work.decodeTokenLayers = 1000 * Double(moe.layers)
        let a = CostModel(gpu: gpu, model: moe, serving: ServingConfig()).stepTime(work).linear
        work.decodeTokenLayers = 1000 * Double(dense.layers)
        let b = CostModel(gpu: gpu, model: dense, serving: ServingConfig()).stepTime(work).linear
        #expect(a < b / 4, "\(a) vs \(b)")
    }

    @Test("config.json: Qwen-MoE and Mixtral expert keys are read; latent attention and shared experts are refused in one line")
    func configImport() throws {
        let qwen = #"{"hidden_size": 2048, "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128, "num_hidden_layers": 48, "intermediate_size": 6144, "moe_intermediate_size": 768, "num_experts": 128, "num_experts_per_tok": 8, "vocab_size": 151936, "max_position_embeddings": 40960, "model_type": "qwen3_moe"}"#
        let m = try ModelSpec.fromHFConfig(path: try TestSupport.temporaryFile("config.json", qwen))
        #expect(m.experts == 128 && m.activeExperts == 8 && m.intermediate == 768)
        let mixtral = #"{"hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 32, "intermediate_size": 14336, "num_local_experts": 8, "num_experts_per_tok": 2, "vocab_size": 32000, "max_position_embeddings": 32768}"#
        let x = try ModelSpec.fromHFConfig(path: try TestSupport.temporaryFile("config.json", mixtral))
        #expect(x.experts == 8 && x.activeExperts == 2 && x.intermediate == 14336)
        let mla = #"{"hidden_size": 2048, "num_attention_heads": 16, "num_hidden_layers": 27, "intermediate_size": 10944, "kv_lora_rank": 512, "vocab_size": 102400, "max_position_embeddings": 163840}"#
        let path = try TestSupport.temporaryFile("config.json", mla)
        #expect { try ModelSpec.fromHFConfig(path: path) } throws: { ($0 as? ModelSpecError)?.description.contains("kv_lora_rank") == true }
    }
}

@Suite("serving engines")
struct ServingDefaultsTests {
    let llama = ModelCatalog.named("Llama-3.1-8B-Instruct")!

    @Test("what a deployment leaves out is its engine's default for the GPU")
    func defaults() throws {
        let a100 = GPUCatalog.named("A100-80G")!, h100 = GPUCatalog.named("H100-80G-SXM")!
        var s = ServingSettings()
        let v1a = try s.resolve(gpu: a100, model: llama), v1h = try s.resolve(gpu: h100, model: llama)
        #expect(v1a.engine == .vllmV1 && v1a.maxNumSeqs == 256 && v1a.maxNumBatchedTokens == 2048 && v1a.chunkedPrefill)
        #expect(v1h.maxNumSeqs == 1024 && v1h.maxNumBatchedTokens == 8192)
        s.entrypoint = .offline
        #expect(try s.resolve(gpu: h100, model: llama).maxNumBatchedTokens == 16384)
        s = ServingSettings()
        s.engine = .vllmV0
        s.maxModelLen = 8192
        let v0 = try s.resolve(gpu: a100, model: llama)
        #expect(!v0.chunkedPrefill && v0.maxNumBatchedTokens == 8192)
        s.maxModelLen = 65536
        #expect(try s.resolve(gpu: a100, model: llama).chunkedPrefill)
        s = ServingSettings()
        s.engine = .sglang
        s.tensorParallel = 4
        let sg = try s.resolve(gpu: h100, model: llama)
        #expect(sg.memFractionStatic == 0.85 && sg.blockSize == 1)
    }

    @Test("a setting the engine does not have is refused, naming it", arguments: [
        ("num_scheduler_steps", ServingEngine.vllmV1), ("mem_fraction_static", .vllmV0),
    ])
    func refused(key: String, engine: ServingEngine) throws {
        var s = ServingSettings()
        s.engine = engine
        if key == "num_scheduler_steps" { s.numSchedulerSteps = 8 } else { s.memFractionStatic = 0.8 }
        #expect { try s.resolve(gpu: GPUCatalog.named("A100-80G")!, model: llama) } throws: {
            ($0 as? ServingError)?.description.hasPrefix(key) == true
        }
    }

    @Test("a release reads from its version string and orders by its numbers", arguments: [
        ("0.19.1", "0.19.1"), ("v0.9.0rc2", "0.9.0"), ("0.6.3.post1", "0.6.3"), ("0.10.1.1", "0.10.1"), ("0.8.5+cu124", "0.8.5"), ("1.2", "1.2.0"),
    ])
    func versionParses(text: String, release: String) throws {
        #expect(EngineVersion(text)?.description == release)
    }

    @Test("a string that is no release is refused, and a label's release is its first version-shaped word")
    func versionRefuses() throws {
        for bad in ["", "main", "0", "x.1", "0.", "~0.4.4"] { #expect(EngineVersion(bad) == nil, "\(bad)") }
        #expect(EngineVersion(label: "vllm 0.10.1.1 (V1 engine)") == EngineVersion(0, 10, 1))
        #expect(EngineVersion(label: "sglang main ~0.4.4") == nil)
        #expect(EngineVersion(0, 9, 2) < EngineVersion(0, 10, 0) && EngineVersion(0, 17, 0) < EngineVersion(1, 0, 0))
        let json = try JSONEncoder().encode(EngineVersion(0, 19, 1))
        #expect(String(decoding: json, as: UTF8.self) == #""0.19.1""#)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(EngineVersion.self, from: Data(#""latest""#.utf8)) }
    }

    @Test("the sampler follows the release: PyTorch's before vLLM 0.17, the Triton kernel from it; a given one wins")
    func samplerByRelease() throws {
        let h100 = GPUCatalog.named("H100-80G-SXM")!
        var s = ServingSettings()
        let current = try s.resolve(gpu: h100, model: llama)
        #expect(current.engineVersion == ServingEngine.vllmV1.defaultVersion && current.sampler == .triton)
        #expect(current.summary.hasPrefix("vLLM V1 0.19.0, CUDA graphs on") && current.summary.contains("sampler triton"))
        s.engineVersion = EngineVersion(0, 16, 0)
        #expect(try s.resolve(gpu: h100, model: llama).sampler == .pytorch)
        s.sampler = .flashinfer
        #expect(try s.resolve(gpu: h100, model: llama).sampler == .flashinfer)
        s = ServingSettings()
        s.engine = .vllmV0
        #expect(try s.resolve(gpu: h100, model: llama).sampler == .pytorch)
        // A configuration written out in full (the start-up-log corpus) takes its release's sampler too.
        let decoded = try JSONDecoder().decode(ServingConfig.self, from: Data(#"{"engine_version": "0.19.0"}"#.utf8))
        #expect(decoded.sampler == .triton && decoded.engineVersion == EngineVersion(0, 19, 0))
        // The Triton sampler's peak is the smaller: more KV on the same GPU.
        let older = try MemoryPlan(gpu: h100, model: llama, serving: try { var o = ServingSettings(); o.engineVersion = EngineVersion(0, 16, 0); return try o.resolve(gpu: h100, model: llama) }())
        #expect(try MemoryPlan(gpu: h100, model: llama, serving: current).kvBytes > older.kvBytes)
    }

    @Test("from vLLM 0.14 a mixture of experts' fused-MoE workspace stays beside the sampler: 512 MiB for Qwen3-30B-A3B at 8192 tokens; none for a dense model or before")
    func moeWorkspace() throws {
        let h100 = GPUCatalog.named("H100-80G-SXM")!, qwen = ModelCatalog.named("Qwen3-30B-A3B")!
        var s = ServingSettings()
        s.maxModelLen = 8192
        let current = try s.resolve(gpu: h100, model: qwen)
        // 8192 tokens × 8 experts × (max(768, 2048) + max(1536, 2048)) × 2 bytes.
        #expect(MemoryPlan.persistentMoEWorkspaceBytes(model: qwen, serving: current) == 512 * 1_048_576)
        #expect(MemoryPlan.persistentMoEWorkspaceBytes(model: llama, serving: try s.resolve(gpu: h100, model: llama)) == 0)
        s.engineVersion = EngineVersion(0, 13, 0)
        let older = try s.resolve(gpu: h100, model: qwen)
        #expect(MemoryPlan.persistentMoEWorkspaceBytes(model: qwen, serving: older) == 0)
        // The sampler's peak (the larger one here) sits on top of it.
        let plan = try MemoryPlan(gpu: h100, model: qwen, serving: current)
        let sampler = MemoryPlan.profilingRun(model: qwen, serving: current).logits * MemoryConstants.fitted.samplerBytes(.triton)
        #expect(abs(plan.activationBytes - (sampler + 512 * 1_048_576)) < 1)
    }

    @Test("non-torch memory follows the release: vLLM 0.19's logs hold more than the earlier ones, on one GPU and with TP")
    func nonTorchByRelease() throws {
        let h100 = GPUCatalog.named("H100-80G-SXM")!
        let f = MemoryConstants.fitted
        var s = ServingSettings()
        s.tensorParallel = 2
        let recent = try s.resolve(gpu: h100, model: llama)
        #expect(f.nonTorchGiB(recent) == f.recentNonTorchTensorParallelGiB && f.recentNonTorchTensorParallelGiB! > f.nonTorchTensorParallelGiB)
        s.engineVersion = EngineVersion(0, 11, 0)
        #expect(f.nonTorchGiB(try s.resolve(gpu: h100, model: llama)) == f.nonTorchTensorParallelGiB)
        s.tensorParallel = 1
        #expect(f.nonTorchGiB(try s.resolve(gpu: h100, model: llama)) == f.nonTorchGiB)
        s.engineVersion = nil
        #expect(f.nonTorchGiB(try s.resolve(gpu: h100, model: llama)) == f.recentNonTorchGiB)
        s.engine = .vllmV0
        #expect(f.nonTorchGiB(try s.resolve(gpu: h100, model: llama)) == f.nonTorchGiB)
    }

    @Test("a release the engine never ran is refused, naming the key", arguments: [
        (ServingEngine.vllmV1, EngineVersion(0, 6, 3)), (.vllmV0, EngineVersion(0, 11, 0)),
    ])
    func releaseRefused(engine: ServingEngine, version: EngineVersion) throws {
        var s = ServingSettings()
        s.engine = engine
        s.engineVersion = version
        #expect { try s.resolve(gpu: GPUCatalog.named("A100-80G")!, model: llama) } throws: {
            ($0 as? ServingError)?.description.hasPrefix("engine_version \(version)") == true
        }
    }

    @Test("CUDA graphs: V0 and SGLang replay decode-only steps, V1 any batch up to its capture size")
    func graphs() {
        #expect(ServingEngine.vllmV0.replaysGraph(prefillTokens: 0, decodeSequences: 64, maxNumSeqs: 256))
        #expect(!ServingEngine.vllmV0.replaysGraph(prefillTokens: 100, decodeSequences: 64, maxNumSeqs: 256))
        #expect(ServingEngine.vllmV1.replaysGraph(prefillTokens: 100, decodeSequences: 64, maxNumSeqs: 256))
        #expect(!ServingEngine.vllmV1.replaysGraph(prefillTokens: 2000, decodeSequences: 64, maxNumSeqs: 256))
        #expect(!ServingEngine.sglang.replaysGraph(prefillTokens: 0, decodeSequences: 200, maxNumSeqs: 4096))
    }
}

@Suite("a policy's pool metadata")
struct PoolMetadataTests {
    @Test("vllm-kvcompress's blocks: 8,917 bytes for Llama-3.1-8B, a block table out of the pool, nothing for vLLM's own blocks")
    func kvCompress() throws {
        let gpu = GPUCatalog.named("L4")!, model = ModelCatalog.named("Llama-3.1-8B-Instruct")!
        var serving = ServingConfig()
        serving.maxModelLen = 19000
        let plain = try MemoryPlan(gpu: gpu, model: model, serving: serving)
        let kvc = try plain.with(metadata: PolicyKind.kvCompress.poolMetadata)
        #expect(plain.phbBytes == 8192 && kvc.phbBytes == 8917)
        // [layers, max_num_seqs, kv_heads, ⌈19000 / 16⌉] int32.
        #expect(kvc.blockTableBytes == Double(32 * 256 * 8 * 1188 * 4) && plain.blockTableBytes == 0)
        #expect(kvc.kvBytes == plain.kvBytes - kvc.blockTableBytes)
        #expect(kvc.phbCapacity == Int((kvc.kvBytes / 8917).rounded(.down)) && kvc.phbCapacity < plain.phbCapacity)
        #expect(try plain.with(metadata: PolicyKind.snapKV.poolMetadata) == plain)
        // Too little memory for the block table is the same one-line refusal as for the weights.
        var long = serving
        long.maxModelLen = 131072
        long.maxNumSeqs = 1024
        #expect(throws: CapacityError.self) { try MemoryPlan(gpu: gpu, model: model, serving: long, metadata: .kvCompress) }
    }
}
