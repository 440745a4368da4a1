import Foundation
import Hardware
import Reporting
import Simulator
import Testing
import TestSupport
@testable import Validation

/// The readers of `ckv-sim calibrate`'s inputs, on the published files in
/// Tests/Fixtures/calibration (SOURCES.md there) and on small files built here.
@Suite("calibration inputs")
struct CalibrationInputTests {
    static let fixtures = TestSupport.repositoryRoot.appendingPathComponent("Tests/Fixtures/calibration")

    static func read(_ name: String, lengths: (Int, Int)? = nil) throws -> CalibrationInput {
        let url = fixtures.appendingPathComponent(name)
        return try BenchmarkFiles.read(path: url.path, data: try Data(contentsOf: url), lengths: lengths)
    }

    static func read(text: String, name: String = "made.json", lengths: (Int, Int)? = nil) throws -> CalibrationInput {
        try BenchmarkFiles.read(path: name, data: Data(text.utf8), lengths: lengths)
    }

    static func runs(_ input: CalibrationInput) throws -> [BenchmarkRun] {
        guard case let .runs(r) = input else { throw CalibrationError("expected benchmark runs") }
        return r
    }

    static func log(_ input: CalibrationInput) throws -> StartupLog {
        guard case let .log(l) = input else { throw CalibrationError("expected a start-up log") }
        return l
    }

    /// The message of the `CalibrationError` `body` throws.
    static func message(_ body: () throws -> Void) -> String {
        do { try body() } catch let e as CalibrationError { return e.description } catch { return "other error: \(error)" }
        return "no error"
    }

    @Test("a vllm bench serve result: rate, burstiness, client concurrency, the listed lengths scaled to the run's means")
    func benchServe() throws {
        let run = try #require(try Self.runs(Self.read("vllm-bench-serve-main-cf069aa8a-llama3.1-8b-h100-c2.json")).first)
        let w = run.measurement.workload
        #expect(run.kind == .vllmBenchServe && run.modelID == "meta-llama/Llama-3.1-8B-Instruct")
        #expect(w.arrivals == "poisson" && w.rate == 10 && w.concurrency == 2 && w.requests == 100)
        // 50 of the 100 requests are listed; their means are scaled to 93766 / 100 and 17000 / 100.
        let pairs = try #require(w.pairs)
        #expect(pairs.count == 50)
        let meanIn = Double(pairs.map { $0[0] }.reduce(0, +)) / 50, meanOut = Double(pairs.map { $0[1] }.reduce(0, +)) / 50
        #expect(abs(meanIn - 937.66) < 2 && abs(meanOut - 170) < 1)
        #expect(run.measurement.measured.ttftMs?.median == 60.77843100001701)
        #expect(run.measurement.measuredValue(.throughput) == 180.87058029454354)
        // The server did not keep up with 10/s (1.06 req/s): throughput is the GPU's and is compared.
        #expect(run.measurement.excluded == nil)
    }

