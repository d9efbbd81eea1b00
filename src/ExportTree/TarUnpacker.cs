using System.Text;
using RootfsExport.Posix;

namespace RootfsExport.ExportTree;

/// <summary>Progress of an unpack: entries done, archive bytes read (decompressed).</summary>
public interface IUnpackProgress
{
    void Report(long entries, long bytes);
}

/// <summary>
/// Applies a tar stream (already decompressed) to an export through <see cref="ExportWriter"/>:
/// PAX with SCHILY.xattr.* (binary values kept), SCHILY.acl.*, GNU long names, hard links, symlinks,
/// devices, fifos, numeric owners. Memory is flat: one member at a time, data streamed to disk.
/// </summary>
public sealed class TarUnpacker
{
    private readonly ExportWriter _writer;
    private readonly string _archiveName;

    public long Entries { get; private set; }

    public TarUnpacker(ExportWriter writer, string archiveName)
    {
        _writer = writer;
        _archiveName = archiveName;
    }

    public void Unpack(Stream tar, IUnpackProgress? progress = null, CancellationToken cancel = default)
    {
        var reader = new TarArchiveReader(tar);
        string? last = null;
        bool sawRoot = false;
        while (true)
        {
            cancel.ThrowIfCancellationRequested();
            TarMember? member;
            long parseStarted = UnpackPhases.Start();
            try
            {
                member = reader.Next();
            }
            catch (TarEntryException e)
            {
                throw new UserFacingException($"{_archiveName}: {e.Message}", e);
            }
            catch (Exception e) when (IsArchiveError(e))
            {
                throw Corrupt(reader.Offset, last, e);
            }
            if (member is null) break;
            var path = ExportPath.Parse(member.Name, $"{_archiveName}: entry");
            long createStarted = UnpackPhases.Start();
            UnpackPhases.Stop(ref UnpackPhases.Parse, parseStarted);
            try
            {
                Apply(member, path);
            }
            catch (Exception e) when (IsArchiveError(e))
            {
                throw Corrupt(reader.Offset, member.Name, e);
            }
            catch (UserFacingException e) when (!e.Message.StartsWith(_archiveName + ": ", StringComparison.Ordinal))
            {
                throw new UserFacingException($"{_archiveName}: {e.Message}", e); // every line names the archive
            }
            catch (PosixException e)
            {
                throw new UserFacingException($"{_archiveName}: entry '{ArchiveText.Shown(member.Name)}': {e.Operation}: {Posix.Native.Libc.Strerror(e.Errno)}", e);
            }
            UnpackPhases.Stop(ref UnpackPhases.Create, createStarted);
            sawRoot |= path.IsRoot;
            last = member.Name;
            Entries++;
            progress?.Report(Entries, reader.Offset);
        }
        if (Entries == 0) throw new UserFacingException($"{_archiveName}: the archive has no entries");
        if (!sawRoot) _writer.Directory(ExportPath.Root, EntryMeta.Root(0x1ed)); // the export root always has a row
        _writer.FinishDirectoryTimes();
        Flush();
    }

    /// <summary>Waits for the last files' contents and rows: a failure there names the archive too.</summary>
    private void Flush()
    {
        try
        {
            _writer.Flush();
        }
        catch (UserFacingException e) when (!e.Message.StartsWith(_archiveName + ": ", StringComparison.Ordinal))
        {
            throw new UserFacingException($"{_archiveName}: {e.Message}", e);
        }
    }

    private static bool IsArchiveError(Exception e) =>
        e is InvalidDataException or EndOfStreamException || (e is IOException && e is not PosixException);

    private UserFacingException Corrupt(long offset, string? last, Exception e) =>
        new($"{_archiveName}: corrupt or truncated archive at byte {offset} of the tar stream" +
            (last is null ? " (before the first entry)" : $" (after entry '{ArchiveText.Shown(last)}')") + $": {e.Message}", e);

    private void Apply(TarMember member, ExportPath path)
    {
        uint perms = member.Mode;
        var xattrs = member.Pax.Count == 0 ? null : TarMemberXattrs.Of(member, $"{_archiveName}: entry '{ArchiveText.Shown(member.Name)}'", ref perms);
        var meta = new EntryMeta(member.Uid, member.Gid, perms, 0, member.Mtime, xattrs);
        if (path.IsRoot && member.Type != TarMemberType.Directory)
            throw new UserFacingException($"{_archiveName}: entry '{ArchiveText.Shown(member.Name)}' is {KindName(member.Type)} in place of the export root, which must be a directory");
        switch (member.Type)
        {
            case TarMemberType.Directory:
                _writer.Directory(path, meta);
                break;
            case TarMemberType.File or TarMemberType.Contiguous:
                _writer.RegularFile(path, member.Data, meta);
                break;
            case TarMemberType.Symlink:
                _writer.Symlink(path, member.LinkName, meta);
                break;
            case TarMemberType.HardLink:
                var target = ExportPath.Parse(member.LinkName, $"{_archiveName}: hard link '{member.Name}' target");
                _writer.HardLink(path, target);
                break;
            case TarMemberType.CharDevice or TarMemberType.BlockDevice:
                long rdev = Posix.Native.Libc.MakeDev(member.DevMajor, member.DevMinor);
                _writer.Special(path, member.Type == TarMemberType.CharDevice ? EntryKind.CharDevice : EntryKind.BlockDevice, meta with { Rdev = rdev });
                break;
            case TarMemberType.Fifo:
                _writer.Special(path, EntryKind.Fifo, meta);
                break;
            default:
                throw new UserFacingException($"{_archiveName}: entry '{ArchiveText.Shown(member.Name)}' has tar type '{member.Type.Flag()}', which a root filesystem archive should not contain");
        }
    }

    private static string KindName(TarMemberType type) => type switch
    {
        TarMemberType.File or TarMemberType.Contiguous => "a file",
        TarMemberType.HardLink => "a hard link",
        TarMemberType.Symlink => "a symlink",
        TarMemberType.CharDevice or TarMemberType.BlockDevice => "a device node",
        TarMemberType.Fifo => "a FIFO",
        _ => $"an entry of tar type '{type.Flag()}'",
    };
}
