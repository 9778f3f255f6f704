using System.CommandLine;
using System.Text.Json;
using Apex.Client;

namespace Apex.Cli;

/// <summary><c>apex approve</c> and <c>apex reject</c>: answer a tool call that waits for approval; and the prompt <c>apex ask</c> shows for one.</summary>
internal static class ApprovalCommands
{
    private const string NoApproval = "No tool call of yours waits for approval with that run and call id (`apex runs <thread>` lists runs).";

    public static Command Approve(GlobalOptions options)
    {
        var (run, call) = Ids();
        var arguments = new Option<string?>("--arguments") { Description = "Run the tool with these arguments instead (a JSON object)" };
        var command = new Command("approve", "Approve a tool call that waits: the run resumes and the tool runs") { run, call, arguments };
        options.SetAction(command, async (parse, output, ct) =>
        {
            var session = await options.SessionAsync(parse, ct);
            JsonElement? edited = null;
            if (parse.GetValue(arguments) is { } json)
            {
                try
                {
                    using var document = JsonDocument.Parse(json);
                    edited = document.RootElement.Clone();
                }
                catch (JsonException e)
                {
                    throw new CliException($"--arguments is not JSON: {e.Message}");
                }
            }
            var approval = await session.Client.ApproveToolAsync(parse.GetValue(run)!, parse.GetValue(call)!, edited, ct).OrNotFound(NoApproval);
            return Done(output, approval);
        });
        return command;
    }

    public static Command Reject(GlobalOptions options)
    {
        var (run, call) = Ids();
        var reason = new Option<string?>("--reason") { Description = "What the model is told about why" };
        var command = new Command("reject", "Reject a tool call that waits: it does not run, and the model is told (with the reason)") { run, call, reason };
        options.SetAction(command, async (parse, output, ct) =>
        {
            var session = await options.SessionAsync(parse, ct);
            var approval = await session.Client.RejectToolAsync(parse.GetValue(run)!, parse.GetValue(call)!, parse.GetValue(reason), ct).OrNotFound(NoApproval);
            return Done(output, approval);
        });
        return command;
    }

    /// <summary>
    /// <c>apex ask</c>'s question on stdin: <c>y</c> approves, <c>n [reason]</c> rejects, <c>e {json}</c> approves with edited
    /// arguments; an empty line or the end of input leaves the call waiting. False when it was left waiting.
    /// </summary>
    public static async Task<bool> PromptAsync(Session session, Output output, ApprovalRequested asked, CancellationToken cancellationToken)
    {
        while (true)
        {
            output.Note($"Run {asked.Data.Tool} {asked.Data.Arguments.GetRawText()}? [y]es, [n]o [reason], [e]dit {{json}}, or Enter to leave it waiting:");
            var line = (await Console.In.ReadLineAsync(cancellationToken))?.Trim();
            if (string.IsNullOrEmpty(line)) return false;
            var (word, rest) = line.IndexOf(' ') is var space and > 0 ? (line[..space], line[(space + 1)..].Trim()) : (line, "");
            try
            {
                switch (word.ToLowerInvariant())
                {
                    case "y" or "yes":
                        await session.Client.ApproveToolAsync(asked.RunId!, asked.Data.CallId, cancellationToken: cancellationToken);
                        return true;
                    case "n" or "no":
                        await session.Client.RejectToolAsync(asked.RunId!, asked.Data.CallId, rest.Length == 0 ? null : rest, cancellationToken);
                        return true;
                    case "e" or "edit":
                        using (var document = JsonDocument.Parse(rest))
                            await session.Client.ApproveToolAsync(asked.RunId!, asked.Data.CallId, document.RootElement.Clone(), cancellationToken);
                        return true;
                    default:
                        output.Error($"'{word}' is not y, n or e.");
                        break;
                }
            }
            catch (JsonException e)
            {
                output.Error($"The edited arguments are not JSON: {e.Message}");
            }
            catch (ApexApiException e) when (e.Status == System.Net.HttpStatusCode.Conflict)
            {
                // Answered elsewhere (another device, the web app) or timed out meanwhile: the run's events say how.
                output.Note(Output.Describe(e));
                return true;
            }
        }
    }

    private static (Argument<string> Run, Argument<string> Call) Ids() =>
        (new Argument<string>("run") { Description = "The run that waits" }, new Argument<string>("call") { Description = "The tool call's id (shown with the request)" });

    private static int Done(Output output, ApprovalDto approval)
    {
        if (output.Json) output.WriteJson(approval, ApexJsonContext.Default.ApprovalDto);
        else output.Line($"{approval.Tool} {approval.Status}; run {approval.RunId} resumes (`apex resume {approval.ThreadId}` follows it).");
        return ExitCodes.Ok;
    }
}
