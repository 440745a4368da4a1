import ModelFamily
import Testing

@Suite("which layers are global")
struct LayerPatternTests {
    @Test("Gemma 3: five sliding-window layers to each global one (il % 6 == 5), or the pattern config.json declares")
    func gemma3() {
        let p = LayerPattern.family("gemma3", slidingWindow: 512)
        #expect(p.globalIndices(of: 18) == [5, 11, 17])
        #expect(p.globalLayers(of: 18) == 3 && p.globalLayers(of: 62) == 10)
        #expect(p.window(4) == 512 && p.window(5) == nil)
        #expect(LayerPattern.family("gemma3_text", slidingWindow: 1024, declaredEvery: 4).globalIndices(of: 8) == [3, 7])
    }

    @Test("Gemma 2 alternates; another family with a window slides everywhere; no window is all global")
    func others() {
        #expect(LayerPattern.family("gemma2", slidingWindow: 4096).globalIndices(of: 6) == [1, 3, 5])
        let mistral = LayerPattern.family("mistral", slidingWindow: 4096)
        #expect(mistral.globalLayers(of: 32) == 0 && mistral.window(0) == 4096)
        let llama = LayerPattern.family("llama", slidingWindow: nil)
        #expect(llama == .allGlobal && llama.globalLayers(of: 32) == 32 && llama.window(7) == nil)
    }

    @Test("seeded: the count of global layers is the number of layers isGlobal accepts")
    func countMatchesRule() {
        var state: UInt64 = 42
        for _ in 0..<200 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let layers = Int(state >> 58) + 1, every = Int((state >> 40) % 7) + 1
            let p = LayerPattern(slidingWindow: 128, globalEvery: every)
            #expect(p.globalLayers(of: layers) == (0..<layers).filter(p.isGlobal).count)
        }
    }
}
