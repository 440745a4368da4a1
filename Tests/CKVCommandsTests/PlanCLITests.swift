import Foundation
import Testing
import TestSupport

/// `ckv-sim plan` end to end on the bundled traces.
@Suite("ckv-sim plan")
struct PlanCLITests {
    @Test("the default plan runs, prints every default, and is byte-identical run to run in every format")
    func deterministic() throws {
        for format in ["table", "md", "json", "csv", "html"] {
            let a = try runCLI(["plan", "--gpu", "A100-80G", "--context", "128k", "--format", format])
            let b = try runCLI(["plan", "--gpu", "A100-80G", "--context", "128k", "--format", format])
            #expect(a.status == 0, "\(format): \(a.stderr)")
            #expect(a.stdout == b.stdout, "\(format)")
        }
        let table = try runCLI(["plan", "--gpu", "a100-80g", "--context", "131072"]).stdout
        for expected in ["Llama-3.1-8B-Instruct", "A100-80G", "131072 tokens", "plan-default", "TTFT p90 ≤ 2.00 s", "TPOT p99 ≤ 200 ms", "max_num_seqs 256",
                         "full", "snapkv", "kvcompress", "Recommendation:", "[replay]"] {
            #expect(table.contains(expected), "missing \(expected)")
        }
        #expect(try runCLI(["plan", "--gpu", "A100-80G", "--context", "128K"]).stdout == table)
    }

    @Test("JSON and CSV carry one row per configuration with the report's fields")
    func machineFormats() throws {
        let json = try runCLI(["plan", "--gpu", "H100-80G-SXM", "--context", "32k", "--policies", "snapkv,kvcompress", "--budgets", "256,1024", "--format", "json"])
        #expect(json.status == 0, "\(json.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let rows = try #require(object["rows"] as? [[String: Any]])
        #expect(rows.count == 5)
        #expect(rows.first?["policy"] as? String == "full")
        for row in rows {
            for key in ["peak_bytes", "nominal_bytes", "physical_bytes", "max_concurrent", "saturation", "slo_rate", "accuracy"] {
                #expect(row[key] != nil, "\(key)")
            }
        }
        // Compression frees memory after prefill but not during it.
        let full = rows[0], snap = rows[1]
        #expect((snap["peak_bytes"] as! Double) == (full["peak_bytes"] as! Double))
        #expect((snap["physical_bytes"] as! Double) < (full["physical_bytes"] as! Double))
        let csv = try runCLI(["plan", "--gpu", "H100-80G-SXM", "--context", "32k", "--policies", "snapkv,kvcompress", "--budgets", "256,1024", "--format", "csv"]).stdout
        let lines = csv.split(separator: "\n")
        #expect(lines.count == 6)
        #expect(Set(lines.map { $0.split(separator: ",", omittingEmptySubsequences: false).count }).count == 1 || csv.contains("\""))
    }

    @Test("bad input gives one clear line and a non-zero exit")
    func badInput() throws {
        try expectOneLineError(["plan", "--gpu", "Z9000", "--context", "32k"], "known: A100-40G")
        try expectOneLineError(["plan", "--gpu", "A100-80G", "--context", "32k", "--model", "GPT-5"], "known: Llama-3.1-8B-Instruct")
        try expectOneLineError(["plan", "--gpu", "A100-80G", "--context", "lots"], "is not a token count")
        try expectOneLineError(["plan", "--gpu", "A100-80G", "--context", "256k"], "maximum context of 131072")
        try expectOneLineError(["plan", "--gpu", "A100-80G", "--context", "32k", "--policies", "magic"], "known: streamingllm")
        try expectOneLineError(["plan", "--gpu", "A100-80G", "--context", "32k", "--slo-ttft", "1ms"], "TTFT p90")
        try expectOneLineError(["plan", "--gpu", "A100-80G", "--context", "32k", "--budgets", "4"], "below")
        let bad = try TestSupport.temporaryFile("bad-scenario.yaml", "name: x\narrivals: {process: poisson, rate: -1}\n")
        try expectOneLineError(["plan", "--gpu", "A100-80G", "--context", "32k", "--scenario", bad], "bad-scenario.yaml")
    }
}

@Suite("ckv-sim record and replay: bad input")
struct RecordReplayCLITests {
    static let smol = "Models/SmolLM2-135M-Instruct.Q4_1.gguf"

    @Test("unknown policy, budget below the window, task beyond the context, foreign profile: one line each")
    func badInput() throws {
        try expectOneLineError(["replay", "Traces/smollm2-qa-1k.ckvt", "--policies", "magic"], "known: streamingllm, h2o")
        try expectOneLineError(["replay", "Traces/smollm2-qa-1k.ckvt", "--policies", "snapkv", "--budgets", "16"], "below snapkv's window of 32")
        try expectOneLineError(["replay", "Traces/smollm2-qa-1k.ckvt", "--policies", "compresskv", "--profile", "Profiles/gemma3-270m.json"],
                               "was recorded from")
        try expectOneLineError(["record", "--model", Self.smol, "--task", "passkey", "--lengths", "9k", "--out", "/tmp/never.ckvt"],
                               "context of 8192")
        try expectOneLineError(["record", "--model", Self.smol, "--evaluate", "snapkv", "--budgets", "8", "--out", "/tmp/never.ckvt", "--lengths", "256"],
                               "below snapkv's window")
        try expectOneLineError(["record", "--model", Self.smol, "--frame-size", "2k", "--out", "/tmp/never.ckvt"], "--frame-size: '2k' is not a size from 4k to 64M")
        let missing = try runCLI(["replay", "/nonexistent/x.ckvt"])
        #expect(missing.status != 0 && missing.stderr.contains("/nonexistent/x.ckvt"))
    }
}
