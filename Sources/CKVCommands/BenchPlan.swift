import ArgumentParser
import Foundation

/// `ckv-sim bench plan`: wall time of the default `plan` (whole grid), the ≤ 2 s goal.
struct BenchPlan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Wall time of `ckv-sim plan --gpu A100-80G --context 128k` (whole grid, traces loaded and replayed each run)."
    )

    @Option(help: "Runs.")
    var runs = 5

    @Option(help: "Arguments of the plan to time, space-separated.")
    var arguments = "--gpu A100-80G --context 128k"

    @Flag(help: "Time the default fleet search instead (goal ≤ 10 s): \(Self.search).")
    var search = false

    static let search = "--gpu A100-80G,H100,L40S --tp auto --context 32k --target-rate 20/s"

    func run() async throws {
        guard runs > 0 else { throw CLIError("--runs must be positive") }
        let arguments = search ? Self.search : arguments
        let goal = search ? 10 : 2
        var times: [Double] = []
        let clock = ContinuousClock()
        for _ in 0..<runs {
            let plan = try PlanCommand.parse(arguments.split(separator: " ").map(String.init) + ["--out", "/dev/null"])
            let start = clock.now
            try await plan.run()
            times.append((clock.now - start).seconds)
        }
        let sorted = times.sorted()
        print("ckv-sim plan \(arguments): \(runs) runs, wall min \(String(format: "%.2f", sorted[0])) s, median \(String(format: "%.2f", sorted[sorted.count / 2])) s, max \(String(format: "%.2f", sorted.last!)) s (goal ≤ \(goal) s on 2 cores)")
    }
}
