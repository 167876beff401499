import Foundation
import Testing

@testable import QEngine

/// The SIMD8 GELU, exp and softmax against libm in double precision, at lengths around the
/// vector width so the padded tail is exercised.
@Suite("Vision kernels")
struct VisionKernelTests {
  static let lengths = [0, 1, 7, 8, 9, 63, 64, 65, 1025]

  static func inputs(_ count: Int) -> [Float] {
    (0..<count).map { Float(($0 * 7919) % 2001) / 100 - 10 }  // -10 ... 10
  }

  @Test(arguments: lengths)
  func geluMatchesErf(count: Int) {
    let x = Self.inputs(count)
    var y = x
    VisionKernels.activate(&y, .gelu)
    for (input, got) in zip(x, y) {
      let exact = 0.5 * Double(input) * erfc(-Double(input) / 2.0.squareRoot())
      // Relative 1e-6 down to x = -3 (the erfc fit is 1.2e-7, plus float rounding); further out
      // the float rounding of z^2 inside exp grows it to a few 1e-6, where GELU is below 1e-2.
      let tolerance = input >= -3 ? 1e-6 * abs(exact) : 1e-5 * abs(exact) + 1e-30
      #expect(abs(Double(got) - exact) <= tolerance, "gelu(\(input)) = \(got), not \(exact)")
    }
  }

  @Test func expMatchesLibm() {
    for start in stride(from: -80.0 as Float, to: 80, by: 0.37) {
      let x = SIMD8<Float>((0..<8).map { start + Float($0) * 0.041 })
      let got = VectorMath.exp(x)
      for lane in 0..<8 {
        let exact = Foundation.exp(Double(x[lane]))
        #expect(abs(Double(got[lane]) - exact) <= 3e-7 * exact, "exp(\(x[lane]))")
      }
    }
  }

  @Test(arguments: lengths.filter { $0 > 0 })
  func softmaxMatchesDouble(count: Int) {
    var row = Self.inputs(count)
    let largest = Double(row.max() ?? 0)
    let exps = row.map { Foundation.exp(Double($0) - largest) }
    let total = exps.reduce(0, +)
    row.withUnsafeMutableBufferPointer { VisionKernels.softmax($0) }
    for (got, e) in zip(row, exps) { #expect(abs(Double(got) - e / total) <= 1e-6 * (e / total) + 1e-12) }
  }

  @Test(arguments: [1, 7, 8, 33, 384])
  func layerNormMatchesDouble(width: Int) {
    let rows = 3
    let x = Self.inputs(rows * width).map { $0 * 3 + 5 }
    let weight = (0..<width).map { Float($0 % 5) * 0.5 - 1 }
    let bias = (0..<width).map { Float($0 % 3) * 0.25 }
    let y = VisionKernels.layerNorm(x, width: width, weight: weight, bias: bias, epsilon: 1e-6)
    for row in 0..<rows {
      let slice = x[(row * width)..<((row + 1) * width)].map(Double.init)
      let mean = slice.reduce(0, +) / Double(width)
      let variance = slice.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(width)
      for i in 0..<width {
        let exact = (slice[i] - mean) / (variance + 1e-6).squareRoot() * Double(weight[i]) + Double(bias[i])
        #expect(abs(Double(y[row * width + i]) - exact) <= 1e-5, "row \(row) element \(i)")
      }
    }
  }
}
