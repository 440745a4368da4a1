import Foundation
import Testing
import TestSupport
@testable import CKVCommands

/// `ckv-sim calibrate` on the published fixtures, and `--calibration` in plan, simulate and memory.
@Suite("calibrate command")
struct CalibrateCLITests {
    static let fixtures = TestSupport.repositoryRoot.appendingPathComponent("Tests/Fixtures/calibration").path
    static let scenarios = TestSupport.repositoryRoot.appendingPathComponent("Scenarios").path

    @Test("calibrate writes a profile from start-up logs that memory and simulate then apply, and refuses it for another deployment")
    func memoryProfile() throws {
        let dir = try TestSupport.scratchDirectory()
        let profile = dir.appendingPathComponent("a100-qwen2.json").path
        let r = try runCLI(["calibrate", "--gpu", "A100-80G", "--model", "Qwen2-7B-Instruct",
                            "\(Self.fixtures)/vllm-log-0.10.1.1-qwen2-7b-a100-80g-gmu0.5.log", "\(Self.fixtures)/vllm-log-0.10.1.1-qwen2-7b-a100-80g-gmu0.25.log",
                            "--out", profile])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("KV cache (GiB)") && r.stdout.contains("KV cache adjustment") && r.stdout.contains("wrote \(profile)"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: profile))) as? [String: Any])
        #expect(object["format"] as? String == "ckv-sim calibration profile" && object["engine"] as? String == "vllm-v1")
        #expect(object["engine_version"] as? String == "0.10.1")

        let memory = try runCLI(["memory", "--gpu", "A100-80G", "--model", "Qwen2-7B-Instruct", "--context", "16384", "--gpu-memory-utilization", "0.5",
                                 "--calibration", profile, "--format", "json"])
        #expect(memory.status == 0, "\(memory.stderr)")
        let m = try #require(try JSONSerialization.jsonObject(with: Data(memory.stdout.utf8)) as? [String: Any])
        let tokens = try #require(m["kv_tokens"] as? Int)
        #expect(abs(Double(tokens) - 464_848) / 464_848 < 0.005, "the log's 464,848 tokens, calibrated")
        #expect((m["calibration"] as? String)?.hasPrefix("a100-qwen2.json (0 benchmark runs, 2 start-up logs") == true)

        let sim = try runCLI(["simulate", "--gpu", "A100-80G", "--model", "Qwen2-7B-Instruct", "--scenario", "\(Self.scenarios)/throughput-500-500.yaml",
                              "--engine", "vllm-v1", "--requests", "20", "--calibration", profile])
        #expect(sim.status == 0, "\(sim.stderr)")
        #expect(sim.stdout.contains("calibrated by a100-qwen2.json"))
        try expectOneLineError(["memory", "--gpu", "H100", "--model", "Qwen2-7B-Instruct", "--context", "16384", "--calibration", profile],
                               "a100-qwen2.json: gpu: the profile is for A100-80G, this run is for H100-80G-SXM")
        try expectOneLineError(["memory", "--gpu", "A100-80G", "--model", "Qwen2-7B-Instruct", "--context", "16384", "--tp", "2", "--calibration", profile],
                               "tensor_parallel: the profile is for TP 1, this run is for TP 2")
        try expectOneLineError(["memory", "--gpu", "A100-80G", "--model", "Qwen2-7B-Instruct", "--context", "16384", "--engine-version", "0.19.0", "--calibration", profile],
                               "engine_version: the profile is for 0.10.1, this run is for 0.19.0")
    }

    @Test("calibrate fits timing to a vllm bench serve run; plan prints the profile it applied")
    func timingProfile() throws {
        let dir = try TestSupport.scratchDirectory()
        let profile = dir.appendingPathComponent("h100.json").path
        let r = try runCLI(["calibrate", "--gpu", "H100", "--model", "Llama-3.1-8B-Instruct",
                            "\(Self.fixtures)/vllm-bench-serve-main-cf069aa8a-llama3.1-8b-h100-c2.json", "--out", profile])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("throughput (tok/s)") && r.stdout.contains("kernel time ×"))
        let plan = try runCLI(["plan", "--gpu", "H100", "--context", "8k", "--policies", "snapkv", "--budgets", "512", "--calibration", profile, "--format", "json"])
        #expect(plan.status == 0, "\(plan.stderr)")
        let p = try #require(try JSONSerialization.jsonObject(with: Data(plan.stdout.utf8)) as? [String: Any])
        #expect((p["calibration"] as? String)?.hasPrefix("h100.json (1 benchmark run, 0 start-up logs") == true)
    }

    @Test("bad calibrate input: one line naming the file and field")
    func refusals() throws {
        let out = try TestSupport.scratchDirectory().appendingPathComponent("p.json").path
        try expectOneLineError(["calibrate", "--gpu", "A100-80G", "--model", "Llama-3-8B-Instruct", "\(Self.fixtures)/vllm-bench-serve-0.25.1-opt125m-all-failed.json", "--out", out],
                               "vllm-bench-serve-0.25.1-opt125m-all-failed.json: completed is 0 and 8 requests failed")
        try expectOneLineError(["calibrate", "--gpu", "A100-80G", "--model", "Llama-3-8B-Instruct", "\(Self.fixtures)/vllm-throughput-0.7-llama3-8b.json", "--out", out],
                               "give --input-len and --output-len")
        try expectOneLineError(["calibrate", "--gpu", "A100-80G", "--model", "Llama-3-8B-Instruct", "\(Self.fixtures)/missing.json", "--out", out],
                               "missing.json: cannot read the file")
        try expectOneLineError(["calibrate", "--gpu", "A100-80G", "--model", "Llama-3-8B-Instruct", "--input-len", "5", "\(Self.fixtures)/vllm-throughput-0.7-llama3-8b.json", "--out", out],
                               "--input-len and --output-len go together")
        try expectOneLineError(["simulate", "--gpu", "A100-80G", "--scenario", "\(Self.scenarios)/throughput-500-500.yaml",
                                "--calibration", "\(Self.fixtures)/vllm-throughput-0.7-llama3-8b.json"],
                               "vllm-throughput-0.7-llama3-8b.json: key format: expected \"ckv-sim calibration profile\"")
        #expect(!FileManager.default.fileExists(atPath: out), "no profile is written when calibrate fails")
    }
}
