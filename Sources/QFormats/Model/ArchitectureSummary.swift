/// What a checkpoint is: its family, its kind, its sizes, and which part each tensor belongs to.
///
/// Built from the config when there is one and from tensor names and shapes always, so a bare
/// `.safetensors` file without its `config.json` is still described. The config decides the
/// family and the sizes it states; the names decide the layout (which prefix is which part)
/// and fill in sizes the config leaves out.
public struct ArchitectureSummary: Sendable {
  /// The model's family; for a vision-language model, the family of the whole (`llava`).
  public var family: ModelFamily
  public var kind: ModelKind
  /// The language model's (or text encoder's) family, when there is one.
  public var languageFamily: ModelFamily?
  /// The vision tower's family, when there is one.
  public var visionFamily: ModelFamily?
  /// Sizes of the language model or text encoder.
  public var language: HyperParameters?
  /// Sizes of the vision tower.
  public var vision: HyperParameters?
  /// Whether a config contributed (otherwise everything came from the tensors).
  public var usedConfig: Bool
  /// Name prefixes and the component each marks, longest first so the most specific wins.
  public var componentPrefixes: [ComponentPrefix]

  /// A name prefix that marks a component, e.g. `multi_modal_projector.` for the projector.
  public struct ComponentPrefix: Sendable, Hashable {
    public var prefix: String
    public var component: ModelComponent
  }

  /// The sizes of the main stack: the language model when there is one, else the vision tower.
  public var hyperParameters: HyperParameters { language ?? vision ?? HyperParameters() }

  /// The part of the model a tensor of this name belongs to.
  public func component(of tensorName: String) -> ModelComponent {
    componentPrefixes.first { tensorName.hasPrefix($0.prefix) }?.component ?? .other
  }

  /// What a tensor of this name does.
  public func role(of tensorName: String) -> TensorRole {
    if component(of: tensorName) == .projector { return .projection }
    return Self.role(ofName: tensorName)
  }
}
