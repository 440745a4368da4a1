import Foundation
import Testing
import TestSupport
@testable import CKVCommands

@Suite("simulator commands")
struct SimulatorCLITests {
    static let root = TestSupport.repositoryRoot
    var scenarios: String { Self.root.appendingPathComponent("Scenarios").path }

    @Test("token counts parse as 131072, 128k, 32K")
    func tokens() {
        #expect(parseTokenCount("131072") == 131072)
        #expect(parseTokenCount("128k") == 131072)
        #expect(parseTokenCount("32K") == 32768)
        #expect(parseTokenCount("1m") == 1_048_576)
        #expect(parseTokenCount("lots") == nil)
        #expect(parseTokenCount("-5k") == nil)
    }

    @Test("simulate --replicas and --disaggregate run a cluster: each replica's result, the KV sent between pools; bad splits get one line")
    func clusters() throws {
        let scenario = "\(scenarios)/shared-system-prompt.yaml"
        let pd = try runCLI(["simulate", "--gpu", "A100-80G", "--scenario", scenario, "--requests", "120", "--disaggregate", "1P2D", "--format", "json"])
        #expect(pd.status == 0, "\(pd.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(pd.stdout.utf8)) as? [String: Any])
        let fleet = try #require(object["fleet"] as? [String: Any])
        #expect((fleet["replicas"] as? [Any])?.count == 3 && (fleet["kv_link"] as? [String: Any])?["kind"] as? String == "NVLink 3 within a node")
        let result = try #require(object["result"] as? [String: Any])
        #expect(result["completed"] as? Int == 120 && result["kv_transfer"] != nil && result["prefix_cache"] != nil)
        // Beyond one node the KV crosses the catalogue's network (a DGX A100's 200 Gb/s per GPU).
        let wide = try runCLI(["simulate", "--gpu", "A100-80G", "--scenario", scenario, "--requests", "60", "--disaggregate", "4P6D"])
        #expect(wide.status == 0 && wide.stdout.contains("InfiniBand HDR (ConnectX-6) between nodes: 25.0 GB/s per replica"), "\(wide.stdout)")
        let table = try runCLI(["simulate", "--gpu", "A100-80G", "--scenario", scenario, "--requests", "120", "--replicas", "2", "--router", "prefix-affinity"])
        #expect(table.status == 0 && table.stdout.contains("2 behind the prefix-affinity router") && table.stdout.contains("of prompt tokens found cached"))
        for (args, expected) in [
            (["--disaggregate", "3P"], "expected xPyD"),
            (["--disaggregate", "0P2D"], "expected xPyD"),
            (["--disaggregate", "6P4D", "--gpu", "L40"], "more than one 8-GPU node, and the catalogue has no network figure for L40"),
            (["--disaggregate", "1P1D", "--engine", "sglang"], "modelled for vLLM V1 only"),
            (["--replicas", "2", "--disaggregate", "1P1D"], "not both"),
            (["--kv-link-gbps", "50"], "applies to --disaggregate"),
        ] as [([String], String)] {
            let gpu = args.contains("--gpu") ? [] : ["--gpu", "A100-80G"]
            try expectOneLineError(["simulate", "--scenario", scenario, "--requests", "20"] + gpu + args, expected)
        }
    }

    @Test("simulate prints a table, JSON and CSV from one run")
    func simulate() throws {
        let scenario = "\(scenarios)/throughput-500-500.yaml"
        let json = try runCLI(["simulate", "--gpu", "a100-80g", "--scenario", scenario, "--requests", "40", "--format", "json"])
        #expect(json.status == 0, "\(json.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let result = try #require(object["result"] as? [String: Any])
        #expect(result["completed"] as? Int == 40)
        let csv = try runCLI(["simulate", "--gpu", "A100-80G", "--scenario", scenario, "--requests", "40", "--format", "csv",
                              "--policy", "snapkv", "--budget", "256"])
        let lines = csv.stdout.split(separator: "\n")
        #expect(lines.count == 2 && lines[0].hasPrefix("scenario,gpu,model,policy"))
        #expect(lines[1].contains(",snapkv,256 tokens,40,40,"))
        let table = try runCLI(["simulate", "--gpu", "A100-80G", "--scenario", scenario, "--requests", "40", "--slo-ttft", "1000s", "--slo-tpot", "10s"])
        #expect(table.stdout.contains("TTFT p50/p90/p99"))
        #expect(table.stdout.contains("goodput") && table.stdout.contains("40 of 40 completed requests meet TTFT ≤ 1000000 ms and TPOT ≤ 10000 ms"))
        #expect(table.stdout.contains("error bands") && table.stdout.contains("published serving runs held out of the fit"))
        // The bands are in every format: JSON and CSV too.
        let bands = try #require(object["serving_error_bands"] as? [[String: Any]])
        #expect(Set(bands.compactMap { $0["class"] as? String }) == ["throughput", "ttft", "tpot", "itl"])
        #expect(lines[0].hasSuffix("goodput_requests,goodput_requests_per_s,throughput_error_p90_percent,ttft_error_p90_percent,tpot_error_p90_percent,itl_error_p90_percent"))
        try expectOneLineError(["simulate", "--gpu", "A100-80G", "--scenario", scenario, "--slo-ttft", "soon"], "--slo-ttft: 'soon' is not a duration")
    }

