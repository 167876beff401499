import QFormats

/// Conversion requests that cannot be honoured, each naming the rule, file or tensor at fault.
public enum ConvertError: Error, CustomStringConvertible, Equatable {
  /// A `--rule` or recipe rule that does not parse or contradicts itself.
  case invalidRule(rule: String, reason: String)
  /// A recipe file that cannot be read or is not the expected JSON.
  case invalidRecipe(path: String, reason: String)
  /// A main option (`--bits`, `--group-size`, `--method`) outside what packs support.
  case invalidOption(option: String, reason: String)
  /// A rule asks to quantize a tensor the spec cannot apply to.
  case ruleCannotApply(rule: String, tensor: String, reason: String)
  /// An option or rule that the output layout cannot store; refused rather than ignored.
  case layoutCannotHonour(option: String, layout: String, reason: String)
  /// The output exists and `--force` was not given.
  case outputExists(path: String)
  /// The output path was refused (an input, a special file, a folder `--force` may not replace),
  /// or it appeared while the run worked.
  case output(OutputError)
  /// A file system operation failed.
  case fileSystem(path: String, reason: String)
  /// A tensor holds NaN or infinity and `--allow-nonfinite` was not given.
  case nonFinite(NonFiniteElement)
  /// Replacement values for a tensor that cannot stand in for it.
  case invalidReplacement(location: String, tensor: String, reason: String)
  /// The input holds no tensors, so there is nothing to convert.
  case noTensors(location: String)
  /// A finite value that the requested dtype cannot hold (it would be written as infinity).
  case outOfRange(location: String, tensor: String, index: [Int], value: Float, dtype: String)

  /// Usage errors exit with 64; the rest with 1.
  public var isUsageError: Bool {
    switch self {
    case .invalidRule, .invalidRecipe, .invalidOption, .ruleCannotApply, .layoutCannotHonour: true
    case .outputExists, .output, .fileSystem, .nonFinite, .invalidReplacement, .noTensors, .outOfRange: false
    }
  }

  public var description: String {
    switch self {
    case .invalidRule(let rule, let reason): "rule '\(rule)': \(reason)"
    case .invalidRecipe(let path, let reason): "\(path): \(reason)"
    case .invalidOption(let option, let reason): "\(option): \(reason)"
    case .ruleCannotApply(let rule, let tensor, let reason):
      "rule '\(rule)' cannot apply to tensor '\(tensor)': \(reason)"
    case .layoutCannotHonour(let option, let layout, let reason):
      "\(option) cannot be honoured with '--layout \(layout)': \(reason)"
    case .outputExists(let path): "\(path): output exists (use '--force' to replace it)"
    case .output(let error): error.description
    case .fileSystem(let path, let reason): "\(path): \(reason)"
    case .nonFinite(let element): "\(element); use '--allow-nonfinite' to keep such tensors unquantized"
    case .invalidReplacement(let location, let tensor, let reason): "\(location): tensor '\(tensor)' \(reason)"
    case .noTensors(let location): "\(location): holds no tensors; there is nothing to convert"
    case .outOfRange(let location, let tensor, let index, let value, let dtype):
      "\(location): tensor '\(tensor)' holds \(value) at index \(index), which \(dtype) cannot hold; use '--to f32' or '--to bf16'"
    }
  }
}
