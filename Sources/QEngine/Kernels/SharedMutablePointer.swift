/// A pointer shared by concurrent workers that each write their own rows.
struct SharedMutablePointer<Element>: @unchecked Sendable {
  let pointer: UnsafeMutablePointer<Element>
}

/// Element-wise work in QEngine splits into blocks of at least 2^13 elements: a training step's
/// loss rows, optimizer chunks and quantizer rows are far smaller than a quantized matrix.
let engineBlockElements = 1 << 13
