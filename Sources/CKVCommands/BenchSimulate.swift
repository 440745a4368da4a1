import ArgumentParser
import Foundation
import Reporting
import Hardware
import Simulator

/// `ckv-sim bench simulate`: simulated requests per wall-clock second, single thread.
struct BenchSimulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Simulator speed: requests simulated per wall second on (a) the Azure conversation log, (b) 32k-token prompts with compression, (c) a 16-replica cluster of 10 × --requests.",
        discussion: "Run a release build. Memory: the process's peak RSS is printed; the simulator keeps no per-request history."
    )

    @Option(help: "Requests per workload.")
    var requests = 10_000

    @Option(help: "Directory holding the scenario files.")
    var scenarios = "Scenarios"

    @Option(help: "Output format: text, json.")
    var format: OutputFormat = .text

    func validate() throws {
        guard requests > 0 else { throw ValidationError("--requests must be positive") }
    }

    struct Row: Encodable {
        var workload: String
        var requests: Int
        var simulatedSeconds: Double
        var wallSeconds: Double
        var requestsPerWallSecond: Double
        var steps: Int
        enum CodingKeys: String, CodingKey {
            case workload, requests, steps
            case simulatedSeconds = "simulated_s"
            case wallSeconds = "wall_s"
            case requestsPerWallSecond = "requests_per_wall_s"
        }
    }

    struct Output: Encodable {
        var rows: [Row]
        var peakRSSBytes: Int
        enum CodingKeys: String, CodingKey {
            case rows
            case peakRSSBytes = "peak_rss_bytes"
        }
    }

    func run() async throws {
        let a100 = GPUCatalog.named("A100-80G")!, llama = ModelCatalog.named("Llama-3.1-8B-Instruct")!
        var rows: [Row] = []

        // (a) the Azure 2023 conversation log, replayed at its own times (loaded before timing).
        let azure = try Scenario.load(path: "\(scenarios)/azure-conversation.yaml")
        let azureSource = try azure.source(requests: requests)
        rows.append(try measure("(a) Azure conversation log, Llama-3.1-8B / A100-80G, full cache", try azure.serving(gpu: a100, model: llama), nil, azureSource, a100, llama))

        // (b) 32k-token prompts arriving at 1 req/s with SnapKV at budget 1024.
        let h100 = GPUCatalog.named("H100-80G-SXM")!
        var given = ServingSettings()
        given.maxModelLen = 34_000
        let serving = try given.resolve(gpu: h100, model: llama)
        let long = SyntheticSource(arrivals: .poisson(rate: 1), prompt: .fixed(32_768), output: .lognormal(median: 256, sigma: 0.5, min: 16, max: 1024),
                                   count: requests, seed: 1)
        rows.append(try measure("(b) 32k-token prompts, Poisson 1 req/s, SnapKV budget 1024, Llama-3.1-8B / H100-80G-SXM", serving,
                                CompressionSpec(policy: .snapKV, budget: .tokens(1024)), long, h100, llama))

        // (c) a fleet: 16 replicas behind the least-outstanding router, 100k requests (the
        // fleet-sizing goal: ≤ 2 s), Poisson at 16 × 4 req/s of the plan's default workload shape.
        var fleetServing = ServingSettings()
        fleetServing.maxModelLen = 16_384
        let fleetConfig = try fleetServing.resolve(gpu: a100, model: llama)
        let fleetSource = SyntheticSource(arrivals: .poisson(rate: 64), prompt: .lognormal(median: 975, sigma: 0.8, min: 60, max: 12_000),
                                          output: .lognormal(median: 256, sigma: 0.5, min: 16, max: 2048), count: 10 * requests, seed: 1)
        _ = KernelTables.named(a100.name)
        let fleetPlan = try MemoryPlan(gpu: a100, model: llama, serving: fleetConfig)
        var cluster = ClusterSimulation(replicas: 16, plan: fleetPlan, cost: CostModel(gpu: a100, model: llama, serving: fleetConfig), source: fleetSource)
        let start = ContinuousClock.now
        let fleet = cluster.run()
        let wall = (ContinuousClock.now - start).seconds
        rows.append(Row(workload: "(c) 16 replicas, least-outstanding router, Poisson 64 req/s, Llama-3.1-8B / A100-80G, full cache", requests: fleet.fleet.requests,
                        simulatedSeconds: fleet.fleet.durationSeconds, wallSeconds: wall, requestsPerWallSecond: Double(fleet.fleet.requests) / wall,
                        steps: fleet.fleet.steps))

        let output = Output(rows: rows, peakRSSBytes: peakRSS())
        switch format {
        case .json: print(try JSONOutput.string(output))
        case .text:
            var t = Table(columns: ["workload", "requests", "simulated", "wall", "requests/s", "steps"], rightAligned: [1, 2, 3, 4, 5])
            for r in rows {
                t.append([r.workload, "\(r.requests)", "\(Format.fixed(r.simulatedSeconds, 0)) s", "\(Format.fixed(r.wallSeconds, 3)) s",
                          Format.fixed(r.requestsPerWallSecond, 0), "\(r.steps)"])
            }
            print(t.text)
            print("peak RSS \(Format.bytes(UInt64(output.peakRSSBytes))); one thread; wall time of the simulation only (logs parsed and kernel tables loaded before).")
        }
    }

    private func measure(_ name: String, _ serving: ServingConfig, _ compression: CompressionSpec?, _ source: any RequestSource,
                         _ gpu: GPU, _ model: ModelSpec) throws -> Row {
        _ = KernelTables.named(gpu.name) // loaded before the clock starts, as the logs are parsed before
        let start = ContinuousClock.now
        let result = try Simulation.run(gpu: gpu, model: model, serving: serving, compression: compression, source: source)
        let wall = (ContinuousClock.now - start).seconds
        return Row(workload: name, requests: result.requests, simulatedSeconds: result.durationSeconds, wallSeconds: wall,
                   requestsPerWallSecond: Double(result.requests) / wall, steps: result.steps)
    }
}

/// Peak resident set size of this process (VmHWM), bytes; 0 where /proc is absent.
func peakRSS() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
        return kb * 1024
    }
    return 0
}
