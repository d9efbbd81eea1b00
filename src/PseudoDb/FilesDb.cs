using Microsoft.Data.Sqlite;

namespace RootfsExport.PseudoDb;

/// <summary>
/// pseudo's files.db: read and written with pseudo's semantics (hard links share dev/ino, xattrs keyed by
/// dev/ino, renames rewrite whole subtrees). Writes happen inside <see cref="InTransaction"/>; a crash or
/// exception leaves the database as it was before (SQLite rollback journal).
/// </summary>
public sealed class FilesDb : IDisposable
{
    private readonly SqliteConnection _conn;
    private readonly Dictionary<string, SqliteCommand> _commands = new();
    private int _depth;

    public string Path { get; }

    private FilesDb(string path, SqliteConnection conn)
    {
        Path = path;
        _conn = conn;
    }

    /// <summary>Opens files.db; creates it (and logs.db beside it) with pseudo's schema when absent.</summary>
    public static FilesDb Open(PseudoState state, bool create = true)
    {
        if (!create && !File.Exists(state.FilesDbPath))
            throw new UserFacingException($"no pseudo database at {state.FilesDbPath} (was this export made by rootfs-export unpack or runqemu-extract-sdk?)");
        Directory.CreateDirectory(state.Directory);
        if (!File.Exists(state.LogsDbPath)) CreateDatabase(state.LogsDbPath, Schema.LogsDb);
        return OpenFile(state.FilesDbPath, create);
    }

    /// <summary>Opens (or creates) a files.db at an explicit path, e.g. one being built beside the export.</summary>
    public static FilesDb OpenFile(string path, bool create = true)
    {
        bool isNew = !File.Exists(path);
        if (isNew && !create) throw new UserFacingException($"no pseudo database at {path}");
        var conn = Connect(path);
        var db = new FilesDb(path, conn);
        try
        {
            if (isNew) db.InTransaction(() => { foreach (var sql in Schema.FilesDb) db.Exec(sql); });
            else db.Validate();
        }
        catch
        {
            db.Dispose();
            throw;
        }
        return db;
    }

