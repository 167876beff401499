import Foundation

/// Rotary position embedding in the half-split layout of Hugging Face Llama (`rotate_half`).
struct RotaryEmbedding: Sendable {
  let headDimension: Int
  let theta: Double
  let scaling: RopeScaling

  init(headDimension: Int, theta: Double, scaling: RopeScaling) {
    self.headDimension = headDimension
    self.theta = theta
    self.scaling = scaling
  }

  init(headDimension: Int, rope: DecoderArchitecture.Rope) {
    self.init(headDimension: headDimension, theta: rope.theta, scaling: rope.scaling)
  }

  /// The `headDimension / 2` inverse frequencies for a sequence of `length` positions.
  func inverseFrequencies(length: Int) -> [Double] {
    let half = headDimension / 2
    var base = theta
    if case .dynamic(let factor, let original) = scaling, original > 0, length > original {
      let dimension = Double(headDimension)
      base = theta * pow(factor * Double(length) / Double(original) - (factor - 1), dimension / (dimension - 2))
    }
    var frequencies = (0..<half).map { 1 / pow(base, Double(2 * $0) / Double(headDimension)) }
    switch scaling {
    case .none, .dynamic: break
    case .longrope(let short, let long, let original, _):
      let factors = length > original ? long : short
      frequencies = zip(frequencies, factors).map { $0 / $1 }
    case .linear(let factor):
      frequencies = frequencies.map { $0 / factor }
    case .llama3(let factor, let low, let high, let original):
      let lowWavelength = Double(original) / low
      let highWavelength = Double(original) / high
      frequencies = frequencies.map { frequency in
        let wavelength = 2 * Double.pi / frequency
        if wavelength < highWavelength { return frequency }
        if wavelength > lowWavelength { return frequency / factor }
        let smooth = (Double(original) / wavelength - low) / (high - low)
        return (1 - smooth) * frequency / factor + smooth * frequency
      }
    }
    return frequencies
  }

  /// Cosines and sines, `[positions.count, headDimension / 2]` each, angles computed in Double
  /// (LongRoPE scales both by its attention factor, as transformers does).
  func tables(positions: Range<Int>, totalLength: Int) -> (cos: [Float], sin: [Float]) {
    let frequencies = inverseFrequencies(length: totalLength)
    let half = headDimension / 2
    var amplitude = 1.0
    if case .longrope(_, _, _, let factor) = scaling { amplitude = factor }
    var cosines = [Float](repeating: 0, count: positions.count * half)
    var sines = cosines
    for (row, position) in positions.enumerated() {
      for index in 0..<half {
        let angle = Double(position) * frequencies[index]
        cosines[row * half + index] = Float(amplitude * cos(angle))
        sines[row * half + index] = Float(amplitude * sin(angle))
      }
    }
    return (cosines, sines)
  }
}
