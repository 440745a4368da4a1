import ArgumentParser

/// `ckv-sim bench …`: printed performance figures (benchmarks are not timed tests).
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure throughput on this machine and print the figures.",
        subcommands: [BenchTrace.self, BenchSimulate.self, BenchEngine.self, BenchPlan.self]
    )
}
