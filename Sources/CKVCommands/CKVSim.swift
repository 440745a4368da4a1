import ArgumentParser

/// The root command: `ckv-sim <subcommand>`.
public struct CKVSim: AsyncParsableCommand {
    public static let version = "0.1.0"

    public static let configuration = CommandConfiguration(
        commandName: "ckv-sim",
        abstract: "Plan KV-cache compression for long-context LLM serving: capacity, throughput, latency and accuracy.",
        discussion: """
        Traces of real attention recorded from the reference engine live in .ckvt files \
        (see Docs/trace-format.md). Every command prints one clear line and exits non-zero on bad input.
        """,
        version: version,
        subcommands: [SimulateCommand.self, MemoryCommand.self, GPUsCommand.self, ModelsCommand.self, TraceCommand.self, BenchCommand.self]
    )

    public init() {}
}
