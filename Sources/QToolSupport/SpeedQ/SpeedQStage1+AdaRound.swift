import Foundation
import QCompute
import QEngine

extension SpeedQStage1 {
  /// Block-wise AdaRound on one block: every planned linear starts on the grid its Gram-weighted
  /// clip search chose (round-to-nearest of the clamped weights fixes the scales and zero
  /// points), then the rounding of all of them is learned together so that the block fed the
  /// quantized stream reproduces the FP block's output on the FP stream.
  func adaRound(
    block: VisionBlock, planned: [(VisionLinearSlot, String, CalibratedGrid)], fpOutput: [Float]
  ) throws -> [String: QuantizedMatrix] {
    var grids: [String: QuantizedMatrix] = [:]
    var gramCache: [VisionLinearSlot: Matrix<Double>] = [:]
    for (slot, name, grid) in planned {
      let key: VisionLinearSlot = [.query, .key, .value].contains(slot) ? .query : slot
      let gram: Matrix<Double>
      if let cached = gramCache[key] {
        gram = cached
      } else {
        gram = try inputGram(of: block, slot: key, replacing: [:])
        gramCache[key] = gram
      }
      guard let shape = block.linearShapes[name], shape.count == 2 else { continue }
      let weight = try block.linearWeight(named: name)
      do {
        let clipped = try GramClipSearch.quantize(
          weight, rows: shape[0], columns: shape[1], hessian: gram, bits: grid.bits, groupSize: grid.groupSize
        ).clippedWeights
        grids[name] = try clipped.withUnsafeBufferPointer { try grid.roundToNearest($0, rows: shape[0], columns: shape[1]) }
      } catch {
        throw SpeedQError.quantization(tensor: name, reason: "\(error)")
      }
    }
    let width = block.width
    var batches: [BlockBatch] = []
    for (rows, lengths) in chunks(rows: configuration.rowsPerBatch) {
      let range = (rows.lowerBound * width)..<(rows.upperBound * width)
      batches.append(
        BlockBatch(input: Array(quantizedStream[range]), target: Array(fpOutput[range]), lengths: lengths))
    }
    return try AdaRound.optimize(block: block, batches: batches, grids: grids, options: configuration.adaRound)
  }
}