    private static SqliteConnection Connect(string path)
    {
        var conn = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false, Mode = SqliteOpenMode.ReadWriteCreate }.ToString());
        try
        {
            conn.Open();
            using var cmd = conn.CreateCommand();
            // Rollback journal (not WAL): the file stays a plain database pseudo's in-memory build can load,
            // and an interrupted transaction is rolled back by whoever opens it next, pseudo included.
            cmd.CommandText = "PRAGMA journal_mode=DELETE; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=2000;";
            cmd.ExecuteNonQuery();
        }
        catch (SqliteException e) when (e.SqliteErrorCode is 5 or 6)
        {
            conn.Dispose();
            throw new UserFacingException($"{path} is locked by another process (a pseudo server?): {e.Message}");
        }
        catch (SqliteException e)
        {
            conn.Dispose();
            throw new UserFacingException($"{path} is not a usable SQLite database: {e.Message}");
        }
        return conn;
    }

    private static void CreateDatabase(string path, string[] statements)
    {
        using var conn = Connect(path);
        using var cmd = conn.CreateCommand();
        cmd.CommandText = "BEGIN; " + string.Join("; ", statements) + "; COMMIT;";
        cmd.ExecuteNonQuery();
    }

    /// <summary>Checks that an existing database is pseudo's files.db at a version we understand.</summary>
    private void Validate()
    {
        try
        {
            var tables = new HashSet<string>();
            using (var cmd = Command("SELECT name FROM sqlite_master WHERE type='table'"))
            using (var r = cmd.ExecuteReader())
                while (r.Read()) tables.Add(r.GetString(0));
            foreach (var t in new[] { "files", "xattrs", "migrations" })
                if (!tables.Contains(t)) throw new UserFacingException($"{Path}: table '{t}' is missing: not a pseudo files.db");
            var version = Scalar("SELECT MAX(version) FROM migrations");
            if (version is not long v || v < Schema.FilesVersion)
                throw new UserFacingException($"{Path}: migrations version is {version ?? "none"}, expected {Schema.FilesVersion} (pseudo 1.9); let pseudo upgrade it first (run any command under pseudo)");
        }
        catch (SqliteException e)
        {
            throw new UserFacingException($"{Path}: cannot read the database: {e.Message}");
        }
    }

    // ---- transactions ----

    /// <summary>Runs the action in one transaction (nested calls join the outer one).</summary>
    public void InTransaction(Action action)
    {
        using var tx = BeginTransaction();
        action();
        tx.Commit();
    }

    /// <summary>
    /// Opens a transaction (or joins the one open): <see cref="Transaction.Commit"/> ends it, disposing it
    /// uncommitted rolls the outermost one back.
    /// </summary>
    public Transaction BeginTransaction()
    {
        if (_depth++ == 0)
        {
            try { Exec("BEGIN IMMEDIATE"); }
            catch { _depth--; throw; }
        }
        return new Transaction(this);
    }

    public sealed class Transaction : IDisposable
    {
        private FilesDb? _db;
        private bool _ok;

        internal Transaction(FilesDb db) => _db = db;

        public void Commit()
        {
            _ok = true;
            Dispose();
        }

        public void Dispose()
        {
            var db = Interlocked.Exchange(ref _db, null);
            if (db != null && --db._depth == 0) db.Exec(_ok ? "COMMIT" : "ROLLBACK");
        }
    }

    public T InTransaction<T>(Func<T> func)
    {
        T result = default!;
        InTransaction(() => { result = func(); });
        return result;
    }

    // ---- files ----

    public FileRow? GetByPath(string path)
    {
        var cmd = Bind("SELECT path, dev, ino, uid, gid, mode, rdev FROM files WHERE path = $p ORDER BY id LIMIT 1", ("$p", path));
        using var r = cmd.ExecuteReader();
        return r.Read() ? ReadRow(r) : null;
    }

    public List<FileRow> GetByDevIno(long dev, long ino)
    {
        var cmd = Bind("SELECT path, dev, ino, uid, gid, mode, rdev FROM files WHERE dev = $d AND ino = $i ORDER BY id", ("$d", dev), ("$i", ino));
        return ReadRows(cmd);
    }

    public List<FileRow> All()
    {
        using var cmd = Command("SELECT path, dev, ino, uid, gid, mode, rdev FROM files ORDER BY path");
        return ReadRows(cmd);
    }

    /// <summary>Rows at or below a path (the path itself and everything under path/).</summary>
    public List<FileRow> Under(string path)
    {
        using var cmd = Command("SELECT path, dev, ino, uid, gid, mode, rdev FROM files WHERE path = $p OR (path > $lo AND path < $hi) ORDER BY path");
        AddTreeParameters(cmd, path);
        return ReadRows(cmd);
    }

    public long Count() => (long)Scalar("SELECT COUNT(*) FROM files")!;

    /// <summary>
    /// Records a newly created object: replaces any row for this path, and any stale row still holding this
    /// dev/ino (a reused inode) with its xattrs — pseudo aborts clients on such rows.
    /// </summary>
    public void PutNew(FileRow row)
    {
        DeleteStale(row.Path, row.Dev, row.Ino);
        Insert(row);
    }

    /// <summary>
    /// Records an object just created where no row can hold its path or its inode: a new, empty files.db
    /// that nothing was removed from since (a staged unpack). One INSERT, where PutNew needs three statements.
    /// </summary>
    public void PutCreated(FileRow row) => Insert(row);

    /// <summary>Records another name of an existing inode (a hard link): same dev/ino, own path.</summary>
    public void PutLink(FileRow row)
    {
        var cmd = Bind("DELETE FROM files WHERE path = $p", ("$p", row.Path));
        cmd.ExecuteNonQuery();
        Insert(row);
    }

    /// <summary>Sets the row for a path to exactly these values (keeps other links of the inode in step).</summary>
    public void Put(FileRow row)
    {
        var existingLinks = GetByDevIno(row.Dev, row.Ino);
        if (existingLinks.Count > 0 && existingLinks.Any(l => l.Path != row.Path))
        {
            PutLink(row);
            UpdateOwnership(row.Dev, row.Ino, row.Uid, row.Gid, row.Mode, row.Rdev);
        }
        else PutNew(row);
    }

    private void Insert(FileRow row)
    {
        Bind("INSERT INTO files (path, dev, ino, uid, gid, mode, rdev, deleting) VALUES ($p, $d, $i, $u, $g, $m, $r, 0)",
            ("$p", row.Path), ("$d", row.Dev), ("$i", row.Ino), ("$u", (long)row.Uid), ("$g", (long)row.Gid), ("$m", (long)row.Mode), ("$r", row.Rdev))
            .ExecuteNonQuery();
    }

    private void DeleteStale(string path, long dev, long ino)
    {
        var cmd = Bind("DELETE FROM files WHERE path = $p OR (dev = $d AND ino = $i)", ("$p", path), ("$d", dev), ("$i", ino));
        cmd.ExecuteNonQuery();
        DeleteXattrs(dev, ino); // xattrs of the stale inode; other orphans are check's business
    }

    /// <summary>chown/chmod as pseudo applies them: to every link of the inode. The type bits are kept.</summary>
    public void UpdateOwnership(long dev, long ino, uint uid, uint gid, uint mode, long? rdev = null)
    {
        Bind("UPDATE files SET uid = $u, gid = $g, mode = (mode & 61440) | ($m & 4095), rdev = coalesce($r, rdev) WHERE dev = $d AND ino = $i",
            ("$u", (long)uid), ("$g", (long)gid), ("$m", (long)mode), ("$r", rdev), ("$d", dev), ("$i", ino))
            .ExecuteNonQuery();
    }

    /// <summary>Removes one name; the inode's xattrs go with its last name.</summary>
    public void DeletePath(string path)
    {
        var row = GetByPath(path);
        var cmd = Bind("DELETE FROM files WHERE path = $p", ("$p", path));
        cmd.ExecuteNonQuery();
        if (row != null && GetByDevIno(row.Dev, row.Ino).Count == 0) DeleteXattrs(row.Dev, row.Ino);
    }

    /// <summary>Removes a path and everything recorded under it.</summary>
    public void DeleteTree(string path)
    {
        using var cmd = Command("DELETE FROM files WHERE path = $p OR (path > $lo AND path < $hi)");
        AddTreeParameters(cmd, path);
        cmd.ExecuteNonQuery();
        ClearUnusedXattrs();
    }

    /// <summary>Renames a path and its subtree (pseudo's pdb_rename_file, without its replace() quirk).</summary>
    public void RenameTree(string oldPath, string newPath)
    {
        using var cmd = Command("UPDATE files SET path = $new || substr(path, length($p) + 1), deleting = 0 WHERE path = $p OR (path > $lo AND path < $hi)");
        AddTreeParameters(cmd, oldPath);
        cmd.Parameters.AddWithValue("$new", newPath);
        cmd.ExecuteNonQuery();
    }

    private static void AddTreeParameters(SqliteCommand cmd, string path)
    {
        // Children sort between "path/" and "path0" ('0' follows '/'), as pseudo's own rename query uses.
        var prefix = path == "/" ? "" : path;
        cmd.Parameters.AddWithValue("$p", path);
        cmd.Parameters.AddWithValue("$lo", prefix + "/");
        cmd.Parameters.AddWithValue("$hi", prefix + "0");
    }

    // ---- xattrs ----

    public List<XattrRow> GetXattrs(long dev, long ino)
    {
        var cmd = Bind("SELECT name, CAST(value AS BLOB) FROM xattrs WHERE dev = $d AND ino = $i ORDER BY name", ("$d", dev), ("$i", ino));
        var result = new List<XattrRow>();
        using var r = cmd.ExecuteReader();
        while (r.Read()) result.Add(new XattrRow(dev, ino, r.GetString(0), r.IsDBNull(1) ? [] : (byte[])r.GetValue(1)));
        return result;
    }

    public byte[]? GetXattr(long dev, long ino, string name) =>
        GetXattrs(dev, ino).FirstOrDefault(x => x.Name == name)?.Value;

    public List<XattrRow> AllXattrs()
    {
        using var cmd = Command("SELECT dev, ino, name, CAST(value AS BLOB) FROM xattrs ORDER BY dev, ino, name");
        var result = new List<XattrRow>();
        using var r = cmd.ExecuteReader();
        while (r.Read()) result.Add(new XattrRow(r.GetInt64(0), r.GetInt64(1), r.GetString(2), r.IsDBNull(3) ? [] : (byte[])r.GetValue(3)));
        return result;
    }

    /// <summary>Sets one xattr. Stored as TEXT holding the raw bytes, exactly as pseudo binds it.</summary>
    public void SetXattr(long dev, long ino, string name, byte[] value)
    {
        RemoveXattr(dev, ino, name);
        var cmd = Bind("INSERT INTO xattrs (dev, ino, name, value) VALUES ($d, $i, $n, CAST($v AS TEXT))", ("$d", dev), ("$i", ino), ("$n", name), ("$v", value));
        cmd.ExecuteNonQuery();
    }

    public bool RemoveXattr(long dev, long ino, string name)
    {
        var cmd = Bind("DELETE FROM xattrs WHERE dev = $d AND ino = $i AND name = $n", ("$d", dev), ("$i", ino), ("$n", name));
        return cmd.ExecuteNonQuery() > 0;
    }

    public void DeleteXattrs(long dev, long ino)
    {
        var cmd = Bind("DELETE FROM xattrs WHERE dev = $d AND ino = $i", ("$d", dev), ("$i", ino));
        cmd.ExecuteNonQuery();
    }

    /// <summary>Drops xattrs of inodes no files row refers to any more (pseudo's pdb_clear_unused_xattrs).</summary>
    public void ClearUnusedXattrs() =>
        Exec("DELETE FROM xattrs WHERE NOT EXISTS (SELECT 1 FROM files WHERE files.dev = xattrs.dev AND files.ino = xattrs.ino)");

    // ---- plumbing ----

    private static FileRow ReadRow(SqliteDataReader r) => new(
        r.GetString(0), r.GetInt64(1), r.GetInt64(2), (uint)r.GetInt64(3), (uint)r.GetInt64(4), (uint)r.GetInt64(5),
        r.IsDBNull(6) ? 0 : r.GetInt64(6));

    private static List<FileRow> ReadRows(SqliteCommand cmd)
    {
        var rows = new List<FileRow>();
        using var r = cmd.ExecuteReader();
        while (r.Read()) rows.Add(ReadRow(r));
        return rows;
    }

    /// <summary>A cached prepared statement with its parameters set (null binds SQL NULL).</summary>
    private SqliteCommand Bind(string sql, params (string Name, object? Value)[] values)
    {
        var cmd = Prepared(sql, values.Select(v => v.Name).ToArray());
        foreach (var (name, value) in values) cmd.Parameters[name].Value = value ?? DBNull.Value;
        return cmd;
    }

    private SqliteCommand Prepared(string sql, params string[] parameters)
    {
        if (_commands.TryGetValue(sql, out var cmd)) return cmd;
        cmd = _conn.CreateCommand();
        cmd.CommandText = sql;
        foreach (var p in parameters) cmd.Parameters.Add(new SqliteParameter { ParameterName = p });
        cmd.Prepare();
        _commands[sql] = cmd;
        return cmd;
    }

    private SqliteCommand Command(string sql)
    {
        var cmd = _conn.CreateCommand();
        cmd.CommandText = sql;
        return cmd;
    }

    private void Exec(string sql)
    {
        using var cmd = Command(sql);
        cmd.ExecuteNonQuery();
    }

    private object? Scalar(string sql)
    {
        using var cmd = Command(sql);
        var v = cmd.ExecuteScalar();
        return v is DBNull ? null : v;
    }

    public void Dispose()
    {
        foreach (var c in _commands.Values) c.Dispose();
        _commands.Clear();
        _conn.Dispose();
    }
}