    @Test("a run that kept up with its rate does not fit throughput; inf is a burst; burstiness is gamma; NaN reads as null; JSONL is one run per line")
    func benchServeVariants() throws {
        let kept = try #require(try Self.runs(Self.read("vllm-bench-serve-0.8.3-llama3.3-70b-a100-40g-tp8-qps1.json")).first)
        #expect(kept.measurement.excluded?["throughput"] != nil)
        #expect(kept.measurement.measuredValue(.throughput) == nil && kept.measurement.measuredValue(.tpot) != nil)
        func object(rate: String, burstiness: String = "1.0", extra: String = "") -> String {
            #"{"model_id": "m", "num_prompts": 10, "request_rate": \#(rate), "burstiness": \#(burstiness), "max_concurrency": null, "duration": 5.0, "completed": 10, "total_input_tokens": 1000, "total_output_tokens": 500, "request_throughput": 2.0, "output_throughput": 100.0, "mean_ttft_ms": 20.0, "median_ttft_ms": NaN, "mean_tpot_ms": 5.0\#(extra)}"#
        }
        let burst = try #require(try Self.runs(Self.read(text: object(rate: #""inf""#))).first).measurement
        #expect(burst.workload.arrivals == "batch" && burst.workload.prompt.tokens == 100 && burst.workload.output.tokens == 50)
        #expect(burst.measured.ttftMs?.median == nil && burst.measured.ttftMs?.mean == 20)
        let gamma = try #require(try Self.runs(Self.read(text: object(rate: "1.0", burstiness: "0.25"))).first).measurement
        #expect(gamma.workload.arrivals == "gamma" && gamma.workload.cv == 2)
        let lines = try Self.runs(Self.read(text: object(rate: #""inf""#) + "\n" + object(rate: "2.0") + "\n"))
        #expect(lines.map(\.label) == ["line 1", "line 2"])
    }

    @Test("bad bench serve results are refused in one line naming the file and key")
    func benchServeRefusals() throws {
        #expect(Self.message { _ = try Self.read("vllm-bench-serve-0.25.1-opt125m-all-failed.json") }.contains("completed is 0 and 8 requests failed"))
        #expect(Self.message { _ = try Self.read("vllm-bench-serve-0.7-partial-no-duration.json") } == "vllm-bench-serve-0.7-partial-no-duration.json: key completed: missing")
        #expect(Self.message { _ = try Self.read(text: #"{"completed": 4, "failed": 1, "duration": 1, "total_input_tokens": 4, "total_output_tokens": 4, "request_rate": "inf"}"#) }
            .contains("1 requests failed"))
        #expect(Self.message { _ = try Self.read(text: #"{"completed": 4, "duration": 1, "total_input_tokens": 4, "total_output_tokens": 4, "request_rate": -3}"#) }
            .contains("key request_rate: expected a positive rate"))
        #expect(Self.message { _ = try Self.read(text: #"{"completed": "four"}"#) } == "made.json: key completed: expected a number, found four")
        #expect(Self.message { _ = try Self.read(text: #"{"hello": 1}"#) }.contains("is none of the formats calibrate reads"))
        #expect(Self.message { _ = try Self.read(text: "{not json") }.contains("made.json:1: not a JSON object"))
        #expect(Self.message { _ = try Self.read(text: "   ") } == "made.json: the file is empty")
    }

    @Test("a benchmark_throughput result needs its lengths, and they must make its total")
    func throughput() throws {
        let name = "vllm-throughput-0.7-llama3-8b.json"
        #expect(Self.message { _ = try Self.read(name) }.contains("give --input-len and --output-len (its total_num_tokens is 86204 over 200 requests)"))
        #expect(Self.message { _ = try Self.read(name, lengths: (512, 128)) }.contains("key total_num_tokens: 86204 tokens, but 200 requests"))
        let run = try #require(try Self.runs(Self.read(name, lengths: (231, 200))).first)
        #expect(run.measurement.workload.requests == 200 && run.measurement.workload.arrivals == "batch")
        #expect(run.measurement.measuredValue(.throughput) == 1190.9743920852)
    }

    @Test("GuideLLM reports: 0.2's schema (synchronous) and 0.5's (concurrent streams, per-request lengths)")
    func guidellm() throws {
        let a = try #require(try Self.runs(Self.read("guidellm-0.2-benchmarks_stripped.json")).first)
        #expect(a.kind == .guidellm && a.modelID == "example_model")
        #expect(a.measurement.workload.concurrency == 1 && a.measurement.workload.requests == 46)
        #expect(a.measurement.workload.prompt.tokens == 257 && a.measurement.workload.output.tokens == 128)
        // GuideLLM's inter-token latency is vLLM's TPOT; its throughput is tokens over the duration.
        #expect(abs((a.measurement.measured.tpotMs?.median ?? 0) - 4.92412) < 1e-4)
        #expect(abs((a.measurement.measuredValue(.throughput) ?? 0) - 5888 / 29.997201442718506) < 1e-6)
        let b = try #require(try Self.runs(Self.read("guidellm-0.5.0.dev0-qwen3-4b-concurrent4.json")).first)
        #expect(b.modelID == "Qwen/Qwen3-4B-Thinking-2507" && b.measurement.workload.concurrency == 4)
        #expect(b.measurement.workload.pairs?.count == 4 && b.measurement.workload.pairs?.allSatisfy { $0[1] == 1024 } == true)
        #expect(Self.message { _ = try Self.read(text: #"{"benchmarks": []}"#) }.contains("holds no benchmark"))
    }

    @Test("vLLM V1 and V0 start-up logs: engine, version, settings and KV figures, hard-wrapped lines joined")
    func startupLogs() throws {
        let v1 = try Self.log(Self.read("vllm-log-0.10.1.1-qwen2-7b-a100-80g-gmu0.5.log"))
        #expect(v1.engine == .vllmV1 && v1.version == "0.10.1.1" && v1.model == "Qwen2-7B-Instruct")
        #expect(v1.settings.engineVersion == EngineVersion(0, 10, 1)) // its rules, its sampler
        #expect(v1.kvGiB == 24.83 && v1.kvTokens == 464_848 && v1.weightsGiB == 14.2488)
        #expect(v1.settings.gpuMemoryUtilization == 0.5 && v1.settings.maxModelLen == 16384 && v1.settings.maxNumBatchedTokens == 2048)
        #expect(v1.settings.tensorParallel == 1 && v1.settings.entrypoint == .server && v1.settings.chunkedPrefill == true)
        let tp2 = try Self.log(Self.read("vllm-log-0.10.1.1-qwen2-7b-a100-80g-tp2-gmu0.5.log"))
        #expect(tp2.settings.tensorParallel == 2)
        let v0 = try Self.log(Self.read("vllm-log-0.4.1-llama3-8b-rtx3090.log"))
        #expect(v0.engine == .vllmV0 && v0.version == "0.4.1" && v0.gpuBlocks == 2358 && v0.kvGiB == nil)
        #expect(v0.settings.gpuMemoryUtilization == 0.9 && v0.settings.blockSize == 16 && v0.settings.maxModelLen == 8192)
    }

    @Test("log lines with colours, Ray prefixes and repeat notes; V0 0.6.5 memory lines; refusals")
    func madeLogs() throws {
        let log = """
        \u{1B}[36m(RayWorkerWrapper pid=1, ip=10.0.0.1)\u{1B}[0m INFO 04-14 16:11:36 [worker.py:267] the current vLLM instance can use total_gpu_memory (39.39GiB) x gpu_memory_utilization (0.85) = 33.48GiB\u{1B}[32m [repeated 7x across cluster]\u{1B}[0m
        INFO 04-14 16:11:30 [llm_engine.py:243] Initializing a V0 LLM engine (v0.8.3) with config: model='/models/Llama-3.1-70B-Instruct', max_seq_len=8192, tensor_parallel_size=8, pipeline_parallel_size=1, quantization=fp8, enforce_eager=True, kv_cache_dtype=auto
        INFO 04-14 16:11:36 [worker.py:267] model weights take 8.51GiB; non_torch_memory takes 0.26GiB; PyTorch activation peak memory takes 0.94GiB; the rest of the memory reserved for KV Cache is 21.18GiB.
        INFO 04-14 16:11:36 [executor_base.py:112] # cuda blocks: 8674, # CPU blocks: 6553
        """
        let l = try Self.log(Self.read(text: log, name: "made.log"))
        #expect(l.engine == .vllmV0 && l.version == "0.8.3" && l.model == "Llama-3.1-70B-Instruct")
        #expect(l.totalGiB == 39.39 && l.kvGiB == 21.18 && l.gpuBlocks == 8674)
        #expect(l.settings.gpuMemoryUtilization == 0.85 && l.settings.tensorParallel == 8 && l.settings.weightFormat == .fp8 && l.settings.cudaGraphs == false)
        #expect(l.lines["kv_gib"] == 3 && l.lines["total_gpu_memory"] == 1)
        #expect(Self.message { _ = try Self.read(text: "hello\nworld\n", name: "x.log") }.contains("x.log: not a vLLM benchmark JSON, GuideLLM report or vLLM start-up log"))
        #expect(Self.message { _ = try Self.read(text: "INFO 04-14 16:11:30 [llm_engine.py:243] Initializing a V0 LLM engine (v0.8.3) with config: model='m'\n", name: "x.log") }
            .contains("no KV cache figure"))
        #expect(Self.message { _ = try Self.read(text: "INFO 04-14 16:11:30 [llm_engine.py:243] Initializing a V0 LLM engine (v0.8.3) with config: model='m', quantization=bitsandbytes\nINFO 04-14 16:11:36 [executor_base.py:112] # cuda blocks: 8, # CPU blocks: 1\n", name: "x.log") }
            .contains("quantization=bitsandbytes: not a weight format"))
    }
}

