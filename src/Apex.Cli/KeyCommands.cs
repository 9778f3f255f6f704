using System.CommandLine;
using Apex.Client;
using Spectre.Console;

namespace Apex.Cli;

/// <summary><c>apex keys</c>: list, create and delete API keys (<c>/api/keys</c>).</summary>
internal static class KeyCommands
{
    private const string NoKeysRoute = "This server has no /api/keys: it predates API keys.";

    public static Command Keys(GlobalOptions options)
    {
        var list = new Command("list", "List your API keys (their prefixes; a key is shown only when created)");
        options.SetAction(list, ListAsync);
        var command = new Command("keys", "Your API keys: a key is a bearer wherever a token is (e.g. `apex login --api-key`)") { list, Create(options), Delete(options) };
        options.SetAction(command, ListAsync);
        return command;

        async Task<int> ListAsync(ParseResult parse, Output output, CancellationToken ct)
        {
            var session = await options.SessionAsync(parse, ct);
            var keys = await session.Client.ListApiKeysAsync(ct).OrNotFound(NoKeysRoute);
            if (output.Json)
            {
                output.WriteJson(keys, ApexJsonContext.Default.PageApiKeyDto);
                return ExitCodes.Ok;
            }
            if (keys.Items.Count == 0)
            {
                output.Note("No API keys: `apex keys create <name>` makes one.");
                return ExitCodes.Ok;
            }
            var table = new Table().AddColumns("id", "name", "prefix", "created", "expires", "last used");
            foreach (var k in keys.Items)
                table.AddRow(Markup.Escape(k.Id), Markup.Escape(k.Name), Markup.Escape(k.Prefix), Output.When(k.CreatedAt), Output.When(k.ExpiresAt), Output.When(k.LastUsedAt));
            output.Out.Write(table);
            return ExitCodes.Ok;
        }
    }

    private static Command Create(GlobalOptions options)
    {
        var name = new Argument<string>("name") { Description = "What the key is for" };
        var expires = new Option<DateTimeOffset?>("--expires-at") { Description = "When the key stops working (ISO 8601; default: never)" };
        var command = new Command("create", "Create an API key; it is shown once") { name, expires };
        options.SetAction(command, async (parse, output, ct) =>
        {
            var session = await options.SessionAsync(parse, ct);
            var key = await session.Client.CreateApiKeyAsync(parse.GetValue(name)!, parse.GetValue(expires), ct).OrNotFound(NoKeysRoute);
            if (output.Json) output.WriteJson(key, ApexJsonContext.Default.CreatedApiKeyDto);
            else
            {
                output.Line($"Created key [bold]{Markup.Escape(key.Name)}[/] ({Markup.Escape(key.Id)}). Copy it now, it is not shown again:");
                Console.Out.WriteLine(key.Key);
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Delete(GlobalOptions options)
    {
        var id = new Argument<string>("id") { Description = "The key's id (from `apex keys`)" };
        var command = new Command("delete", "Delete (revoke) an API key") { id };
        options.SetAction(command, async (parse, output, ct) =>
        {
            var session = await options.SessionAsync(parse, ct);
            await session.Client.DeleteApiKeyAsync(parse.GetValue(id)!, ct).OrNotFound($"No key {parse.GetValue(id)} of yours (or this server has no /api/keys).");
            if (!output.Json) output.Line($"Deleted key {Markup.Escape(parse.GetValue(id)!)}.");
            return ExitCodes.Ok;
        });
        return command;
    }
}
