using System.CommandLine;
using Apex.Client;

namespace Apex.Cli;

/// <summary>The options every command takes, and the one way a command runs: its expected failures become a message and an exit code.</summary>
internal sealed class GlobalOptions
{
    public Option<string?> Server { get; } = new("--server")
    {
        Description = $"The Apex server (default: APEX_SERVER, else the one signed in to, else {Session.DefaultServer})",
        Recursive = true,
    };

    public Option<bool> Json { get; } = new("--json")
    {
        Description = "Machine-readable output: a JSON document, or one JSON object per line for events",
        Recursive = true,
    };

    public void SetAction(Command command, Func<ParseResult, Output, CancellationToken, Task<int>> action) =>
        command.SetAction(async (parse, cancellationToken) =>
        {
            var output = new Output(parse.GetValue(Json));
            try
            {
                return await action(parse, output, cancellationToken);
            }
            catch (CliException e)
            {
                output.Error(e.Message);
                return e.ExitCode;
            }
            catch (ApexApiException e)
            {
                output.Error(Output.Describe(e));
                return ExitCodes.Error;
            }
            catch (HttpRequestException e)
            {
                output.Error($"Cannot reach the server ({e.Message}). Is it running? Give its address with --server or APEX_SERVER.");
                return ExitCodes.Error;
            }
            catch (Exception e) when (e is System.Text.Json.JsonException or NotSupportedException)
            {
                output.Error($"The server's answer was not what this apex expects ({e.Message}); is --server an Apex server of the same version?");
                return ExitCodes.Error;
            }
        });

    /// <summary>The signed-in session for the server the command names.</summary>
    public Task<Session> SessionAsync(ParseResult parse, CancellationToken cancellationToken) => Session.OpenAsync(parse.GetValue(Server), cancellationToken);
}

internal static class NotFoundExtensions
{
    /// <summary>A 404 said in the words of the command that met it (a missing thread, a missing route) instead of the bare status.</summary>
    public static async Task<T> OrNotFound<T>(this Task<T> call, string message)
    {
        try
        {
            return await call;
        }
        catch (ApexApiException e) when (e.Status == System.Net.HttpStatusCode.NotFound)
        {
            throw new CliException(message);
        }
    }

    public static async Task OrNotFound(this Task call, string message) => await OrNotFound(WithResult(call), message);

    private static async Task<bool> WithResult(Task call)
    {
        await call;
        return true;
    }
}
