namespace RootfsExport.PseudoDb;

/// <summary>
/// pseudo 1.9's database layout, statement for statement as pseudo_db.c creates it
/// (files migration 8, logs migration 7). pseudo replays any migration above MAX(version),
/// so a database we create must carry the "initial setup" rows or pseudo breaks it.
/// </summary>
public static class Schema
{
    public const int FilesVersion = 8;
    public const int LogsVersion = 7;

    public static readonly string[] FilesDb =
    [
        "CREATE TABLE files ( id INTEGER PRIMARY KEY, path VARCHAR, dev INTEGER, ino INTEGER, uid INTEGER, gid INTEGER, mode INTEGER, rdev INTEGER, deleting INTEGER )",
        "CREATE TABLE xattrs ( id INTEGER PRIMARY KEY, dev INTEGER, ino INTEGER, name VARCHAR, value VARCHAR )",
        "CREATE TABLE migrations ( id INTEGER PRIMARY KEY, version INTEGER, stamp INTEGER, sql VARCHAR )",
        "CREATE INDEX files__path_dev_ino ON files ( path, dev, ino )",
        "CREATE INDEX files__dev_ino ON files ( dev, ino )",
        "CREATE INDEX xattrs_dev_ino ON xattrs ( dev, ino )",
        "CREATE INDEX xattrs_dev_ino_name ON xattrs ( dev, ino, name )",
        "CREATE INDEX migration__version ON migrations ( version )",
        $"INSERT INTO migrations (version, stamp, sql) VALUES ({FilesVersion}, -1, 'N/A (initial setup)')",
    ];

    public static readonly string[] LogsDb =
    [
        "CREATE TABLE logs ( id INTEGER PRIMARY KEY, stamp INTEGER, op INTEGER, client INTEGER, fd INTEGER, dev INTEGER, ino INTEGER, mode INTEGER, path VARCHAR, result INTEGER, severity INTEGER, text VARCHAR, tag VARCHAR, uid INTEGER, gid INTEGER, access INTEGER, program VARCHAR, type INTEGER )",
        "CREATE TABLE migrations ( id INTEGER PRIMARY KEY, version INTEGER, stamp INTEGER, sql VARCHAR )",
        "CREATE INDEX migration__version ON migrations ( version )",
        $"INSERT INTO migrations (version, stamp, sql) VALUES ({LogsVersion}, -1, 'N/A (initial setup)')",
    ];
}
