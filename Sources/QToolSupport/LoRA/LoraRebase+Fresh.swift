import Foundation
import QCompute
import QEngine

extension LoraRebase {
  /// A fresh adapter for `newBase` shaped like the one at `adapterPath`: the same rank, alpha,
  /// rsLoRA choice and module paths, on every decoder layer of the new base, with PEFT's default
  /// init (A uniform in ±1/√in, Kaiming with a = √5; B zero, so the update starts at zero).
  /// It is the baseline a moved adapter has to beat: `--fresh --finetune` trains it on the
  /// same data, steps and learning rate.
  /// - Throws: `LoraRebaseError` for an unreadable adapter or base, or a module path the new
  ///   base has no 2-D weight for.
  public static func freshAdapter(like adapterPath: String, newBase newPath: String, seed: UInt64) throws
    -> PEFTAdapter
  {
    let new = try LoraBaseModel(path: newPath)
    let adapter = try PEFTAdapter.read(folder: adapterPath)
    let modulePaths = Set(adapter.modules.keys.map(\.module)).sorted()
    guard !modulePaths.isEmpty else {
      throw LoraRebaseError.adapter(path: adapterPath, detail: "No LoRA modules to copy the shape of")
    }
    var generator = SeededGenerator(seed: seed)
    var modules: [LoRAModuleKey: LoRAFactors] = [:]
    for layer in 0..<new.layers.count {
      for module in modulePaths {
        let name = new.weightName(layer: layer, module: module)
        // A part of a fused weight (Phi-3's q_proj in qkv_proj) has its rows of it.
        guard let shape = new.layers.shape(layer: layer, module + ".weight"), shape.count == 2, shape[1] > 0 else {
          throw LoraRebaseError.baseModel(
            path: newPath, detail: "No 2-D weight '\(name)' for the adapter's module '\(module)'")
        }
        let (outputs, inputs) = (shape[0], shape[1])
        let bound = 1 / Double(inputs).squareRoot()
        let a = try Matrix<Double>(
          rows: adapter.rank, columns: inputs,
          elements: (0..<(adapter.rank * inputs)).map { _ in
            Double(Float.random(in: Float(-bound)...Float(bound), using: &generator))
          })
        let b = Matrix<Double>(rows: outputs, columns: adapter.rank)
        modules[LoRAModuleKey(layer: layer, module: module)] = try LoRAFactors(a: a, b: b)
      }
    }
    var config = adapter.config
    config["base_model_name_or_path"] = .string(new.name)
    config["target_modules"] = .array(Set(modules.keys.map(\.kind)).sorted().map { .string($0) })
    if let transform = config["layers_to_transform"], !transform.isNull {
      config["layers_to_transform"] = .array((0..<new.layers.count).map { .number(Double($0)) })
    }
    var output = adapter
    output.config = config
    output.modules = modules
    output.otherKeys = []
    output.keyPrefix = new.peftKeyPrefix(from: adapter.keyPrefix, old: nil)
    return try new.storing(output)
  }
}
