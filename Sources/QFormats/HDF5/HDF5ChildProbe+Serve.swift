import CHDF5

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

extension HDF5ChildProbe.Worker {
  /// What the worker runs after the fork: it reads a path, walks the file, answers with one byte,
  /// and waits for the next path, until its socket reports end of file.
  ///
  /// The worker does not exec. It has a single thread, the one that forked it; a lock that
  /// another thread held at the fork (the allocator's, the Swift runtime's) stays held in the
  /// worker, and should it need that lock it waits until the parent's timeout kills it. It leaves
  /// with `_exit`, which runs no atexit handlers and flushes no libhdf5 state.
  static func serve(channel: Int32, walk: @Sendable (String) throws(HDF5Error) -> Void) -> Never {
    prepareWorker()
    closeInheritedDescriptors(keeping: channel)
    closeInheritedObjects()
    while let path = readRequest(from: channel) {
      var reply = Reply.passed.rawValue
      do {
        try walk(path)
      } catch {
        reply = Reply.failedCleanly.rawValue
      }
      // The parent is gone or has given up on this worker: nothing is waiting for more answers.
      guard send(channel, &reply, 1, noSignal) == 1 else { break }
    }
    _exit(0)
  }

  /// Lets a crash end the worker at once, as the signal it is.
  ///
  /// The handlers inherited from the parent would otherwise act for the parent: Swift's backtracer
  /// symbolicates for a long time, and under libFuzzer the fuzzer's crash handlers and the
  /// sanitizer's death callback record the worker's crash as the fuzzer's own.
  private static func prepareWorker() {
    for crash in [SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE, SIGTRAP] {
      signal(crash, SIG_DFL)
    }
    // Present only in sanitizer builds; a null handle searches the whole process.
    if let setDeathCallback = dlsym(nil, "__sanitizer_set_death_callback") {
      typealias Setter = @convention(c) ((@convention(c) () -> Void)?) -> Void
      unsafeBitCast(setDeathCallback, to: Setter.self)(nil)
    }
  }

  /// Closes every descriptor inherited from the parent except standard input, output, error and
  /// `channel`.
  ///
  /// The worker lives as long as the parent, and a copy of a descriptor held that long would hold
  /// what it refers to: the write end of a pipe another thread reads to its end (a child process's
  /// output) would never report end of file, and the socket of another worker would never close.
  /// Descriptors are listed from `/proc/self/fd` (`/dev/fd` on Darwin), else tried up to the limit.
  private static func closeInheritedDescriptors(keeping channel: Int32) {
    #if canImport(Darwin)
      let listing = "/dev/fd"
    #else
      let listing = "/proc/self/fd"
    #endif
    var inherited: [Int32] = []
    if let directory = opendir(listing) {
      let own = dirfd(directory)
      while let entry = readdir(directory) {
        let number = withUnsafePointer(to: &entry.pointee.d_name) {
          $0.withMemoryRebound(to: CChar.self, capacity: 1) { atoi($0) }
        }
        if number > 2, number != channel, number != own { inherited.append(number) }
      }
      closedir(directory)
    } else {
      let limit = Int32(clamping: max(sysconf(Int32(_SC_OPEN_MAX)), 256))
      inherited = (3..<limit).filter { $0 != channel }
    }
    for descriptor in inherited { close(descriptor) }
  }

  /// Closes the libhdf5 objects the parent had open at the fork, in the worker's copy of the library.
  ///
  /// Their descriptors are closed by now, and libhdf5 finds an open file by its device and inode:
  /// a request for a file the parent was reading would get the parent's copy, read through a dead
  /// descriptor. Closing them leaves the library as a fresh process has it; a writer's metadata that
  /// closing flushes cannot reach its file, whose descriptor is gone.
  /// The corresponding C functions are `H5Fget_obj_ids` and `H5Idec_ref`.
  private static func closeInheritedObjects() {
    let everyKind = UInt32(H5F_OBJ_FILE | H5F_OBJ_DATASET | H5F_OBJ_GROUP | H5F_OBJ_DATATYPE | H5F_OBJ_ATTR)
    let everyFile = hid_t(everyKind)
    _ = H5Eset_auto2(hid_t(H5E_DEFAULT), nil, nil)
    let count = H5Fget_obj_count(everyFile, everyKind)
    guard count > 0 else { return }
    var objects = [hid_t](repeating: -1, count: count)
    let listed = H5Fget_obj_ids(everyFile, everyKind, count, &objects)
    for object in objects.prefix(max(listed, 0)) {
      while H5Iis_valid(object) > 0, H5Idec_ref(object) > 0 {}
    }
  }

  /// Reads one request: the path's length in bytes (32 bits, this machine's order), then the path;
  /// nil at end of file or when the socket fails.
  private static func readRequest(from channel: Int32) -> String? {
    var length: UInt32 = 0
    guard withUnsafeMutableBytes(of: &length, { readAll(into: $0, from: channel) }) else { return nil }
    var bytes = [UInt8](repeating: 0, count: Int(length))
    guard bytes.withUnsafeMutableBytes({ readAll(into: $0, from: channel) }) else { return nil }
    return String(decoding: bytes, as: UTF8.self)
  }

  /// Fills `buffer` from `channel`; false at end of file or on an error other than `EINTR`.
  private static func readAll(into buffer: UnsafeMutableRawBufferPointer, from channel: Int32) -> Bool {
    var filled = 0
    while filled < buffer.count {
      let count = recv(channel, buffer.baseAddress! + filled, buffer.count - filled, 0)
      if count > 0 {
        filled += count
      } else if count == 0 || errno != EINTR {
        return false
      }
    }
    return true
  }
}
