import Foundation
import QCompute
import QEngine
import QFormats
import Testing

@testable import QToolSupport

#if !DEBUG
  /// SPEED-Q stages 1 and 2 on a real LLaVA-style model, driven by environment variables
  /// (disabled without `SPEEDQ_VLM` and `SPEEDQ_IMAGES`). Release only.
  ///
  /// - `SPEEDQ_VLM`: model folder; `SPEEDQ_IMAGES`: a folder of PNG/JPEG images, the first
  ///   `SPEEDQ_CALIB_IMAGES` (16) calibrate, the rest are held out;
  /// - `SPEEDQ_GRID`: w2g16g16 (default) or w4g32g128; `SPEEDQ_IMAGE_SIZE`: a square resize
  ///   instead of the tower's own size (DINOv2 interpolates its positions);
  /// - `SPEEDQ_VISION_ITERATIONS` (50): AdaRound iterations per block.
  @Suite struct SpeedQStage1RealModelTests {
    static func peakRSS() -> String {
      let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
      return status.split(separator: "\n").first { $0.hasPrefix("VmHWM") }.map(String.init) ?? "VmHWM unknown"
    }

    /// `GELU(x W1ᵀ + b1) W2ᵀ + b2` (exact GELU), `x` `[tokens, width]`.
    static func project(_ x: [Float], width: Int, _ w1: Matrix<Float>, _ b1: [Float], _ w2: Matrix<Float>, _ b2: [Float])
      throws -> [Float]
    {
      var hidden = try Matrix(rows: x.count / width, columns: width, elements: x).matmul(w1, transposeOther: true)
      hidden.withUnsafeMutableBufferPointer { values in
        for i in 0..<values.count {
          let v = values[i] + b1[i % b1.count]
          values[i] = 0.5 * v * (1 + erf(v / Float(2).squareRoot()))
        }
      }
      var out = try hidden.matmul(w2, transposeOther: true)
      out.withUnsafeMutableBufferPointer { values in
        for i in 0..<values.count { values[i] += b2[i % b2.count] }
      }
      return out.elements
    }

    static let environment = ProcessInfo.processInfo.environment

    @Test(
      .enabled(
        if: environment["SPEEDQ_VLM"] != nil && environment["SPEEDQ_IMAGES"] != nil,
        "needs SPEEDQ_VLM (a LLaVA-style model folder) and SPEEDQ_IMAGES (a folder of images)"))
    func stagesOneAndTwoOnARealModel() throws {
      let environment = Self.environment
      let path = try #require(environment["SPEEDQ_VLM"])
      let imagePath = try #require(environment["SPEEDQ_IMAGES"])
      let folder = (path as NSString).expandingTildeInPath
      let checkpoint = try Checkpoint.open(folder)
      let config = try ModelConfig(data: try #require(checkpoint.configData), location: folder)
      let vision = try VisionConfig(try #require(config.visionConfig))
      let prefix = vision.kind == .dinov2 ? "vision_tower." : "vision_tower.vision_model."
      let encoder = try VisionEncoder(source: checkpoint.source, config: vision, prefix: prefix)
      let layer = config.raw["vision_feature_layer"]?.intValue ?? -2
      let grid: CalibratedGrid = .bilevel(environment["SPEEDQ_GRID"] == "w4g32g128" ? .w4g32g128 : .w2g16g16)
      var preprocessor = ImagePreprocessor.fallback(for: vision)
      if let size = Int(environment["SPEEDQ_IMAGE_SIZE"] ?? "") { preprocessor.resize = .exact(height: size, width: size) }
      let iterations = Int(environment["SPEEDQ_VISION_ITERATIONS"] ?? "") ?? 50
      let all = try SpeedQStage1.images(
        inFolder: (imagePath as NSString).expandingTildeInPath, preprocessor: preprocessor)
      let calibrationCount = min(Int(environment["SPEEDQ_CALIB_IMAGES"] ?? "") ?? 16, all.count - 1)
      let calibration = Array(all.prefix(calibrationCount))
      let heldOut = Array(all.dropFirst(calibrationCount))
      var grids: [String: CalibratedGrid] = [:]
      for index in 0..<encoder.blockCount {
        for name in try encoder.block(at: index, prefix: prefix).linearShapes.keys { grids[name] = grid }
      }
      let d = vision.hiddenSize
      print("speedq vision: \(calibration.count) calibration, \(heldOut.count) held-out images, \(grid), layer \(layer)")
      let clock = ContinuousClock()
      let fpHeldOut = try SpeedQStage1.features(
        encoder: encoder, prefix: prefix, images: heldOut, replacing: [:], hiddenState: layer)
      var replacements: [SpeedQStage1.Method: [String: [Float]]] = [:]
      var cosines: [SpeedQStage1.Method: Double] = [:]
      for method in [SpeedQStage1.Method.roundToNearest, .clipGPTQ, .adaRound] {
        let start = clock.now
        let stage = try SpeedQStage1(
          encoder: encoder, prefix: prefix, images: calibration, grids: grids,
          configuration: .init(method: method, adaRound: AdaRound.Options(iterations: iterations)))
        let results = try stage.run { step in
          print("speedq vision: \(method.rawValue) block \(step.block + 1)/\(step.blocks) error \(step.reconstructionError)")
        }
        let elapsed = clock.now - start
        let replacing = results.mapValues { $0.dequantize() }
        replacements[method] = replacing
        let quantized = try SpeedQStage1.features(
          encoder: encoder, prefix: prefix, images: heldOut, replacing: replacing, hiddenState: layer)
        let cosine = SpeedQStage1.meanCosine(fpHeldOut, quantized, width: d)
        cosines[method] = Double(cosine)
        print("speedq vision: stage 1 \(method.rawValue): held-out feature cosine \(cosine), \(elapsed), \(Self.peakRSS())")
      }
      // Block-wise reconstruction exists to beat plain rounding on images it did not see.
      let rtnCosine = try #require(cosines[.roundToNearest])
      let adaRoundCosine = try #require(cosines[.adaRound])
      let cosinesInRange = cosines.values.allSatisfy { $0.isFinite && $0 > 0 && $0 <= 1 + 1e-6 }
      #expect(cosinesInRange)
      #expect(adaRoundCosine >= rtnCosine)
      // Stage 2: the projector refitted to the stage-1 tower on the calibration images.
      let source = checkpoint.source
      let w1 = try source.floats(of: "multi_modal_projector.linear_1.weight")
      let b1 = try source.floats(of: "multi_modal_projector.linear_1.bias")
      let w2 = try source.floats(of: "multi_modal_projector.linear_2.weight")
      let b2 = try source.floats(of: "multi_modal_projector.linear_2.bias")
      let text = b1.count
      let linear1 = try Matrix(rows: text, columns: d, elements: w1)
      let linear2 = try Matrix(rows: text, columns: text, elements: w2)
      let stage1 = try #require(replacements[.adaRound])
      let start = clock.now
      let fpCalibration = try SpeedQStage1.features(
        encoder: encoder, prefix: prefix, images: calibration, replacing: [:], hiddenState: layer)
      let quantizedCalibration = try SpeedQStage1.features(
        encoder: encoder, prefix: prefix, images: calibration, replacing: stage1, hiddenState: layer)
      let tokens = fpCalibration.reduce(0) { $0 + $1.count } / d
      let refit = try SpeedQStage2.refitProjector(
        fpFeatures: try Matrix(rows: tokens, columns: d, elements: fpCalibration.flatMap { $0 }),
        quantizedFeatures: try Matrix(rows: tokens, columns: d, elements: quantizedCalibration.flatMap { $0 }),
        linear1Weight: linear1, linear1Bias: b1, linear2Weight: linear2, linear2Bias: b2, ridge: 1e-3)
      let refitTime = clock.now - start
      for (label, replacing) in [
        ("rtn", replacements[.roundToNearest] ?? [:]), ("clip-gptq", replacements[.clipGPTQ] ?? [:]), ("adaround", stage1),
      ] {
        let quantized = try SpeedQStage1.features(
          encoder: encoder, prefix: prefix, images: heldOut, replacing: replacing, hiddenState: layer)
        let fpProjected = try fpHeldOut.map { try Self.project($0, width: d, linear1, b1, linear2, b2) }
        let projected = try quantized.map { try Self.project($0, width: d, linear1, b1, linear2, b2) }
        let refitted = try quantized.map { try Self.project($0, width: d, linear1, b1, refit.weight, refit.bias) }
        print(
          "speedq vision: \(label) tower, held-out projector output cosine: FP projector "
            + "\(SpeedQStage1.meanCosine(fpProjected, projected, width: text)), projector refitted to the stage-1 tower "
            + "\(SpeedQStage1.meanCosine(fpProjected, refitted, width: text))")
      }
      print("speedq vision: stage 2 refit (with features of \(tokens) tokens) \(refitTime), \(Self.peakRSS())")
    }
  }
#endif
