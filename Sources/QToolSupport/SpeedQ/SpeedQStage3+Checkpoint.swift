import Foundation
import QFormats

extension SpeedQStage3 {
  /// Writes the latent linears, the trained norms and biases, the AdamW moments, the step count
  /// and γ to a safetensors file, atomically (a crash leaves the previous checkpoint in place).
  func saveCheckpoint(to path: String) throws {
    var tensors: [String: [Float]] = [:]
    let parameters = student.parameters
    for name in linearNames + fullPrecisionNames {
      tensors["latent." + name] = parameters[name]
      if let m = optimizer.firstMoments[name] { tensors["adam_m." + name] = m }
      if let v = optimizer.secondMoments[name] { tensors["adam_v." + name] = v }
    }
    let plan = tensors.map { TensorInfo(name: $0.key, dtype: .f32, shape: [$0.value.count]) }
    var metadata = [
      "speedq.step": String(optimizer.step),
      "speedq.fingerprint": configuration.fingerprint,
    ]
    if let gamma { metadata["speedq.gamma"] = "\(gamma)" }
    let writer = try SafetensorsWriter(path: path, plan: plan, metadata: metadata)
    for info in writer.order {
      guard let values = tensors[info.name] else { continue }
      try values.withUnsafeBytes { try writer.append(name: info.name, bytes: $0) }
    }
    try writer.finish()
  }

  /// Reads what `saveCheckpoint` wrote and continues from it.
  /// - Throws: `SpeedQError.checkpoint` for a checkpoint of another configuration or a missing
  ///   or misshapen tensor.
  func loadCheckpoint(from path: String) throws {
    let file = try SafetensorsFile(path: path)
    let metadata = file.metadata
    guard metadata["speedq.fingerprint"] == configuration.fingerprint else {
      throw SpeedQError.checkpoint(
        path: path,
        reason: "was saved with settings '\(metadata["speedq.fingerprint"] ?? "none")', not '\(configuration.fingerprint)'")
    }
    guard let stepText = metadata["speedq.step"], let step = Int(stepText), step >= 0 else {
      throw SpeedQError.checkpoint(path: path, reason: "has no step count")
    }
    var parameters = student.parameters
    var first: [String: [Float]] = [:]
    var second: [String: [Float]] = [:]
    for name in linearNames + fullPrecisionNames {
      let count = parameters[name]?.count ?? 0
      func read(_ key: String) throws -> [Float] {
        guard let info = file.info(named: key) else {
          throw SpeedQError.checkpoint(path: path, reason: "has no tensor '\(key)'")
        }
        guard info.elementCount == count else {
          throw SpeedQError.checkpoint(path: path, reason: "tensor '\(key)' has \(info.elementCount) values, not \(count)")
        }
        return try file.floats(of: key)
      }
      parameters[name] = try read("latent." + name)
      if step > 0 {
        first[name] = try read("adam_m." + name)
        second[name] = try read("adam_v." + name)
      }
    }
    student.parameters = parameters
    optimizer.step = step
    optimizer.firstMoments = first
    optimizer.secondMoments = second
    if let text = metadata["speedq.gamma"], let value = Double(text) { gamma = value }
  }
}
