import Foundation
import Testing

@testable import QCompute
@testable import QFormats

/// Weights in [-1, 1) with a few that F16 scales or biases cannot hold.
private func largeWeights(count: Int, large: [Int: Float]) -> [Float] {
  var state: UInt64 = 7
  var values = (0..<count).map { _ in
    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
    return Float(state >> 40) / Float(1 << 24) * 2 - 1
  }
  for (index, value) in large { values[index] = value }
  return values
}

/// Packs `values` and reads them back through `PackDecoder`, as every reader does.
private func roundTrip(_ values: [Float], info: TensorInfo, spec: PackSpec) throws -> (
  PackedTensor, [Float]
) {
  let packed = try values.withUnsafeBufferPointer {
    try PackEncoder.pack($0, info: info, spec: spec, location: "test")
  }
  let byName = Dictionary(uniqueKeysWithValues: packed.companions.map { ($0.info.name, $0) })
  let restored = try PackDecoder.dequantize(
    name: info.name, description: packed.description, location: "test"
  ) {
    byName[$0].map { ($0.info, $0.bytes) }
  }
  return (packed, restored)
}

/// Scales are stored in F16 unless F16 cannot hold them; no pack dequantizes to infinity or NaN.
@Suite struct PackScaleOverflowTests {
  static let specs: [PackSpec] = [
    PackSpec(bits: 4, groupSize: 32, grid: .affine, method: .rtn),
    PackSpec(bits: 2, groupSize: .perChannel, grid: .affine, method: .rtn),
    PackSpec(bits: 8, groupSize: 64, grid: .affine, method: .clip),
    PackSpec(bits: 4, groupSize: 16, grid: .affine, method: .hqq),
    PackSpec(bits: 4, groupSize: 32, grid: .symmetric, method: .rtn),
    PackSpec(bits: 3, groupSize: 32, grid: .affine, method: .rtn, scaleDType: .bf16),
    .speedQEmbedding(),
    .speedQ(bits: 2),
    .speedQ(bits: 4),
  ]

  @Test(arguments: specs) func largeWeightsDequantizeFinitely(spec: PackSpec) throws {
    let info = TensorInfo(name: "layer.weight", dtype: .f32, shape: [32, 128])
    let values = largeWeights(
      count: info.elementCount, large: [5: 7e4, 300: 1e6, 1000: -1e6, 4000: 65504])
    let (packed, restored) = try roundTrip(values, info: info, spec: spec)
    #expect(restored.allSatisfy { $0.isFinite })
    #expect(restored.map(\.bitPattern) == packed.matrix.dequantize().map(\.bitPattern))
    // A bias of 1e6 or a 4-bit step of 1e6 / 7 does not fit F16; an 8-bit float-zero grid's
    // step (2e6 / 255) does, and keeps F16.
    if spec.scaleDType == .f16
      && (spec.zero == .bias || spec.zero == .fixed || spec.bits == 4 && spec.grid == .affine)
    {
      #expect(packed.description.scaleDType == .f32)
      #expect(packed.companions.first?.info.dtype == .f32)
    }
    // The pass-through of the huge values survives: within one step of their group.
    let step = packed.matrix.scales.map(abs).max() ?? 0
    for index in [5, 300, 1000] { #expect(abs(restored[index] - values[index]) <= step * 1.01) }
  }

  @Test func ordinaryWeightsKeepTheirScaleDType() throws {
    let info = TensorInfo(name: "layer.weight", dtype: .f32, shape: [8, 64])
    let (packed, _) = try roundTrip(
      largeWeights(count: 512, large: [:]), info: info, spec: PackSpec(bits: 4, groupSize: 32))
    #expect(packed.description.scaleDType == .f16)
  }

  /// 65504 / 7 rounds to 9360 in F16, and 9360 x 7 = 65520 is F16's infinity: a finite F16
  /// scale can still dequantize an F16 weight to infinity.
  @Test func f16ScaleRoundingNearTheLargestF16IsCaught() throws {
    let info = TensorInfo(name: "layer.weight", dtype: .f16, shape: [2, 32])
    let values = (0..<64).map { Float($0 % 32) / 31 * 65504 }
    let spec = PackSpec(bits: 4, groupSize: 32, grid: .symmetric, method: .rtn)
    let (packed, restored) = try roundTrip(values, info: info, spec: spec)
    #expect(packed.description.scaleDType == .f32)
    #expect(restored.allSatisfy { abs($0) <= PackEncoder.largestFinite(in: .f16) })
  }

  @Test func precomputedMatricesAreWidenedToo() throws {
    let info = TensorInfo(name: "layer.weight", dtype: .f32, shape: [4, 64])
    let values = largeWeights(count: 256, large: [10: 7e4, 200: -1e6])
    let quantized = try values.withUnsafeBufferPointer {
      try AffineQuantizer.quantize($0, rows: 4, columns: 64, bits: 4, groupSize: 32)
    }
    let spec = PackSpec(bits: 4, groupSize: 32, grid: .affine, method: .gptq)
    let packed = try PackEncoder.pack(
      quantized: quantized, info: info, spec: spec, location: "test")
    #expect(packed.description.scaleDType == .f32)
    #expect(packed.matrix.dequantize().allSatisfy { $0.isFinite })
  }

  @Test func weightsNearTheLargestFloatAreRefusedByName() throws {
    let info = TensorInfo(name: "huge.weight", dtype: .f32, shape: [1, 32])
    var values = [Float](repeating: 0, count: 32)
    values[0] = -3e38
    values[1] = 3e38
    #expect {
      try values.withUnsafeBufferPointer {
        try PackEncoder.pack(
          $0, info: info, spec: PackSpec(bits: 4, groupSize: 32), location: "test")
      }
    } throws: { error in
      guard case .dequantizesNonFinite(_, let tensor, let dtype, _, _) = error as? PackError else {
        return false
      }
      return tensor == "huge.weight" && dtype == .f32
        && "\(error)".hasPrefix("test: tensor 'huge.weight' cannot be packed")
    }
  }
}
