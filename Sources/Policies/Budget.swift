import Foundation

// The budget (DESIGN.md "Budget B"): tokens kept per layer per KV head, the observation window
// included, or the other spelling, the fraction of the prompt's KV kept. One rule turns either
// into tokens at a prompt length, for the engine, replay, the simulator and the planner alike.

/// A budget as the user wrote it.
public enum Budget: Sendable, Hashable, CustomStringConvertible {
    case tokens(Int)
    case fraction(Double)

    /// Tokens per layer per KV head for an `n`-token prompt under a policy whose selections always
    /// keep `window` tokens. Tokens are taken as given (a budget below the window stays an error
    /// for the policy to report); a fraction rounds to the nearest token (the engine's and the
    /// recorded runs' rule) and never falls below the window. Never above the prompt.
    public func tokens(prompt n: Int, window: Int) -> Int {
        switch self {
        case let .tokens(b): min(n, b)
        case let .fraction(f): min(n, max(window, Int((f * Double(n)).rounded())))
        }
    }

    /// As the user typed it: "1024" or "5%".
    public var description: String {
        switch self {
        case let .tokens(b): String(b)
        case let .fraction(f): formatPercent(f)
        }
    }
}

/// "1%", "0.5%", "12.5%".
public func formatPercent(_ f: Double) -> String {
    let p = f * 100
    return p == p.rounded() ? "\(Int(p))%" : String(format: "%g%%", p)
}
