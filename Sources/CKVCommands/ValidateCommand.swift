import ArgumentParser
import Foundation
import Hardware
import Simulator
import Validation

/// `ckv-sim validate`: reproduces the published serving results with their configurations and
/// writes the comparison (Docs/validation.md).
struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Reproduce published KV-compression serving results and vLLM KV capacities; write Docs/validation.md."
    )

    @Option(help: "Write the Markdown report here (default: print it).")
    var out: String?

    @Option(help: "Directory holding the scenario files.")
    var scenarios: String = "Scenarios"

    @Flag(help: "Search the cost constants that best fit the four KV-Compress L4 rows and print them (5 s).")
    var calibrate = false

    @Flag(name: .customLong("fit-serving"), help: "Fit vLLM V1's and SGLang's host overheads to the fit split of the published serving runs and print them.")
    var fitServing = false

    func run() async throws {
        if fitServing {
            let (c, median) = try Validation.fitServingOverheads(try ServingMeasurement.committed())
            let v1 = c.overhead(for: .vllmV1), sg = c.overhead(for: .sglang)
            print(String(format: "step %.4f s, per sequence %.6f s, API server per request: vLLM V1 %.4f s, SGLang %.4f s; sustained compute × %.2f: median |error| %.1f %% over the fit split's figures",
                         v1.step, v1.perSequence, v1.perRequest, sg.perRequest, c.sustainedComputeScale, median))
            print("per-GPU kernel time: " + (c.gpuTimeScales.isEmpty ? "none" : c.gpuTimeScales.sorted { $0.key < $1.key }.map { "\($0.key) × \($0.value)" }.joined(separator: ", ")))
            return
        }
        if calibrate {
            print(try Validation(scenarioDirectory: scenarios).calibrate())
            return
        }
        let report = try Validation(scenarioDirectory: scenarios).markdown()
        if let out {
            try report.write(toFile: out, atomically: true, encoding: .utf8)
            printError("wrote \(out)")
        } else {
            print(report)
        }
    }
}
