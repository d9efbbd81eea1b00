namespace RootfsExport.TestSupport;

/// <summary>
/// hello.c built for a guest: a static x86-64 program with no libc, a few kilobytes, printing its message
/// (`hello sleep`: every second, for at most 10 minutes). The dev-loop tests put it into a package as
/// /usr/bin/hello, built again with another message as a rebuilt package.
/// </summary>
public static class HelloProgram
{
    public static byte[] Compile(string work, string message)
    {
        var binary = Path.Combine(work, $"hello-{message.Replace(' ', '-')}");
        Run.Program(Run.RequirePeer("gcc"), ["-static", "-nostdlib", "-fno-pie", "-no-pie", "-Os", "-fno-stack-protector", "-fcf-protection=none",
            $"-DMSG=\"{message}\"", "-o", binary, Path.Combine(Repository.Root, "tests", "TestSupport", "hello.c")]).ShouldSucceed();
        return File.ReadAllBytes(binary);
    }
}
