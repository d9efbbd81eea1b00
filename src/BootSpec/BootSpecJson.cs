using System.Text.Json.Serialization;

namespace RootfsExport.BootSpec;

/// <summary>
/// loader/rootfs-export.json, serialized by generated code: the native (AOT) program has no reflection-based JSON.
/// Same options as before (kebab-case names, defaults omitted), so existing settings files still read.
/// </summary>
[JsonSourceGenerationOptions(WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingDefault,
    PropertyNamingPolicy = JsonKnownNamingPolicy.KebabCaseLower)]
[JsonSerializable(typeof(BootSpecRequest))]
internal sealed partial class BootSpecJson : JsonSerializerContext;
