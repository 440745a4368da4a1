import Foundation
import Testing
import TestSupport

/// `plan`, `simulate` and `replay` resolve a policy at a budget through the same description
/// (`PolicyKind`) and the same budget rule (`Budget`): driven through the binary on one real
/// trace, they agree on the tokens kept, the window and the block layout.
@Suite("one policy model across commands")
struct PolicyAgreementTests {
    static let trace = "Traces/smollm2-qa-1k.ckvt"
    static let prompt = 1023 // the trace's prompt tokens
    static let output = 8

    func json(_ arguments: [String]) throws -> Any {
        let r = try runCLI(arguments)
        #expect(r.status == 0, "\(arguments): \(r.stderr)")
        return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
    }

    @Test("kept tokens, window and layout agree", arguments: ["streamingllm", "h2o", "snapkv", "pyramidkv", "adakv", "chunkkv", "kvcompress"])
    func agree(policy: String) throws {
        let dir = try scratch()
        let scenario = dir.appendingPathComponent("fixed-\(policy).yaml").path
        try """
        name: fixed-\(Self.prompt)
        seed: 1
        arrivals: {process: batch}
        requests: 4
        prompt: {distribution: fixed, tokens: \(Self.prompt)}
        output: {distribution: fixed, tokens: \(Self.output)}
        """.write(toFile: scenario, atomically: true, encoding: .utf8)
        for (flag, value) in [("--budget", "100"), ("--kv-fraction", "0.05")] {
            let plural = flag == "--budget" ? "--budgets" : "--kv-fractions"
            let sim = try json(["simulate", "--gpu", "L4", "--model", "SmolLM2-135M-Instruct", "--scenario", scenario, "--policy", policy,
                                flag, value, "--format", "json"]) as! [String: Any]
            let compression = sim["compression"] as! [String: Any]
            let replay = try json(["replay", Self.trace, "--policies", policy, plural, flag == "--budget" ? value : "5%", "--format", "json"]) as! [[String: Any]]
            let plan = try json(["plan", "--gpu", "L4", "--model", "SmolLM2-135M-Instruct", "--context", "\(Self.prompt + Self.output)",
                                 "--output-tokens", "\(Self.output)", "--scenario", scenario, "--policies", policy, plural,
                                 flag == "--budget" ? value : "5%", "--slo-ttft", "60s", "--slo-tpot", "10s", "--format", "json"]) as! [String: Any]
            let row = (plan["rows"] as! [[String: Any]])[1]
            let budget = replay[0]["budget"] as! Int
            // The budget rule: the same tokens at the same prompt in all three.
            #expect(row["budget"] as? Int == budget, "\(policy) \(flag)")
            #expect(row["window"] as? Int == compression["window"] as? Int, "\(policy)")
            #expect(row["layout"] as? String == compression["layout"] as? String, "\(policy)")
            // The simulator's kept count is the budget, KV-Compress's rounded up to whole blocks,
            // and replay's kept positions fit in exactly the blocks the simulator charges.
            let kept = compression["kept_at_longest_prompt"] as! Int
            let counts = (replay[0]["kept_counts"] as! [[Int]]).flatMap { $0 }
            if policy == "kvcompress" {
                #expect(kept == (budget + 15) / 16 * 16)
                let blocks = counts.reduce(0) { $0 + ($1 + 15) / 16 }
                #expect(blocks <= (counts.count * kept + 15) / 16, "replay holds \(blocks) blocks")
            } else {
                #expect(kept == budget, "\(policy) \(flag)")
                #expect(counts.allSatisfy { $0 <= 3 * budget })
            }
            #expect((row["kv_fraction"] as! Double - Double(budget) / Double(Self.prompt)).magnitude < 1e-12)
        }
    }
}
