import CHDF5

/// Attributes turned into metadata strings.
enum HDF5Attributes {
  /// More values than this in one attribute are not metadata anyone reads; such attributes are left out.
  private static let maximumValues: Int64 = 1 << 16

  /// The object's string, numeric and bool attributes as strings; attributes of other types are left out.
  ///
  /// Variable-length strings read as `<variable-length string not read>` when the file's global
  /// heaps do not pass `HDF5GlobalHeaps`, since libhdf5 would crash on them.
  ///
  /// The corresponding C functions are `H5Aopen_by_idx`, `H5Aget_name` and `H5Aread`.
  static func strings(of object: hid_t, context: HDF5Context) throws(HDF5Error) -> [String: String]
  {
    var count: UInt64 = 0
    try context.check("H5Oget_info", chdf5_object_attribute_count(object, &count))
    var result: [String: String] = [:]
    guard count > 0 else { return result }
    try checkAttributeMessagesDecode(of: object, context: context)
    for position in 0..<count {
      let attribute = try context.open(
        "H5Aopen_by_idx",
        H5Aopen_by_idx(
          object, ".", H5_INDEX_NAME, H5_ITER_INC, position, chdf5_p_default(), chdf5_p_default()))
      let length = try context.check("H5Aget_name", H5Aget_name(attribute.id, 0, nil))
      var nameBuffer = [CChar](repeating: 0, count: Int(length) + 1)
      try context.check("H5Aget_name", H5Aget_name(attribute.id, nameBuffer.count, &nameBuffer))
      let name = decode(nameBuffer.prefix(Int(length)).map { UInt8(bitPattern: $0) })
      let attributeContext = HDF5Context(
        path: context.path, object: context.object + "@" + name, heaps: context.heaps)
      if let values = try values(of: attribute, context: attributeContext) {
        result[name] =
          values.count == 1
          ? values[0].plain : "[" + values.map { $0.quoted }.joined(separator: ", ") + "]"
      }
    }
    return result
  }

  /// A name no attribute is expected to have, so a lookup for it visits every attribute message.
  private static let probeName = "\u{1}qtoolchain: no such attribute\u{1}"

  /// Decodes every attribute message once through a path that cannot crash, before
  /// `H5Aopen_by_idx` builds its table.
  ///
  /// libhdf5 1.10 grows the table for compact attribute storage with uninitialised slots; when a
  /// later attribute message fails to decode, it frees those slots and crashes in `H5A__close`
  /// (`Fixtures/malformed-found/libhdf5_attribute_table.h5`). `H5Aexists` decodes the same
  /// messages one by one without a table, so a corrupt one fails here with an error instead.
  /// The corresponding C function is `H5Aexists`.
  private static func checkAttributeMessagesDecode(of object: hid_t, context: HDF5Context) throws(HDF5Error) {
    try context.check("H5Aexists", H5Aexists(object, probeName))
  }

  /// One attribute value, spelled on its own or inside a list.
  private struct Value {
    var plain: String
    var isString: Bool

