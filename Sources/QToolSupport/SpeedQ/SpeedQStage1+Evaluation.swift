import Foundation
import QCompute
import QEngine

extension SpeedQStage1 {
  /// The mean over tokens of the cosine between the FP tower's hidden state and the one with
  /// `replacing` in place of the named linear weights, on `images`.
  /// - Parameter hiddenState: a Python-style index into the hidden states (0 the embeddings,
  ///   `-1` the last block's output), as LLaVA's `vision_feature_layer`.
  /// - Throws: `SpeedQError.invalidInput` for an index outside the tower; what the tower throws.
  public static func featureCosine(
    encoder: VisionEncoder, prefix: String, images: [PixelTensor], replacing: [String: [Float]],
    hiddenState: Int = -1
  ) throws -> Double {
    let count = encoder.blockCount + 1
    let resolved = hiddenState < 0 ? count + hiddenState : hiddenState
    guard (0..<count).contains(resolved), !images.isEmpty else {
      throw SpeedQError.invalidInput(
        operation: "feature cosine", reason: "hidden state \(hiddenState) of \(count), \(images.count) images")
    }
    let width = encoder.config.hiddenSize
    var total = 0.0
    var tokens = 0
    for pixels in images {
      var fp = try encoder.embeddings(pixels: pixels)
      var quantized = fp
      let lengths = [fp.count / width]
      for index in 0..<resolved {
        let block = try encoder.block(at: index, prefix: prefix)
        let own = replacing.filter { block.linearShapes[$0.key] != nil }
        fp = try block.output(input: fp, lengths: lengths, replacing: [:])
        quantized = try block.output(input: quantized, lengths: lengths, replacing: own)
      }
      for token in 0..<lengths[0] {
        var dot = 0.0
        var a = 0.0
        var b = 0.0
        for i in (token * width)..<((token + 1) * width) {
          let x = Double(fp[i])
          let y = Double(quantized[i])
          dot += x * y
          a += x * x
          b += y * y
        }
        total += a > 0 && b > 0 ? dot / (a * b).squareRoot() : (a == b ? 1 : 0)
        tokens += 1
      }
    }
    return total / Double(max(tokens, 1))
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
