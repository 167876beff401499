#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Keeps a `fork` from landing inside a threaded BLAS call.
///
/// OpenBLAS stops its worker threads in a `pthread_atfork` handler. A fork while another thread
/// is inside a threaded BLAS routine takes the workers away from a job they were handed, and
/// that routine then waits for them forever. Every BLAS and LAPACK call holds the gate shared
/// (calls on many threads go on together); a fork holds it alone, so it waits for the calls in
/// flight and none starts until the fork returns.
public enum ForkGate {
  nonisolated(unsafe) private static let lock: UnsafeMutablePointer<pthread_rwlock_t> = {
    let lock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)
    // glibc's default prefers readers, so a thread that already holds the gate shared may
    // take it again while a fork waits.
    pthread_rwlock_init(lock, nil)
    return lock
  }()

  /// Entered around a BLAS or LAPACK call; many threads may hold it at once.
  @inline(__always)
  public static func enterShared() { pthread_rwlock_rdlock(lock) }

  @inline(__always)
  public static func leaveShared() { pthread_rwlock_unlock(lock) }

  /// Runs `body` (the fork) while no BLAS or LAPACK call is in flight.
  public static func exclusive<Result>(_ body: () -> Result) -> Result {
    pthread_rwlock_wrlock(lock)
    defer { pthread_rwlock_unlock(lock) }
    return body()
  }
}
