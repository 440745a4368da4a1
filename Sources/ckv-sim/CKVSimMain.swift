// The `ckv-sim` executable: all commands live in CKVCommands so tests can parse and run them.
import CKVCommands

@main
enum Main {
    static func main() async {
        await CKVSim.runMain(arguments: Array(CommandLine.arguments.dropFirst()))
    }
}
