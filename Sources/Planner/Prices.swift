import Foundation
import Hardware

/// One provider's on-demand list price for a GPU, with where and when it was stated.
public struct GPUPriceEntry: Codable, Equatable, Sendable {
    public var gpu: String
    public var provider: String
    public var product: String
    public var usdPerGPUHour: Double
    public var asOf: String
    public var url: String
    public var quote: String
    /// How a multi-GPU instance's or a per-second price became a per-GPU-hour one.
    public var derivation: String?

    enum CodingKeys: String, CodingKey {
        case gpu, provider, product, url, quote, derivation
        case usdPerGPUHour = "usd_per_gpu_hour"
        case asOf = "as_of"
    }
}

/// The price table the fleet sizing charges GPUs at: the bundled list prices
/// (`Sources/Planner/Data/gpu-prices.json`, each entry with its source), a team's own table
/// (`--prices FILE`, the same format), and per-GPU overrides (`--gpu-price H100=3.10`).
/// A GPU's price is its override, else the median of its entries.
public struct GPUPrices: Sendable, Equatable {
    public private(set) var entries: [GPUPriceEntry]
    public private(set) var overrides: [String: Double] = [:]
    /// Where the entries come from, as reports name it.
    public let origin: String

    /// The bundled table.
    public static func bundled() throws -> GPUPrices {
        guard let url = Bundle.module.url(forResource: "gpu-prices", withExtension: "json", subdirectory: "Data") else {
            throw PlanError("the bundled price table (Sources/Planner/Data/gpu-prices.json) is missing from this build")
        }
        return try load(path: url.path, origin: "bundled list prices (Sources/Planner/Data/gpu-prices.json)")
    }

    /// A table in the bundled format.
    /// - Throws: `PlanError` naming the file and the entry (its index and GPU) for a missing or
    ///   bad field or an unknown GPU.
    public static func load(path: String, origin: String? = nil) throws -> GPUPrices {
        guard let data = FileManager.default.contents(atPath: path) else { throw PlanError("\(path): cannot read the price table") }
        guard let top = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any], let list = top["entries"] as? [Any] else {
            throw PlanError("\(path): not a price table (a JSON object with an \"entries\" list)")
        }
        var entries: [GPUPriceEntry] = []
        for (i, item) in list.enumerated() {
            let raw = item as? [String: Any] ?? [:]
            let name = raw["gpu"] as? String
            let at = "\(path): entry \(i)\(name.map { " (\($0))" } ?? "")"
            guard let name else { throw PlanError("\(at): no \"gpu\"") }
            guard let gpu = GPUCatalog.named(name) else {
                throw PlanError("\(at): unknown GPU; known: \(GPUCatalog.all.map(\.name).joined(separator: ", "))")
            }
            guard raw["usd_per_gpu_hour"] != nil else { throw PlanError("\(at): no \"usd_per_gpu_hour\"") }
            // Decoded strictly (JSONSerialization would take true for 1).
            struct Price: Decodable { var usd_per_gpu_hour: Double }
            let one = try? JSONSerialization.data(withJSONObject: ["usd_per_gpu_hour": raw["usd_per_gpu_hour"]!])
            guard let one, let usd = (try? JSONDecoder().decode(Price.self, from: one))?.usd_per_gpu_hour, usd > 0, usd.isFinite else {
                throw PlanError("\(at): \"usd_per_gpu_hour\" must be a positive number")
            }
            for key in ["provider", "as_of", "url"] where (raw[key] as? String)?.isEmpty ?? true {
                throw PlanError("\(at): no \"\(key)\" (every price names who stated it, when and where)")
            }
            entries.append(GPUPriceEntry(gpu: gpu.name, provider: raw["provider"] as! String, product: raw["product"] as? String ?? "",
                                         usdPerGPUHour: usd, asOf: raw["as_of"] as! String, url: raw["url"] as! String,
                                         quote: raw["quote"] as? String ?? "", derivation: raw["derivation"] as? String))
        }
        return GPUPrices(entries: entries, origin: origin ?? path)
    }

    init(entries: [GPUPriceEntry], origin: String) {
        self.entries = entries
        self.origin = origin
    }

    /// Applies `GPU=USD` overrides (`--gpu-price H100=3.10,L40S=1.2`).
    /// - Throws: `PlanError` for a malformed pair, an unknown GPU or a price that is not positive.
    public mutating func override(_ text: String) throws {
        for pair in text.split(separator: ",") {
            let parts = pair.split(separator: "=", omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw PlanError("--gpu-price: '\(pair)' is not GPU=USD (H100=3.10)") }
            let name = parts[0].trimmingCharacters(in: .whitespaces)
            guard let gpu = GPUCatalog.named(name) else {
                throw PlanError("--gpu-price: unknown GPU '\(name)'; known: \(GPUCatalog.all.map(\.name).joined(separator: ", "))")
            }
            guard let usd = Double(parts[1].trimmingCharacters(in: .whitespaces)), usd > 0, usd.isFinite else {
                throw PlanError("--gpu-price: '\(parts[1])' for \(gpu.name) is not a positive price in USD per GPU-hour")
            }
            overrides[gpu.name] = usd
        }
    }

    /// USD per GPU-hour for `gpu` and where it comes from; nil when neither the table nor an
    /// override has it.
    public func price(_ gpu: String) -> (usd: Double, source: String)? {
        if let o = overrides[gpu] { return (o, "--gpu-price") }
        let prices = entries.filter { $0.gpu == gpu }.map(\.usdPerGPUHour).sorted()
        guard !prices.isEmpty else { return nil }
        let n = prices.count
        let median = n % 2 == 1 ? prices[n / 2] : (prices[n / 2 - 1] + prices[n / 2]) / 2
        let providers = entries.filter { $0.gpu == gpu }.map(\.provider)
        return (median, n == 1 ? "\(providers[0]) list price" : "median of \(n) list prices (\(providers.joined(separator: ", ")))")
    }

    /// The GPUs with a price.
    public var priced: [String] { Array(Set(entries.map(\.gpu)).union(overrides.keys)).sorted() }
}
