namespace Apex.Tests.Infrastructure;

/// <summary>Where the repository and its projects' build outputs are, seen from the test assembly.</summary>
internal static class BuildOutput
{
    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Apex.slnx"))) return dir.FullName;
        return AppContext.BaseDirectory;
    }

    /// <summary>A project's own build output (<c>src/&lt;project&gt;/bin/…</c>), in the configuration the tests were built in.</summary>
    public static string ProjectDll(string project, string dll)
    {
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";
        var path = Path.Combine(RepositoryRoot(), "src", project, "bin", configuration, "net10.0", dll);
        return File.Exists(path) ? path : throw new FileNotFoundException($"Build {project} first.", path);
    }
}
