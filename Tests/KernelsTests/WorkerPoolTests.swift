import Dispatch
import Foundation
import Synchronization
import Testing
@testable import Kernels

@Suite("worker pool")
struct WorkerPoolTests {
    @Test("every iteration runs exactly once, its writes visible on return, loop after loop")
    func iterations() {
        let pool = WorkerPool()
        for n in [1, 2, 3, 17, 256] {
            for threads in [1, 2, 4] {
                let out = UnsafeMutablePointer<Int>.allocate(capacity: n)
                out.initialize(repeating: 0, count: n)
                defer { out.deallocate() }
                nonisolated(unsafe) let o = out
                for round in 1...20 {
                    pool.run(iterations: n, threads: threads) { i in o[i] += i + 1 }
                    #expect((0..<n).allSatisfy { o[$0] == round * ($0 + 1) }, "\(n) iterations, \(threads) threads, round \(round)")
                }
            }
        }
    }

    @Test("a loop inside a loop, and two callers at once, run their iterations serially and finish")
    func reentrancy() {
        let pool = WorkerPool()
        let total = Atomic<Int>(0)
        pool.run(iterations: 4, threads: 2) { _ in
            pool.run(iterations: 5, threads: 2) { _ in total.add(1, ordering: .relaxed) }
        }
        #expect(total.load(ordering: .relaxed) == 20)
        let sum = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<50 {
                pool.run(iterations: 8, threads: 2) { i in sum.add(i, ordering: .relaxed) }
            }
        }
        #expect(sum.load(ordering: .relaxed) == 4 * 50 * 28)
    }

    @Test("workers that went to sleep wake for the next loop")
    func sleepAndWake() {
        let pool = WorkerPool()
        let count = Atomic<Int>(0)
        pool.run(iterations: 2, threads: 2) { _ in count.add(1, ordering: .relaxed) }
        // Longer than the spin: the worker sleeps on its semaphore.
        Thread.sleep(forTimeInterval: 3 * Double(WorkerPool.spin) / 1e9)
        for _ in 0..<10 { pool.run(iterations: 64, threads: 2) { _ in count.add(1, ordering: .relaxed) } }
        #expect(count.load(ordering: .relaxed) == 2 + 640)
    }
}
