import Foundation
import QCompute
import QFormats

extension PEFTAdapter {
  /// The fused modules of a base that stores q/k/v and gate/up as one weight each (Phi-3), with
  /// their parts in row order: PEFT wraps the fused `nn.Linear`, so an adapter for such a base
  /// holds one pair per fused module.
  static let fusedModules: [(fused: String, parts: [String])] = [
    ("self_attn.qkv_proj", ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]),
    ("mlp.gate_up_proj", ["mlp.gate_proj", "mlp.up_proj"]),
  ]

  /// The adapter with each layer's q/k/v and gate/up pairs stacked into one pair on the fused
  /// module, exactly: A is the parts' A stacked (`parts × r` rows), B holds each part's B in its
  /// rows and rank columns, zero elsewhere, so `B A` is the parts' updates stacked by rows. A part
  /// the adapter lacks gets zero factors. Such a module has rank `parts × r`; the config says so in
  /// `rank_pattern` and keeps the scale with `alpha_pattern`.
  /// - Parameter rows: the rows of a part (`self_attn.k_proj`) in the fused weight.
  func fusingParts(rows: (String) -> Int) throws -> PEFTAdapter {
    var output = self
    var rankPattern: [String: JSONValue] = [:]
    var alphaPattern: [String: JSONValue] = [:]
    for (fused, parts) in Self.fusedModules {
      let layers = Set(modules.keys.filter { parts.contains($0.module) }.map(\.layer))
      for layer in layers.sorted() {
        let keys = parts.map { LoRAModuleKey(layer: layer, module: $0) }
        guard let columns = keys.lazy.compactMap({ self.modules[$0]?.a.columns }).first else { continue }
        let partRows = parts.map(rows)
        let total = partRows.reduce(0, +)
        let fusedRank = rank * parts.count
        var a = Matrix<Double>(rows: fusedRank, columns: columns)
        var b = Matrix<Double>(rows: total, columns: fusedRank)
        var rowStart = 0
        for (index, key) in keys.enumerated() {
          defer { rowStart += partRows[index] }
          guard let factors = output.modules.removeValue(forKey: key) else { continue }
          let offset = index * rank
          for r in 0..<rank {
            for c in 0..<columns { a[offset + r, c] = factors.a[r, c] }
          }
          for row in 0..<partRows[index] {
            for r in 0..<rank { b[rowStart + row, offset + r] = factors.b[row, r] }
          }
        }
        output.modules[LoRAModuleKey(layer: layer, module: fused)] = try LoRAFactors(a: a, b: b)
        let kind = String(fused.split(separator: ".").last ?? "")
        let factor = Double(parts.count)
        rankPattern[kind] = .number(Double(fusedRank))
        // PEFT scales by alpha / r (alpha / √r with rsLoRA): the same scale at parts × r.
        alphaPattern[kind] = .number(alpha * (useRSLoRA ? factor.squareRoot() : factor))
      }
    }
    guard !rankPattern.isEmpty else { return output }
    output.config["rank_pattern"] = .object(rankPattern)
    output.config["alpha_pattern"] = .object(alphaPattern)
    output.config["target_modules"] = .array(Set(output.modules.keys.map(\.kind)).sorted().map { .string($0) })
    return output
  }
}

extension PEFTAdapter {
  /// The adapter with each pair on a fused module (a Phi-3 adapter's `qkv_proj`, `gate_up_proj`)
  /// cut into one pair per part, exactly: every part keeps A and takes its rows of B, so its
  /// update `B_part A` is its rows of the fused update, at the adapter's rank.
  /// - Parameter rows: the rows of a part (`self_attn.k_proj`) in the fused weight.
  /// - Throws: `LoraRebaseError.adapter` for a fused pair whose B does not have the parts' rows.
  func splittingFusedModules(rows: (String) -> Int) throws -> PEFTAdapter {
    var output = self
    for (fused, parts) in Self.fusedModules {
      for key in modules.keys where key.module == fused {
        guard let factors = output.modules.removeValue(forKey: key) else { continue }
        let partRows = parts.map(rows)
        guard partRows.reduce(0, +) == factors.b.rows else {
          throw LoraRebaseError.adapter(
            path: folder,
            detail: "Tensor '\(tensorNames(for: key).b)' has \(factors.b.rows) rows, not the "
              + "\(partRows.map(String.init).joined(separator: " + ")) of \(parts.joined(separator: ", "))")
        }
        var start = 0
        for (part, count) in zip(parts, partRows) {
          defer { start += count }
          let b = try Matrix<Double>(
            rows: count, columns: factors.b.columns,
            elements: Array(factors.b.elements[(start * factors.b.columns)..<((start + count) * factors.b.columns)]))
          output.modules[LoRAModuleKey(layer: key.layer, module: part)] = try LoRAFactors(a: factors.a, b: b)
        }
      }
    }
    return output
  }
}

extension LoraBaseModel {
  /// `adapter` on this base's parts: a pair on a fused module cut into its parts' pairs when the
  /// base stores fused weights (Phi-3), else unchanged.
  func reading(_ adapter: PEFTAdapter) throws -> PEFTAdapter {
    guard layers.storesFusedProjections else { return adapter }
    return try adapter.splittingFusedModules { module in
      layers.shape(layer: 0, module + ".weight")?.first ?? 0
    }
  }

  /// `adapter` as this base stores its weights: fused into `qkv_proj` and `gate_up_proj` pairs
  /// when the base stores those (Phi-3), else unchanged.
  func storing(_ adapter: PEFTAdapter) throws -> PEFTAdapter {
    guard layers.storesFusedProjections else { return adapter }
    return try adapter.fusingParts { module in
      layers.shape(layer: 0, module + ".weight")?.first ?? 0
    }
  }
}
