using System.CommandLine;
using System.Net;
using Apex.Client;
using Spectre.Console;

namespace Apex.Cli;

/// <summary><c>apex login</c> and <c>apex logout</c>.</summary>
internal static class AccountCommands
{
    public static Command Login(GlobalOptions options)
    {
        var email = new Option<string?>("--email") { Description = "The account's email (asked when not given)" };
        var passwordStdin = new Option<bool>("--password-stdin") { Description = "Read the password from the first line of standard input" };
        var apiKey = new Option<string?>("--api-key") { Description = "Sign in with an API key (apex_…) instead of a password; it is stored as is" };
        var register = new Option<bool>("--register") { Description = "Create the account first" };
        var command = new Command("login", "Sign in and keep the session (a rotating refresh token) or an API key in the config folder")
        {
            email, passwordStdin, apiKey, register,
        };
        options.SetAction(command, async (parse, output, ct) =>
        {
            var config = ConfigFolder.FromEnvironment();
            var server = Session.ResolveServer(parse.GetValue(options.Server), null);
            using var client = Session.NewClient(server);
            var serverText = server.ToString().TrimEnd('/');
            UserDto user;
            string method;
            if (parse.GetValue(apiKey) is { } key)
            {
                if (parse.GetValue(register) || parse.GetValue(email) is not null || parse.GetValue(passwordStdin))
                    throw new CliException("--api-key signs in by itself: leave out --email, --password-stdin and --register.");
                client.UseApiKey(key.Trim());
                try
                {
                    user = await client.MeAsync(ct);
                }
                catch (ApexApiException e) when (e.Status == HttpStatusCode.Unauthorized)
                {
                    throw new CliException($"{serverText} refused the API key (401); nothing was stored.");
                }
                config.WriteCredentials(new Credentials(serverText, ApiKey: key.Trim()));
                method = "api_key";
            }
            else
            {
                var address = parse.GetValue(email) ?? Ask(output, "Email:", secret: false);
                var password = parse.GetValue(passwordStdin) ? Console.In.ReadLine() ?? "" : Ask(output, "Password:", secret: true);
                if (password.Length == 0) throw new CliException("No password given.");
                TokenResponse tokens;
                try
                {
                    tokens = parse.GetValue(register) ? await client.RegisterAsync(address, password, ct) : await client.LoginAsync(address, password, ct);
                }
                catch (ApexApiException e) when (e.Status == HttpStatusCode.Unauthorized)
                {
                    throw new CliException("Wrong email or password.");
                }
                config.WriteCredentials(Session.Stored(serverText, tokens));
                user = tokens.User;
                method = "password";
            }
            if (output.Json) output.WriteJson(new LoginResult(serverText, method, user), CliJsonContext.Default.LoginResult);
            else output.Line($"Signed in to {Markup.Escape(serverText)} as [bold]{Markup.Escape(user.Email)}[/] ({Markup.Escape(user.Tier)}). Credentials: {Markup.Escape(config.CredentialsPath)}");
            return ExitCodes.Ok;
        });
        return command;
    }

    public static Command Logout(GlobalOptions options)
    {
        var command = new Command("logout", "End the session on the server and forget the stored credentials");
        options.SetAction(command, async (parse, output, ct) =>
        {
            var config = ConfigFolder.FromEnvironment();
            var stored = config.ReadCredentials();
            if (stored is null)
            {
                output.Note("Not signed in.");
                return ExitCodes.Ok;
            }
            if (stored.Tokens is not null)
            {
                try
                {
                    var session = await options.SessionAsync(parse, ct);
                    await session.Client.LogoutAsync(ct);
                }
                catch (CliException e)
                {
                    // The session was already over (or belongs to another server): forgetting it locally is all that is left.
                    output.Note(e.Message);
                }
            }
            else output.Note("The API key stays valid on the server until it is deleted (`apex keys delete <id>`).");
            config.DeleteCredentials();
            if (!output.Json) output.Line("Signed out.");
            return ExitCodes.Ok;
        });
        return command;
    }

    private static string Ask(Output output, string prompt, bool secret)
    {
        if (Console.IsInputRedirected || output.Json)
            throw new CliException($"Cannot ask for the {prompt.TrimEnd(':').ToLowerInvariant()} without a terminal: give --email and --password-stdin (or --api-key).");
        var question = new TextPrompt<string>(prompt);
        if (secret) question = question.Secret();
        return output.Err.Prompt(question);
    }
}
