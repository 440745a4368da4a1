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
        let plan = try MemoryPlan(gpu: gpu, model: model, serving: serving, constants: coefficients.memory, metadata: compression?.policy.poolMetadata)
        var sim = Simulation(plan: plan, cost: CostModel(gpu: gpu, model: model, serving: serving, constants: coefficients.cost),
                             compression: compression,
                             scheduler: scheduler(for: serving),
                             source: source)
        sim.recordsTimeSeries = timeSeries
        sim.clientConcurrency = clientConcurrency
        sim.goodputSLO = goodput
        if let largest { try sim.checkFits(prompt: largest.prompt, output: largest.output) }
        return sim.run()
    }
}