@Suite("calibration fit and profile")
struct CalibrationFitTests {
    static let fixtures = CalibrationInputTests.fixtures

    static func file(_ name: String) throws -> (path: String, data: Data) {
        let url = fixtures.appendingPathComponent(name)
        return (url.path, try Data(contentsOf: url))
    }

    static func calibrator(_ gpu: String, _ model: String, tp: Int = 1, engine: ServingEngine? = nil, sampler: SamplerKind? = nil) throws -> Calibrator {
        var s = ServingSettings()
        s.tensorParallel = tp
        s.engine = engine
        s.sampler = sampler
        return Calibrator(gpu: try #require(GPUCatalog.named(gpu)), model: try #require(ModelCatalog.named(model)), settings: s)
    }

    @Test("start-up logs fit the KV adjustment: the dennislee22 A100 pair to within 0.5 %; with the sampler the logs imply, almost nothing is left to fit")
    func memory() throws {
        let files = try ["vllm-log-0.10.1.1-qwen2-7b-a100-80g-gmu0.5.log", "vllm-log-0.10.1.1-qwen2-7b-a100-80g-gmu0.25.log"].map(Self.file)
        let p = try Self.calibrator("A100-80G", "Qwen2-7B-Instruct").calibrate(files: files, lengths: nil)
        #expect(p.engine == .vllmV1 && p.coefficients.fitted == ["memory"])
        let kv = try #require(p.residuals.first { $0.metric == "kv_capacity" })
        #expect(kv.points == 2 && kv.medianAfterPercent < 0.5 && kv.medianBeforePercent > 5)
        #expect(p.coefficients.kvAdjustmentGiB > 0.5 && p.coefficients.kvAdjustmentGiB < 1.5)
        #expect(p.engineVersion == EngineVersion(0, 10, 1)) // the logs' release: its sampler is the one the adjustment sits on
        // The calibrated plan, at the profile's release, holds the log's tokens.
        var given = ServingSettings()
        given.gpuMemoryUtilization = 0.5
        given.maxModelLen = 16384
        given.maxNumBatchedTokens = 2048
        given.engineVersion = p.engineVersion
        let gpu = GPUCatalog.named("A100-80G")!, model = ModelCatalog.named("Qwen2-7B-Instruct")!
        let serving = try given.resolve(gpu: gpu, model: model)
        let plan = try MemoryPlan(gpu: gpu, model: model, serving: serving, constants: p.applied().memory)
        #expect(abs(Double(plan.kvTokens) - 464_848) / 464_848 < 0.005)
        try p.check(gpu: gpu, model: model, serving: serving, file: "p.json")
        // Another release's deployment is refused, naming the key; so is a log of a release other than the one asked for.
        given.engineVersion = EngineVersion(0, 19, 0)
        #expect(CalibrationInputTests.message { try p.check(gpu: gpu, model: model, serving: try given.resolve(gpu: gpu, model: model), file: "p.json") }
            .contains("p.json: engine_version: the profile is for 0.10.1, this run is for 0.19.0 (--engine-version 0.10.1"))
        var asked = ServingSettings()
        asked.engineVersion = EngineVersion(0, 19, 0)
        #expect(CalibrationInputTests.message { _ = try Calibrator(gpu: gpu, model: model, settings: asked).calibrate(files: files, lengths: nil) }
            .contains("a vLLM 0.10.1 log, but the profile is for 0.19.0 (--engine-version)"))
        let flashinfer = try Self.calibrator("A100-80G", "Qwen2-7B-Instruct", sampler: .flashinfer).calibrate(files: files, lengths: nil)
        #expect(abs(flashinfer.coefficients.kvAdjustmentGiB) < abs(p.coefficients.kvAdjustmentGiB))
    }

    @Test("the timing fit recovers the coefficients a run was made with (a run the simulator itself measured at kernel time × 1.3 and 3 ms per step)")
    func recovers() throws {
        let gpu = GPUCatalog.named("H100")!, model = ModelCatalog.named("Llama-3.1-8B-Instruct")!
        var settings = ServingSettings()
        settings.tensorParallel = 1
        let serving = try settings.resolve(gpu: gpu, model: model)
        var truth = Coefficients()
        truth.cost.deviceTimeScale = 1.3
        var overhead = truth.cost.overhead(for: .vllmV1)
        overhead.step = 0.003
        truth.cost.engineOverheads[ServingEngine.vllmV1.rawValue] = overhead
        var files: [(path: String, data: Data)] = []
        for (i, (concurrency, prompt)) in [(1, 2000), (8, 1000), (32, 500)].enumerated() {
            let source = SyntheticSource(arrivals: .batch, prompt: .fixed(prompt), output: .fixed(200), count: 64, seed: 1)
            let r = try Simulation.run(gpu: gpu, model: model, serving: serving, coefficients: truth, source: source, timeSeries: false, clientConcurrency: concurrency)
            let json = #"{"model_id": "meta-llama/Llama-3.1-8B-Instruct", "num_prompts": 64, "request_rate": "inf", "burstiness": 1.0, "max_concurrency": \#(concurrency), "duration": \#(r.durationSeconds), "completed": 64, "total_input_tokens": \#(64 * prompt), "total_output_tokens": \#(64 * 200), "output_throughput": \#(r.outputTokensPerSecond), "median_ttft_ms": \#(r.ttftMs.p50), "median_tpot_ms": \#(r.tpotMs.p50), "median_itl_ms": \#(r.itlMs.p50)}"#
            files.append(("run\(i).json", Data(json.utf8)))
        }
        let p = try Calibrator(gpu: gpu, model: model, settings: settings).calibrate(files: files, lengths: nil)
        #expect(abs(p.coefficients.deviceTimeScale - 1.3) / 1.3 < 0.06, "\(p.coefficients)")
        #expect(abs(p.coefficients.stepOverheadSeconds - 0.003) <= 0.001, "\(p.coefficients)")
        for r in p.residuals { #expect(r.medianAfterPercent < 3, "\(r)") }
        // The same inputs give the same profile, byte for byte.
        let again = try Calibrator(gpu: gpu, model: model, settings: settings).calibrate(files: files, lengths: nil)
        #expect(try JSONOutput.string(p) == JSONOutput.string(again))
    }

    @Test("inputs of another model, GPU, TP or engine, duplicates, and pipeline parallelism are refused naming the file")
    func refusals() throws {
        func message(_ body: () throws -> Void) -> String { CalibrationInputTests.message(body) }
        let qwen = try Self.calibrator("A100-80G", "Qwen2-7B-Instruct")
        let log = try Self.file("vllm-log-0.10.1.1-qwen2-7b-a100-80g-gmu0.5.log")
        #expect(message { _ = try qwen.calibrate(files: [log, log], lengths: nil) }.contains("the same contents as vllm-log-0.10.1.1-qwen2-7b-a100-80g-gmu0.5.log"))
        #expect(message { _ = try Self.calibrator("A100-80G", "Qwen2-7B-Instruct", engine: .vllmV0).calibrate(files: [log], lengths: nil) }
            .contains("a vLLM V1 log, but the profile is for vLLM V0"))
        #expect(message { _ = try Self.calibrator("A100-80G", "Llama-3.1-8B-Instruct").calibrate(files: [log], lengths: nil) }
            .contains("model 'Qwen2-7B-Instruct' is Qwen2-7B-Instruct, not Llama-3.1-8B-Instruct"))
        // A log whose model the catalogue cannot name is caught by its bytes per token.
        let renamed = (path: "renamed.log", data: Data(String(decoding: log.data, as: UTF8.self).replacingOccurrences(of: "Qwe\nn2-7B-Instruct", with: "Qwen2-7B-Instruct")
            .replacingOccurrences(of: "Qwen2-7B-Instruct", with: "my-model").utf8))
        #expect(message { _ = try Self.calibrator("A100-80G", "Qwen2.5-3B-Instruct").calibrate(files: [renamed], lengths: nil) }
            .contains("24.83 GiB of KV for 464848 tokens is 57354 bytes per token; Qwen2.5-3B-Instruct with bf16 KV at TP 1 needs 36864: a log of another model or KV format"))
        let tp2 = try Self.file("vllm-log-0.10.1.1-qwen2-7b-a100-80g-tp2-gmu0.5.log")
        #expect(message { _ = try qwen.calibrate(files: [tp2], lengths: nil) }.contains("tensor_parallel_size 2, but the profile is for TP 1 (--tp)"))
        let pp = "INFO 04-14 16:11:30 [llm_engine.py:243] Initializing a V0 LLM engine (v0.8.3) with config: model='Qwen2-7B-Instruct', tensor_parallel_size=1, pipeline_parallel_size=2\nINFO 04-14 16:11:36 [executor_base.py:112] # cuda blocks: 8, # CPU blocks: 1\n"
        #expect(message { _ = try qwen.calibrate(files: [("pp.log", Data(pp.utf8))], lengths: nil) } == "pp.log:1: pipeline_parallel_size 2: ckv-sim models tensor parallelism within one node only")
        let h100 = "INFO 12-22 10:55:30 llm_engine.py:98] Initializing an LLM engine (v0.6.5) with config: model='Qwen2-7B-Instruct', tensor_parallel_size=1\nINFO 12-22 10:55:34 worker.py:241] the current vLLM instance can use total_gpu_memory (79.25GiB) x gpu_memory_utilization (0.90) = 71.33GiB\nINFO 12-22 10:55:35 gpu_executor.py:76] # GPU blocks: 715, # CPU blocks: 1310\n"
        #expect(message { _ = try Self.calibrator("A100-40G", "Qwen2-7B-Instruct").calibrate(files: [("h.log", Data(h100.utf8))], lengths: nil) }
            .contains("h.log:2: total_gpu_memory 79.25 GiB is not A100-40G's 39.39 GiB"))
        let serve = try Self.file("vllm-bench-serve-0.25.1-opt125m-c2.json")
        #expect(message { _ = try qwen.calibrate(files: [serve], lengths: nil) }.contains("model 'facebook/opt-125m' is not Qwen2-7B-Instruct"))
    }

    @Test("a profile reads back, applies its coefficients, and is refused for another deployment, version or file")
    func profile() throws {
        let files = try [Self.file("vllm-log-0.4.1-llama3-8b-rtx3090.log")]
        let p = try Self.calibrator("RTX-3090", "Llama-3-8B-Instruct").calibrate(files: files, lengths: nil)
        #expect(p.engine == .vllmV0 && p.inputs.first?.sha256.count == 64)
        let path = try TestSupport.temporaryFile("profile.json", try JSONOutput.string(p))
        let back = try CalibrationProfile.load(path: path)
        #expect(back == p)
        #expect(back.applied().memory.kvAdjustmentGiB == p.coefficients.kvAdjustmentGiB)
        let gpu = GPUCatalog.named("RTX-3090")!, model = ModelCatalog.named("Llama-3-8B-Instruct")!
        var s = ServingSettings()
        s.engine = .vllmV0
        s.engineVersion = back.engineVersion // the log's 0.4.1, as `--calibration` takes it
        #expect(back.engineVersion == EngineVersion(0, 4, 1))
        try back.check(gpu: gpu, model: model, serving: try s.resolve(gpu: gpu, model: model), file: path)
        func message(_ body: () throws -> Void) -> String { CalibrationInputTests.message(body) }
        #expect(message { try back.check(gpu: GPUCatalog.named("L4")!, model: model, serving: try s.resolve(gpu: gpu, model: model), file: path) }
            == "profile.json: gpu: the profile is for RTX-3090, this run is for L4 (--gpu RTX-3090, or calibrate for it)")
        s.engine = .vllmV1
        s.engineVersion = nil
        #expect(message { try back.check(gpu: gpu, model: model, serving: try s.resolve(gpu: gpu, model: model), file: path) }.contains("engine: the profile is for vllm-v0"))
        let v2 = try TestSupport.temporaryFile("v2.json", try JSONOutput.string(p).replacingOccurrences(of: "\"version\" : 1", with: "\"version\" : 2"))
        #expect(message { _ = try CalibrationProfile.load(path: v2) }.contains("v2.json: key version: this ckv-sim reads version 1 profiles, found 2"))
        let other = try TestSupport.temporaryFile("other.json", #"{"format": "something else"}"#)
        #expect(message { _ = try CalibrationProfile.load(path: other) }.contains("other.json: key format: expected \"ckv-sim calibration profile\""))
        let broken = try TestSupport.temporaryFile("broken.json", try JSONOutput.string(p).replacingOccurrences(of: "\"gpu\" : \"RTX-3090\"", with: "\"gpu\" : 3"))
        #expect(message { _ = try CalibrationProfile.load(path: broken) }.contains("broken.json: key gpu: expected"))
    }
}
