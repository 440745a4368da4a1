import Hardware

extension Simulation {
    /// Plans memory, checks that the largest request can be served, and runs the simulation.
    /// - Parameter timeSeries: keep the batch and KV series (off for callers that need only the figures).
    /// - Parameter largest: (prompt, output) of the largest request the workload can produce,
    ///   when known up front (synthetic workloads); a log's overlong requests are rejected one by one.
    /// - Parameter clientConcurrency: the benchmark client's limit on outstanding requests (nil: none).
    /// - Parameter goodput: count the requests meeting these objectives (nil: none).
    /// - Throws: `CapacityError` when the model or a request cannot fit.
    public static func run(gpu: GPU, model: ModelSpec, serving: ServingConfig, compression: CompressionSpec? = nil,
                           coefficients: Coefficients = Coefficients(), source: any RequestSource,
                           largest: (prompt: Int, output: Int)? = nil, timeSeries: Bool = true, clientConcurrency: Int? = nil,
                           goodput: GoodputSLO? = nil) throws -> SimulationResult {
        let (plan, cost) = try replica(gpu: gpu, model: model, serving: serving, compression: compression, coefficients: coefficients, largest: largest)
        var sim = Simulation(plan: plan, cost: cost, compression: compression, scheduler: scheduler(for: serving), source: source)
        sim.recordsTimeSeries = timeSeries
        sim.clientConcurrency = clientConcurrency
        sim.goodputSLO = goodput
        return sim.run()
    }

    /// The memory plan and cost model of one replica, checked to serve the `largest` request
    /// (as `run` does; a cluster runs copies of it).
    /// - Throws: `CapacityError` when the model or a request cannot fit.
    public static func replica(gpu: GPU, model: ModelSpec, serving: ServingConfig, compression: CompressionSpec? = nil,
                               coefficients: Coefficients = Coefficients(), largest: (prompt: Int, output: Int)? = nil) throws -> (MemoryPlan, CostModel) {
        let plan = try MemoryPlan(gpu: gpu, model: model, serving: serving, constants: coefficients.memory, metadata: compression?.policy.poolMetadata)
        let cost = CostModel(gpu: gpu, model: model, serving: serving, constants: coefficients.cost)
        if let largest {
            try Simulation(plan: plan, cost: cost, compression: compression, scheduler: scheduler(for: serving), source: EmptySource())
                .checkFits(prompt: largest.prompt, output: largest.output)
        }
        return (plan, cost)
    }
}
