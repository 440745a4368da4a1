// The readers of untrusted files as fuzz targets (issue #21): `scripts/fuzz.sh trace|gguf MINUTES`
// builds this with libFuzzer (`-sanitize=fuzzer,address`, `-D CKV_LIBFUZZER`) and runs it; a normal
// build makes `ckv-fuzz trace|gguf FILE…`, which runs the same check over saved inputs (a crash
// libFuzzer found, or a corpus) without the sanitizers.
//
// The check: every reader either reads the input or refuses it with one line naming the file.
// A trap, a hang or a multi-line refusal is a finding.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import GGUF
import Hardware
import Policies
import Replay
import TraceFormat

enum FuzzTarget: String, CaseIterable {
    case trace, gguf

    /// Runs every reader of this kind over the file at `path`; returns a finding, nil when all is well.
    func check(_ path: String) -> String? {
        let name = URL(fileURLWithPath: path).lastPathComponent
        func judge(_ error: Error) -> String? {
            let text = "\(error)"
            return text.contains("\n") || !text.contains(name) ? "refusal not one line naming the file: \(text)" : nil
        }
        switch self {
        case .trace:
            let scratch = URL(fileURLWithPath: NSTemporaryDirectory())
            return TraceCheck.run(path, scratch: scratch) { policy, prompt in [policy.window, 2 * policy.window + 1, prompt] }.finding
        case .gguf:
            do { _ = try GGUFFile(path: path) } catch { return judge(error) }
            do { _ = try ModelSpec.fromGGUF(path: path) } catch { return judge(error) }
            return nil
        }
    }

    var fileExtension: String { self == .trace ? "ckvt" : "gguf" }
}

#if CKV_LIBFUZZER
nonisolated(unsafe) private var target = FuzzTarget.trace
nonisolated(unsafe) private var scratchPath = ""

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>>>) -> CInt {
    let name = ProcessInfo.processInfo.environment["CKV_FUZZ_TARGET"] ?? "trace"
    guard let t = FuzzTarget(rawValue: name) else {
        FileHandle.standardError.write(Data("CKV_FUZZ_TARGET '\(name)' is not a target (known: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")))\n".utf8))
        exit(1)
    }
    target = t
    let dir = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    scratchPath = "\(dir)/ckv-fuzz-\(getpid()).\(t.fileExtension)"
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    // The readers take paths, as the CLI does: the input goes through a file in memory.
    _ = FileManager.default.createFile(atPath: scratchPath, contents: Data(bytes: data, count: size))
    if let finding = target.check(scratchPath) {
        FileHandle.standardError.write(Data("ckv-fuzz: \(finding)\n".utf8))
        abort()
    }
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func libFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                        _ body: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt

/// The package manager links an executable's entry point under this name; libFuzzer's driver runs from it.
@_cdecl("ckv_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    var count = argc, vector = argv
    return libFuzzerRunDriver(&count, &vector) { fuzzOneInput($0, $1) }
}

@_silgen_name("LLVMFuzzerMutate")
func libFuzzerMutate(_ data: UnsafeMutablePointer<UInt8>, _ size: Int, _ maxSize: Int) -> Int

/// libFuzzer's byte mutations, then every checksum of a trace recomputed: without this nearly
/// every mutant dies at a CRC and the fuzzer never reaches the records or replay.
@_cdecl("LLVMFuzzerCustomMutator")
public func fuzzMutate(_ data: UnsafeMutablePointer<UInt8>, _ size: Int, _ maxSize: Int, _ seed: CUnsignedInt) -> Int {
    let n = libFuzzerMutate(data, size, maxSize)
    if target == .trace { TraceLayout.resealChecksums(UnsafeMutableBufferPointer(start: data, count: n)) }
    return n
}
#else
@main
struct FuzzCorpusRunner {
    static func main() {
        let args = Array(CommandLine.arguments.dropFirst())
        guard let first = args.first, let target = FuzzTarget(rawValue: first), args.count > 1 else {
            print("usage: ckv-fuzz trace|gguf FILE… (runs the fuzz check over saved inputs; scripts/fuzz.sh runs libFuzzer)")
            exit(64)
        }
        var findings = 0
        for path in args.dropFirst() {
            if let finding = target.check(path) {
                print("\(path): \(finding)")
                findings += 1
            }
        }
        print("\(args.count - 1) inputs, \(findings) findings")
        exit(findings == 0 ? 0 : 1)
    }
}
#endif
