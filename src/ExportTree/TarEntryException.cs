namespace RootfsExport.ExportTree;

/// <summary>
/// A member the archive describes well but that cannot be kept as it is (a name that is not UTF-8, a device
/// number too large for dev_t, extended headers past the bound): one clear line, not "corrupt archive".
/// </summary>
public sealed class TarEntryException(string message) : Exception(message);
