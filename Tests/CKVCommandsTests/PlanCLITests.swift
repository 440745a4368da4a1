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

@Suite("ckv-sim plan --target-rate")
struct FleetCLITests {
    @Test("a fleet search over GPUs and TP degrees: ranked options with cost, the recommendation, the serve command; the same bytes every run")
    func search() throws {
        let args = ["plan", "--gpu", "A100-80G,L40S", "--tp", "auto", "--context", "16k", "--policies", "snapkv", "--budgets", "512",
                    "--target-rate", "8/s", "--format", "json"]
        let a = try runCLI(args), b = try runCLI(args)
        #expect(a.status == 0, "\(a.stderr)")
        #expect(a.stdout == b.stdout)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(a.stdout.utf8)) as? [String: Any])
        let fleet = try #require(object["fleet"] as? [String: Any])
        let options = try #require(fleet["options"] as? [[String: Any]])
        #expect(!options.isEmpty)
        let costs = options.map { ($0["sizing"] as! [String: Any])["usd_per_hour"] as! Double }
        #expect(costs == costs.sorted())
        #expect((fleet["serve_command"] as? String)?.hasPrefix("vllm serve meta-llama/Llama-3.1-8B-Instruct --tensor-parallel-size ") == true)
        // Eight candidates (two GPUs × TP 1, 2, 4, 8, which all divide Llama-3.1-8B's heads): planned or pruned, each accounted for.
        let planned = (fleet["candidates"] as? [String])?.count ?? 0, skipped = (fleet["skipped"] as? [String])?.count ?? 0
        #expect(planned >= 1 && planned + skipped == 8, "\(planned) planned, \(skipped) skipped")
        let html = try runCLI(Array(args.dropLast(2)) + ["--format", "html"])
        #expect(html.status == 0 && html.stdout.contains("aria-label=\"Cost vs accuracy loss at 8.00 req/s\""))
        #expect(html.stdout.contains("Pareto frontier"))
        #expect(html.stdout.contains("aria-label=\"GPUs needed vs arrival rate (") && html.stdout.contains("aria-label=\"SLO-meeting rate vs TTFT p90, one replica\""))
        let table = try runCLI(Array(args.dropLast(2)))
        for expected in ["Fleet for 8.00 req/s", "$/h", "Recommendation: For 8.00 req/s", "Serve command"] {
            #expect(table.stdout.contains(expected), "missing \(expected)")
        }
    }

    @Test("bad fleet input: one line and a non-zero exit")
    func badInput() throws {
        for (args, expected) in [
            (["--gpu", "A100-80G,Z80"], "unknown GPU 'Z80'; known: A100-40G"),
            (["--gpu", "RTX-3090"], "no price for RTX-3090"),
            (["--gpu", "A100-80G", "--gpu-price", "A100"], "is not GPU=USD"),
            (["--gpu", "A100-80G", "--target-rate", "fast"], "is not a rate"),
            (["--gpu", "A100-80G", "--target-rate", "log"], "is a synthetic scenario; give a rate"),
            (["--gpu", "A100-80G", "--weights", "int3"], "--weights: unknown format 'int3'; known: bf16, fp8, int4"),
            (["--gpu", "A100-80G", "--target-rate", "500/s", "--max-gpus", "1"], "no configuration carries 500 req/s within 1 GPUs"),
        ] as [([String], String)] {
            var full = ["plan", "--context", "16k", "--policies", "snapkv", "--budgets", "512"] + args
            if !args.contains("--target-rate") { full += ["--target-rate", "8"] }
            let r = try runCLI(full)
            #expect(r.status != 0, "\(args)")
            #expect(r.stderr.contains(expected), "\(args): \(r.stderr)")
            #expect(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1, "\(args): \(r.stderr)")
        }
        // Weight and KV formats are searched like GPUs: each option says which it runs.
        let formats = try runCLI(["plan", "--gpu", "H100", "--weights", "bf16,fp8", "--kv-dtype", "bf16,fp8", "--context", "16k", "--policies", "snapkv",
                                  "--budgets", "512", "--target-rate", "8", "--format", "json"])
        #expect(formats.status == 0, "\(formats.stderr)")
        let fo = try #require(try JSONSerialization.jsonObject(with: Data(formats.stdout.utf8)) as? [String: Any])
        let ff = try #require(fo["fleet"] as? [String: Any])
        let named = ((ff["candidates"] as? [String]) ?? []) + ((ff["skipped"] as? [String]) ?? [])
        for f in ["bf16/bf16", "bf16/fp8", "fp8/bf16", "fp8/fp8"] { #expect(named.contains { $0.contains("H100-80G-SXM × 1 \(f)") }, "\(f) not accounted for: \(named)") }
        let first = try #require((ff["options"] as? [[String: Any]])?.first)
        #expect(first["weights"] is String && first["kv_format"] is String)
        let one = try runCLI(["simulate", "--gpu", "H100", "--weights", "bf16,fp8", "--scenario", TestSupport.repositoryRoot.appendingPathComponent("Scenarios/plan-default.yaml").path])
        #expect(one.status != 0 && one.stderr.contains("this command takes one format each"))
        // A log at its own rate: the Azure code log's 8,819 requests over 57 minutes.
        let log = try runCLI(["plan", "--gpu", "A100-80G", "--context", "8k", "--scenario", TestSupport.repositoryRoot.appendingPathComponent("Scenarios/azure-code.yaml").path, "--policies", "snapkv",
                              "--budgets", "512", "--target-rate", "log"])
        #expect(log.status == 0 && log.stdout.contains("Fleet for 2.57 req/s"), "\(log.stderr)")
        let list = try runCLI(["plan", "--gpu", "A100-80G,L40S", "--context", "16k"])
        #expect(list.status != 0 && list.stderr.contains("give --target-rate"))
        let sim = try runCLI(["simulate", "--gpu", "A100-80G,L40S", "--scenario", "Scenarios/plan-default.yaml"])
        #expect(sim.status != 0 && sim.stderr.contains("this command takes one GPU"))
    }
}
