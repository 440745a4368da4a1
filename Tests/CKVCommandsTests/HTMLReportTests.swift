import CZlib
import Foundation
import Testing
import TestSupport

/// The HTML report, loaded in headless Chromium and looked at.
@Suite("plan --format html in a browser")
struct HTMLReportTests {
    static func chromium() -> String? {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    @Test("Chromium renders the page with its five charts: the palette's colours and a filled, non-blank screenshot")
    func screenshot() throws {
        let browser = try #require(Self.chromium(), "headless Chromium is needed (scripts/test.sh installs the chromium package)")
        let dir = try scratch()
        let html = dir.appendingPathComponent("plan.html").path, png = dir.appendingPathComponent("plan.png").path
        let plan = try runCLI(["plan", "--gpu", "A100-80G", "--context", "128k", "--format", "html", "--out", html])
        #expect(plan.status == 0, "\(plan.stderr)")
        let page = try String(contentsOfFile: html, encoding: .utf8)
        #expect(page.components(separatedBy: "<svg").count - 1 == 5)
        #expect(page.contains("aria-label=\"SLO-meeting rate vs TTFT p90, one replica\""))
        #expect(!page.contains("<script"))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: browser)
        p.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--screenshot=\(png)", "--window-size=1280,1200",
                       "file://\(html)"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        let image = try PNG(path: png)
        #expect(image.width == 1280 && image.height == 1200)
        // What a reader sees: ink on the page, the policies' line colours and the memory bars.
        var ink = 0, colours: [String: Int] = [:]
        let wanted = ["1f77b4": (0x1f, 0x77, 0xb4), "d62728": (0xd6, 0x27, 0x28), "3182bd": (0x31, 0x82, 0xbd), "9ecae1": (0x9e, 0xca, 0xe1)]
        for y in 0..<image.height {
            for x in 0..<image.width {
                let (r, g, b) = image.pixel(x, y)
                if Int(r) + Int(g) + Int(b) < 600 { ink += 1 }
                for (name, c) in wanted where abs(Int(r) - c.0) < 8 && abs(Int(g) - c.1) < 8 && abs(Int(b) - c.2) < 8 { colours[name, default: 0] += 1 }
            }
        }
        #expect(Double(ink) / Double(image.width * image.height) > 0.03, "the screenshot is (nearly) blank")
        for name in wanted.keys { #expect((colours[name] ?? 0) > 200, "colour #\(name) barely visible: \(colours[name] ?? 0) pixels") }
    }
}

/// A minimal PNG reader for 8-bit RGB/RGBA screenshots (zlib inflate, the five row filters).
struct PNG {
    let width: Int, height: Int, channels: Int
    let pixels: [UInt8]

    struct Unsupported: Error, CustomStringConvertible { var description: String }

    init(path: String) throws {
        let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        guard data.count > 8, data[0..<8] == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] else { throw Unsupported(description: "\(path): not a PNG") }
        func u32(_ i: Int) -> Int { Int(data[i]) << 24 | Int(data[i + 1]) << 16 | Int(data[i + 2]) << 8 | Int(data[i + 3]) }
        var i = 8, w = 0, h = 0, colorType = 0, idat: [UInt8] = []
        while i + 8 <= data.count {
            let length = u32(i), type = String(decoding: data[(i + 4)..<(i + 8)], as: UTF8.self)
            let body = Array(data[(i + 8)..<(i + 8 + length)])
            if type == "IHDR" {
                w = u32(i + 8); h = u32(i + 12)
                guard body[8] == 8, body[12] == 0 else { throw Unsupported(description: "bit depth \(body[8]), interlace \(body[12])") }
                colorType = Int(body[9])
            } else if type == "IDAT" {
                idat += body
            }
            i += 12 + length
        }
        guard colorType == 2 || colorType == 6 else { throw Unsupported(description: "colour type \(colorType)") }
        let c = colorType == 6 ? 4 : 3, stride = w * c
        var raw = [UInt8](repeating: 0, count: h * (stride + 1))
        var size = uLongf(raw.count)
        let status = raw.withUnsafeMutableBufferPointer { out in idat.withUnsafeBufferPointer { src in uncompress(out.baseAddress, &size, src.baseAddress, uLong(src.count)) } }
        guard status == Z_OK, Int(size) == raw.count else { throw Unsupported(description: "zlib status \(status)") }
        var px = [UInt8](repeating: 0, count: h * stride)
        for y in 0..<h {
            let filter = raw[y * (stride + 1)]
            for x in 0..<stride {
                let v = raw[y * (stride + 1) + 1 + x]
                let a = x >= c ? Int(px[y * stride + x - c]) : 0
                let b = y > 0 ? Int(px[(y - 1) * stride + x]) : 0
                let d = x >= c && y > 0 ? Int(px[(y - 1) * stride + x - c]) : 0
                let predictor: Int
                switch filter {
                case 0: predictor = 0
                case 1: predictor = a
                case 2: predictor = b
                case 3: predictor = (a + b) / 2
                default:
                    let p = a + b - d, pa = abs(p - a), pb = abs(p - b), pc = abs(p - d)
                    predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : d
                }
                px[y * stride + x] = UInt8(truncatingIfNeeded: Int(v) + predictor)
            }
        }
        width = w; height = h; channels = c; pixels = px
    }

    func pixel(_ x: Int, _ y: Int) -> (UInt8, UInt8, UInt8) {
        let i = (y * width + x) * channels
        return (pixels[i], pixels[i + 1], pixels[i + 2])
    }
}
