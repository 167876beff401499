import Foundation
import QEngine
import QFormats

extension ModelEvaluation {
  /// Loads a vision-language checkpoint (LLaVA, Idefics3, InternVL) whole (vision tower, projector, language model) with its
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
    let tokenizer = try tokenizer(of: checkpoint)
    let model = try VisionLanguageModel(
      source: checkpoint.source, config: config, preprocessor: preprocessor,
      imageMarkers: VisionLanguageModel.markers(for: config, tokenID: tokenizer.id(of:)))
    return LoadedModel(model: model.decoder, tokenizer: tokenizer, visionLanguage: model)
  }
}
