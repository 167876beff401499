import Foundation
import QCompute
import QEngine

extension SpeedQStage1 {
  /// The tower's hidden state for each image with `replacing` in place of the named linear
  /// weights, `[tokens, hidden]` each.
  /// - Parameter hiddenState: a Python-style index into the hidden states (0 the embeddings,
  ///   `-1` the last block's output), as LLaVA's `vision_feature_layer`.
  /// - Throws: `SpeedQError.invalidInput` for an index outside the tower; what the tower throws.
  public static func features(
    encoder: VisionEncoder, prefix: String, images: [PixelTensor], replacing: [String: [Float]],
    hiddenState: Int = -1
  ) throws -> [[Float]] {
    let count = encoder.blockCount + 1
    let resolved = hiddenState < 0 ? count + hiddenState : hiddenState
    guard (0..<count).contains(resolved) else {
      throw SpeedQError.invalidInput(operation: "vision features", reason: "hidden state \(hiddenState) of \(count)")
    }
    let blocks = try (0..<resolved).map { try encoder.block(at: $0, prefix: prefix) }
    return try images.map { pixels in
      var x = try encoder.embeddings(pixels: pixels)
      let lengths = [x.count / encoder.config.hiddenSize]
      for block in blocks {
        x = try block.output(input: x, lengths: lengths, replacing: replacing.filter { block.linearShapes[$0.key] != nil })
      }
      return x
    }
  }

  /// The mean over the tokens of all images of the cosine between rows of `a` and `b`.
  public static func meanCosine(_ a: [[Float]], _ b: [[Float]], width: Int) -> Double {
    var total = 0.0
    var tokens = 0
    for (x, y) in zip(a, b) {
      for token in 0..<(min(x.count, y.count) / max(width, 1)) {
        var dot = 0.0
        var xx = 0.0
        var yy = 0.0
        for i in (token * width)..<((token + 1) * width) {
          dot += Double(x[i]) * Double(y[i])
          xx += Double(x[i]) * Double(x[i])
          yy += Double(y[i]) * Double(y[i])
        }
        total += xx > 0 && yy > 0 ? dot / (xx * yy).squareRoot() : (xx == yy ? 1 : 0)
        tokens += 1
      }
    }
    return total / Double(max(tokens, 1))
  }

  /// The mean over tokens of the cosine between the FP tower's hidden state and the one with
  /// `replacing` in place of the named linear weights, on `images`.
  /// - Throws: `SpeedQError.invalidInput` for an index outside the tower or no images.
  public static func featureCosine(
    encoder: VisionEncoder, prefix: String, images: [PixelTensor], replacing: [String: [Float]],
    hiddenState: Int = -1
  ) throws -> Double {
    guard !images.isEmpty else {
      throw SpeedQError.invalidInput(operation: "feature cosine", reason: "needs at least one image")
    }
    let fp = try features(encoder: encoder, prefix: prefix, images: images, replacing: [:], hiddenState: hiddenState)
    let quantized = try features(
      encoder: encoder, prefix: prefix, images: images, replacing: replacing, hiddenState: hiddenState)
    return meanCosine(fp, quantized, width: encoder.config.hiddenSize)
  }

  /// The PNG and JPEG files of a folder, in name order, each through `preprocessor`.
  /// - Throws: `SpeedQError.invalidInput` for a folder without images; what decoding throws.
  public static func images(inFolder path: String, preprocessor: ImagePreprocessor, limit: Int? = nil) throws
    -> [PixelTensor]
  {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
    let files = names.filter { ["png", "jpg", "jpeg"].contains(($0 as NSString).pathExtension.lowercased()) }.sorted()
    guard !files.isEmpty else {
      throw SpeedQError.invalidInput(operation: "calibration images", reason: "'\(path)' has no PNG or JPEG files")
    }
    return try files.prefix(limit ?? files.count).map {
      preprocessor(try Image.load(path: (path as NSString).appendingPathComponent($0)))
    }
  }
}
