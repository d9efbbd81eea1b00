namespace RootfsExport.BootSpec;

/// <summary>Bad boot input; <see cref="Field"/> names what was wrong (server, port, tag, …) so the message can say so.</summary>
public sealed class BootSpecException : UserFacingException
{
    public string Field { get; }

    public BootSpecException(string field, string message) : base($"{field}: {message}") => Field = field;
}
