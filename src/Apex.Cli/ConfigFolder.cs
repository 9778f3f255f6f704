using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Apex.Client;

namespace Apex.Cli;

/// <summary>What <c>apex login</c> keeps: the server, and either the session's tokens or an API key.</summary>
internal sealed record Credentials(string Server, TokenResponse? Tokens = null, DateTimeOffset? AccessTokenExpiresAt = null, string? ApiKey = null);

/// <summary>
/// The user's config folder (<c>APEX_CONFIG_DIR</c>, else <c>$XDG_CONFIG_HOME/apex</c>, else <c>~/.config/apex</c>): the
/// credentials and the last seen <c>seq</c> of each thread. The folder is 0700 and every file 0600, since the credentials are a
/// bearer for the account. Writers replace a file whole (write aside, then rename) under one lock file, so two <c>apex</c>
/// processes never interleave a write or spend the same refresh token.
/// </summary>
internal sealed class ConfigFolder
{
    private const UnixFileMode FolderMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode FileMode0600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private static readonly TimeSpan LockWait = TimeSpan.FromSeconds(10);

    public ConfigFolder(string path) => Path = path;

    public string Path { get; }

    public string CredentialsPath => System.IO.Path.Combine(Path, "credentials.json");

    private string CursorsPath => System.IO.Path.Combine(Path, "threads.json");

    private string LockPath => System.IO.Path.Combine(Path, ".lock");

    public static ConfigFolder FromEnvironment()
    {
        if (Environment.GetEnvironmentVariable("APEX_CONFIG_DIR") is { Length: > 0 } explicitPath) return new ConfigFolder(explicitPath);
        var xdg = Environment.GetEnvironmentVariable("XDG_CONFIG_HOME");
        var root = string.IsNullOrEmpty(xdg) ? System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config") : xdg;
        return new ConfigFolder(System.IO.Path.Combine(root, "apex"));
    }

    public Credentials? ReadCredentials() => Read(CredentialsPath, CliJsonContext.Default.Credentials);

    public void WriteCredentials(Credentials credentials) => Write(CredentialsPath, credentials, CliJsonContext.Default.Credentials);

    public bool DeleteCredentials()
    {
        if (!File.Exists(CredentialsPath)) return false;
        File.Delete(CredentialsPath);
        return true;
    }

    /// <summary>The last <c>seq</c> seen on a thread by any command, or null when none was.</summary>
    public long? LastSeenSeq(string threadId) =>
        Read(CursorsPath, CliJsonContext.Default.DictionaryStringInt64) is { } cursors && cursors.TryGetValue(threadId, out var seq) ? seq : null;

    /// <summary>Remembers the last <c>seq</c> seen on a thread; a lower one than stored (an older replay) never moves it back.</summary>
    public async Task RememberSeqAsync(string threadId, long seq, CancellationToken cancellationToken)
    {
        using var held = await LockAsync(cancellationToken);
        var cursors = Read(CursorsPath, CliJsonContext.Default.DictionaryStringInt64) ?? [];
        if (cursors.TryGetValue(threadId, out var stored) && stored >= seq) return;
        cursors[threadId] = seq;
        Write(CursorsPath, cursors, CliJsonContext.Default.DictionaryStringInt64);
    }

    /// <summary>Holds the folder's lock file until disposed; waits while another apex process holds it.</summary>
    public async Task<IDisposable> LockAsync(CancellationToken cancellationToken)
    {
        EnsureFolder();
        var deadline = DateTimeOffset.UtcNow + LockWait;
        while (true)
        {
            try
            {
                return new FileStream(LockPath, Options(FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            }
            catch (IOException) when (DateTimeOffset.UtcNow < deadline)
            {
                // Another apex process holds the lock for the few milliseconds of its write or refresh.
                await Task.Delay(50, cancellationToken);
            }
        }
    }

    private static T? Read<T>(string path, JsonTypeInfo<T> type) where T : class
    {
        if (!File.Exists(path)) return null;
        try
        {
            return JsonSerializer.Deserialize(File.ReadAllBytes(path), type);
        }
        catch (JsonException e)
        {
            throw new CliException($"{path} is not valid JSON ({e.Message}); delete it and sign in again.");
        }
    }

    private void Write<T>(string path, T value, JsonTypeInfo<T> type)
    {
        EnsureFolder();
        var aside = path + ".tmp";
        File.Delete(aside);
        // Created 0600 from the start: the file is never readable by others, not even between its creation and a chmod.
        using (var stream = new FileStream(aside, Options(FileMode.CreateNew, FileAccess.Write, FileShare.None)))
            JsonSerializer.Serialize(stream, value, type);
        File.Move(aside, path, overwrite: true);
    }

    private void EnsureFolder()
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(Path);
            return;
        }
        if (!Directory.Exists(Path)) Directory.CreateDirectory(Path, FolderMode);
        else if (File.GetUnixFileMode(Path) != FolderMode) File.SetUnixFileMode(Path, FolderMode);
    }

    private static FileStreamOptions Options(FileMode mode, FileAccess access, FileShare share)
    {
        var options = new FileStreamOptions { Mode = mode, Access = access, Share = share };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = FileMode0600;
        return options;
    }
}

/// <summary>The CLI's own files (credentials, cursors, its result lines); the wire types stay in <see cref="ApexJsonContext"/>.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web,
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    WriteIndented = false)]
[JsonSerializable(typeof(Credentials))]
[JsonSerializable(typeof(Dictionary<string, long>))]
[JsonSerializable(typeof(LoginResult))]
internal sealed partial class CliJsonContext : JsonSerializerContext;

/// <summary>What <c>apex login --json</c> prints.</summary>
internal sealed record LoginResult(string Server, string Method, UserDto User);

/// <summary>An expected failure, said to the user in one sentence (no stack trace).</summary>
internal sealed class CliException(string message, int exitCode = ExitCodes.Error) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

/// <summary>The exit codes scripts can rely on.</summary>
internal static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>Any error: bad input, not signed in, the server unreachable or refusing.</summary>
    public const int Error = 1;
    /// <summary>The run ended <c>run_failed</c>.</summary>
    public const int RunFailed = 3;
    /// <summary>The run ended <c>run_cancelled</c> (cancelled elsewhere, or by the server).</summary>
    public const int RunCancelled = 4;
    /// <summary>The run waits for a tool approval that was not given here (<c>apex approve</c> / <c>apex reject</c> answer it).</summary>
    public const int Waiting = 5;
    /// <summary>Interrupted with Ctrl+C (SIGINT), as a shell reports 128 + 2.</summary>
    public const int Interrupted = 130;
}
