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
        subcommands: [PlanCommand.self, SimulateCommand.self, MemoryCommand.self, GPUsCommand.self, ModelsCommand.self, ValidateCommand.self, CalibrateCommand.self, GenerateCommand.self, EngineCommand.self, RecordCommand.self, TasksCommand.self, ReplayCommand.self, CorpusCommand.self, AccuracyCommand.self, HeadsCommand.self, LayersCommand.self, TraceCommand.self, BenchCommand.self]
    )

    public init() {}
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Ends the process (the C library's `exit`, which `ParsableCommand.exit` shadows here).
private func terminate(_ code: Int32) -> Never {
    #if canImport(Glibc)
    Glibc.exit(code)
    #else
    Darwin.exit(code)
    #endif
}

extension CKVSim {
    /// Parses and runs a command line. `--help` and `--version` print as usual; any error is one
    /// line on standard error, `ckv-sim: …`, and exit status 1, whether the command line or an
    /// input is at fault (ArgumentParser's own output would follow a bad flag with usage and help
    /// lines, and exit 64).
    public static func runMain(arguments: [String]) async -> Never {
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            terminate(0)
        } catch {
            let code = exitCode(for: error)
            if code == .success { self.exit(withError: error) } // help, version
            let text = message(for: error)
                .split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                .joined(separator: " ")
            printError("ckv-sim: \(text)")
            // One rule for every refusal, a bad flag or a bad file alike: exit status 1.
            terminate(1)
        }
    }
}
