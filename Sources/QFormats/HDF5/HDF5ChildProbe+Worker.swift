#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

extension HDF5ChildProbe {
  /// One forked worker, as the parent sees it: its process id, the parent's end of the socket pair
  /// joining them, and how many requests it has answered.
  ///
  /// A socket pair rather than two pipes, because the parent may send a request to a worker that
  /// was killed from outside while idle: writing to such a pipe raises SIGPIPE, which would end the
  /// parent, while `send` with `MSG_NOSIGNAL` (`SO_NOSIGPIPE` on Darwin) fails with `EPIPE`, and
  /// the end of file that follows reports the worker's death like any other.
  struct Worker {
    let id: pid_t
    let channel: Int32
    /// Requests answered; a worker with none is fresh and has read no file.
    private(set) var answered = 0

    /// The bytes the worker answers a request with.
    enum Reply: UInt8 {
      case passed = 1
      case failedCleanly = 2
    }

    /// Forks a worker that runs `walk` on each path it is sent (`serve`).
    ///
    /// It is forked with the library lock held, so no other thread is inside libhdf5 at that
    /// moment and the worker's copy of the library is consistent. The corresponding C functions
    /// are `socketpair` and `fork`.
    static func start(
      path: String, walk: @escaping @Sendable (String) throws(HDF5Error) -> Void
    ) throws(HDF5Error) -> Worker {
      let (worker, failure) = HDF5Library.locked { () -> (Worker?, (operation: String, errno: Int32)?) in
        var ends: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, streamSocket, 0, &ends) == 0 else { return (nil, ("socketpair", errno)) }
        // Programs started by other threads must not keep either end open.
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        #if canImport(Darwin)
          var on: Int32 = 1
          _ = setsockopt(ends[0], SOL_SOCKET, SO_NOSIGPIPE, &on, socklen_t(MemoryLayout<Int32>.size))
          _ = setsockopt(ends[1], SOL_SOCKET, SO_NOSIGPIPE, &on, socklen_t(MemoryLayout<Int32>.size))
        #endif
        // Not inside a threaded BLAS call on another thread (ForkGate says why).
        let id = ForkGate.exclusive { fork() }
        if id == 0 {
          HDF5Library.isProbeChild = true
          close(ends[0])
          serve(channel: ends[1], walk: walk)
        }
        let forkErrno = errno
        close(ends[1])
        guard id > 0 else {
          close(ends[0])
          return (nil, ("fork", forkErrno))
        }
        return (Worker(id: id, channel: ends[0]), nil)
      }
      guard let worker else {
        throw HDF5Error.io(path: path, operation: failure?.operation ?? "fork", errno: failure?.errno ?? 0)
      }
      return worker
    }

    /// Sends `request`, the worker's spelling of `path`, and waits for the answer, killing the
    /// worker once `timeout` has passed; `path` names the file in errors.
    ///
    /// An answer leaves the worker running for the next request. End of file on the socket means
    /// the worker is gone, however it ended; it is then collected and its end decoded. Whenever
    /// this returns a death or a hang, or throws, the worker is collected and `channel` closed.
    /// The corresponding C functions are `send`, `poll`, `recv` and `waitpid`.
    mutating func run(path: String, request: String, timeout: Duration) throws(HDF5Error) -> Outcome {
      let clock = ContinuousClock()
      let deadline = clock.now + timeout
      let length = UInt32(clamping: request.utf8.count)
      let message = withUnsafeBytes(of: length) { Array($0) } + Array(request.utf8.prefix(Int(length)))
      // A worker that died since its last answer refuses the request (EPIPE, ECONNRESET); the end
      // of file read below then reports how it ended.
      if !Self.sendAll(message, to: channel), errno != EPIPE, errno != ECONNRESET {
        throw abandon(path: path, operation: "send", errno: errno)
      }
      var entry = pollfd(fd: channel, events: Int16(POLLIN), revents: 0)
      while true {
        let ready = poll(&entry, 1, milliseconds(until: deadline, on: clock))
        if ready > 0 { break }
        if ready < 0 {
          guard errno == EINTR else { throw abandon(path: path, operation: "poll", errno: errno) }
          continue
        }
        if clock.now >= deadline {
          kill(id, SIGKILL)
          let how = try end(path: path)
          return how == .signalled(SIGKILL) ? .timedOut : how
        }
      }
      var byte: UInt8 = 0
      while true {
        let count = recv(channel, &byte, 1, 0)
        if count == 1 { break }
        if count == 0 || errno == ECONNRESET { return try end(path: path) }
        guard errno == EINTR else { throw abandon(path: path, operation: "recv", errno: errno) }
      }
      guard let reply = Reply(rawValue: byte) else {
        // Only `serve` writes to the socket, and it writes replies; anything else is a broken worker.
        throw abandon(path: path, operation: "reading the probe worker's answer", errno: EPROTO)
      }
      answered += 1
      return reply == .passed ? .passed : .failedCleanly
    }

