import Foundation
import QCompute
import QEngine
import QFormats
import Testing

@testable import QToolSupport

@Suite struct SpeedQStage1Tests {
  static let prefix = "vision_tower.vision_model."

  static func tower() throws -> VisionEncoder {
    let folder = fixturesDirectory.appending(path: "tiny-llava")
    let config = try ModelConfig(
      data: try Data(contentsOf: folder.appending(path: "config.json")), location: "tiny-llava")
    let vision = try VisionConfig(try #require(config.visionConfig))
    return try VisionEncoder(
      source: try SafetensorsFile(path: folder.appending(path: "model.safetensors").path), config: vision,
      prefix: prefix)
  }

  static func images(_ names: [String], for encoder: VisionEncoder) throws -> [PixelTensor] {
    let preprocessor = ImagePreprocessor.fallback(for: encoder.config)
    return try names.map { preprocessor(try Image.load(path: fixturesDirectory.appending(path: "images/\($0)").path)) }
  }

  static func grids(_ encoder: VisionEncoder, _ grid: CalibratedGrid) throws -> [String: CalibratedGrid] {
    var grids: [String: CalibratedGrid] = [:]
    for index in 0..<encoder.blockCount {
      for name in try encoder.block(at: index, prefix: prefix).linearShapes.keys { grids[name] = grid }
    }
    return grids
  }

  static let calibration = ["rgb.png", "colour.jpg", "grey.jpg"]
  static let heldOut = ["alpha.png"]

  /// At 2 bits (w2g16g16) the calibrated towers' features (AdaRound, clip + GPTQ) are closer
  /// to the FP tower's than round-to-nearest's, on the calibration images and on a held-out one.
  @Test func calibrationBeatsRoundToNearestAtTwoBits() throws {
    let encoder = try Self.tower()
    let grids = try Self.grids(encoder, .bilevel(.w2g16g16))
    let calibration = try Self.images(Self.calibration, for: encoder)
    var cosines: [SpeedQStage1.Method: (seen: Double, heldOut: Double)] = [:]
    for method in SpeedQStage1.Method.allCases {
      let stage = try SpeedQStage1(
        encoder: encoder, prefix: Self.prefix, images: calibration, grids: grids,
        configuration: .init(method: method))
      var errors: [Double] = []
      let results = try stage.run { errors.append($0.reconstructionError) }
      #expect(Set(results.keys) == Set(grids.keys))
      #expect(errors.count == encoder.blockCount)
      #expect(results.values.allSatisfy { $0.method == .bilevel && $0.bits == 2 })
      let replacing = results.mapValues { $0.dequantize() }
      cosines[method] = (
        try SpeedQStage1.featureCosine(encoder: encoder, prefix: Self.prefix, images: calibration, replacing: replacing),
        try SpeedQStage1.featureCosine(
          encoder: encoder, prefix: Self.prefix, images: try Self.images(Self.heldOut, for: encoder),
          replacing: replacing)
      )
    }
    let rtn = try #require(cosines[.roundToNearest])
    #expect(rtn.seen < 0.999)
    for method in [SpeedQStage1.Method.adaRound, .clipGPTQ] {
      let calibrated = try #require(cosines[method])
      #expect(calibrated.seen > rtn.seen, "\(method): \(calibrated) vs \(rtn)")
      #expect(calibrated.heldOut > rtn.heldOut, "\(method): \(calibrated) vs \(rtn)")
    }
  }

  /// Round-to-nearest in stage 1 is exactly the grid's quantizer on every weight.
  @Test func roundToNearestIsTheGridsQuantizer() throws {
    let encoder = try Self.tower()
    let grids = try Self.grids(encoder, .bilevel(.w2g16g16))
    let stage = try SpeedQStage1(
      encoder: encoder, prefix: Self.prefix, images: try Self.images(["rgb.png"], for: encoder), grids: grids,
      configuration: .init(method: .roundToNearest))
    let results = try stage.run()
    let source = try SafetensorsFile(path: fixturesDirectory.appending(path: "tiny-llava/model.safetensors").path)
    for (name, matrix) in results {
      let shape = try #require(source.info(named: name)).shape
      let expected = try source.floats(of: name).withUnsafeBufferPointer {
        try BilevelQuantizer.quantize($0, rows: shape[0], columns: shape[1], configuration: .w2g16g16)
      }
      #expect(matrix == expected, "\(name)")
    }
  }

  @Test func featureCosineOfTheFPTowerIsOne() throws {
    let encoder = try Self.tower()
    let images = try Self.images(Self.heldOut, for: encoder)
    let cosine = try SpeedQStage1.featureCosine(encoder: encoder, prefix: Self.prefix, images: images, replacing: [:])
    #expect(abs(cosine - 1) < 1e-9)
    #expect(throws: SpeedQError.self) {
      try SpeedQStage1.featureCosine(encoder: encoder, prefix: Self.prefix, images: images, replacing: [:], hiddenState: 3)
    }
  }

  /// A run stopped after its first block resumes from the checkpoint with the same codes as a
  /// run that was never stopped.
  @Test func resumesFromItsCheckpoint() throws {
    let encoder = try Self.tower()
    let grids = try Self.grids(encoder, .bilevel(.w2g16g16))
    let images = try Self.images(Self.calibration, for: encoder)
    let path = FileManager.default.temporaryDirectory.appending(path: "speedq-stage1-\(UUID().uuidString).safetensors").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    let whole = try SpeedQStage1(encoder: encoder, prefix: Self.prefix, images: images, grids: grids).run()
    let first = try SpeedQStage1(
      encoder: encoder, prefix: Self.prefix, images: images, grids: grids,
      configuration: .init(checkpointPath: path))
    let saved = try first.run()
    #expect(saved == whole)
    // Keep only block 0 in the checkpoint, as if the run had stopped there.
    let blockZero = saved.filter { $0.key.contains("layers.0.") }
    try first.saveCheckpoint(blockZero, blocks: 1, to: path)
    var resumedFlags: [Bool] = []
    let resumed = try SpeedQStage1(
      encoder: encoder, prefix: Self.prefix, images: images, grids: grids,
      configuration: .init(checkpointPath: path)
    ).run { resumedFlags.append($0.resumed) }
    #expect(resumedFlags == [true, false])
    #expect(resumed == whole)
    // Another run's settings are refused.
    #expect(throws: SpeedQError.self) {
      try SpeedQStage1(
        encoder: encoder, prefix: Self.prefix, images: images, grids: grids,
        configuration: .init(method: .roundToNearest, checkpointPath: path)
      ).run()
    }
  }

  @Test func refusesNoImages() throws {
    let encoder = try Self.tower()
    #expect(throws: SpeedQError.self) { try SpeedQStage1(encoder: encoder, prefix: Self.prefix, images: [], grids: [:]) }
    let empty = FileManager.default.temporaryDirectory.appending(path: "speedq-empty-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: empty) }
    #expect(throws: SpeedQError.self) {
      try SpeedQStage1.images(inFolder: empty, preprocessor: .fallback(for: encoder.config))
    }
  }
}
