import Foundation
import Policies
import TraceFormat

/// Every reader of an untrusted trace over one file, as the fuzz target and the fuzz tests run
/// them: open, verify, read every record, repair, load for replay, replay each policy at
/// `budgets`. Each must read the file or refuse it with one line naming the file; a multi-line
/// refusal, a refusal that does not name it, or replay loading a file verify refuses is a
/// finding. (A trap or a hang is one too, which only the caller can see.)
public enum TraceCheck {
    /// How far a file got: refused when opened, by verify, by the replay loader, or replayed.
    public enum Stage: String, CaseIterable, Sendable {
        case refusedAtOpen, refusedByVerify, refusedByReplayLoader, replayed
    }

    /// Runs the readers over `path`, repairing into `scratch`; returns the finding (nil when all
    /// is well) and the stage reached. `budgets` gives each policy's budgets for the trace's
    /// prompt length.
    public static func run(_ path: String, scratch: URL, budgets: (PolicyKind, Int) -> [Int]) -> (finding: String?, stage: Stage) {
        let name = URL(fileURLWithPath: path).lastPathComponent
        var stage = Stage.refusedAtOpen
        func judge(_ error: Error) -> String? {
            let text = "\(error)"
            return text.contains("\n") || !text.contains(name) ? "refusal not one line naming the file: \(text)" : nil
        }
        let reader: TraceReader
        do { reader = try TraceReader(path: path) } catch { return (judge(error), stage) }
        if let problem = reader.verify().problem {
            if let finding = judge(problem) { return (finding, stage) }
            stage = .refusedByVerify
        }
        do { try reader.forEachRecord { _, _ in } } catch { if let finding = judge(error) { return (finding, stage) } }
        do {
            _ = try TraceRepair.repair(source: path, destination: scratch.appendingPathComponent("repaired-\(name)").path, level: 1)
        } catch {
            if let finding = judge(error) { return (finding, stage) }
        }
        let verifyRefused = stage == .refusedByVerify
        if stage == .refusedAtOpen { stage = .refusedByReplayLoader }
        let trace: ReplayTrace
        do { trace = try ReplayTrace(path: path) } catch { return (judge(error), stage) }
        if verifyRefused { return ("replay loaded a trace verify refuses", stage) }
        stage = .replayed
        let replayer = Replayer(trace)
        for policy in PolicyKind.allCases where !policy.needsProfile {
            for budget in budgets(policy, trace.promptLength) where budget > 0 {
                do { _ = try replayer.replay(policy, budget: budget) } catch { if let finding = judge(error) { return (finding, stage) } }
            }
        }
        return (nil, stage)
    }
}
