namespace RootfsExport;

/// <summary>
/// An error caused by the user's input or environment (bad archive, locked database, missing tool).
/// The CLI prints its message alone, without a stack trace; the message must name the file or field.
/// </summary>
public class UserFacingException : Exception
{
    public UserFacingException(string message) : base(message) { }
    public UserFacingException(string message, Exception inner) : base(message, inner) { }
}
