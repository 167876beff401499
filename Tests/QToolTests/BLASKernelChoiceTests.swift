import Testing

@testable import QToolSupport

@Suite struct BLASKernelChoiceTests {
  /// Only a generic choice is replaced, and only by kernels the CPU has the instructions for.
  @Test func genericKernelsGiveWayOnCapableCPUs() {
    #expect(BLASKernelChoice.betterCore(than: "Prescott", hasAVX512: true, hasAVX2: true) == "SkylakeX")
    #expect(BLASKernelChoice.betterCore(than: "Sandybridge", hasAVX512: false, hasAVX2: true) == "Haswell")
    #expect(BLASKernelChoice.betterCore(than: "Nehalem", hasAVX512: false, hasAVX2: false) == nil)
    for chosen in ["SkylakeX", "Haswell", "Zen", "Cooperlake", "SapphireRapids"] {
      #expect(BLASKernelChoice.betterCore(than: chosen, hasAVX512: true, hasAVX2: true) == nil, "\(chosen)")
    }
  }
}
