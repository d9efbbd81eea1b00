using System.Text.Json.Serialization;

namespace RootfsExport.FeedWatcher;

/// <summary>The state files' JSON (feed index, recorded hashes, journal), source-generated: no reflection at start-up.</summary>
[JsonSourceGenerationOptions(WriteIndented = true)]
[JsonSerializable(typeof(List<FeedEntry>))]
[JsonSerializable(typeof(Dictionary<string, string>))]
[JsonSerializable(typeof(FeedUpdater.Journal))]
internal sealed partial class FeedJson : JsonSerializerContext;