    /// Closes the parent's end, so that the idle worker reads end of file and exits, and collects
    /// it; kills it first if it has not exited within `grace`.
    func stop(grace: Duration) -> Outcome? {
      // Shutting down the sending direction ends the worker's read; the socket then reports end of
      // file once the worker has exited and the kernel has closed its end.
      _ = shutdown(channel, Int32(SHUT_WR))
      let clock = ContinuousClock()
      let deadline = clock.now + grace
      var entry = pollfd(fd: channel, events: Int16(POLLIN), revents: 0)
      var exited = false
      while !exited, clock.now < deadline {
        let ready = poll(&entry, 1, milliseconds(until: deadline, on: clock))
        if ready < 0, errno != EINTR { break }
        guard ready > 0 else { continue }
        var byte: UInt8 = 0
        let count = recv(channel, &byte, 1, Int32(MSG_DONTWAIT))
        exited = count == 0 || (count < 0 && errno == ECONNRESET)
      }
      if !exited { kill(id, SIGKILL) }
      return try? end(path: "")
    }

    /// Kills and collects a worker left in an unknown state, and returns the error to throw.
    private func abandon(path: String, operation: String, errno failure: Int32) -> HDF5Error {
      kill(id, SIGKILL)
      _ = try? end(path: path)
      return HDF5Error.io(path: path, operation: operation, errno: failure)
    }

    /// Closes `channel` and collects the worker, which has ended or been killed, decoding its end.
    private func end(path: String) throws(HDF5Error) -> Outcome {
      close(channel)
      var status: Int32 = 0
      while waitpid(id, &status, 0) != id {
        guard errno == EINTR else { throw HDF5Error.io(path: path, operation: "waitpid", errno: errno) }
      }
      return Self.outcome(status)
    }

    /// Sends every byte of `bytes`; false with `errno` set when the socket refused them.
    private static func sendAll(_ bytes: [UInt8], to channel: Int32) -> Bool {
      var sent = 0
      while sent < bytes.count {
        let count = bytes.withUnsafeBytes {
          send(channel, $0.baseAddress! + sent, bytes.count - sent, noSignal)
        }
        if count < 0 {
          if errno == EINTR { continue }
          return false
        }
        sent += count
      }
      return true
    }

    /// Decodes a `waitpid` status (the `WIFEXITED` and `WTERMSIG` macros, which Swift does not
    /// import). The worker exits only when its socket closes, so any end seen here is a death.
    static func outcome(_ status: Int32) -> Outcome {
      let signal = status & 0x7f
      return signal == 0 ? .exited((status >> 8) & 0xff) : .signalled(signal)
    }

    /// `poll`'s timeout in whole milliseconds, rounded up, until `deadline`.
    private func milliseconds(until deadline: ContinuousClock.Instant, on clock: ContinuousClock) -> Int32 {
      let left = clock.now.duration(to: deadline)
      guard left > .zero else { return 0 }
      let parts = left.components
      let total = parts.seconds * 1000 + (parts.attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
      return Int32(clamping: total)
    }

    /// `SOCK_STREAM`, which Glibc imports as an enumeration.
    #if canImport(Glibc)
      static let streamSocket = Int32(SOCK_STREAM.rawValue)
      /// `send` flags: fail with `EPIPE` instead of raising SIGPIPE.
      static let noSignal = Int32(MSG_NOSIGNAL)
    #else
      static let streamSocket = SOCK_STREAM
      static let noSignal: Int32 = 0
    #endif
  }
}
