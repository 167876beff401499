import CBLAS
import CKernels

#if canImport(Glibc)
  import Glibc
#endif

/// OpenBLAS chooses its kernels once, when it loads, by the CPU's model number; a CPU newer
/// than the library (an Emerald Rapids under Debian 12's OpenBLAS 0.3.21, say) gets the
/// generic Prescott kernels, four to five times slower than the AVX-512 ones it could run.
/// The choice can only be changed by `OPENBLAS_CORETYPE` before the library loads, so a tool
/// that finds a generic choice on a CPU with AVX2 or AVX-512 runs itself again with it set.
public enum BLASKernelChoice {
  /// OpenBLAS's names for kernels older than AVX2.
  static let genericCores: Set<String> = ["prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "sandybridge"]

  /// The core type OpenBLAS should use on this CPU in place of `current`, or `nil` to keep it:
  /// only a generic choice is replaced, and only by kernels the CPU can run.
  static func betterCore(than current: String, hasAVX512: Bool, hasAVX2: Bool) -> String? {
    guard genericCores.contains(current.lowercased()) else { return nil }
    if hasAVX512 { return "SkylakeX" }
    if hasAVX2 { return "Haswell" }
    return nil
  }

  /// The kernels OpenBLAS runs in this process (`Prescott`, `Haswell`, `SkylakeX`, ...).
  public static var currentCore: String? {
    openblas_get_corename().map { String(cString: $0) }
  }

  /// Runs the process again with `OPENBLAS_CORETYPE` set when OpenBLAS chose generic kernels
  /// that this CPU can do better than. Does nothing when the variable is set already (a choice
  /// made by the user, or by this function before the restart), or when the restart fails.
  public static func restartWithBetterKernelsIfNeeded() {
    #if os(Linux)
      guard getenv("OPENBLAS_CORETYPE") == nil, let name = openblas_get_corename() else { return }
      guard
        let core = betterCore(
          than: String(cString: name), hasAVX512: qk_cpu_has_avx512_skylakex() != 0, hasAVX2: qk_cpu_has_avx2() != 0)
      else { return }
      setenv("OPENBLAS_CORETYPE", core, 1)
      // Nothing has been read or written yet: the same arguments and descriptors carry over.
      execv("/proc/self/exe", CommandLine.unsafeArgv)
      // Still here: the restart failed; run on with the kernels OpenBLAS chose.
    #endif
  }
}