    @Test("memory prints the breakdown and concurrency rows")
    func memory() throws {
        let r = try runCLI(["memory", "--gpu", "H100", "--model", "Llama-3.1-8B-Instruct", "--context", "128k", "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let rows = try #require(object["rows"] as? [[String: Any]])
        let full = try #require(rows.first)
        #expect(full["setting"] as? String == "full cache")
        let concurrency = rows.compactMap { $0["max_concurrency"] as? Int }
        #expect(concurrency.count == rows.count && concurrency.last! > concurrency.first!)
        #expect(object["engine_version"] as? String == "0.19.0" && object["sampler"] as? String == "triton")
        // An older release samples with PyTorch: a larger profiling peak, a smaller cache.
        let older = try runCLI(["memory", "--gpu", "H100", "--model", "Llama-3.1-8B-Instruct", "--context", "128k", "--engine-version", "0.16.1", "--format", "json"])
        let o = try #require(try JSONSerialization.jsonObject(with: Data(older.stdout.utf8)) as? [String: Any])
        #expect(o["sampler"] as? String == "pytorch" && (o["kv_cache_bytes"] as! Double) < (object["kv_cache_bytes"] as! Double))
        #expect(try runCLI(["memory", "--gpu", "H100", "--context", "8k", "--engine-version", "0.16.1"]).stdout.contains("vLLM V1 0.16.1; per GPU"))
    }

    @Test("gpus and models list the catalogues")
    func catalogues() throws {
        let gpus = try runCLI(["gpus"])
        for name in ["A100-40G", "A100-80G", "H100-80G-SXM", "H100-80G-PCIe", "H200", "L4", "L40S", "A10G", "B200", "MI300X"] {
            #expect(gpus.stdout.contains(name))
        }
        let models = try runCLI(["models", "--format", "json"])
        let list = try #require(try JSONSerialization.jsonObject(with: Data(models.stdout.utf8)) as? [[String: Any]])
        #expect(list.count >= 10)
    }

    @Test("bad input: one line, non-zero exit")
    func badInput() throws {
        let scenario = "\(scenarios)/throughput-500-500.yaml"
        let cases: [([String], String)] = [
            (["memory", "--gpu", "V100", "--context", "8k"], "known: A100-40G"),
            (["memory", "--gpu", "L4", "--model", "GPT-5", "--context", "8k"], "known: Llama-3.1-8B-Instruct"),
            (["memory", "--gpu", "L4", "--context", "256k"], "maximum context of Llama-3.1-8B-Instruct, 131072"),
            (["memory", "--gpu", "L4", "--model", "Llama-3.1-70B-Instruct", "--context", "8k"], "does not fit on L4"),
            (["memory", "--gpu", "L4", "--context", "lots"], "not a token count"),
            (["memory", "--gpu", "L4", "--context", "8k", "--engine-version", "0.6.3"], "engine_version 0.6.3: vllm-v1 is vLLM's V1 engine, which releases from 0.7 run"),
            (["memory", "--gpu", "L4", "--context", "8k", "--engine-version", "latest"], "--engine-version"),
            (["simulate", "--gpu", "L4", "--scenario", "/nonexistent.yaml"], "cannot read the scenario"),
            (["simulate", "--gpu", "L4", "--scenario", scenario, "--policy", "snapkv", "--budget", "4"], "smaller than the observation window"),
            (["simulate", "--gpu", "L4", "--scenario", scenario, "--policy", "magic", "--budget", "64"], "snapkv"),
            (["simulate", "--gpu", "L4", "--scenario", scenario, "--model", "/nonexistent/config.json"], "cannot read"),
            (["simulate", "--gpu", "L4", "--model", "SmolLM2-135M-Instruct", "--scenario", "\(scenarios)/long-context-poisson.yaml"], "exceeds max_model_len 8192"),
        ]
        for (arguments, expected) in cases {
            try expectOneLineError(arguments, expected)
        }
    }
}

/// The flag cases of issue #21: each refused in one line with exit status 1, none trapping or unbounded.
@Suite("flag bounds")
struct FlagBoundsTests {
    static let scenario = TestSupport.repositoryRoot.appendingPathComponent("Scenarios/throughput-500-500.yaml").path

    @Test("overflowing, negative, conflicting and empty flags: one line, exit 1")
    func refusals() throws {
        try expectOneLineError(["plan", "--gpu", "A100-80G", "--context", "99999999999999999999k"], "--context: '99999999999999999999k' is not a token count")
        try expectOneLineError(["plan", "--gpu", "A100-80G", "--context", "-5"], "--context: '-5' is not a token count")
        try expectOneLineError(["simulate", "--gpu", "A100-80G", "--scenario", Self.scenario, "--requests", "1000000000"], "--requests must be between 1 and 10000000")
        try expectOneLineError(["simulate", "--gpu", "A100-80G", "--scenario", Self.scenario, "--requests", "-3"], "--requests must be between 1 and 10000000")
        try expectOneLineError(["memory", "--gpu", "A100-80G", "--context", "8k", "--tp", "3"], "tensor_parallel 3 does not divide Llama-3.1-8B-Instruct's 32 attention heads")
        try expectOneLineError(["memory", "--gpu", "A100-80G", "--context", "8k", "--max-num-seqs", "9223372036854775807"], "max_num_seqs must be between 1 and 1048576")
        try expectOneLineError(["plan", "--gpu", "A100-80G", "--context", "8k", "--policies", ""], "--policies: no policy given; known: streamingllm")
        try expectOneLineError(["plan", "--gpu", "A100-80G", "--context", "8k", "--budgets", "256", "--kv-fractions", "1%"], "give --budgets or --kv-fractions, not both")
        // ArgumentParser's own refusals take the same exit status as every other.
        let unknown = try runCLI(["plan", "--gpu", "A100-80G", "--bogus"])
        #expect(unknown.status == 1 && unknown.stderr.split(separator: "\n").count == 1, "\(unknown)")
    }
}

/// The GGUF cases of issue #21 on copies of the real SmolLM2 file with one metadata value changed:
/// `generate` and `memory` refuse each in one line naming the file and key, and exit 1.
@Suite("damaged GGUF metadata")
struct DamagedGGUFTests {
    static let model = TestSupport.repositoryRoot.appendingPathComponent("Models/SmolLM2-135M-Instruct.Q4_1.gguf").path

    /// A copy of the model with the integer value of metadata `key` set to `value` (its own width).
    static func patched(_ key: String, _ value: UInt64) throws -> String {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: model)))
        var needle: [UInt8] = []
        withUnsafeBytes(of: UInt64(key.utf8.count).littleEndian) { needle += $0 }
        needle += Array(key.utf8)
        guard let at = (0...(bytes.count - needle.count)).first(where: { i in bytes[i] == needle[0] && Array(bytes[i..<(i + needle.count)]) == needle }) else {
            throw CLIError("\(key) not in the model")
        }
        let typeAt = at + needle.count, type = UInt32(bytes[typeAt]) | UInt32(bytes[typeAt + 1]) << 8
        let width = [4: 4, 5: 4, 10: 8, 11: 8][Int(type)] ?? 0
        guard width > 0 else { throw CLIError("\(key) has type \(type), not an integer of 4 or 8 bytes") }
        for k in 0..<width { bytes[typeAt + 4 + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k))) }
        let path = try TestSupport.scratchDirectory("gguf").appendingPathComponent("\(key)-\(value).gguf").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("zero or huge counts, ids outside the vocabulary: one line, exit 1, in generate and memory")
    func refusals() throws {
        let cases: [(String, UInt64, String)] = [
            ("llama.block_count", 0, "llama.block_count is 0; it must be between 1 and 4096"),
            ("llama.block_count", 1 << 31, "llama.block_count is 2147483648; it must be between 1 and 4096"),
            ("llama.attention.head_count", 0, "llama.attention.head_count is 0; it must be at least 1"),
            ("llama.attention.head_count_kv", 0, "llama.attention.head_count_kv is 0; it must be between 1"),
            ("llama.embedding_length", 0, "llama.embedding_length is 0; it must be between 1"),
            ("tokenizer.ggml.bos_token_id", 999_999, "tokenizer.ggml.bos_token_id is 999999, outside the vocabulary of 49152 tokens"),
        ]
        for (key, value, expected) in cases {
            let path = try Self.patched(key, value)
            defer { try? FileManager.default.removeItem(atPath: path) }
            try expectOneLineError(["generate", "--model", path, "--prompt", "hi", "--max-tokens", "4"], expected)
            if !key.hasPrefix("tokenizer") {
                try expectOneLineError(["memory", "--gpu", "A100-80G", "--model", path, "--context", "2k"], expected)
            }
        }
    }

    @Test("a file cut inside its tensor data: memory refuses it as generate does")
    func truncated() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: Self.model))
        let path = try TestSupport.scratchDirectory("gguf").appendingPathComponent("cut.gguf").path
        try bytes.prefix(bytes.count * 6 / 10).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        try expectOneLineError(["memory", "--gpu", "A100-80G", "--model", path, "--context", "2k"], "runs past the end of the file")
        try expectOneLineError(["generate", "--model", path, "--prompt", "hi", "--max-tokens", "2"], "runs past the end of the file")
    }
}
