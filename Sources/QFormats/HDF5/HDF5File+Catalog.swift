import CHDF5

/// What a walk over the file's groups collects: tensors, metadata and what was left out.
struct HDF5Catalog {
  let path: String
  var tensors: [TensorInfo] = []
  var plans: [String: ReadPlan] = [:]
  var metadata: [String: String] = [:]
  var skipped: [(name: String, reason: String)] = []
  /// Which object path claimed each dotted name, to report collisions.
  private var owners: [String: String] = [:]
  /// Addresses of groups already walked, so a hard-link cycle cannot recurse forever.
  private var visitedGroups: Set<UInt64> = []

  init(path: String) {
    self.path = path
  }

  /// Walks `group` and everything below it.
  ///
  /// The corresponding C functions are `H5Gget_info`, `H5Lget_name_by_idx` and `H5Oopen`.
  mutating func walk(
    group: HDF5Object, objectPath: String, dottedName: String, context: HDF5Context
  ) throws(HDF5Error) {
    var address: UInt64 = 0
    try context.check("H5Oget_info", chdf5_object_address(group.id, &address))
    guard visitedGroups.insert(address).inserted else {
      skipped.append((dottedName, "group already listed under another name (hard link)"))
      return
    }
    for (key, value) in try HDF5Attributes.strings(of: group.id, context: context) {
      metadata[dottedName.isEmpty ? key : dottedName + "." + key] = value
    }
    for name in try linkNames(of: group, context: context) {
      let childContext = context.appending(name)
      let childPath = childContext.object
      let childDotted = dottedName.isEmpty ? name : dottedName + "." + name
      let isHard = chdf5_link_is_hard(group.id, name)
      try childContext.check("H5Lget_info", isHard)
      guard isHard == 1 else {
        skipped.append((childDotted, "soft or external link"))
        continue
      }
      let child = try childContext.open("H5Oopen", H5Oopen(group.id, name, chdf5_p_default()))
      switch H5Iget_type(child.id) {
      case H5I_GROUP:
        try walk(
          group: child, objectPath: childPath, dottedName: childDotted, context: childContext)
      case H5I_DATASET:
        try addDataset(child, objectPath: childPath, name: childDotted, context: childContext)
      default:
        // Committed datatypes and the like hold no data.
        continue
      }
    }
  }

  /// The group's link names: in creation order when the group indexes it, else sorted by bytes.
  private func linkNames(of group: HDF5Object, context: HDF5Context) throws(HDF5Error) -> [String] {
    var info = H5G_info_t()
    try context.check("H5Gget_info", H5Gget_info(group.id, &info))
    let plist = try context.open("H5Gget_create_plist", H5Gget_create_plist(group.id))
    var flags: UInt32 = 0
    try context.check("H5Pget_link_creation_order", H5Pget_link_creation_order(plist.id, &flags))
    let byCreation = flags & UInt32(H5P_CRT_ORDER_INDEXED) != 0
    let index = byCreation ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME
    var names: [String] = []
    for position in 0..<info.nlinks {
      let length = try context.check(
        "H5Lget_name_by_idx",
        H5Lget_name_by_idx(group.id, ".", index, H5_ITER_INC, position, nil, 0, chdf5_p_default()))
      var buffer = [CChar](repeating: 0, count: Int(length) + 1)
      try context.check(
        "H5Lget_name_by_idx",
        H5Lget_name_by_idx(
          group.id, ".", index, H5_ITER_INC, position, &buffer, buffer.count, chdf5_p_default()))
      names.append(
        String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
    return byCreation ? names : names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
  }

  /// Classifies one dataset and records it as a tensor or as skipped.
  private mutating func addDataset(
    _ dataset: HDF5Object, objectPath: String, name: String, context: HDF5Context
  ) throws(HDF5Error) {
    if let first = owners[name] {
      throw HDF5Error.nameCollision(path: path, name: name, first: first, second: objectPath)
    }
    owners[name] = objectPath
    var attributes = try HDF5Attributes.strings(of: dataset.id, context: context)
    let type = try context.open("H5Dget_type", H5Dget_type(dataset.id))
    let kind = try HDF5ElementKind(type: type, context: context)
    var dtype: DType
    var memory: ReadPlan.Memory
    switch kind {
    case .unsupported(let reason):
      skipped.append((name, reason))
      record(attributes, of: name)
      return
    case .native(let nativeType, let make):
      dtype = nativeType
      memory = .native(make)
    case .fileType(let fileType):
      dtype = fileType
      memory = .fileTypeInLittleEndian
    }
    // Our writer stores BF16 and F8 as unsigned integers with a `dtype` attribute naming them.
    if let stored = attributes["dtype"], let marked = DType(rawValue: stored),
      marked.isFloatingPoint, marked.byteSize == dtype.byteSize, dtype == .u16 || dtype == .u8
    {
      dtype = marked
      attributes["dtype"] = nil
    }
    let shape = try Self.shape(of: dataset, name: name, context: context, path: path)
    guard let shape else {
      skipped.append((name, "dataset has a null dataspace (no data)"))
      record(attributes, of: name)
      return
    }
    let info = TensorInfo(name: name, dtype: dtype, shape: shape)
    tensors.append(info)
    plans[name] = ReadPlan(objectPath: objectPath, info: info, memory: memory)
    record(attributes, of: name)
  }

  private mutating func record(_ attributes: [String: String], of name: String) {
    for (key, value) in attributes {
      metadata[name + "." + key] = value
    }
  }

  /// The dataset's dimensions, checked so that the byte count cannot overflow; nil for a null dataspace.
  ///
  /// The corresponding C functions are `H5Sget_simple_extent_type` and `H5Sget_simple_extent_dims`.
  private static func shape(
    of dataset: HDF5Object, name: String, context: HDF5Context, path: String
  ) throws(HDF5Error) -> [Int]? {
    let space = try context.open("H5Dget_space", H5Dget_space(dataset.id))
    let spaceClass = H5Sget_simple_extent_type(space.id)
    switch spaceClass {
    case H5S_NULL: return nil
    case H5S_SCALAR: return []
    case H5S_SIMPLE: break
    default:
      throw HDF5Error.call(
        function: "H5Sget_simple_extent_type", path: path, object: context.object,
        detail: HDF5Library.innermostError())
    }
    let rank = try context.check("H5Sget_simple_extent_ndims", H5Sget_simple_extent_ndims(space.id))
    var dims = [hsize_t](repeating: 0, count: Int(rank))
    try context.check("H5Sget_simple_extent_dims", H5Sget_simple_extent_dims(space.id, &dims, nil))
    // Sixteen bytes per element bounds every dtype, so the byte count fits too.
    var total: UInt64 = 16
    var shape: [Int] = []
    for dim in dims {
      let (product, overflow) = total.multipliedReportingOverflow(by: dim)
      guard !overflow, product <= UInt64(Int.max) else {
        throw HDF5Error.shapeOverflow(path: path, name: name, shape: dims)
      }
      total = dim == 0 ? total : product
      shape.append(Int(dim))
    }
    return shape
  }
}
