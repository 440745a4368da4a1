/// Which layers of a model attend to the whole sequence (global) and which to a sliding window
/// of recent keys (local). The one rule the engine, the GGUF and config.json imports, the
/// catalogue and the recorder use.
public struct LayerPattern: Sendable, Equatable, Hashable {
    /// The window of the sliding-window layers; nil: every layer is global.
    public var slidingWindow: Int?
    /// With a window, every `globalEvery`-th layer is global (il % globalEvery == globalEvery − 1);
    /// nil: every layer slides (Mistral v0.1).
    public var globalEvery: Int?

    public init(slidingWindow: Int?, globalEvery: Int?) {
        self.slidingWindow = slidingWindow
        self.globalEvery = globalEvery
    }

    /// Every layer global.
    public static let allGlobal = LayerPattern(slidingWindow: nil, globalEvery: nil)

    /// The pattern of a model family, named as GGUF's `general.architecture` or config.json's
    /// `model_type` (`gemma3`, `gemma3_text`, `gemma2`, …), with the window the file gives:
    /// Gemma 3 has five local layers to each global one (llama.cpp's `il % 6 == 5`; config.json's
    /// `sliding_window_pattern` when it states one), Gemma 2 alternates, and any other family
    /// with a window slides on every layer.
    public static func family(_ name: String, slidingWindow: Int?, declaredEvery: Int? = nil) -> LayerPattern {
        guard let slidingWindow else { return .allGlobal }
        let every: Int? = if name.hasPrefix("gemma3") { declaredEvery ?? 6 } else if name.hasPrefix("gemma2") { 2 } else { nil }
        return LayerPattern(slidingWindow: slidingWindow, globalEvery: every)
    }

    /// True when layer `il` attends to the whole sequence.
    public func isGlobal(_ il: Int) -> Bool {
        guard slidingWindow != nil else { return true }
        guard let every = globalEvery else { return false }
        return il % every == every - 1
    }

    /// The keys a query of layer `il` sees back from itself (nil: all).
    public func window(_ il: Int) -> Int? { isGlobal(il) ? nil : slidingWindow }

    /// How many of `layers` layers are global.
    public func globalLayers(of layers: Int) -> Int {
        guard slidingWindow != nil else { return layers }
        guard let every = globalEvery, every > 0 else { return 0 }
        return layers / every
    }

    /// The global layers of a `layers`-layer model, in order.
    public func globalIndices(of layers: Int) -> [Int] { (0..<layers).filter(isGlobal) }
}
