import Foundation
import QEngine
import QFormats

extension ModelEvaluation {
  /// Loads a LLaVA-style checkpoint whole (vision tower, projector, language model) with its
  /// tokenizer, and the folder's `preprocessor_config.json` when it has one.
  /// - Throws: `EvaluationError.notVisionLanguage` when the config has no `vision_config`.
  public static func loadVisionLanguage(_ checkpoint: Checkpoint) throws -> LoadedModel {
    guard let configData = checkpoint.configData else {
      throw EvaluationError.missingConfig(location: checkpoint.location)
    }
    let config = try ModelConfig(data: configData, location: checkpoint.configPath ?? checkpoint.location)
    guard config.visionConfig != nil else { throw EvaluationError.notVisionLanguage(location: checkpoint.location) }
    var preprocessor: ImagePreprocessor?
    if let folder = checkpoint.folder {
      let path = (folder as NSString).appendingPathComponent("preprocessor_config.json")
      if let data = FileManager.default.contents(atPath: path) {
        preprocessor = try ImagePreprocessor(preprocessorConfig: data, location: path)
      }
    }
    let model = try VisionLanguageModel(source: checkpoint.source, config: config, preprocessor: preprocessor)
    return LoadedModel(model: model.decoder, tokenizer: try tokenizer(of: checkpoint), visionLanguage: model)
  }
}
