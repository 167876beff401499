/// The order-preserving layer map of LoRASuite (§3.1, Alg. 1): the strictly increasing, one-to-one
/// map from the shallower model's layers into the deeper one's that maximises the total similarity.
///
/// This is the dynamic programme of the reference notes: with the shallower model as rows
/// (`n` × `m`, `Δ = m − n`), shallow layer `i` can only go to deep layers `i...i+Δ`;
/// `dp[i][j] = max_{k ∈ [i−1, j−1]} dp[i−1][k] + S[i][j]`, then backtracking from the best
/// `dp[n−1][j]`. Cost O(n·Δ²). Ties go to the lowest index, as `argmax` does in the authors' code.
/// Equal depths give the identity. NaN similarities count as −∞ (never preferred).
public enum LayerMapping {
  /// For each new layer, the old layer mapped onto it, or nil when the new model is deeper and
  /// this new layer receives none.
  /// - Parameter similarity: old layers × new layers (the `CKAMatrix` layout).
  public static func orderPreserving(_ similarity: Matrix<Double>) -> [Int?] {
    if similarity.rows >= similarity.columns {
      // New is the shallower side: every new layer gets a distinct old layer.
      return strictlyIncreasing(similarity.transposed()).map { Optional($0) }
    }
    var result = [Int?](repeating: nil, count: similarity.columns)
    for (old, new) in strictlyIncreasing(similarity).enumerated() { result[new] = old }
    return result
  }

  /// The DP itself on `scores` with no more rows than columns: row `i` → column `map[i]`,
  /// strictly increasing, maximising `Σ scores[i, map[i]]`.
  public static func strictlyIncreasing(_ scores: Matrix<Double>) -> [Int] {
    let n = scores.rows
    let m = scores.columns
    precondition(n <= m, "LayerMapping.strictlyIncreasing needs rows <= columns")
    if n == 0 { return [] }
    let delta = m - n
    func score(_ i: Int, _ j: Int) -> Double {
      let value = scores[i, j]
      return value.isNaN ? -.infinity : value
    }
    // dp and path are n × (Δ+1), indexed by offset j − i.
    let width = delta + 1
    var dp = [Double](repeating: -.infinity, count: n * width)
    var path = [Int](repeating: 0, count: n * width)
    for offset in 0..<width { dp[offset] = score(0, offset) }
    for i in 1..<max(n, 1) {
      for j in i...(i + delta) {
        // k ranges over [i−1, j−1], offsets 0...(j − i) in the previous row.
        var bestK = i - 1
        var best = dp[(i - 1) * width]
        if j - 1 >= i {
          for k in i...(j - 1) {
            let candidate = dp[(i - 1) * width + (k - (i - 1))]
            if candidate > best {
              best = candidate
              bestK = k
            }
          }
        }
        dp[i * width + (j - i)] = best + score(i, j)
        path[i * width + (j - i)] = bestK
      }
    }
    var j = n - 1
    var best = dp[(n - 1) * width]
    for offset in 1..<width where dp[(n - 1) * width + offset] > best {
      best = dp[(n - 1) * width + offset]
      j = n - 1 + offset
    }
    var map = [Int](repeating: 0, count: n)
    for i in stride(from: n - 1, through: 0, by: -1) {
      map[i] = j
      if i > 0 { j = path[i * width + (j - i)] }
    }
    return map
  }
}
