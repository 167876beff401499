import Foundation
import Testing

@testable import QFormats

/// The gate that keeps a fork out of threaded BLAS calls: a fork waits for the calls in flight,
/// and calls on several threads, or nested on one, go on together.
@Suite struct ForkGateTests {
  /// Events in the order they happened, from several threads.
  final class Log: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [String] = []
    func add(_ event: String) { lock.withLock { events.append(event) } }
    var all: [String] { lock.withLock { events } }
  }

  @Test func aForkWaitsForTheCallsInFlight() {
    let log = Log()
    let holding = DispatchSemaphore(value: 0)
    let done = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
      ForkGate.enterShared()
      log.add("call starts")
      holding.signal()
      Thread.sleep(forTimeInterval: 0.2)
      log.add("call ends")
      ForkGate.leaveShared()
      done.signal()
    }
    holding.wait()
    ForkGate.exclusive { log.add("fork") }
    done.wait()
    #expect(log.all == ["call starts", "call ends", "fork"])
  }

  @Test func callsOnSeveralThreadsAndNestedCallsGoOnTogether() {
    let log = Log()
    ForkGate.enterShared()
    ForkGate.enterShared()  // a LAPACK routine that calls BLAS inside holds it twice
    let finished = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
      ForkGate.enterShared()
      log.add("other thread")
      ForkGate.leaveShared()
      finished.signal()
    }
    #expect(finished.wait(timeout: .now() + 10) == .success)
    ForkGate.leaveShared()
    ForkGate.leaveShared()
    ForkGate.exclusive { log.add("fork") }
    #expect(log.all == ["other thread", "fork"])
  }
}