    var quoted: String {
      guard isString else { return plain }
      var out = "\""
      for scalar in plain.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        default: out.unicodeScalars.append(scalar)
        }
      }
      return out + "\""
    }
  }

  private static func decode(_ bytes: some Collection<UInt8>) -> String {
    String(decoding: bytes, as: UTF8.self)
  }

  private static func values(of attribute: HDF5Object, context: HDF5Context) throws(HDF5Error)
    -> [Value]?
  {
    let type = try context.open("H5Aget_type", H5Aget_type(attribute.id))
    let space = try context.open("H5Aget_space", H5Aget_space(attribute.id))
    let points = try context.check(
      "H5Sget_simple_extent_npoints", H5Sget_simple_extent_npoints(space.id))
    guard points > 0, points <= maximumValues else { return nil }
    let count = Int(points)
    switch H5Tget_class(type.id) {
    case H5T_STRING:
      return try strings(of: attribute, type: type, count: count, context: context)
    case H5T_INTEGER:
      if H5Tget_sign(type.id) == H5T_SGN_NONE {
        let numbers: [UInt64] = try read(
          attribute, as: chdf5_t_native_uint64(), count: count, context: context)
        return numbers.map { Value(plain: String($0), isString: false) }
      }
      let numbers: [Int64] = try read(
        attribute, as: chdf5_t_native_int64(), count: count, context: context)
      return numbers.map { Value(plain: String($0), isString: false) }
    case H5T_FLOAT:
      if H5Tget_size(type.id) <= 4 {
        let numbers: [Float] = try read(
          attribute, as: chdf5_t_native_float(), count: count, context: context)
        return numbers.map { Value(plain: String($0), isString: false) }
      }
      let numbers: [Double] = try read(
        attribute, as: chdf5_t_native_double(), count: count, context: context)
      return numbers.map { Value(plain: String($0), isString: false) }
    case H5T_ENUM:
      guard try HDF5ElementKind.isBoolEnum(type, context: context) else { return nil }
      let flags: [Int8] = try read(attribute, as: type.id, count: count, context: context)
      return flags.map { Value(plain: $0 == 0 ? "false" : "true", isString: false) }
    default:
      return nil
    }
  }

  /// The corresponding C function is `H5Aread`.
  private static func read<T: BitwiseCopyable>(
    _ attribute: HDF5Object, as memoryType: hid_t, count: Int, context: HDF5Context
  ) throws(HDF5Error) -> [T] {
    var result = [T](unsafeUninitializedCapacity: count) { buffer, initialized in
      UnsafeMutableRawBufferPointer(buffer).initializeMemory(as: UInt8.self, repeating: 0)
      initialized = count
    }
    let status = result.withUnsafeMutableBytes { H5Aread(attribute.id, memoryType, $0.baseAddress) }
    try context.check("H5Aread", status)
    return result
  }

  /// What a variable-length string attribute reads as when the file's global heaps are malformed.
  static let notRead = "<variable-length string not read>"

  /// Fixed-length strings are cut at the first NUL; variable-length ones are read as C strings.
  private static func strings(
    of attribute: HDF5Object, type: HDF5Object, count: Int, context: HDF5Context
  ) throws(HDF5Error) -> [Value] {
    let isVariable = try context.check("H5Tis_variable_str", H5Tis_variable_str(type.id)) > 0
    if isVariable {
      // libhdf5 follows heap identifiers without bounds checks; see `HDF5GlobalHeaps`.
      let heaps = context.heaps ?? HDF5GlobalHeaps(path: context.path)
      guard heaps.areWellFormed else { return [Value(plain: notRead, isString: false)] }
      let memoryType = try context.open("H5Tcopy", H5Tcopy(chdf5_t_c_s1()))
      try context.check("H5Tset_size", H5Tset_size(memoryType.id, chdf5_variable_size()))
      try context.check("H5Tset_cset", H5Tset_cset(memoryType.id, H5Tget_cset(type.id)))
      var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
      try context.check("H5Aread", H5Aread(attribute.id, memoryType.id, &pointers))
      defer {
        for pointer in pointers where pointer != nil { H5free_memory(pointer) }
      }
      return pointers.map { Value(plain: $0.map { String(cString: $0) } ?? "", isString: true) }
    }
    let size = H5Tget_size(type.id)
    guard size > 0 else { return [] }
    let (total, overflow) = size.multipliedReportingOverflow(by: count)
    guard !overflow else { return [] }
    let memoryType = try context.open("H5Tcopy", H5Tcopy(type.id))
    var bytes = [UInt8](repeating: 0, count: total)
    try context.check("H5Aread", H5Aread(attribute.id, memoryType.id, &bytes))
    let spacePadded = H5Tget_strpad(type.id) == H5T_STR_SPACEPAD
    return stride(from: 0, to: total, by: size).map { start in
      var item = bytes[start..<(start + size)].prefix { $0 != 0 }
      while spacePadded, item.last == UInt8(ascii: " ") { item = item.dropLast() }
      return Value(plain: decode(item), isString: true)
    }
  }
}
